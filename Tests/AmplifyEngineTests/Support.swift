import AmplifyEngine
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// A checked workflow from inline YAML (the test fails if it does not check).
func workflow(_ yaml: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Workflow {
    let result = WorkflowChecker.check(yaml, file: "test.yaml")
    guard let w = result.workflow else {
        Issue.record("workflow does not check: \(result.diagnostics)", sourceLocation: sourceLocation)
        return WorkflowChecker.check("version: 1\nstages: {a: {run: x}}", file: "x.yaml").workflow!
    }
    return w
}

/// Drives a machine like the runner does: decide, apply what it decided, feed outcomes.
struct Simulation {
    var machine: RunStateMachine
    var log: [(RunEvent, Int64)] = []
    var now: Int64 = 1_000_000

    init(_ w: Workflow) {
        machine = RunStateMachine(workflow: w, runId: "test-run", maxProcesses: 100)
    }

    /// Decides; returns the instances started.
    @discardableResult
    mutating func step() -> [InstanceKey] {
        let events = machine.decide(now: now)
        log += events.map { ($0, now) }
        return events.compactMap { if case .instanceStarted(let k, _, _) = $0 { return k } else { return nil } }
    }

    mutating func feed(_ e: RunEvent) {
        machine.apply(e, at: now)
        log.append((e, now))
    }

    mutating func succeed(_ key: InstanceKey, _ outputs: [(String, Value)] = []) {
        feed(.instanceSucceeded(key, outputs: OrderedObject(outputs)))
    }

    mutating func fail(_ key: InstanceKey, _ reason: String = "boom") {
        feed(machine.failure(key, reason: reason, now: now))
    }

    func status(_ stage: String, _ item: Int? = nil) -> String? {
        machine.instance(InstanceKey(stage, item: item))?.status.word
    }
}

/// The state a run is in, for comparing a live machine with a replayed one.
func snapshot(_ m: RunStateMachine) -> String {
    var out = m.allInstances.map { "\($0.key)=\($0.instance.status.word)/\($0.instance.attempts)/\($0.instance.outputs.map { "\($0.0):\($0.1.json)" })" }
    out += m.sources.sorted { $0.key < $1.key }.map { "source\($0.key)=\($0.value.state)/\($0.value.items.count)/\($0.value.closed)" }
    out.append("outcome=\(String(describing: m.outcome))")
    return out.joined(separator: "\n")
}

/// A temporary git repository with a workflow file, removed at deinit.
final class Sandbox {
    let url: URL
    var path: String { url.path }

    init(_ workflowYAML: String, name: String = "wf.yaml") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("amplify-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        _ = try shell("git init -q", in: url)
        try workflowYAML.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func read(_ relative: String) -> String {
        (try? String(contentsOf: url.appendingPathComponent(relative), encoding: .utf8)) ?? ""
    }

    func journals() throws -> [String] {
        let runs = url.appendingPathComponent(".amplify/runs")
        return try FileManager.default.contentsOfDirectory(atPath: runs.path).sorted().map { runs.appendingPathComponent($0).appendingPathComponent("journal.jsonl").path }
    }
}

@discardableResult
func shell(_ command: String, in directory: URL) throws -> String {
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
var executable: URL {
    amplifyExecutable(repositoryRoot: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent())
}

/// Runs amplify-run to the end without holding a thread of the concurrency pool while it runs
/// (the pool has two threads here; blocked, they starve the tests that time kills).
func amplify(_ arguments: [String], in sandbox: Sandbox, environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await runProcess(executable, arguments, in: sandbox.url, environment: environment)
}

/// Starts amplify-run without waiting.
func startAmplify(_ arguments: [String], in sandbox: Sandbox) throws -> Process {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    p.currentDirectoryURL = sandbox.url
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    return p
}
