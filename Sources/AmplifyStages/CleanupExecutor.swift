import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `cleanup`: ends an agent still running, removes the item's worktree, deletes its branch once
/// merged (`remove-branch`: landed on the base, or its pull request merged by GitHub), and moves the session directory to `<state>/archive/`. Each step
/// looks first whether it is done, so running it again is safe.
public struct CleanupExecutor: StageExecutor {
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        guard case .object(let item)? = job.context.roots["item"], case .string(let id)? = item["id"], QueryReadyExecutor.isValidId(id) else {
            return .failed("cleanup: the item has no valid id")
        }
        let session = SessionFiles(job, item: id)
        let record = session.readRecord()
        // What dispatch made, from its outputs or, when it did not finish, from its record.
        let worktree = job.session?["worktree"]?.renderedText ?? record?.worktree
        let branch = job.session?["branch"]?.renderedText ?? record?.branch
        let git = Git(job.repository, environment: job.environment)
        var o = OrderedObject()

        if let r = record, r.run == job.runId, Agent.isAlive(r) {
            await Agent.end(r, grace: grace)
            o["agent-ended"] = .bool(true)
        }
        // A Slurm job goes on without its watcher: cancelled (by id and name) all the same.
        if let r = record, r.run == job.runId, r.slurm != nil { await Slurm.cancel(session: session, record: r, environment: job.environment) }
        // `cancel` keeps worktrees, branches and sessions: the work may be picked up again.
        if job.runCancelled {
            o["kept"] = .string("the run was cancelled: worktree, branch and session kept")
            return .succeeded(o)
        }
        if let worktree, worktree.hasPrefix(job.worktreesDirectory + "/") {
            // A sandboxed session's branch lives in its own repository: brought back first, so
            // work that did not land (a rejected item's) is kept as a worktree's branch is.
            if let r = record, r.run == job.runId, r.sandbox != nil, let branch, FileManager.default.fileExists(atPath: worktree + ".git") {
                let fetched = await git.collectBranch(branch, from: worktree)
                if !fetched.succeeded { o["branch-not-collected"] = .string(fetched.failure(["git", "fetch"])) }
                await git.removeWorktree(worktree + ".git")
            }
            await git.removeWorktree(worktree)
            o["worktree-removed"] = .string(worktree)
        }
        if let branch, await git.commit("refs/heads/" + branch) != nil {
            let policy: String
            do { policy = try job.stage.value(CleanupParameters.removeBranch, ExpressionEvaluator(context: job.context)) } catch {
                return .failed("cleanup: `remove-branch`: \(error.message)")
            }
            var remove = policy == "always"
            if policy == "merged" {
                let landed = await MergeExecutor.landed(git: git, base: job.settings.base, item: id, run: job.runId) != nil
                let contained = await git.isAncestor("refs/heads/" + branch, of: "refs/heads/" + job.settings.base)
                let forkedAt = job.session?["base-commit"]?.renderedText ?? record?.baseCommit
                let tip = await git.commit("refs/heads/" + branch)
                // Merged, and not merely a branch with no work that the base contains anyway. A
                // pull request GitHub merged is in the remote's base, maybe never in the local one
                // (squashed, rebased, or not fetched yet).
                remove = landed || (contained && tip != forkedAt) || PullRequestLanding.merged(in: job.context)
            }
            if remove {
                let r = await git.deleteBranch(branch)
                if !r.succeeded { return .failed("cleanup: \(r.failure(["git", "branch", "-D", branch]))") }
                o["branch-deleted"] = .string(branch)
            } else {
                o["branch-kept"] = .string(branch)
            }
        }
        // The session directory to the archive (a rename: nothing in it is followed).
        var st = stat()
        if lstat(session.directory, &st) == 0 {
            mkdir(session.stateDirectory + "/archive", 0o700)
            do { try StateDirectory.requireReal(session.stateDirectory + "/archive") } catch { return error.result }
            var target = session.archived
            var n = 1
            while lstat(target, &st) == 0 { n += 1; target = session.archived + "." + String(n) }
            guard rename(session.directory, target) == 0 else {
                return .failed("cleanup: cannot move \(session.directory) to \(target): \(String(cString: strerror(errno)))")
            }
            rename(session.recordPath, target + ".run.json")
            o["archived"] = .string(target)
        }
        return .succeeded(o)
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        .rerun
    }
}
