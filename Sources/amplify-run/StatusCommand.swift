import AmplifyEngine
import AmplifyWorkflow
import ArgumentParser

/// Reading runs from the state directory (read-only: a torn last line is ignored).
enum RunReader {
    static func store() -> (RunStore, String)? {
        let cwd = RepositoryLocator.currentDirectory()
        guard let repository = RepositoryLocator.topLevel(from: cwd) ?? RepositoryLocator.realPath(cwd) else { return nil }
        // The state directory of the default workflow's settings, else `.amplify`.
        var state = ".amplify"
        if let bytes = try? WorkflowFile.read(repository + "/workflows/default.yaml"),
           let w = WorkflowChecker.check(bytes: bytes, file: "workflows/default.yaml").workflow {
            state = w.settings.state
        }
        return (RunStore(root: repository + "/" + state), repository)
    }

    /// The run's state machine rebuilt from its journal.
    static func replay(_ store: RunStore, run: String) throws -> RunStateMachine {
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
        return machine
    }

    static func stateWord(_ store: RunStore, run: String, machine: RunStateMachine) -> String {
        if let o = machine.outcome { return o == .cancelled ? "cancelled" : "finished (\(o.rawValue))" }
        if RunLock.isHeld(path: store.lock(of: run)) { return "running (pid \(RunLock.holder(path: store.lock(of: run)).map(String.init) ?? "?"))" }
        return "interrupted (resumable: run the same command again)"
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what happened to every instance of a run (default: the newest), and its state."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The run id (see `amplify-run runs`).", valueName: "RUN-ID"))
    var runId: String?

    @Flag(help: "Print the state as JSON.")
    var json = false

    func run() throws {
        guard let (store, _) = RunReader.store() else { throw ExitCode(4) }
        guard let id = runId ?? store.runIds().last else {
            Terminal.err("amplify-run: no runs in \(store.root)")
            throw ExitCode(4)
        }
        guard store.runIds().contains(id) else {
            Terminal.err("amplify-run: error: no run '\(id)' in \(store.root)\(DidYouMean.hint(id, store.runIds()))")
            throw ExitCode(2)
        }
        let machine: RunStateMachine
        do { machine = try RunReader.replay(store, run: id) } catch {
            Terminal.err("amplify-run: error: \(error)")
            throw ExitCode(4)
        }
        let state = RunReader.stateWord(store, run: id, machine: machine)
        let report = RunReport(machine, now: Processes.now())
        if json {
            var o = OrderedObject()
            o["run"] = .string(id)
            o["workflow"] = .string(machine.workflow.name)
            o["state"] = .string(state)
            o["outcome"] = machine.outcome.map { .string($0.rawValue) } ?? .null
            o["instances"] = .list(report.rows.map { r in
                var i = OrderedObject()
                i["stage"] = .string(r.key.stage)
                i["item"] = r.item.map(Value.string) ?? .null
                i["title"] = r.title.map(Value.string) ?? .null
                i["status"] = .string(r.status.word)
                i["attempts"] = .int(r.attempts)
                i["duration-ms"] = r.duration.map { .int(Int($0)) } ?? .null
                i["detail"] = r.detail.map(Value.string) ?? .null
                return .object(i)
            })
            print(Value.object(o).prettyJSON)
            return
        }
        RunSummaryPrinter.print(report, exitCode: nil, interrupted: nil, state: state, instances: true)
    }
}

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the runs in the state directory, newest last."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the list as JSON.")
    var json = false

    func run() throws {
        guard let (store, _) = RunReader.store() else { throw ExitCode(4) }
        var rows: [Value] = []
        for id in store.runIds() {
            guard let s = store.summary(of: id) else { continue }
            let state: String
            if let o = s.outcome { state = o == .cancelled ? "cancelled" : "finished (\(o.rawValue))" }
            else if RunLock.isHeld(path: store.lock(of: id)) { state = "running" }
            else { state = "interrupted" }
            var o = OrderedObject()
            o["run"] = .string(id)
            o["workflow"] = .string(s.workflow)
            o["started"] = .string(Timestamp.iso8601(milliseconds: s.startedAt))
            o["state"] = .string(state)
            rows.append(.object(o))
            if !json { print("\(id)  \(s.workflow)  \(state)") }
        }
        if json { print(Value.list(rows).prettyJSON) }
    }
}
