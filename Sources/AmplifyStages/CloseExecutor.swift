import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `close`: closes the item in the tracker its `query-ready` stage read (`Tracker.close`: `bd
/// close` after `bd show` says it is not closed yet, the issues file rewritten atomically, or
/// `with.command`). Already closed is success, so an instance in flight at a crash is simply
/// run again: it closes exactly once.
public struct CloseExecutor: StageExecutor {
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        guard case .object(let item)? = job.context.roots["item"], case .string(let id)? = item["id"], QueryReadyExecutor.isValidId(id) else {
            return .failed("close: the item has no valid id")
        }
        do {
            let reason = try job.stage.value(CloseParameters.reason, evaluator)
            guard let query = job.upstreamQuery else { return .failed("close: no query-ready stage upstream tells which tracker the item came from") }
            let tracker = try Tracker(query: query, evaluator: evaluator, repository: job.repository)
            let result = await tracker.close(id, reason: reason, job: job, processStarted: processStarted)
            // Closed: no longer a claim anyone must give back.
            if case .succeeded = result { Claims(stateDirectory: job.stateDirectory).forget(item: id) }
            return result
        } catch {
            return .failed("close: \(error.message)")
        }
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        // Closing checks first whether the item is closed already: running it again is safe.
        await Reconciliation.rerun(ending: process, grace: grace)
    }
}
