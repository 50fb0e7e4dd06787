import AmplifyTestSupport
@testable import AmplifyStages
import Foundation
import Testing

/// Agents as Slurm batch jobs (`sessions: slurm`) on a real one-node cluster (scripts/slurm/up.sh;
/// .ci/run starts it): items land once, a restarted runner re-attaches by job id and never
/// submits a second job, a timeout cancels the job, and a job Slurm starts twice runs its agent once.
@Suite("Sessions as Slurm jobs (real Slurm)", .serialized, .enabled(if: SlurmCluster.conf != nil || ProcessInfo.processInfo.environment["AMPLIFY_REQUIRE_SLURM"] != nil))
struct SlurmTests {
    /// Slurm's jobs for one item (`amplify-<item>-<run>`).
    static func jobs(_ item: String, _ o: Orchestra) -> [(id: String, name: String, state: String)] {
        SlurmCluster.jobs(named: "amplify-\(item)-", under: o.box.path)
    }

    @Test("each agent is a batch job: the items land once, a crash's status comes back from the job")
    func itemsRunAsSlurmJobs() async throws {
        #expect(SlurmCluster.conf != nil, "no Slurm cluster: install slurmctld slurmd slurm-client munge, or set SLURM_CONF")
        let o = try Orchestra([("sj-1", "approve", nil), ("sj-2", "approve", nil), ("sj-3", "crash", nil)],
                              workflow: Orchestra.workflow(timeout: "60s", slurm: true), slurm: true)
        let r = try await o.run()
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        for id in ["sj-1", "sj-2"] {
            #expect(try o.landed(id) == 1, "\(id) landed once\n\(r.stdout)")
            #expect(o.status(of: id) == "closed")
            #expect(o.agentStarts(id) == 1)
            let jobs = SlurmTests.jobs(id, o)
            #expect(jobs.count == 1 && jobs.first?.state == "COMPLETED", "one job for \(id): \(jobs)")
        }
        // The crash's exit status, from the job's exit file, with its job id.
        let crash = SlurmTests.jobs("sj-3", o)
        #expect(crash.count == 1 && crash.first?.state == "FAILED", "\(crash)")
        #expect(r.stdout.contains("exited with status 3 (Slurm job \(crash.first?.id ?? "?"))"), "\(r.stdout)")
        #expect(r.stdout.contains("agent: something broke"), "\(r.stdout)")
        #expect(o.status(of: "sj-3") != "closed")
    }

    @Test("a runner killed with its watchers re-attaches by job id: no second job, every agent started once")
    func reattachesByJobId() async throws {
        let o = try Orchestra([("sr-1", "approve", nil), ("sr-2", "approve", nil)], workflow: Orchestra.workflow(timeout: "60s", slurm: true), slurm: true)
        var env = o.environment
        env["AGENT_DELAY"] = "3"
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: env)
        // Both jobs running, then the runner and every watcher of this box killed.
        func running() -> Int { SlurmCluster.jobs(named: "amplify-sr-", under: o.box.path).filter { $0.state == "RUNNING" }.count }
        for _ in 0..<150 {
            if running() == 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(running() == 2)
        kill(runner.processIdentifier, SIGKILL)
        try shell("pkill -KILL -f '\(o.box.path)/.amplify/slurm/watch.sh' || true", in: o.box.url)
        while runner.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let r = try await amplify(["wf.yaml"], in: o.box, environment: env)
        try o.expectResumedOnce(r, ["sr-1", "sr-2"])
        for id in ["sr-1", "sr-2"] { #expect(SlurmTests.jobs(id, o).count == 1, "no second job for \(id): \(SlurmTests.jobs(id, o))") }
    }

    @Test("a timeout cancels the job: it ends CANCELLED and its agent is gone")
    func timeoutCancelsTheJob() async throws {
        let o = try Orchestra([("st-1", "hang", nil)], workflow: Orchestra.workflow(timeout: "3s", refill: false, slurm: true), slurm: true)
        let r = try await o.run()
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("timed out"), "\(r.stdout)")
        var jobs = SlurmTests.jobs("st-1", o)
        for _ in 0..<100 {
            if jobs.first?.state == "CANCELLED" { break }
            try await Task.sleep(for: .milliseconds(100))
            jobs = SlurmTests.jobs("st-1", o)
        }
        #expect(jobs.count == 1 && jobs.first?.state == "CANCELLED", "\(jobs)")
        // The agent's `sleep 600` went with it (this item's: other tests' agents hang too).
        #expect(await eventually(seconds: 15) { livingProcesses(withEnvironment: "AMPLIFY_ITEM_ID=st-1").isEmpty },
                "the hanging agent is still running: \(livingProcesses(withEnvironment: "AMPLIFY_ITEM_ID=st-1"))")
    }

    /// The job script alone, submitted by hand: a state directory with session `s-1` under
    /// /var/tmp, removed after `body`. `submit(token, agent)` sbatches one start of `agent` (a
    /// shell command line) and returns its job id.
    static func withJobScript(_ name: String, _ body: (_ dir: String, _ session: String, _ submit: (String, String) throws -> String) async throws -> Void) async throws {
        let conf = try #require(SlurmCluster.conf)
        let dir = "/var/tmp/amplify-slurm-\(name)-\(getpid())"
        let session = dir + "/state/sessions/s-1"
        try FileManager.default.createDirectory(atPath: session, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = try Slurm.scripts(dir + "/state").job
        try await body(dir, session) { token, agent in
            try shell("SLURM_CONF=\(conf) sbatch --parsable --output=\(session)/output.log --open-mode=append \(script) \(session) \(token) \(dir) \(agent)", in: URL(fileURLWithPath: dir))
        }
    }

    @Test("a job Slurm starts twice runs its agent once (the start marker)")
    func jobStartedTwiceRunsTheAgentOnce() async throws {
        try await SlurmTests.withJobScript("twice") { dir, session, submit in
            // Two jobs of one start (one token), as a controller that lost its state runs it again.
            let agent = "sh -c 'echo started >> \(dir)/starts; sleep 2'"
            let ids = [try submit("tok-1", agent), try submit("tok-1", agent)]
            await eventually(seconds: 20) { FileManager.default.fileExists(atPath: session + "/slurm-tok-1.exit") }
            // The second job may run after the first has ended: wait for its word.
            let log = { (try? String(contentsOfFile: session + "/output.log", encoding: .utf8)) ?? "" }
            #expect(await eventually(seconds: 30) { log().contains("its agent started once already, so not again") }, "\(log())")
            #expect(ids.allSatisfy { !$0.isEmpty })
            #expect((try? String(contentsOfFile: dir + "/starts", encoding: .utf8)) == "started\n")
            #expect((try? String(contentsOfFile: session + "/slurm-tok-1.exit", encoding: .utf8)) == "status 0\n")
        }
    }

    @Test("the cancel file ends a running agent without the controller (one that is away cannot scancel)")
    func cancelFileEndsTheAgent() async throws {
        try await SlurmTests.withJobScript("cancel") { dir, session, submit in
            // The agent and a child of its own, both working for 10 minutes.
            let id = try submit("tok-2", "sh -c 'sleep 612 & echo started >> \(dir)/starts; sleep 611'")
            await eventually(seconds: 10) { FileManager.default.fileExists(atPath: dir + "/starts") }
            #expect(FileManager.default.fileExists(atPath: dir + "/starts"), "the agent of job \(id) started")
            _ = FileManager.default.createFile(atPath: session + "/slurm-tok-2.cancel", contents: nil)
            await eventually(seconds: 15) { FileManager.default.fileExists(atPath: session + "/slurm-tok-2.exit") }
            #expect((try? String(contentsOfFile: session + "/slurm-tok-2.exit", encoding: .utf8)) == "status 143\n", "ended by SIGTERM")
            // (The job script, whose command line names them too, may still be on its way out.)
            let left = { (try? shell("pgrep -f 'sleep 61[12]' | wc -l", in: URL(fileURLWithPath: dir)))?.trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(await eventually(seconds: 10) { left() == "0" }, "the agent and its child are gone")
        }
    }

    @Test("a controller that does not answer stops the run before anything is claimed")
    func unreachableController() async throws {
        let conf = try #require(SlurmCluster.conf)
        let o = try Orchestra([("su-1", "approve", nil)], workflow: Orchestra.workflow(slurm: true))
        // The cluster's configuration, with a controller port nothing listens on.
        let dead = o.box.path + "/dead-slurm.conf"
        try shell("sed 's/^SlurmctldPort=.*/SlurmctldPort=1/' '\(conf)' > '\(dead)'", in: o.box.url)
        var env = o.environment
        env["SLURM_CONF"] = dead
        let r = try await amplify(["wf.yaml"], in: o.box, environment: env)
        #expect(r.status == 2, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("the Slurm controller does not answer"), "\(r.stderr)")
        #expect(!o.bdCalls.contains { $0.contains("update") }, "nothing claimed: \(o.bdCalls)")
    }
}
