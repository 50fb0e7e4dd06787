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

/// Drives a machine like the runner does: let time pass, feed outcomes.
struct Simulation {
    var machine: RunStateMachine
    var log: [(RunEvent, Int64)] = []
    var now: Int64 = 1_000_000

    init(_ w: Workflow) {
        machine = RunStateMachine(workflow: w, runId: "test-run", maxProcesses: 100)
    }

    /// Lets time pass (`tick`); returns the instances the machine starts.
    @discardableResult
    mutating func step() -> [InstanceKey] {
        let actions = machine.tick(now: now)
        for case .persist(let events, let at, _) in actions { log += events.map { ($0, at) } }
        return actions.compactMap { if case .start(let k, _) = $0 { return k } else { return nil } }
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

