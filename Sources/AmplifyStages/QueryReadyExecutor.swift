import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `query-ready`: asks for the ready items and filters them. `source: bd` runs `bd ready --json`;
/// `source: file` reads a Beads issues file with bd's ready rules; `source: command` runs any
/// command printing a JSON array of objects with `id`. A query has no side effects: in flight at
/// a crash, it is simply asked again.
public struct QueryReadyExecutor: StageExecutor {
    var grace: Duration
    /// The most a tracker's answer or issues file may hold.
    static let inputLimit = 64 << 20

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        do {
            let source = try job.stage.parameter("source")?.render(evaluator).renderedText ?? "bd"
            let all: [Value]
            switch source {
            case "file":
                let path = try job.stage.parameter("path")?.render(evaluator).renderedText ?? ""
                let full = path.hasPrefix("/") ? path : job.repository + "/" + path
                let bytes: [UInt8]
                do { bytes = try WorkflowFile.read(full, limit: QueryReadyExecutor.inputLimit) } catch {
                    return .failed("`source: file`: \(error.description)")
                }
                do {
                    all = BeadsReadiness.ready(try BeadsReadiness.parseIssues(bytes: bytes), now: Processes.now())
                } catch {
                    return .failed("`source: file`: \(path) is not a JSON array or JSONL of issues: \(error)")
                }
            case "bd":
                guard ChildProcess.find("bd", path: job.environment["PATH"] ?? "/usr/bin:/bin") != nil else {
                    return .failed("`bd` is not on PATH: install Beads, or read its issues file with `source: file` and `path: .beads/issues.jsonl`")
                }
                var argv = ["bd", "ready", "--json"]
                if case .int(let n)? = try job.stage.parameter("limit")?.render(evaluator) { argv += ["--limit", String(n)] }
                for label in try strings(job.stage.parameter("label"), evaluator) { argv += ["--label", label] }
                argv += try strings(job.stage.parameter("args"), evaluator)
                switch await runJSON(.argv(argv.map { Template(parts: [.text($0)]) }), job: job, processStarted: processStarted) {
                case .success(let items): all = items
                case .failure(let message): return .failed("bd ready: \(message.text)")
                }
            case "command":
                guard let command = job.stage.with["command"].flatMap(Command.init) else { return .failed("`source: command` needs `command:`, a string or a list") }
                switch await runJSON(command, job: job, processStarted: processStarted) {
                case .success(let items): all = items
                case .failure(let message): return .failed(message.text)
                }
            default:
                return .failed("unknown `source: \(source)`")
            }
            let items = try QueryReadyExecutor.filter(all, stage: job.stage, evaluator: evaluator, seen: job.seenItemIds)
            var o = OrderedObject()
            o["items"] = .list(items.valid)
            o["count"] = .int(items.valid.count)
            o["invalid"] = .list(items.invalid)
            return .succeeded(o)
        } catch {
            return .failed(error.message)
        }
    }

    struct Message: Error { var text: String }

    /// Runs a command and parses what it printed as a JSON array.
    private func runJSON(_ command: Command, job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> Result<[Value], Message> {
        var runJob = job
        runJob.stage.command = command
        runJob.stage.outputs = []
        let result = await CommandStageExecutor(grace: grace, stdoutLimit: QueryReadyExecutor.inputLimit).execute(runJob, processStarted: processStarted)
        guard case .succeeded(let outputs) = result else {
            if case .failed(let reason) = result { return .failure(Message(text: reason)) }
            return .failure(Message(text: "failed"))
        }
        guard case .string(let stdout)? = outputs["stdout"], !stdout.isEmpty else { return .failure(Message(text: "printed nothing; expected a JSON array of items")) }
        do {
            guard case .list(let items) = try JSONParser.parse(stdout) else { return .failure(Message(text: "printed JSON that is not an array of items")) }
            return .success(items)
        } catch {
            return .failure(Message(text: "printed something that is not JSON (\(error))"))
        }
    }

    private func strings(_ value: TemplateValue?, _ evaluator: ExpressionEvaluator) throws(EvaluationError) -> [String] {
        switch try value?.render(evaluator) {
        case .list(let l)?: return l.map(\.renderedText)
        case .string(let s)?: return [s]
        default: return []
        }
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        if let process, Processes.isAlive(pid: process.pid, startTime: process.startTime) {
            await ChildProcess.terminateGroup(process.pid, startTime: process.startTime, grace: grace)
        }
        return .rerun
    }

    /// Applies `exclude-type`, `label` and `limit`; items whose id does not match the id pattern
    /// are set apart as invalid, never dispatched.
    static func filter(_ all: [Value], stage: Stage, evaluator: ExpressionEvaluator, seen: Set<String> = []) throws(EvaluationError) -> (valid: [Value], invalid: [Value]) {
        func strings(_ name: String) throws(EvaluationError) -> [String] {
            switch try stage.parameter(name)?.render(evaluator) {
            case .list(let l)?: return l.map(\.renderedText)
            case .string(let s)?: return [s]
            default: return []
            }
        }
        let excluded = Set(try strings("exclude-type"))
        let labels = try strings("label")
        var limit: Int?
        if case .int(let n)? = try stage.parameter("limit")?.render(evaluator) { limit = n }
        // `max-items` counts every item the run has taken, over all its queries.
        if case .int(let n)? = try stage.parameter("max-items")?.render(evaluator) { limit = max(0, min(limit ?? n, n - seen.count)) }
        var valid: [Value] = []
        var invalid: [Value] = []
        for item in all {
            guard case .object(let o) = item else { invalid.append(item); continue }
            guard case .string(let id)? = o["id"], isValidId(id) else { invalid.append(item); continue }
            if seen.contains(id) { continue }
            if case .string(let type)? = o["issue_type"], excluded.contains(type) { continue }
            if !labels.isEmpty {
                guard case .list(let have)? = o["labels"], labels.allSatisfy({ l in have.contains(.string(l)) }) else { continue }
            }
            if let limit, valid.count >= limit { break }
            valid.append(item)
        }
        return (valid, invalid)
    }

    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`
    public static func isValidId(_ id: String) -> Bool {
        let u = Array(id.utf8)
        guard (1...128).contains(u.count) else { return false }
        func alnum(_ c: UInt8) -> Bool { (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) }
        return alnum(u[0]) && u.dropFirst().allSatisfy { alnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }
    }
}
