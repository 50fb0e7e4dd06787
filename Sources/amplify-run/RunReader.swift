import AmplifyEngine
import AmplifyWorkflow
import ArgumentParser

/// Reading a run from its state directory (read-only: a torn last line is ignored).
enum RunReader {
    /// The run's state machine rebuilt from its journal, with the workflow copy it started with.
    static func replay(_ store: RunStore, run: String) throws -> RunStateMachine {
        try replayed(store, run: run).machine
    }

    /// The machine, and the journal as read (its entries, and how many bytes were whole lines).
    static func replayed(_ store: RunStore, run: String) throws -> (machine: RunStateMachine, read: (entries: [JournalEntry], validSize: Int, tornTail: Bool)) {
        let path = store.summary(of: run)?.workflow ?? store.workflowCopy(of: run)
        guard let bytes = try? WorkflowFile.read(store.workflowCopy(of: run)),
              let workflow = WorkflowChecker.check(bytes: bytes, file: path).workflow else {
            throw ValidationError("run \(run) has no readable workflow copy")
        }
        let read = try Journal.read(path: store.journal(of: run))
        var vars = workflow.vars
        if case .runStarted(_, _, _, let v)? = read.entries.first?.event { vars = v }
        var machine = RunStateMachine(workflow: workflow, runId: run, vars: vars)
        for e in read.entries { machine.apply(e.event, at: e.at) }
        return (machine, read)
    }

    /// How `status` says where a run is: finished, cancelled, running (pid) or interrupted.
    static func stateWord(_ store: RunStore, run: String, machine: RunStateMachine) -> String {
        if let o = machine.outcome { return o == .cancelled ? "cancelled" : "finished (\(o.rawValue))" }
        if RunLock.isHeld(path: store.lock(of: run)) { return "running (pid \(RunLock.holder(path: store.lock(of: run)).map(String.init) ?? "?"))" }
        return "interrupted (resumable: run the same command again)"
    }
}
