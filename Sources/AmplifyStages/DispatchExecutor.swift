import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `dispatch`: claims the item, gives it a branch and a worktree made from the base, writes its
/// session directory, and starts the agent there in a session of its own. The agent outlives
/// the runner; its pid and start time are recorded (in the journal and beside the session
/// directory) before anything else happens, so a resumed runner re-attaches instead of starting
/// a second agent.
public struct DispatchExecutor: StageExecutor {
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        do {
            return .succeeded(try await dispatch(job, processStarted: processStarted))
        } catch {
            return error.result
        }
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        // An agent started by the dead runner is its session's: the dispatch is done.
        if let id = itemId(job), let record = SessionFiles(job, item: id).readRecord(), record.run == job.runId, record.pid != nil {
            return .ended(.succeeded(outputs(record, job: job, session: SessionFiles(job, item: id))))
        }
        // Before the agent: claim, worktree and session directory are all made so that doing them again is safe.
        return await Reconciliation.rerun(ending: process, grace: grace)
    }

    func itemId(_ job: StageJob) -> String? {
        guard case .object(let item)? = job.context.roots["item"], case .string(let id)? = item["id"], QueryReadyExecutor.isValidId(id) else { return nil }
        return id
    }

    func outputs(_ r: SessionFiles.Record, job: StageJob, session: SessionFiles) -> OrderedObject {
        var o = OrderedObject()
        o["session"] = .string(session.id)
        o["dir"] = .string(session.directory)
        o["worktree"] = .string(r.worktree)
        o["branch"] = .string(r.branch)
        o["pid"] = r.pid.map { .int(Int($0)) } ?? .null
        o["start-time"] = r.startTime.map { .int(Int($0)) } ?? .null
        o["base"] = .string(job.settings.base)
        o["base-commit"] = r.baseCommit.map(Value.string) ?? .null
        o["slot"] = job.slot.map(Value.int) ?? .null
        o["agent-session"] = r.agentSession.map(Value.string) ?? .null
        if let profile = r.profile { o["agent-profile"] = .string(profile) }
        if let budget = r.budget { o["budget"] = budget.value }
        if let id = r.slurm?.job { o["slurm-job"] = .string(id) }
        return o
    }

    private func dispatch(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> OrderedObject {
        guard let id = itemId(job), case .object(let item)? = job.context.roots["item"] else {
            throw StageError("dispatch: the item has no valid id (letters, digits, '.', '_', '-')")
        }
        let session = SessionFiles(job, item: id)
        // Re-attach: an agent this run started for the item already.
        if var record = session.readRecord(), record.run == job.runId {
            if let pid = record.pid {
                if let start = record.startTime, Agent.isAlive(record) { processStarted(pid, start) }
                return outputs(record, job: job, session: session)
            }
            // A Slurm start the runner died in: its job found by name and token and watched, or
            // submitted (with the same token) if Slurm never got it.
            if record.slurm?.token != nil {
                let env = try Agent.environment(job, session: session, worktree: record.worktree, branch: record.branch, slot: job.slot,
                                                profile: record.profile.flatMap(job.agentProfile), evaluator: ExpressionEvaluator(context: job.context))
                if try await Slurm.recover(session: session, record: &record, run: job.runId, environment: env), let pid = record.pid, let start = record.startTime {
                    processStarted(pid, start)
                }
                // Over already (its agent ran, or its job is gone for good): wait-approved judges
                // how it ended. Never a second start.
                return outputs(record, job: job, session: session)
            }
            // The runner died between starting the agent and recording it: find it by its environment.
            if record.slurm == nil, let agent = Agent.find(session: session, run: job.runId) {
                record.pid = agent.pid
                record.startTime = agent.startTime
                try? session.writeRecord(record)
                processStarted(agent.pid, agent.startTime)
                return outputs(record, job: job, session: session)
            }
        }
        let evaluator = ExpressionEvaluator(context: job.context)
        let git = Git(job.repository, environment: job.environment)

        // What can be checked is checked before the item is claimed: a claim is a change in
        // the tracker that someone must undo.
        // A profile's name is known now; an argv is rendered with the prompt, below.
        var profile: AgentProfile?
        if case .list? = job.stage.parameter(DispatchParameters.agent) {} else {
            do { profile = try DispatchExecutor.profile(try job.stage.value(DispatchParameters.agent, evaluator), job: job) } catch let error as StageError {
                throw error
            } catch {
                throw StageError("dispatch: `agent`: \(error)")
            }
        }
        let budget: Budget?
        do { budget = try job.stage.value(DispatchParameters.budget, evaluator) } catch {
            throw StageError("dispatch: `budget`: \(error.message)")
        }
        // The sandbox, if any: one that cannot be made here is said before anything is claimed.
        let sandboxed: Bool
        var sandboxWritable = job.settings.sandboxWritable + (profile?.sandboxWritable ?? [])
        do {
            sandboxed = (try job.stage.value(DispatchParameters.sandbox, evaluator) ?? job.settings.sandbox) == "bwrap"
            sandboxWritable += try job.stage.value(DispatchParameters.sandboxWritable, evaluator) ?? []
        } catch {
            throw StageError("dispatch: \(error.message)")
        }
        if sandboxed, let problem = await Bubblewrap.problem(environment: job.environment) {
            throw StageError("dispatch: \(problem); nothing was claimed")
        }
        // Where the agent runs: a Slurm cluster that cannot be reached is said before the claim too.
        var slurm: SlurmOptions?
        do {
            if (try job.stage.value(DispatchParameters.sessions, evaluator) ?? job.settings.sessions) == "slurm" {
                slurm = job.settings.slurm.overridden(by: try job.stage.value(DispatchParameters.slurm, evaluator) ?? SlurmOptions())
            }
        } catch {
            throw StageError("dispatch: \(error.message)")
        }
        if slurm != nil, let problem = await Slurm.problem(environment: job.environment) {
            throw StageError("dispatch: \(problem); nothing was claimed")
        }
        // A usage limit met by another session of this profile: nothing new starts until it resets.
        await UsagePause.wait(job, profile: profile?.name)
        guard !job.ended.hasHappened else { throw StageError("dispatch: ended by the runner while the \(profile?.name ?? "agent")'s usage limit paused it") }
        let branch: String
        do { branch = try job.stage.value(DispatchParameters.branch, evaluator) } catch {
            throw StageError("dispatch: `branch`: \(error.message)")
        }
        guard !branch.hasPrefix("-"), await git.run(["check-ref-format", "--branch", branch]).succeeded else {
            throw StageError("dispatch: '\(branch)' is not a valid branch name")
        }
        let base = job.settings.base
        guard let baseCommit = await git.commit("refs/heads/" + base) else {
            throw StageError("dispatch: the base branch '\(base)' (settings.base) does not exist in \(job.repository)")
        }
        let worktreesDir = job.worktreesDirectory
        git.excludeFromStatus(worktreesDir)
        git.excludeFromStatus(job.stateDirectory)

        if let query = job.upstreamQuery {
            let tracker: Tracker
            do { tracker = try Tracker(query: query, evaluator: evaluator, repository: job.repository) } catch {
                throw StageError("dispatch: \(error.message)")
            }
            try await tracker.claim(id, run: job.runId, claims: Claims(stateDirectory: job.stateDirectory), repository: job.repository, environment: job.environment)
        }

        // A sparse worktree still gets the repository's tracked hooks folder (`core.hooksPath`
        // relative, like `.husky`): cone mode leaves out folders at the top, and the agent's own
        // commits would silently run no hook.
        var sparse = job.settings.sparse
        if !sparse.isEmpty {
            let hooksPath = (await git.run(["config", "--get", "core.hooksPath"])).stdout.trimming(" \t\r\n/")
            if !hooksPath.isEmpty, !hooksPath.hasPrefix("/"), !hooksPath.split(separator: "/").contains("..") {
                sparse.append(hooksPath.hasPrefix("./") ? String(hooksPath.dropFirst(2)) : hooksPath)
            }
        }

        // The branch and the worktree, reusing what an interrupted attempt of this run left.
        let earlier = session.readRecord().flatMap { $0.run == job.runId ? $0 : nil }
        let own = earlier != nil
        let worktree = try await git.withWorktreeLock { (git: Git) async throws(StageError) -> String in
            try await DispatchExecutor.worktree(git: git, branch: branch, base: baseCommit, path: worktreesDir + "/" + session.id, worktreesDir: worktreesDir, sparse: sparse, ownRepository: sandboxed,
                                     session: session, firstRecord: own ? nil : SessionFiles.Record(run: job.runId, item: id, worktree: worktreesDir + "/" + session.id, branch: branch),
                                     note: { job.note("notice", OrderedObject([("message", .string($0))])) })
        }
        // A sandboxed session's own repository, outside the lock: it touches no worktree's entry.
        // One an agent of this run may have had (a dispatch done again after its agent went) is
        // the agent's to configure: git finishes it within the walls recorded for it.
        var inRepository = git
        if sandboxed {
            inRepository.wrapper = earlier?.sandbox?.prefix
            try await git.addOwnRepository(worktree, branch: branch, base: baseCommit, worktreesDir: worktreesDir)
            try await inRepository.setSparse(worktree, sparse)
        }
        // Its files, outside the lock: the checkouts of a large repository run side by side.
        if worktree.hasPrefix(worktreesDir + "/") {
            try await inRepository.finishCheckout(worktree, started: processStarted)
        }

        // Untracked files the agent needs, then the project's setup.
        if let names = try? job.stage.value(DispatchParameters.copy, evaluator) {
            for name in names {
                guard !name.hasPrefix("/"), !name.split(separator: "/").contains(".."), !name.isEmpty else {
                    throw StageError("dispatch: `copy: \(name)` must be a path inside the repository")
                }
                var st = stat()
                guard lstat(job.repository + "/" + name, &st) == 0 else { continue }
                let target = worktree + "/" + name
                try? FileManager.default.createDirectory(atPath: target.dropLastComponent, withIntermediateDirectories: true)
                let r = await CommandRunner.run(["cp", "-R", "-P", "--", job.repository + "/" + name, target], in: job.repository, environment: git.environment)
                guard r.succeeded else { throw StageError("dispatch: copying \(name): \(r.failure(["cp", name]))") }
            }
        }
        do {
            for command in job.stage.commands(DispatchParameters.setup) {
                let ran = await CommandRunner().run(command, for: job, workingDirectory: Template(parts: [.text(worktree)]), outputs: [], processStarted: processStarted)
                if case .failed(let why) = ran {
                    throw StageError("dispatch: setup: \(why)")
                }
            }
        }

        // The session directory, then the agent.
        try session.makeDirectory()
        var state = OrderedObject()
        state["sessionId"] = .string(session.id)
        state["status"] = .string("running")
        state["item"] = .object(item)
        state["worktree"] = .string(worktree)
        state["branch"] = .string(branch)
        state["baseBranch"] = .string(base)
        state["baseCommit"] = .string(baseCommit)
        state["startedAt"] = .string(Timestamp.iso8601(milliseconds: Processes.now()))
        // The agent's own session id, chosen here (`claude --session-id`): resuming it never
        // depends on finding an id in its output. A new one for every start.
        let agentSession = UUID().uuidString.lowercased()
        var context = job.context
        context.roots["session"] = .object(OrderedObject([("id", .string(session.id)), ("dir", .string(session.directory)), ("agent-session", .string(agentSession))]))
        let prompt: String
        do { prompt = try job.stage.value(DispatchParameters.prompt, ExpressionEvaluator(context: context)) ?? "" } catch {
            throw StageError("dispatch: `prompt`: \(error.message)")
        }
        context.roots["prompt"] = .string(prompt)
        let argv: [String]
        if let profile {
            argv = try Agent.argv(profile.command, limits: profile, budget: budget, context: context, what: "dispatch: the \(profile.name) profile's `command`")
        } else {
            do { argv = try job.stage.value(DispatchParameters.agent, ExpressionEvaluator(context: context)).argv } catch {
                throw StageError("dispatch: `agent`: \(error.message)")
            }
        }
        guard !argv.isEmpty else { throw StageError("dispatch: `agent` must be a non-empty argv") }
        do {
            try RunStore.writeAtomically(Array((Value.object(state).prettyJSON + "\n").utf8), to: session.path("state.json"))
            try RunStore.writeAtomically(Array(prompt.utf8), to: session.path("prompt.md"))
        } catch {
            throw StageError("dispatch: cannot write the session directory: \(error.message)")
        }
        var record = SessionFiles.Record(run: job.runId, item: id, worktree: worktree, branch: branch)
        // Only an id the agent was given is its id.
        record.agentSession = argv.contains { $0.contains(agentSession) } ? agentSession : nil
        record.profile = profile?.name
        record.budget = budget
        // Where the branch leaves the base (a reused branch may have work already).
        record.baseCommit = (try? await git.output(["merge-base", baseCommit, "refs/heads/" + branch])) ?? baseCommit
        let env = try Agent.environment(job, session: session, worktree: worktree, branch: branch, slot: job.slot, profile: profile, evaluator: evaluator)
        // The walls go into the record before the agent starts: a runner killed between its start
        // and the record of its pid finds it again with this record, and must still know its walls.
        if sandboxed {
            record.sandbox = .session(repository: worktree, gitDirectory: worktree + ".git", sessionDirectory: session.directory, checkout: job.repository, stateDirectory: job.stateDirectory,
                                      worktreesDirectory: worktreesDir, commonGitDirectory: git.commonDirectory(), home: env["HOME"], writable: sandboxWritable)
        }
        record.slurm = slurm.map(SlurmJob.init)
        do { try session.writeRecord(record) } catch { throw StageError("dispatch: cannot write \(session.recordPath): \(error)") }
        guard !job.ended.hasHappened else { throw StageError("dispatch: ended by the runner before the agent started") }
        let (pid, start) = try await Agent.start(argv, environment: env, worktree: worktree, session: session, record: &record, ended: job.ended)
        processStarted(pid, start)
        return outputs(record, job: job, session: session)
    }
}

extension DispatchExecutor {
    /// The profile `agent:` names (nil for an argv agent); an unknown name is an error that says
    /// which names there are.
    static func profile(_ choice: AgentChoice, job: StageJob) throws(StageError) -> AgentProfile? {
        guard case .profile(let name) = choice else { return nil }
        if let p = job.agentProfile(name) { return p }
        let known = Array(job.agents.keys) + AgentProfile.builtIn.keys
        throw StageError("dispatch: `agent`: unknown agent profile '\(name)'\(DidYouMean.hint(name, known)); profiles: \(known.sorted().joined(separator: ", ")) (declare your own under `agents:`, or give an argv)")
    }

    /// The item's worktree on `branch`: the one git already has for the branch, else a new one
    /// at `path` (on the branch if it exists, else on a new branch from the base) — git's entry
    /// and `sparse`'s directories only: the files come after, outside the lock (`finishCheckout`).
    /// `base` is the base branch's commit, read once: the branch starts exactly there even if the
    /// base moves meanwhile (a merge landing), so "no commits of its own" stays decidable.
    ///
    /// `firstRecord` is given on this run's first attempt for the item: a branch of that name is
    /// then an earlier run's (an item reopened after a conflict or a rejection), never silently
    /// reused. Work of its own is kept under another name (said through `note`), and the item
    /// starts afresh from the current base; then the record marks the branch as this run's, so
    /// a later attempt of the same run reuses it.
    ///
    /// `ownRepository` (a sandboxed session): no worktree, whose git directory is the
    /// repository's own and writable for every ref; `path` is returned for a repository of the
    /// session's own, which the caller makes outside the lock (`Git.addOwnRepository`).
    static func worktree(git: Git, branch: String, base: String, path: String, worktreesDir: String, sparse: [String], ownRepository: Bool = false, session: SessionFiles,
                         firstRecord: SessionFiles.Record?, note: (String) -> Void) async throws(StageError) -> String {
        await git.run(["worktree", "prune"])
        if let first = firstRecord {
            if let old = await git.commit("refs/heads/" + branch) {
                try await setAside(git: git, branch: branch, tip: old, base: base, stamp: String(first.run.prefix(15)) + "Z", note: note)
            }
            try session.makeDirectory()
            do { try session.writeRecord(first) } catch { throw StageError("dispatch: cannot write \(session.recordPath): \(error)") }
        }
        if ownRepository { return path }
        guard let all = await git.worktrees() else { throw StageError("dispatch: `git worktree list` keeps failing in \(git.directory)") }
        if let existing = all.first(where: { $0.branch == branch }) {
            guard FileManager.default.fileExists(atPath: existing.path) else { throw StageError("dispatch: branch \(branch) is checked out at \(existing.path), which is gone") }
            // An attempt killed before its checkout: the sparse directories may not be set yet.
            if existing.path.hasPrefix(worktreesDir + "/") { try await git.setSparse(existing.path, sparse) }
            return existing.path
        }
        do {
            try FileManager.default.createDirectory(atPath: worktreesDir, withIntermediateDirectories: true)
        } catch { throw StageError("dispatch: cannot create \(worktreesDir): \(error)") }
        // Debris of an interrupted `git worktree add`.
        var st = stat()
        if lstat(path, &st) == 0 { try? FileManager.default.removeItem(atPath: path) }
        let (r, argv) = await git.addWorktree(path, branch: branch, newFrom: await git.commit("refs/heads/" + branch) != nil ? nil : base)
        guard r.succeeded else { throw StageError("dispatch: \(r.failure(argv))") }
        try await git.setSparse(path, sparse)
        return path
    }

    /// An earlier run's branch for the item: deleted when it holds nothing the base lacks, else
    /// renamed `<branch>-old-<this run's start>` and kept for whoever wants its work. One that a
    /// worktree has checked out is refused, saying what to do.
    private static func setAside(git: Git, branch: String, tip: String, base: String, stamp: String, note: (String) -> Void) async throws(StageError) {
        guard let worktrees = await git.worktrees() else { throw StageError("dispatch: `git worktree list` keeps failing in \(git.directory)") }
        // Checked out somewhere: an earlier run's worktree (a cancelled run keeps them), maybe
        // with an agent still in it. Never pulled from under it: a person decides.
        if let holder = worktrees.first(where: { $0.branch == branch }) {
            throw StageError("dispatch: branch \(branch), left by an earlier run, is checked out in \(holder.path), where its agent may still be at work; when that work is done with, `git worktree remove \(holder.path)` and run again (the branch is then kept aside, never reused)")
        }
        if await git.isAncestor(tip, of: base) {
            let r = await git.run(["branch", "-D", "--", branch])
            guard r.succeeded else { throw StageError("dispatch: \(r.failure(["git", "branch", "-D", branch]))") }
            note("\(branch) was left by an earlier run with no work the base lacks; it starts afresh from the base (\(base.prefix(8)))")
            return
        }
        let aside = branch + "-old-" + stamp
        let r = await git.run(["branch", "-m", "--", branch, aside])
        guard r.succeeded else { throw StageError("dispatch: an earlier run left branch \(branch); cannot rename it to \(aside): \(r.failure(["git", "branch", "-m"]))") }
        let ahead = (try? await git.output(["rev-list", "--count", base + ".." + tip])) ?? "?"
        note("\(branch) was left by an earlier run (\(ahead) commit\(ahead == "1" ? "" : "s") the base lacks, tip \(tip.prefix(8))); kept as \(aside), and the item starts afresh from the base (\(base.prefix(8)))")
    }
}
