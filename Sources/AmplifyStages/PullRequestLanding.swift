import AmplifyEngine
import AmplifyWorkflow

/// `merge` with `via: pull-request` (SPEC §10): the item's branch pushed to `remote`, one pull
/// request per item found or opened with GitHub's CLI, and — with `wait: merged` — waited for
/// until GitHub merges it.
enum PullRequestLanding {
    /// Lands the item through a pull request. `git` runs in the repository; the session's
    /// leftovers are committed on `branch` already.
    static func land(_ job: StageJob, git: Git, item: OrderedObject, id: String, branch: String, strategy: String,
                     processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> StageResult {
        throw StageError("merge: `via: pull-request` is not built yet")
    }
}
