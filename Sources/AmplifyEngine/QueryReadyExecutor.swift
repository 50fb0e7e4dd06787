import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `query-ready`: asks for the ready items and filters them. This build implements
/// `source: command` (any command printing a JSON array of objects with `id`); `bd` and `file`
/// arrive with the orchestration stages. A query has no side effects: in flight at a crash, it
/// is simply asked again.
public struct QueryReadyExecutor: StageExecutor {
    var grace: Duration
    static let idPattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        func param(_ name: String) throws(EvaluationError) -> Value? {
            try job.stage.parameter(name)?.render(evaluator)
        }
        do {
            let source = try param("source")?.renderedText ?? "bd"
            guard source == "command" else {
                return .failed("query-ready `source: \(source)` is not built into this version yet; use `source: command`")
            }
            guard let commandValue = job.stage.with["command"] else { return .failed("`source: command` needs `command:`") }
            let command: Command
            switch commandValue {
            case .list(let parts):
                command = .argv(parts.map { p in
                    if case .template(let t) = p { return t }
                    return Template(parts: [.text(p.literalValue?.renderedText ?? "")])
                })
            case .template(let t): command = .shell(t)
            case .literal(let v): command = .shell(Template(parts: [.text(v.renderedText)]))
            case .object: return .failed("`command` must be a string or a list")
            }
            var runJob = job
            runJob.stage.command = command
            runJob.stage.outputs = []
            let result = await CommandStageExecutor(grace: grace).execute(runJob, processStarted: processStarted)
            guard case .succeeded(let outputs) = result else { return result }
            guard case .string(let stdout)? = outputs["stdout"] else { return .failed("the command printed nothing") }
            let parsed: Value
            do { parsed = try JSONParser.parse(stdout) } catch {
                return .failed("the command's output is not JSON: \(error)")
            }
            guard case .list(let all) = parsed else { return .failed("the command printed \(parsed.kindDescription), not a JSON array of items") }
            let items = try QueryReadyExecutor.filter(all, stage: job.stage, evaluator: evaluator)
            var o = OrderedObject()
            o["items"] = .list(items.valid)
            o["count"] = .int(items.valid.count)
            o["invalid"] = .list(items.invalid)
            return .succeeded(o)
        } catch {
            return .failed(error.message)
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
    static func filter(_ all: [Value], stage: Stage, evaluator: ExpressionEvaluator) throws(EvaluationError) -> (valid: [Value], invalid: [Value]) {
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
        var valid: [Value] = []
        var invalid: [Value] = []
        for item in all {
            guard case .object(let o) = item else { invalid.append(item); continue }
            guard case .string(let id)? = o["id"], isValidId(id) else { invalid.append(item); continue }
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
