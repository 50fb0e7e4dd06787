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
        let git = await Git(job.repository, environment: job.environment).withIdentity()
        let strategy: String, hooksParameter: String, commitLeftovers: Bool, empty: String, subject: String, via: String
        let queue: MergeQueue.Parameters
        do {
            via = try job.stage.value(MergeParameters.via, evaluator)
            strategy = try job.stage.value(MergeParameters.strategy, evaluator)
            hooksParameter = try job.stage.value(MergeParameters.hooks, evaluator)
            commitLeftovers = try job.stage.value(MergeParameters.commitLeftovers, evaluator)
            empty = try job.stage.value(MergeParameters.empty, evaluator)
            subject = try job.stage.value(MergeParameters.message, evaluator)
            queue = MergeQueue.Parameters(
                batch: try job.stage.value(MergeParameters.batch, evaluator),
                batchWait: try job.stage.value(MergeParameters.batchWait, evaluator).milliseconds,
                verifyConcurrency: try job.stage.value(MergeParameters.verifyConcurrency, evaluator),
                speculate: try job.stage.value(MergeParameters.speculate, evaluator),
                push: try job.stage.value(MergeParameters.push, evaluator),
                pushAttempts: try job.stage.value(MergeParameters.pushAttempts, evaluator))
        } catch {
            throw StageError("merge: \(error.message)")
        }
        if let remote = queue.push, via != "pull-request" {
            guard (await git.run(["remote", "get-url", "--", remote])).succeeded else {
                throw StageError("merge: `push: \(remote)` names no remote of this repository (`git remote -v` lists them; `git remote add \(remote) URL` adds one); nothing landed")
            }
        }
        // An item of a queue counts as arriving while it gets ready, so a batch being formed waits for it.
        let lane = via == "pull-request" ? nil : MergeQueue.queue(for: job)
        await lane?.arrive()
        do {
            let request = try await prepare(job, git: git, item: item, id: id, branch: branch, worktree: worktree, session: session, strategy: strategy,
                                            hooksParameter: hooksParameter, commitLeftovers: commitLeftovers, empty: empty, subject: subject,
                                            via: via, queue: queue, processStarted: processStarted)
            guard let lane, case .land(let request)? = request else {
                await lane?.leave()
                if case .done(let result)? = request { return result }
                let result = try await PullRequestLanding.land(job, git: git, item: item, id: id, branch: branch, strategy: strategy, processStarted: processStarted)
                if case .succeeded(let outputs) = result, case .string? = outputs["commit"],
                   let remote = try? job.stage.value(MergeParameters.remote, evaluator),
                   let why = await git.follow(job.settings.base, of: remote) {
                    job.note("warning", OrderedObject([("message", .string("merged on GitHub; the local \(job.settings.base) did not follow \(remote)/\(job.settings.base): \(why)"))]))
                }
                return result
            }
            return await lane.land(request)
        } catch {
            await lane?.leave()
            throw error
        }
    }

    /// What `prepare` found: the item has landed already (or is empty), or it is to land.
    private enum Prepared {
        case done(StageResult)
        case land(MergeQueue.Request)
    }

    /// The item made ready to land: a killed runner's debris gone, the session's leftovers
    /// committed on its branch (or refused), the branch's tip found; nil for a pull request.
    private func prepare(_ job: StageJob, git: Git, item: OrderedObject, id: String, branch: String, worktree: String, session: OrderedObject,
                         strategy: String, hooksParameter: String, commitLeftovers: Bool, empty: String, subject: String, via: String,
                         queue: MergeQueue.Parameters, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> Prepared? {
        let base = job.settings.base
        let hooks = await CommitHooks.resolve(git: git, skip: hooksParameter == "skip")

        // A killed runner's debris, in the runner's own worktree for this item, goes first.
        let stateDir = job.stateDirectory
        let scratch = stateDir + "/merging/" + SessionFiles.id(item: id, runId: job.runId)
        var st = stat()
        if lstat(scratch, &st) == 0 { await git.removeWorktree(scratch) }

        // Landed already — but with `push`, on the remote too: the queue looks there.
        if queue.push == nil || via == "pull-request", let sha = await MergeExecutor.landed(git: git, base: base, item: id, run: job.runId) {
            return .done(.succeeded(OrderedObject([("commit", .string(sha)), ("landed-before", .bool(true))])))
        }

        // The session's leftovers, committed on its branch (or refused). A sandboxed session's
        // repository is the agent's to configure (its hooks, its config's commands): git runs
        // there within the session's walls, and the branch is then fetched from it.
        let walls = SessionFiles(job, item: id).readRecord().flatMap { $0.run == job.runId ? $0.sandbox : nil }
        if FileManager.default.fileExists(atPath: worktree) {
            var wt = git.at(worktree)
            wt.wrapper = walls?.prefix
            let status = try await wt.output(["status", "--porcelain", "--untracked-files=all"])
            if !status.isEmpty {
                guard commitLeftovers else {
                    throw StageError("merge: the session left uncommitted changes in \(worktree) (commit-leftovers: false):\n" + status.split(separator: "\n").prefix(10).joined(separator: "\n"))
                }
                _ = try await wt.output(["add", "-A"])
                // The hooks as a commit in the session's repository finds them (its tracked hooks folder, inside the walls).
                let hooks = walls == nil ? hooks : await CommitHooks.resolve(git: wt, skip: hooksParameter == "skip")
                let r = await wt.run(hooks.options + ["commit", "--quiet", "-m", "\(id): uncommitted work left by the session"], stdoutLimit: 1 << 20, started: processStarted)
                if !r.succeeded {
                    throw hooks.refused("the commit of the session's uncommitted work in \(worktree)", r, hooks: CommitHooks.commit, base: job.settings.base)
                }
            }
            if walls != nil {
                let r = await git.collectBranch(branch, from: worktree)
                guard r.succeeded else { throw StageError("merge: cannot bring \(branch) back from the session's repository \(worktree): \(r.failure(["git", "fetch"]))") }
            }
        }
        guard let tip = await git.commit("refs/heads/" + branch) else { throw StageError("merge: the branch \(branch) does not exist") }
        guard let baseTip = await git.commit("refs/heads/" + base) else { throw StageError("merge: the base branch \(base) does not exist") }
        if via == "pull-request" { return nil }
        if await git.isAncestor(tip, of: baseTip) {
            // Nothing beyond the base: no work at all, or work someone landed already.
            if case .string(let forkedAt)? = session["base-commit"], forkedAt == tip {
                if empty == "skip" { return .done(.succeeded(OrderedObject([("commit", .null), ("empty", .bool(true))]))) }
                throw StageError("merge: \(branch) has no commits beyond \(base) (set `empty: skip` to skip such items)")
            }
            if queue.push == nil { return .done(.succeeded(OrderedObject([("commit", .string(baseTip)), ("landed-before", .bool(true))]))) }
        }
        // Convicted by a verification journaled before a restart: the same verdict, not a second run of it.
        if let verdict = job.notes.last(where: { $0.kind == "convicted" && $0.fields["attempt"] == .int(job.attempt) }),
           case .string(let why)? = verdict.fields["reason"] {
            throw StageError(why)
        }
        return .land(MergeQueue.Request(job: job, id: id, tip: tip, strategy: strategy, hooks: hooks, subject: subject, empty: empty, scratch: scratch,
                                        parameters: queue, processStarted: processStarted))
    }

    /// What building an item's commit on a chain's head gave.
    enum Built {
        case commit(String)
        /// Every commit of the branch is in `head` already (a rebase found them cherry-picked there).
        case alreadyIn
        /// A squash whose tree is the head's: `git commit` would say "nothing to commit".
        case changesNothing
    }

    /// Builds the item's commit on `head` (the base, or the commit of the item before it in a
    /// batch), as its strategy makes it, with its trailers and through the repository's hooks;
    /// run it under the landing lock. `merger` computes merges (it reads the base's attributes).
    /// A conflict or a hook's refusal throws; nothing is landed here.
    static func build(_ r: MergeQueue.Request, on head: String, git: Git, merger: Git, merging: String) async throws(StageError) -> Built {
        let base = r.job.settings.base
        let id = r.id
        let trailers = "Amplify-Item: \(id)\nAmplify-Run: \(r.job.runId)\n"
        let subject = r.subject.replacing("\n", with: " ")
        let messageFile = r.scratch + ".msg"
        defer { unlink(messageFile) }
        let sign = await git.signsCommits()
        var planned: Planned
        switch try await plan(r.strategy, git: git, merger: merger, old: head, tip: r.tip, message: subject + "\n\n" + trailers, trailers: trailers,
                              messageFile: messageFile, sign: sign, hooks: r.hooks, base: base, processStarted: r.processStarted) {
        case .alreadyInBase: return .alreadyIn
        case .changesNothing: return .changesNothing
        case .commit(let p): planned = p
        }

        // A checkout only where a hook needs files; the runner keeps one and reuses it.
        let fileHook = !r.hooks.present([planned.fileHook]).isEmpty
        var checkout: Git?
        if fileHook {
            let c = try await git.keptCheckout(merging + "/checkout", head: planned.head, tree: planned.tree)
            checkout = c
            if let result = await r.hooks.run(planned.fileHook, in: c, started: r.processStarted), !result.succeeded {
                throw r.hooks.refused(planned.what, result, hooks: [planned.fileHook], base: base)
            }
            // What the hook staged is committed, as `git commit` would.
            planned.tree = try await c.output(["write-tree"])
        }
        // The message goes through the hooks that may rewrite or refuse it.
        try MergeExecutor.write(CommitMessage.cleanedUp(planned.message), to: messageFile)
        for (name, args) in [("prepare-commit-msg", [messageFile, planned.source]), ("commit-msg", [messageFile])] {
            if let result = await r.hooks.run(name, arguments: args, in: checkout ?? git, started: r.processStarted), !result.succeeded {
                throw r.hooks.refused(planned.what, result, hooks: [name], base: base)
            }
        }
        let message = CommitMessage.cleanedUp(String(decoding: (try? WorkflowFile.read(messageFile, limit: 1 << 20)) ?? [], as: UTF8.self))
        guard !message.isEmpty else { throw StageError("merge: a hook left \(planned.what) an empty message; \(base) is unchanged") }
        try MergeExecutor.write(message, to: messageFile)
        let new = try await git.commitTree(planned.tree, parents: planned.parents, messageFile: messageFile, author: planned.author, sign: sign)
        // A hook may rewrite the message; without both trailers a resumed run could not find this
        // merge on the base, and would land it again.
        guard await MergeExecutor.carriesTrailers(git: git, commit: new, item: id, run: r.job.runId) else {
            let said = message.split(separator: "\n").prefix(12).joined(separator: " | ")
            throw StageError("merge: the commit lost its `Amplify-Item: \(id)`/`Amplify-Run: \(r.job.runId)` trailers (a prepare-commit-msg or commit-msg hook rewrote the message to: \(said)); without them a resumed run could land it twice, so nothing landed; \(base) is unchanged")
        }
        return .commit(new)
    }

    /// A commit to make, as a strategy gives it, before the hooks have their say.
    private struct Planned {
        var tree: String
        var parents: [String]
        var message: String
        /// A replayed commit keeps its author.
        var author: (name: String, email: String, date: String)?
        /// The commit it is made on: the base, or the last replayed commit before the tip.
        var head: String
        /// For messages: what git would call it.
        var what: String
        /// The hook git runs, on the files, before making it; and `prepare-commit-msg`'s source.
        var fileHook: String
        var source: String
    }

    /// What a strategy makes of the branch.
    private enum PlanOutcome {
        case commit(Planned)
        /// A rebase finds every commit in the base already.
        case alreadyInBase
        /// A squash whose tree is the base's.
        case changesNothing
    }

    /// What `strategy` makes of the branch's `tip` on the base's `old`, computed without a
    /// checkout. A conflict ends the item listing its paths.
    /// `merger` computes merges (it reads the base's attributes); `git` does the rest.
    private static func plan(_ strategy: String, git: Git, merger: Git, old: String, tip: String, message: String, trailers: String, messageFile: String, sign: Bool,
                      hooks: CommitHooks, base: String, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> PlanOutcome {
        guard strategy == "rebase" else {
            let tree: String
            switch try await merger.mergeTree(old, tip) {
            case .conflicts(let paths): throw MergeExecutor.conflict(paths, base: base)
            case .clean(let merged): tree = merged
            }
            let squash = strategy == "squash"
            if squash, tree == (try await git.output(["rev-parse", old + "^{tree}"])) { return .changesNothing }
            return .commit(Planned(tree: tree, parents: squash ? [old] : [old, tip], message: message, author: nil, head: old,
                                   what: squash ? "the squashed commit" : "the merge commit",
                                   fileHook: squash ? "pre-commit" : "pre-merge-commit", source: squash ? "message" : "merge"))
        }
        if let r = await hooks.run("pre-rebase", arguments: [old], in: git, started: processStarted), !r.succeeded {
            throw hooks.refused("the rebase", r, hooks: ["pre-rebase"], base: base)
        }
        // Each commit replayed on the one before, in the object store; the last one applied gets
        // the trailers (and the message hooks), the others are made as they were. Commits that
        // sit on the base already are kept as they are, as `git rebase` keeps them.
        var head = old
        var headTree = try await git.output(["rev-parse", old + "^{tree}"])
        var kept: Git.CommitObject?
        var pending: (tree: String, commit: Git.CommitObject)?
        for sha in try await git.commitsToReplay(onto: old, tip: tip) {
            let commit = try await git.readCommit(sha)
            if pending == nil, commit.parents == [head] {
                head = sha
                headTree = commit.tree
                kept = commit
                continue
            }
            switch try await merger.replay(commit, sha: sha, onto: headTree) {
            case .conflicts(let paths):
                throw MergeExecutor.conflict(paths, base: base)
            case .becameEmpty:
                continue
            case .applied(let tree):
                if let p = pending {
                    try MergeExecutor.write(p.commit.message, to: messageFile)
                    head = try await git.commitTree(p.tree, parents: [head], messageFile: messageFile, author: (p.commit.authorName, p.commit.authorEmail, p.commit.authorDate), sign: sign)
                }
                pending = (tree, commit)
                headTree = tree
                kept = nil
            }
        }
        // The tip carries the trailers: the last commit replayed, or — when every commit sat on
        // the base already — the branch's own tip, made again with them (as an amend would).
        if let last = pending {
            return .commit(Planned(tree: last.tree, parents: [head], message: last.commit.message + "\n\n" + trailers,
                                   author: (last.commit.authorName, last.commit.authorEmail, last.commit.authorDate), head: head,
                                   what: "the rebased tip's commit", fileHook: "pre-commit", source: "message"))
        }
        if let last = kept {
            return .commit(Planned(tree: last.tree, parents: last.parents, message: last.message + "\n\n" + trailers,
                                   author: (last.authorName, last.authorEmail, last.authorDate), head: last.parents[0],
                                   what: "the rebased tip's commit", fileHook: "pre-commit", source: "message"))
        }
        return .alreadyInBase
    }

    static func write(_ text: String, to path: String) throws(StageError) {
        do { try RunStore.writeAtomically(Array(text.utf8), to: path, mode: 0o600) } catch {
            throw StageError("merge: cannot write \(path): \(error.message)")
        }
    }

    /// The item's end as a conflict: the paths that conflict; the base as it was.
    static func conflict(_ paths: [String], base: String) -> StageError {
        guard !paths.isEmpty else { return StageError("merge: git found a conflict; \(base) is unchanged", kind: .conflict) }
        return StageError("\(paths.count) conflicting path\(paths.count == 1 ? "" : "s"): \(paths.prefix(20).map(Git.quoted).joined(separator: ", ")); \(base) is unchanged", kind: .conflict)
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

    /// Runs hook `name` with `arguments` where `git` runs (`git hook run`, which finds it as
    /// every git command does), reporting its process (a hook that hangs is ended with the
    /// stage); nil when git would not run it (none there, not executable, or `hooks: skip`).
    func run(_ name: String, arguments: [String] = [], in git: Git, started: @Sendable (Int32, UInt64) -> Void) async -> CommandRunner.Output? {
        guard !present([name]).isEmpty else { return nil }
        return await git.run(options + ["hook", "run", name, "--"] + arguments, stdoutLimit: 1 << 20, started: started)
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
