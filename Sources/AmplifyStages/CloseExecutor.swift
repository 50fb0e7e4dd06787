import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `close`: closes the item in the tracker its `query-ready` stage read. `source: bd` runs
/// `bd close <id> --reason <reason>` after `bd show <id> --json` says it is not closed yet;
/// `source: file` rewrites the item in the issues file atomically; `source: command` runs
/// `with.command`. Already closed is success, so an instance in flight at a crash is simply
/// run again: it closes exactly once.
public struct CloseExecutor: StageExecutor {
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        guard case .object(let item)? = job.context.roots["item"], case .string(let id)? = item["id"], QueryReadyExecutor.isValidId(id) else {
            return .failed("close: the item has no valid id")
        }
        do {
            let reason = try job.stage.parameter("reason")?.render(evaluator).renderedText ?? "Merged"
            guard let query = job.upstreamQuery else { return .failed("close: no query-ready stage upstream tells which tracker the item came from") }
            let source = try query.parameter("source")?.render(evaluator).renderedText ?? "bd"
            let result = await close(id: id, reason: reason, source: source, query: query, job: job, evaluator: evaluator, processStarted: processStarted)
            // Closed: no longer a claim anyone must give back.
            if case .succeeded = result { Claims(stateDirectory: job.stateDirectory).forget(item: id) }
            return result
        } catch {
            return .failed("close: \(error.message)")
        }
    }

    private func close(id: String, reason: String, source: String, query: Stage, job: StageJob, evaluator: ExpressionEvaluator,
                       processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        do {
            switch source {
            case "file":
                let path = try query.parameter("path")?.render(evaluator).renderedText ?? ""
                return await IssuesFile.closeIssue(id: id, reason: reason, path: path.hasPrefix("/") ? path : job.repository + "/" + path)
            case "bd":
                return await closeWithBd(id: id, reason: reason, job: job, processStarted: processStarted)
            default:
                guard let command = job.stage.with["command"].flatMap(Command.init) else { return .failed("close: `source: \(source)` needs `with.command`, the command that closes an item") }
                var runJob = job
                runJob.stage.command = command
                return await CommandStageExecutor(grace: grace).execute(runJob, processStarted: processStarted)
            }
        } catch {
            return .failed("close: \(error.message)")
        }
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        // Closing checks first whether the item is closed already: running it again is safe.
        if let process, Processes.isAlive(pid: process.pid, startTime: process.startTime) {
            await ChildProcess.terminateGroup(process.pid, startTime: process.startTime, grace: grace)
        }
        return .rerun
    }

    private func closeWithBd(id: String, reason: String, job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        guard ChildProcess.find("bd", path: job.environment["PATH"] ?? "/usr/bin:/bin") != nil else {
            return .failed("close: `bd` is not on PATH")
        }
        func run(_ argv: [String]) async -> StageResult {
            var runJob = job
            runJob.stage.command = .argv(argv.map { Template(parts: [.text($0)]) })
            runJob.stage.outputs = []
            runJob.stage.env = []
            return await CommandStageExecutor(grace: grace).execute(runJob, processStarted: processStarted)
        }
        if case .succeeded(let shown) = await run(["bd", "show", id, "--json"]), case .string(let text)? = shown["stdout"],
           let value = try? JSONParser.parse(text) {
            // bd prints the issue, or a list holding it.
            let issue: Value? = if case .list(let l) = value { l.first } else { value }
            if issue?["status"] == .string("closed") { return .succeeded(OrderedObject([("closed", .bool(false))])) }
        }
        switch await run(["bd", "close", id, "--reason", reason]) {
        case .succeeded: return .succeeded(OrderedObject([("closed", .bool(true))]))
        case .failed(let why), .failedAs(_, let why): return .failed("bd close \(id): \(why)")
        }
    }
}
