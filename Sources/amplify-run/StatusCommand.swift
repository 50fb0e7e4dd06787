import AmplifyEngine
import AmplifyWorkflow
import AmplifyStages
import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

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

    @Flag(help: "Also list every instance (stage × item), not only one line per item.")
    var instances = false

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
        // A session whose agent has exited while its wait goes on waits for a person's decision;
        // questions answered in the session directory are not waiting any more.
        let report = RunReport(machine, now: Processes.now()) { sid in
            guard SessionFiles.isValidId(sid) else { return nil }
            let files = SessionFiles(stateDirectory: store.root, id: sid)
            var exited = false
            if let record = files.readRecord(), let pid = record.pid, let start = record.startTime {
                exited = !Processes.isAlive(pid: pid, startTime: start)
            }
            return RunReport.SessionState(answered: Set(files.answers().keys), agentExited: exited)
        }
        let sessions = SessionRow.all(machine, stateDirectory: store.root)
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
            // One row per work item: how it ended or where it is, as the summary shows it.
            o["items"] = .list(report.items.map { r in
                var i = OrderedObject()
                i["item"] = .string(r.item)
                i["title"] = r.title.map(Value.string) ?? .null
                i["outcome"] = .string(r.outcome)
                i["stage"] = r.stage.map(Value.string) ?? .null
                i["duration-ms"] = r.duration.map { .int(Int($0)) } ?? .null
                i["cost"] = r.cost.map(Value.double) ?? .null
                i["detail"] = r.detail.map(Value.string) ?? .null
                return .object(i)
            })
            o["sessions"] = .list(sessions.map { r in
                var i = OrderedObject()
                i["session"] = .string(r.id)
                i["item"] = .string(r.item)
                i["agent"] = .string(r.agent)
                i["cost"] = r.cost.map(Value.double) ?? .null
                i["pending-questions"] = .list(r.pending.map { .object($0) })
                return .object(i)
            })
            print(Value.object(o).prettyJSON)
            return
        }
        RunSummaryPrinter.print(report, exitCode: nil, interrupted: nil, state: state, instances: instances)
        if !sessions.isEmpty {
            print("\nSESSIONS")
            for r in sessions {
                print("  \(r.id)  item \(r.item.visible)  agent \(r.agent)\(r.cost.map { "  cost " + RunReport.dollars($0) } ?? "")")
                for q in r.pending {
                    let qid = (q["id"]?.renderedText ?? "?").visible
                    print("    question \(qid): \((q["question"]?.renderedText ?? "").visible)")
                    print("      answer with: amplify-run answer \(r.id) \(qid) '…'")
                }
            }
        }
    }
}

/// A session of a run as `status` shows it: its agent, its cost, the questions still unanswered.
struct SessionRow {
    var id: String
    var item: String
    var agent: String
    var cost: Double?
    var pending: [OrderedObject]

    static func all(_ machine: RunStateMachine, stateDirectory: String) -> [SessionRow] {
        var rows: [SessionRow] = []
        // The wait of each item, found once (not a scan of every instance per session).
        let all = machine.allInstances
        var waits: [Int: [(key: InstanceKey, instance: RunStateMachine.Instance)]] = [:]
        for (k, i) in all where k.item != nil && machine.stage(of: k)?.kind == .waitApproved { waits[k.item!, default: []].append((k, i)) }
        for (key, inst) in all where machine.stage(of: key)?.kind == .dispatch {
            guard case .string(let sid)? = inst.outputs["session"] else { continue }
            let files = SessionFiles(stateDirectory: stateDirectory, id: sid)
            let record = files.readRecord()
            var agent = "not known"
            if let pid = record?.pid, let start = record?.startTime {
                agent = Processes.isAlive(pid: pid, startTime: start) ? "running (pid \(pid))" : "exited"
            } else if !FileManager.default.fileExists(atPath: files.directory) {
                agent = "archived"
            }
            var cost: Double?
            var pending: [OrderedObject] = []
            let answers = files.answers()
            for (k, i) in waits[key.item ?? -1] ?? [] {
                if let c = RunReport.number(i.outputs["cost"]) ?? (machine.notes[k] ?? []).last(where: { $0.kind == "usage" }).flatMap({ RunReport.number($0.fields["cost"]) }) { cost = c }
                guard !i.status.isEnded else { continue }
                for note in machine.notes[k] ?? [] where note.kind == "question" {
                    if let qid = note.fields["id"]?.renderedText, answers[qid] == nil { pending.append(note.fields) }
                }
            }
            rows.append(SessionRow(id: sid, item: RunStateMachine.itemName(machine.item(for: key), index: key.item ?? 0), agent: agent, cost: cost, pending: pending))
        }
        return rows
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
            if !json { print("\(id)  \(s.workflow.visible)  \(state)") }
        }
        if json { print(Value.list(rows).prettyJSON) }
    }
}
