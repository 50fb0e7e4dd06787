import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser

/// `status [RUN-ID]`: what happened to every instance and item of a run, and its sessions.
struct StatusCommand: ContextualCommand {
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

    func run(_ context: CommandContext) async throws {
        guard let states = StateDirectories.find(from: context.directory) else { throw ExitCode(4) }
        let runs = states.runs
        guard let id = runId ?? runs.last?.id else {
            context.err.line("amplify-run: no runs in \(states.description)")
            throw ExitCode(4)
        }
        guard let store = states.store(holding: id) else {
            context.error("no run '\(id)' in \(states.description)\(DidYouMean.hint(id, runs.map(\.id)))")
            throw ExitCode(2)
        }
        let machine: RunStateMachine
        do { machine = try RunReader.replay(store, run: id) } catch {
            context.error("\(error)")
            throw ExitCode(4)
        }
        let state = RunReader.stateWord(store, run: id, machine: machine)
        let report = StatusCommand.report(machine, store: store, now: context.now())
        let sessions = SessionRow.all(machine, stateDirectory: store.root)
        if json {
            context.out.line(StatusCommand.json(machine, report: report, sessions: sessions, state: state).prettyJSON)
            return
        }
        RunSummaryPrinter.print(report, exitCode: nil, interrupted: nil, state: state, instances: instances, to: context.out)
        if !sessions.isEmpty {
            context.out.line("\nSESSIONS")
            for r in sessions {
                context.out.line("  \(r.id)  item \(r.item.visible)  agent \(r.agent)\(r.cost.map { "  cost " + RunReport.dollars($0) } ?? "")")
                for q in r.pending {
                    let qid = (q["id"]?.renderedText ?? "?").visible
                    context.out.line("    question \(qid): \((q["question"]?.renderedText ?? "").visible)")
                    context.out.line("      answer with: amplify-run answer \(r.id) \(qid) '…'")
                }
            }
        }
    }

    /// The run's report, with what only its session directories know: a session whose agent has
    /// exited while its wait goes on waits for a person's decision; questions answered in the
    /// session directory are not waiting any more.
    static func report(_ machine: RunStateMachine, store: RunStore, now: Int64) -> RunReport {
        RunReport(machine, now: now) { sid in
            guard SessionFiles.isValidId(sid) else { return nil }
            let files = SessionFiles(stateDirectory: store.root, id: sid)
            var exited = false
            if let record = files.readRecord(), let pid = record.pid, let start = record.startTime {
                exited = !Processes.isAlive(pid: pid, startTime: start)
            }
            return RunReport.SessionState(answered: Set(files.answers().keys), agentExited: exited)
        }
    }

    /// What `status --json` prints (and the dashboard's `GET /api/runs/RUN` replies).
    static func json(_ machine: RunStateMachine, report: RunReport, sessions: [SessionRow], state: String) -> Value {
        var o = OrderedObject()
        o["run"] = .string(machine.runId)
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
            // Per-item stages' outputs (a merge's commit, batch, pull request); a query's item list is not repeated here.
            if r.item != nil, let outputs = machine.instance(r.key)?.outputs, !outputs.isEmpty { i["outputs"] = .object(outputs) }
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
            i["tokens"] = r.tokens.map(Value.int) ?? .null
            i["turns"] = r.turns.map(Value.int) ?? .null
            i["agent-profile"] = r.profile.map(Value.string) ?? .null
            i["detail"] = r.detail.map(Value.string) ?? .null
            return .object(i)
        })
        o["spent"] = report.spent.map(Value.double) ?? .null
        o["budget"] = report.budget.map(Value.double) ?? .null
        o["notifications"] = .object(OrderedObject([
            ("delivered", .int(report.notifications.delivered)),
            ("failed", .list(report.notifications.failed.map { f in
                .object(OrderedObject([("id", .string(f.id)), ("event", .string(f.event)), ("target", .int(f.target)), ("error", .string(f.error))]))
            })),
        ]))
        o["sessions"] = .list(sessions.map { r in
            var i = OrderedObject()
            i["session"] = .string(r.id)
            i["item"] = .string(r.item)
            i["agent"] = .string(r.agent)
            i["cost"] = r.cost.map(Value.double) ?? .null
            i["pending-questions"] = .list(r.pending.map { .object($0) })
            return .object(i)
        })
        return .object(o)
    }
}
