import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `merge`: lands an approved branch on the base exactly once.
///
/// The merge commit is built in a worktree the runner owns (detached at the base), with
/// `Amplify-Item`/`Amplify-Run` trailers; `verify` runs there; then the base moves by
/// fast-forward (`git merge --ff-only` where it is checked out, `git update-ref` with the old
/// value where it is not), under one lock for the whole repository. The user's checkout is never
/// left mid-merge: a conflict or a failed verify leaves the base as it was. Before anything, the
/// base is searched for this item's trailer from this run: a merge interrupted at any moment is
/// found landed, or started again from scratch.
public struct MergeExecutor: StageExecutor {
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        do {
            return try await merge(job, processStarted: processStarted)
        } catch {
            return error.result
        }
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        // A verify command left running goes; the landed check makes running again safe.
        if let process, Processes.isAlive(pid: process.pid, startTime: process.startTime) {
            await ChildProcess.terminateGroup(process.pid, startTime: process.startTime, grace: grace)
        }
        return .rerun
    }

    /// The newest commit on `base` with this item's trailer from this run.
    static func landed(git: Git, base: String, item: String, run: String) async -> String? {
        func pattern(_ s: String) -> String { s.replacing(".", with: "\\.") }
        let r = await git.run(["log", "refs/heads/" + base, "-n", "1", "--format=%H", "--all-match",
                               "--grep=^Amplify-Item: \(pattern(item))$", "--grep=^Amplify-Run: \(pattern(run))$"])
        let sha = r.stdout.trimming(" \t\r\n")
        return r.succeeded && !sha.isEmpty ? sha : nil
    }

    private func merge(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> StageResult {
        guard let session = job.session, case .string(let branch)? = session["branch"], case .string(let worktree)? = session["worktree"] else {
            throw StageError("merge: the item has no session branch (its dispatch did not succeed)")
        }
        guard case .object(let item)? = job.context.roots["item"], case .string(let id)? = item["id"], QueryReadyExecutor.isValidId(id) else {
            throw StageError("merge: the item has no valid id")
        }
        let evaluator = ExpressionEvaluator(context: job.context)
        let base = job.settings.base
        var git = await Git(job.repository, environment: job.environment).withIdentity()
        func param(_ name: String) -> String? { try? job.stage.parameter(name)?.render(evaluator).renderedText }
        let strategy = param("strategy") ?? "no-ff"

        // A killed runner's debris, in the runner's own worktree for this item, goes first.
        let stateDir = job.stateDirectory
        let scratch = stateDir + "/merging/" + SessionFiles.id(item: id, runId: job.runId)
        var st = stat()
        if lstat(scratch, &st) == 0 { await MergeExecutor.removeWorktree(git: git, path: scratch) }

        if let sha = await MergeExecutor.landed(git: git, base: base, item: id, run: job.runId) {
            return .succeeded(OrderedObject([("commit", .string(sha)), ("landed-before", .bool(true))]))
        }

        // The session's leftovers, committed on its branch (or refused).
        if FileManager.default.fileExists(atPath: worktree) {
            let wt = git.at(worktree)
            let status = try await wt.output(["status", "--porcelain", "--untracked-files=all"])
            if !status.isEmpty {
                guard param("commit-leftovers") != "false" else {
                    throw StageError("merge: the session left uncommitted changes in \(worktree) (commit-leftovers: false):\n" + status.split(separator: "\n").prefix(10).joined(separator: "\n"))
                }
                _ = try await wt.output(["add", "-A"])
                _ = try await wt.output(["commit", "--quiet", "--no-verify", "-m", "\(id): uncommitted work left by the session"])
            }
        }
        guard let tip = await git.commit("refs/heads/" + branch) else { throw StageError("merge: the branch \(branch) does not exist") }
        guard let baseTip = await git.commit("refs/heads/" + base) else { throw StageError("merge: the base branch \(base) does not exist") }
        if await git.run(["merge-base", "--is-ancestor", tip, baseTip]).succeeded {
            // Nothing beyond the base: no work at all, or work someone landed already.
            if case .string(let forkedAt)? = session["base-commit"], forkedAt == tip {
                if param("empty") == "skip" { return .succeeded(OrderedObject([("commit", .null), ("empty", .bool(true))])) }
                throw StageError("merge: \(branch) has no commits beyond \(base) (set `empty: skip` to skip such items)")
            }
            return .succeeded(OrderedObject([("commit", .string(baseTip)), ("landed-before", .bool(true))]))
        }

        // One landing at a time in this repository, whichever stage or run.
        let commonDir = (try? await git.output(["rev-parse", "--path-format=absolute", "--git-common-dir"])) ?? job.repository + "/.git"
        let lock = try await RepositoryLock.acquire(commonDir + "/amplify-land.lock")
        defer { lock.release() }
        // Every git from here holds the lock too: one left running by a killed runner keeps it.
        git.heldLock = lock.fd
        // Landed while we waited for the lock (another runner resuming this run cannot, but be sure).
        if let sha = await MergeExecutor.landed(git: git, base: base, item: id, run: job.runId) {
            return .succeeded(OrderedObject([("commit", .string(sha)), ("landed-before", .bool(true))]))
        }
        guard let old = await git.commit("refs/heads/" + base) else { throw StageError("merge: the base branch \(base) does not exist") }

        // The runner's own worktree, made afresh.
        await MergeExecutor.removeWorktree(git: git, path: scratch)
        mkdir(stateDir, 0o700)
        mkdir(stateDir + "/merging", 0o700)
        try Agent.requireRealDirectory(stateDir + "/merging")
        _ = try await git.withWorktreeLock { (git: Git) async throws(StageError) in try await git.output(["worktree", "add", "--quiet", "--detach", scratch, old]) }
        let landing: Result<StageResult, StageError>
        do { landing = .success(try await land(job, git: git, scratch: scratch, old: old, tip: tip, item: id, strategy: strategy, param: param, processStarted: processStarted)) } catch {
            landing = .failure(error)
        }
        await MergeExecutor.removeWorktree(git: git, path: scratch)
        return try landing.get()
    }

    /// Builds the merge in `scratch`, verifies it, and moves the base from `old` to it.
    private func land(_ job: StageJob, git: Git, scratch: String, old: String, tip: String, item id: String, strategy: String,
                      param: (String) -> String?, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> StageResult {
        let base = job.settings.base
        let m = git.at(scratch)

        var subject = param("message") ?? "Merge \(id)"
        subject = subject.replacing("\n", with: " ")
        let message = "\(subject)\n\nAmplify-Item: \(id)\nAmplify-Run: \(job.runId)\n"
        switch strategy {
        case "squash":
            let r = await m.run(["merge", "--squash", "--no-verify", tip])
            if !r.succeeded { try await conflict(m, r, item: id, base: base, abort: ["reset", "--hard", "--quiet"]) }
            _ = try await m.output(["commit", "--quiet", "--no-verify", "-m", message])
        case "rebase":
            _ = try await m.output(["checkout", "--quiet", "--detach", tip])
            let r = await m.run(["rebase", "--quiet", old])
            if !r.succeeded { try await conflict(m, r, item: id, base: base, abort: ["rebase", "--abort"]) }
            let last = try await m.output(["log", "-1", "--format=%B"])
            _ = try await m.output(["commit", "--quiet", "--amend", "--no-verify", "-m", last + "\n\nAmplify-Item: \(id)\nAmplify-Run: \(job.runId)\n"])
        default:
            let r = await m.run(["merge", "--no-ff", "--no-verify", "-m", message, tip])
            if !r.succeeded { try await conflict(m, r, item: id, base: base, abort: ["merge", "--abort"]) }
        }

        // The project's checks on the merged tree, before anything lands.
        if case .list(let commands)? = job.stage.parameter("verify") {
            for command in commands.compactMap(Command.init) {
                var runJob = job
                runJob.stage.command = command
                runJob.stage.outputs = []
                runJob.stage.workingDirectory = Template(parts: [.text(scratch)])
                if case .failed(let why) = await CommandStageExecutor(grace: grace).execute(runJob, processStarted: processStarted) {
                    throw StageError("merge: verify failed; \(base) is unchanged: \(why)")
                }
            }
        }

        // Land: a fast-forward of the base, from `old` only.
        let new = try await m.output(["rev-parse", "HEAD"])
        guard let worktrees = await git.worktrees() else { throw StageError("merge: `git worktree list` keeps failing; nothing landed") }
        if let checkout = worktrees.first(where: { $0.branch == base }) {
            let r = await git.at(checkout.path).run(["merge", "--ff-only", "--quiet", new])
            guard r.succeeded else {
                throw StageError("merge: \(base) is checked out at \(checkout.path) and git would not fast-forward it (\(CommandStageExecutor.tail(r.stderr, lines: 8))); nothing changed")
            }
        } else {
            let r = await git.run(["update-ref", "-m", "amplify-run: merge \(id)", "refs/heads/" + base, new, old])
            guard r.succeeded else { throw StageError("merge: \(base) moved while merging; nothing landed: \(r.failure(["git", "update-ref"]))") }
        }
        return .succeeded(OrderedObject([("commit", .string(new))]))
    }

    /// Lists the conflicting paths, puts the scratch worktree back, and ends the item as a conflict.
    private func conflict(_ m: Git, _ r: Exec.Result, item: String, base: String, abort: [String]) async throws(StageError) -> Never {
        let paths = (await m.run(["diff", "--name-only", "--diff-filter=U"])).stdout.split(separator: "\n").map(String.init)
        await m.run(abort)
        if paths.isEmpty { throw StageError("merge: \(r.failure(["git"])); \(base) is unchanged") }
        throw StageError("\(paths.count) conflicting path\(paths.count == 1 ? "" : "s"): \(paths.prefix(20).joined(separator: ", ")); \(base) is unchanged", kind: .conflict)
    }

    static func removeWorktree(git: Git, path: String) async {
        try? await git.withWorktreeLock { (git: Git) async throws(StageError) in
            var st = stat()
            if lstat(path, &st) == 0 {
                await git.run(["worktree", "remove", "--force", "--force", path])
                if lstat(path, &st) == 0 { try? FileManager.default.removeItem(atPath: path) }
            }
            await git.run(["worktree", "prune"])
        }
    }
}

/// An exclusive lock on a file, taken without blocking a pool thread.
struct RepositoryLock: Sendable {
    let fd: Int32

    static func acquire(_ path: String) async throws(StageError) -> RepositoryLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StageError("cannot open the repository lock \(path): \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return RepositoryLock(fd: fd)
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
