import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `query-ready`: asks the tracker (`Tracker.ready`: `bd ready --json`, a Beads issues file read
/// with bd's ready rules, or any command printing a JSON array of objects with `id`) for the ready
/// items and filters them. A query has no side effects: in flight at a crash, it is simply asked
/// again.
public struct QueryReadyExecutor: StageExecutor {
    var grace: Duration
    /// The most a tracker's answer or issues file may hold.
    static let inputLimit = 64 << 20

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        do {
            let all: [Value]
            switch await (try Tracker(query: job.stage, evaluator: evaluator, repository: job.repository)).ready(job, processStarted: processStarted) {
            case .success(let items): all = items
            case .failure(let why): return .failed(why.message)
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

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        await Reconciliation.rerun(ending: process, grace: grace)
    }

    /// Applies `exclude-type`, `label` and `limit`; items whose id does not match the id pattern
    /// are set apart as invalid, never dispatched.
    static func filter(_ all: [Value], stage: Stage, evaluator: ExpressionEvaluator, seen: Set<String> = []) throws(EvaluationError) -> (valid: [Value], invalid: [Value]) {
        let excluded = Set(try stage.value(QueryReadyParameters.excludeType, evaluator) ?? [])
        let labels = try stage.value(QueryReadyParameters.label, evaluator) ?? []
        var limit = try stage.value(QueryReadyParameters.limit, evaluator)
        // `max-items` counts every item the run has taken, over all its queries.
        if let n = try stage.value(QueryReadyParameters.maxItems, evaluator) { limit = max(0, min(limit ?? n, n - seen.count)) }
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
