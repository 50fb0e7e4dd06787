import Foundation

/// A temporary git repository with a workflow file, removed at deinit.
public final class Sandbox {
    public let url: URL
    public var path: String { url.path }

    /// `parent`: where it is made (a bubblewrap sandbox hides `/tmp`, where temporary directories are).
    public init(_ workflowYAML: String, name: String = "wf.yaml", under parent: URL = FileManager.default.temporaryDirectory) throws {
        url = parent.appendingPathComponent("amplify-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        _ = try shell("git init -q", in: url)
        try workflowYAML.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    public func read(_ relative: String) -> String {
        (try? String(contentsOf: url.appendingPathComponent(relative), encoding: .utf8)) ?? ""
    }

    public func journals() throws -> [String] {
        let runs = url.appendingPathComponent(".amplify/runs")
        return try FileManager.default.contentsOfDirectory(atPath: runs.path).sorted().map { runs.appendingPathComponent($0).appendingPathComponent("journal.jsonl").path }
    }

    /// Whether the first run's journal holds `text` (an event's name, `"process-started"`).
    public func journalContains(_ text: String) -> Bool {
        guard let path = (try? journals())?.first else { return false }
        return (try? String(contentsOfFile: path, encoding: .utf8))?.contains(text) ?? false
    }

    /// The pids of the agents the runner has recorded in `.amplify/sessions`, once `count` records
    /// hold one (or after `seconds`): an agent can write its start before the runner records its
    /// pid, and a runner killed in between leaves the agent to be found by its environment.
    /// `prefix`: only the sessions whose names start so (an item's id).
    public func recordedAgentPids(count: Int, prefix: String = "", seconds: Double = 30) async -> [Int32] {
        var pids: [Int32] = []
        await eventually(seconds: seconds) {
            let sessions = path + "/.amplify/sessions"
            let records = ((try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? []).filter { $0.hasPrefix(prefix) && $0.hasSuffix(".run.json") }
            pids = records.compactMap { name -> Int32? in
                let text = read(".amplify/sessions/" + name)
                return text.range(of: #""pid":[0-9]+"#, options: .regularExpression).flatMap { Int32(text[$0].dropFirst(6)) }
            }
            return pids.count >= count
        }
        return pids
    }
}

/// Waits (without blocking the pool) until `condition` holds or `seconds` pass; whether it held.
/// The deadline is generous on purpose: under the whole suite a loaded machine is slow, and a
/// wait that ends early only makes the test quicker.
@discardableResult
public func eventually(seconds: Double = 30, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return true
}

@discardableResult
public func shell(_ command: String, in directory: URL) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    p.currentDirectoryURL = directory
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// The amplify-run binary built beside the tests.
public var executable: URL {
    amplifyExecutable(repositoryRoot: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent())
}

/// Runs amplify-run to the end without holding a thread of the concurrency pool while it runs
/// (the pool has two threads here; blocked, they starve the tests that time kills).
public func amplify(_ arguments: [String], in sandbox: Sandbox, environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await runProcess(executable, arguments, in: sandbox.url, environment: environment)
}

/// Starts amplify-run without waiting.
public func startAmplify(_ arguments: [String], in sandbox: Sandbox, environment: [String: String] = [:]) throws -> Process {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    p.currentDirectoryURL = sandbox.url
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    return p
}
