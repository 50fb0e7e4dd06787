import Foundation

/// The one-node Slurm cluster the tests submit to (scripts/slurm/up.sh): the one SLURM_CONF
/// names (.ci/run starts it), else one started here under /var/tmp/amplify-slurm.
public enum SlurmCluster {
    /// Its slurm.conf; nil when Slurm is not installed here.
    public static let conf: String? = {
        if let c = ProcessInfo.processInfo.environment["SLURM_CONF"], FileManager.default.fileExists(atPath: c) { return c }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/slurmctld") else { return nil }
        let dir = "/var/tmp/amplify-slurm"
        let up = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/slurm/up.sh").path
        let started = try? shell("SLURM_PROBE_DIR=\(dir) SLURM_PROBE_CPUS=8 SLURM_PROBE_KILLWAIT=5 '\(up)' >&2", in: URL(fileURLWithPath: "/"))
        return started != nil && FileManager.default.fileExists(atPath: dir + "/slurm.conf") ? dir + "/slurm.conf" : nil
    }()

    /// A Slurm command's output (stdout), run against the cluster.
    public static func run(_ command: String) -> String {
        (try? shell("SLURM_CONF='\(conf ?? "")' " + command, in: URL(fileURLWithPath: "/"))) ?? ""
    }

    /// Jobs Slurm knows (`squeue -t all`) by the name the runner gives them (`amplify-<session>`),
    /// of those that ran in a directory under `directory` (one test's box).
    public static func jobs(named prefix: String, under directory: String) -> [(id: String, name: String, state: String)] {
        run("squeue -h -t all -o '%i|%j|%T|%Z'").split(separator: "\n").compactMap { line in
            let p = line.split(separator: "|").map(String.init)
            return p.count == 4 && p[1].hasPrefix(prefix) && p[3].hasPrefix(directory + "/") ? (p[0], p[1], p[2]) : nil
        }
    }
}
