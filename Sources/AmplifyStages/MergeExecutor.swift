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
/// found landed, or started again from scratch. The repository's hooks run for every commit it
/// makes (`hooks: skip` opts out): a refusal fails the item with what the hook said.
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
        await Reconciliation.rerun(ending: process, grace: grace)
    }

    /// The newest commit on `base` with this item's trailer from this run.
    static func landed(git: Git, base: String, item: String, run: String) async -> String? {
        let r = await git.run(["log", "refs/heads/" + base, "-n", "1", "--format=%H"] + trailerFilter(item: item, run: run))
        let sha = r.stdout.trimming(" \t\r\n")
        return r.succeeded && !sha.isEmpty ? sha : nil
    }

    /// The `git log` options that pick the commits `landed` looks for.
    static func trailerFilter(item: String, run: String) -> [String] {
        func pattern(_ s: String) -> String { s.replacing(".", with: "\\.") }
        return ["--all-match", "--grep=^Amplify-Item: \(pattern(item))$", "--grep=^Amplify-Run: \(pattern(run))$"]
    }

    /// Whether `landed` would find `commit` once it is on the base: a hook that rewrites the
    /// message may have dropped the trailers, and such a commit could land a second time.
    static func carriesTrailers(git: Git, commit: String, item: String, run: String) async -> Bool {
        let r = await git.run(["log", "--no-walk", "--format=%H"] + trailerFilter(item: item, run: run) + [commit])
        return r.succeeded && !r.stdout.trimming(" \t\r\n").isEmpty
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
        let git = await Git(job.repository, environment: job.environment).withIdentity()
        let strategy: String, hooksParameter: String, commitLeftovers: Bool, empty: String, subject: String
        do {
            strategy = try job.stage.value(MergeParameters.strategy, evaluator)
            hooksParameter = try job.stage.value(MergeParameters.hooks, evaluator)
            commitLeftovers = try job.stage.value(MergeParameters.commitLeftovers, evaluator)
            empty = try job.stage.value(MergeParameters.empty, evaluator)
            subject = try job.stage.value(MergeParameters.message, evaluator)
        } catch {
            throw StageError("merge: \(error.message)")
        }
        let hooks = await CommitHooks.resolve(git: git, skip: hooksParameter == "skip")

        // A killed runner's debris, in the runner's own worktree for this item, goes first.
        let stateDir = job.stateDirectory
        let scratch = stateDir + "/merging/" + SessionFiles.id(item: id, runId: job.runId)
        var st = stat()
        if lstat(scratch, &st) == 0 { await git.removeWorktree(scratch) }

        if let sha = await MergeExecutor.landed(git: git, base: base, item: id, run: job.runId) {
            return .succeeded(OrderedObject([("commit", .string(sha)), ("landed-before", .bool(true))]))
        }

        // The session's leftovers, committed on its branch (or refused).
        if FileManager.default.fileExists(atPath: worktree) {
            let wt = git.at(worktree)
            let status = try await wt.output(["status", "--porcelain", "--untracked-files=all"])
            if !status.isEmpty {
                guard commitLeftovers else {
                    throw StageError("merge: the session left uncommitted changes in \(worktree) (commit-leftovers: false):\n" + status.split(separator: "\n").prefix(10).joined(separator: "\n"))
                }
                _ = try await wt.output(["add", "-A"])
                let r = await wt.run(hooks.options + ["commit", "--quiet", "-m", "\(id): uncommitted work left by the session"], stdoutLimit: 1 << 20, started: processStarted)
                if !r.succeeded {
                    throw hooks.refused("the commit of the session's uncommitted work in \(worktree)", r, hooks: CommitHooks.commit, base: job.settings.base)
                }
            }
        }
        guard let tip = await git.commit("refs/heads/" + branch) else { throw StageError("merge: the branch \(branch) does not exist") }
        guard let baseTip = await git.commit("refs/heads/" + base) else { throw StageError("merge: the base branch \(base) does not exist") }
        if await git.isAncestor(tip, of: baseTip) {
            // Nothing beyond the base: no work at all, or work someone landed already.
            if case .string(let forkedAt)? = session["base-commit"], forkedAt == tip {
                if empty == "skip" { return .succeeded(OrderedObject([("commit", .null), ("empty", .bool(true))])) }
                throw StageError("merge: \(branch) has no commits beyond \(base) (set `empty: skip` to skip such items)")
            }
            return .succeeded(OrderedObject([("commit", .string(baseTip)), ("landed-before", .bool(true))]))
        }

        // One landing at a time in this repository, whichever stage or run; every git from here
        // holds the lock too: one left running by a killed runner keeps it.
        return try await git.withLandingLock { (git: Git) async throws(StageError) -> StageResult in
            try await mergeLocked(job, git: git, scratch: scratch, tip: tip, item: id, strategy: strategy, hooks: hooks, subject: subject, processStarted: processStarted)
        }
    }

    /// Under the landing lock: lands the branch's tip from the runner's own worktree.
    private func mergeLocked(_ job: StageJob, git: Git, scratch: String, tip: String, item id: String, strategy: String, hooks: CommitHooks,
                             subject: String, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> StageResult {
        let base = job.settings.base
        let stateDir = job.stateDirectory
        // Landed while we waited for the lock (another runner resuming this run cannot, but be sure).
        if let sha = await MergeExecutor.landed(git: git, base: base, item: id, run: job.runId) {
            return .succeeded(OrderedObject([("commit", .string(sha)), ("landed-before", .bool(true))]))
        }
        guard let old = await git.commit("refs/heads/" + base) else { throw StageError("merge: the base branch \(base) does not exist") }

        // The runner's own worktree, made afresh.
        await git.removeWorktree(scratch)
        mkdir(stateDir, 0o700)
        mkdir(stateDir + "/merging", 0o700)
        try StateDirectory.requireReal(stateDir + "/merging")
        _ = try await git.withWorktreeLock { (git: Git) async throws(StageError) in try await git.output(["worktree", "add", "--quiet", "--detach", scratch, old]) }
        let landing: Result<StageResult, StageError>
        do { landing = .success(try await land(job, git: git, scratch: scratch, old: old, tip: tip, item: id, strategy: strategy, hooks: hooks, subject: subject, processStarted: processStarted)) } catch {
            landing = .failure(error)
        }
        await git.removeWorktree(scratch)
        return try landing.get()
    }

    /// Builds the merge in `scratch`, verifies it, and moves the base from `old` to it.
    private func land(_ job: StageJob, git: Git, scratch: String, old: String, tip: String, item id: String, strategy: String, hooks: CommitHooks,
                      subject: String, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> StageResult {
        let base = job.settings.base
        let m = git.at(scratch)
        // Every git that may commit here runs the repository's hooks (or none, with `hooks: skip`).
        func commit(_ args: [String]) async -> CommandRunner.Output { await m.run(hooks.options + args, stdoutLimit: 1 << 20, started: processStarted) }

        let subject = subject.replacing("\n", with: " ")
        let message = "\(subject)\n\nAmplify-Item: \(id)\nAmplify-Run: \(job.runId)\n"
        switch strategy {
        case "squash":
            let r = await m.run(hooks.options + ["merge", "--squash", tip])
            if !r.succeeded { try await conflict(m, r, item: id, base: base, abort: ["reset", "--hard", "--quiet"]) }
            let c = await commit(["commit", "--quiet", "-m", message])
            if !c.succeeded { throw hooks.refused("the squashed commit", c, hooks: CommitHooks.commit, base: base) }
        case "rebase":
            _ = try await m.output(hooks.options + ["checkout", "--quiet", "--detach", tip])
            let r = await commit(["rebase", "--quiet", old])
            if !r.succeeded { try await conflict(m, r, item: id, base: base, abort: ["rebase", "--abort"], refused: hooks.refused("the rebase", r, hooks: ["pre-rebase"], base: base)) }
            // Every commit of the branch was in the base already (cherry-picked there): the rebase
            // dropped them all and left the base's own tip, which an amend would rewrite.
            if (try await m.output(["rev-parse", "HEAD"])) == old {
                return .succeeded(OrderedObject([("commit", .string(old)), ("landed-before", .bool(true))]))
            }
            let last = try await m.output(["log", "-1", "--format=%B"])
            let c = await commit(["commit", "--quiet", "--amend", "-m", last + "\n\nAmplify-Item: \(id)\nAmplify-Run: \(job.runId)\n"])
            if !c.succeeded { throw hooks.refused("the rebased tip's commit", c, hooks: CommitHooks.commit, base: base) }
        default:
            let r = await commit(["merge", "--no-ff", "-m", message, tip])
            if !r.succeeded { try await conflict(m, r, item: id, base: base, abort: ["merge", "--abort"], refused: hooks.refused("the merge commit", r, hooks: CommitHooks.merge, base: base)) }
        }
        // A hook may rewrite the message; without both trailers a resumed run could not find this
        // merge on the base, and would land it again.
        guard await MergeExecutor.carriesTrailers(git: m, commit: "HEAD", item: id, run: job.runId) else {
            let said = (await m.run(["log", "-1", "--format=%B"])).stdout.split(separator: "\n").prefix(12).joined(separator: " | ")
            throw StageError("merge: the commit lost its `Amplify-Item: \(id)`/`Amplify-Run: \(job.runId)` trailers (a prepare-commit-msg or commit-msg hook rewrote the message to: \(said)); without them a resumed run could land it twice, so nothing landed; \(base) is unchanged")
        }

        // The project's checks on the merged tree, before anything lands.
        do {
            for command in job.stage.commands(MergeParameters.verify) {
                let ran = await CommandRunner().run(command, for: job, workingDirectory: Template(parts: [.text(scratch)]), outputs: [], processStarted: processStarted)
                if case .failed(let why) = ran {
                    throw StageError("merge: verify failed; \(base) is unchanged: \(why)")
                }
            }
        }

        // Land: a fast-forward of the base, from `old` only.
        let new = try await m.output(["rev-parse", "HEAD"])
        // Timed out or cancelled while building or verifying: the runner has recorded the item as
        // failed, so it must not land now.
        guard !job.ended.hasHappened else { throw StageError("merge: ended by the runner before landing; \(base) is unchanged") }
        try await git.land(new, on: base, from: old, reason: "amplify-run: merge \(id)")
        return .succeeded(OrderedObject([("commit", .string(new))]))
    }

    /// Lists the conflicting paths, puts the scratch worktree back, and ends the item as a conflict;
    /// with no conflicting path git refused for another reason (`refused`, when a hook may have).
    private func conflict(_ m: Git, _ r: CommandRunner.Output, item: String, base: String, abort: [String], refused: StageError? = nil) async throws(StageError) -> Never {
        let paths = (await m.run(["diff", "--name-only", "--diff-filter=U"])).stdout.split(separator: "\n").map(String.init)
        await m.run(abort)
        if paths.isEmpty { throw refused ?? StageError("merge: \(r.failure(["git"])); \(base) is unchanged") }
        throw StageError("\(paths.count) conflicting path\(paths.count == 1 ? "" : "s"): \(paths.prefix(20).joined(separator: ", ")); \(base) is unchanged", kind: .conflict)
    }
}

/// The repository's hooks for the commits the merge stage makes, wherever it makes them.
///
/// git looks hooks up in `core.hooksPath`, a relative one from the root of the worktree it runs
/// in — in the runner's scratch worktree that is a copy of the base (with the branch merged in),
/// where an untracked hooks folder does not exist and the hooks would silently not run. So the
/// folder is resolved once, as a commit in the repository's own checkout would find it, and
/// given to every git that commits as `-c core.hooksPath=<absolute path>`.
struct CommitHooks: Sendable {
    /// The hooks git runs for `git commit`.
    static let commit = ["pre-commit", "prepare-commit-msg", "commit-msg"]
    /// The hooks git runs for the commit of `git merge --no-ff`.
    static let merge = ["pre-merge-commit", "prepare-commit-msg", "commit-msg"]

    /// Where hooks are looked up; nil with `hooks: skip`.
    var directory: String?

    /// Put before a git command's arguments. `/dev/null` holds no hook: with `hooks: skip` none
    /// runs, not even those `--no-verify` leaves running (`prepare-commit-msg`, `post-commit`).
    var options: [String] { ["-c", "core.hooksPath=" + (directory ?? "/dev/null")] }

    /// The hooks folder of the repository `git` runs in, or none when `skip`.
    static func resolve(git: Git, skip: Bool) async -> CommitHooks {
        if skip { return CommitHooks(directory: nil) }
        let configured = (await git.run(["config", "--type=path", "--get", "core.hooksPath"])).stdout.trimming("\r\n")
        if configured.isEmpty { return CommitHooks(directory: git.commonDirectory() + "/hooks") }
        if configured.hasPrefix("/") { return CommitHooks(directory: configured) }
        let root = (try? await git.output(["rev-parse", "--show-toplevel"])) ?? git.directory
        return CommitHooks(directory: root + "/" + configured)
    }

    /// Those of `names` that git would run (a hook that is not executable is ignored by git).
    func present(_ names: [String]) -> [String] {
        guard let directory else { return [] }
        return names.filter { name in
            var st = stat()
            return stat(directory + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(directory + "/" + name, X_OK) == 0
        }
    }

    /// The item's failure when git would not make `what`: what it (and the hooks, whose output
    /// git passes on to its stderr) said, and which hooks ran for it.
    func refused(_ what: String, _ r: CommandRunner.Output, hooks names: [String], base: String) -> StageError {
        let said = CommandRunner.tail(r.stderr.isEmpty ? r.stdout : r.stderr, lines: 12)
        let ran = present(names)
        guard let directory, !ran.isEmpty else {
            return StageError("merge: git refused \(what) (\(r.termination)): \(said); \(base) is unchanged")
        }
        return StageError("merge: git refused \(what); the repository's hooks that run for it: \(ran.joined(separator: ", ")) (in \(directory); `hooks: skip` skips them); git and the hooks said: \(said); \(base) is unchanged")
    }
}
