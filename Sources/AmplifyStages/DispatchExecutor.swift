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
        if let id = itemId(job), let record = Agent.session(job, item: id).readRecord(), record.run == job.runId, record.pid != nil {
            return .ended(.succeeded(outputs(record, job: job, session: Agent.session(job, item: id))))
        }
        // Before the agent: claim, worktree and session directory are all made so that doing them again is safe.
        if let process, Processes.isAlive(pid: process.pid, startTime: process.startTime) {
            await ChildProcess.terminateGroup(process.pid, startTime: process.startTime, grace: grace)
        }
        return .rerun
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
        return o
    }

    private func dispatch(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> OrderedObject {
        guard let id = itemId(job), case .object(let item)? = job.context.roots["item"] else {
            throw StageError("dispatch: the item has no valid id (letters, digits, '.', '_', '-')")
        }
        let session = Agent.session(job, item: id)
        // Re-attach: an agent this run started for the item already.
        if var record = session.readRecord(), record.run == job.runId {
            if let pid = record.pid {
                if let start = record.startTime, Processes.isAlive(pid: pid, startTime: start) { processStarted(pid, start) }
                return outputs(record, job: job, session: session)
            }
            // The runner died between starting the agent and recording it: find it by its environment.
            if let agent = Processes.groupLeaders(withEnvironment: ["AMPLIFY_SESSION_ID=\(session.id)", "AMPLIFY_RUN_ID=\(job.runId)"]).first {
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
        let branch: String
        do { branch = try job.stage.parameter("branch")?.render(evaluator).renderedText ?? "amplify/\(id)" } catch {
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
        Agent.excludeFromStatus(git: git, directory: worktreesDir)
        Agent.excludeFromStatus(git: git, directory: job.stateDirectory)

        try await claim(id, job: job, evaluator: evaluator, processStarted: processStarted)

        // The branch and the worktree, reusing what an interrupted attempt of this run left.
        let own = session.readRecord().map { $0.run == job.runId } ?? false
        let worktree = try await git.withWorktreeLock { (git: Git) async throws(StageError) -> String in
            try await Agent.worktree(git: git, branch: branch, base: baseCommit, path: worktreesDir + "/" + session.id, worktreesDir: worktreesDir,
                                     session: session, firstRecord: own ? nil : SessionFiles.Record(run: job.runId, item: id, worktree: worktreesDir + "/" + session.id, branch: branch),
                                     note: { job.note("notice", OrderedObject([("message", .string($0))])) })
        }

        // Untracked files the agent needs, then the project's setup.
        if case .list(let names)? = try? job.stage.parameter("copy")?.render(evaluator) {
            for name in names.map(\.renderedText) {
                guard !name.hasPrefix("/"), !name.split(separator: "/").contains(".."), !name.isEmpty else {
                    throw StageError("dispatch: `copy: \(name)` must be a path inside the repository")
                }
                var st = stat()
                guard lstat(job.repository + "/" + name, &st) == 0 else { continue }
                let target = worktree + "/" + name
                try? FileManager.default.createDirectory(atPath: target.dropLastComponent, withIntermediateDirectories: true)
                let r = await Exec.run(["cp", "-R", "-P", "--", job.repository + "/" + name, target], in: job.repository, environment: git.environment)
                guard r.succeeded else { throw StageError("dispatch: copying \(name): \(r.failure(["cp", name]))") }
            }
        }
        if case .list(let commands)? = job.stage.parameter("setup") {
            for command in commands.compactMap(Command.init) {
                var runJob = job
                runJob.stage.command = command
                runJob.stage.outputs = []
                runJob.stage.workingDirectory = Template(parts: [.text(worktree)])
                if case .failed(let why) = await CommandStageExecutor(grace: grace).execute(runJob, processStarted: processStarted) {
                    throw StageError("dispatch: setup: \(why)")
                }
            }
        }

        // The session directory, then the agent.
        try Agent.makeSessionDirectory(session)
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
        do { prompt = try job.stage.parameter("prompt")?.render(ExpressionEvaluator(context: context)).renderedText ?? "" } catch {
            throw StageError("dispatch: `prompt`: \(error.message)")
        }
        context.roots["prompt"] = .string(prompt)
        let argv: [String]
        do {
            guard case .list(let parts)? = try job.stage.parameter("agent")?.render(ExpressionEvaluator(context: context)), !parts.isEmpty else {
                throw StageError("dispatch: `agent` must be a non-empty argv")
            }
            argv = parts.map(\.renderedText)
        } catch let e as StageError { throw e } catch {
            throw StageError("dispatch: `agent`: \(error)")
        }
        do {
            try RunStore.writeAtomically(Array((Value.object(state).prettyJSON + "\n").utf8), to: session.path("state.json"))
            try RunStore.writeAtomically(Array(prompt.utf8), to: session.path("prompt.md"))
        } catch {
            throw StageError("dispatch: cannot write the session directory: \(error.message)")
        }
        var record = SessionFiles.Record(run: job.runId, item: id, worktree: worktree, branch: branch)
        // Only an id the agent was given is its id.
        record.agentSession = argv.contains { $0.contains(agentSession) } ? agentSession : nil
        // Where the branch leaves the base (a reused branch may have work already).
        record.baseCommit = (try? await git.output(["merge-base", baseCommit, "refs/heads/" + branch])) ?? baseCommit
        do { try session.writeRecord(record) } catch { throw StageError("dispatch: cannot write \(session.recordPath): \(error)") }
        let env = try Agent.environment(job, session: session, worktree: worktree, branch: branch, slot: job.slot, evaluator: evaluator)
        let (pid, start) = try Agent.start(argv, environment: env, worktree: worktree, session: session, record: &record)
        processStarted(pid, start)
        return outputs(record, job: job, session: session)
    }

    /// Claims the item in its tracker, atomically against other runs: the claim is announced in
    /// the state directory first, and an item that is no longer open is this run's only if this
    /// run announced it (an interrupted attempt of its own); otherwise it is another run's or a
    /// person's, and is left to them.
    private func claim(_ id: String, job: StageJob, evaluator: ExpressionEvaluator, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) {
        guard let query = job.upstreamQuery else { return }
        let source = (try? query.parameter("source")?.render(evaluator).renderedText) ?? "bd"
        let claims = Claims(stateDirectory: job.stateDirectory)
        let mine = claims.has(item: id, run: job.runId)
        switch source {
        case "file":
            let given = (try? query.parameter("path")?.render(evaluator).renderedText) ?? ""
            let path = given.hasPrefix("/") ? given : job.repository + "/" + given
            try claims.announce(Claims.Entry(item: id, run: job.runId, source: "file", path: path))
            switch await IssuesFile.claimIssue(id: id, path: path) {
            case .succeeded(let o):
                if o["claimed"] == .bool(true) || (mine && o["status"] == .string("in_progress")) { return }
                claims.withdraw(item: id, run: job.runId)
                let status = o["status"]?.renderedText ?? "not open"
                throw StageError("dispatch: \(id) is \(status) in \(given) — claimed by another run or a person since it was found ready; it is left to them")
            case .failed(let why), .failedAs(_, let why):
                if !mine { claims.withdraw(item: id, run: job.runId) }
                throw StageError("dispatch: \(why)")
            }
        case "bd":
            try claims.announce(Claims.Entry(item: id, run: job.runId, source: "bd", path: nil))
            let env = Git(job.repository, environment: job.environment).environment
            let r = await Exec.run(["bd", "update", id, "--claim", "--json"], in: job.repository, environment: env)
            guard !r.succeeded else { return }
            // Claimed already by an interrupted attempt of this run is fine; anything else is not.
            let shown = await Exec.run(["bd", "show", id, "--json"], in: job.repository, environment: env)
            var status: String?
            var assignee: String?
            if let v = try? JSONParser.parse(shown.stdout) {
                let issue: Value? = if case .list(let l) = v { l.first } else { v }
                status = issue?["status"]?.renderedText
                assignee = issue?["assignee"]?.renderedText
            }
            if mine && status == "in_progress" { return }
            if !mine { claims.withdraw(item: id, run: job.runId) }
            if status == "in_progress" {
                throw StageError("dispatch: \(id) is in progress\(assignee.map { $0.isEmpty ? "" : " (assignee \($0))" } ?? "") — claimed by another run or a person since it was found ready; it is left to them")
            }
            throw StageError("dispatch: cannot claim \(id): \(r.failure(["bd", "update", id, "--claim"]))")
        default:
            return
        }
    }
}

/// What dispatch and wait-approved share: the session's place, its worktree, and starting an agent.
enum Agent {
    static func session(_ job: StageJob, item: String) -> SessionFiles {
        return SessionFiles(stateDirectory: job.stateDirectory, id: SessionFiles.id(item: item, runId: job.runId))
    }

    /// The item's worktree on `branch`: the one git already has for the branch, else a new one
    /// at `path` (on the branch if it exists, else on a new branch from the base).
    /// `base` is the base branch's commit, read once: the branch starts exactly there even if the
    /// base moves meanwhile (a merge landing), so "no commits of its own" stays decidable.
    ///
    /// `firstRecord` is given on this run's first attempt for the item: a branch of that name is
    /// then an earlier run's (an item reopened after a conflict or a rejection), never silently
    /// reused. Work of its own is kept under another name (said through `note`), and the item
    /// starts afresh from the current base; then the record marks the branch as this run's, so
    /// a later attempt of the same run reuses it.
    static func worktree(git: Git, branch: String, base: String, path: String, worktreesDir: String, session: SessionFiles,
                         firstRecord: SessionFiles.Record?, note: (String) -> Void) async throws(StageError) -> String {
        await git.run(["worktree", "prune"])
        if let first = firstRecord {
            if let old = await git.commit("refs/heads/" + branch) {
                try await setAside(git: git, branch: branch, tip: old, base: base, stamp: String(first.run.prefix(15)) + "Z", note: note)
            }
            try makeSessionDirectory(session)
            do { try session.writeRecord(first) } catch { throw StageError("dispatch: cannot write \(session.recordPath): \(error)") }
        }
        guard let all = await git.worktrees() else { throw StageError("dispatch: `git worktree list` keeps failing in \(git.directory)") }
        if let existing = all.first(where: { $0.branch == branch }) {
            guard FileManager.default.fileExists(atPath: existing.path) else { throw StageError("dispatch: branch \(branch) is checked out at \(existing.path), which is gone") }
            return existing.path
        }
        do {
            try FileManager.default.createDirectory(atPath: worktreesDir, withIntermediateDirectories: true)
        } catch { throw StageError("dispatch: cannot create \(worktreesDir): \(error)") }
        // Debris of an interrupted `git worktree add`.
        var st = stat()
        if lstat(path, &st) == 0 { try? FileManager.default.removeItem(atPath: path) }
        let args: [String]
        if await git.commit("refs/heads/" + branch) != nil {
            args = ["worktree", "add", "--quiet", path, branch]
        } else {
            args = ["worktree", "add", "--quiet", "-b", branch, path, base]
        }
        let r = await git.run(args)
        guard r.succeeded else { throw StageError("dispatch: \(r.failure(["git"] + args))") }
        return path
    }

    /// An earlier run's branch for the item: deleted when it holds nothing the base lacks and no
    /// worktree has it, else renamed `<branch>-old-<this run's start>` (a worktree that has it
    /// follows the rename) and kept for whoever wants its work.
    private static func setAside(git: Git, branch: String, tip: String, base: String, stamp: String, note: (String) -> Void) async throws(StageError) {
        let checkedOut = (await git.worktrees())?.contains { $0.branch == branch } ?? true
        if !checkedOut, await git.run(["merge-base", "--is-ancestor", tip, base]).succeeded {
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

    /// The worktrees folder and the state directory stay out of the user's `git status`: a line in
    /// the repository's `info/exclude` (in the common git directory, so a linked worktree's too).
    static func excludeFromStatus(git: Git, directory: String) {
        let repo = git.directory
        guard directory.hasPrefix(repo + "/"), let common = IssuesFile.gitCommonDirectory(containing: repo) else { return }
        let rel = "/" + directory.dropFirst(repo.count + 1) + "/"
        let exclude = common + "/info/exclude"
        let bytes = (try? WorkflowFile.read(exclude, limit: 1 << 20)) ?? []
        // Lines split on the byte: "\r\n" is one Character, so a String split on "\n" would miss a CRLF file's lines.
        let lines = bytes.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self).trimming("\r") }
        guard !lines.contains(rel) else { return }
        mkdir(common + "/info", 0o755)
        let newline = bytes.contains(UInt8(ascii: "\r")) ? "\r\n" : "\n"
        let text = String(decoding: bytes, as: UTF8.self)
        let separator = bytes.isEmpty || bytes.last == UInt8(ascii: "\n") ? "" : newline
        try? RunStore.writeAtomically(Array((text + separator + rel + newline).utf8), to: exclude, mode: 0o644)
    }

    /// The session directory, mode 0700, never a symlink.
    static func makeSessionDirectory(_ session: SessionFiles) throws(StageError) {
        for dir in [session.stateDirectory, SessionFiles.sessionsDirectory(session.stateDirectory)] {
            mkdir(dir, 0o700)
            try requireRealDirectory(dir)
        }
        if mkdir(session.directory, 0o700) != 0 && errno != EEXIST {
            throw StageError("dispatch: cannot create \(session.directory): \(String(cString: strerror(errno)))")
        }
        try requireRealDirectory(session.directory)
        chmod(session.directory, 0o700)
    }

    /// The runner never follows a symlink out of its state directory: its directories must be directories.
    static func requireRealDirectory(_ path: String) throws(StageError) {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw StageError("\(path) is not a directory (a symlink?); refusing to write through it")
        }
    }

    /// The agent's environment: the runner's (less git's redirections), the stage's `env`, and AMPLIFY_*.
    static func environment(_ job: StageJob, session: SessionFiles, worktree: String, branch: String, slot: Int?, evaluator: ExpressionEvaluator) throws(StageError) -> [String: String] {
        var env = job.environment
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] { env[name] = nil }
        for entry in job.stage.env {
            do { env[entry.key] = try entry.value.render(evaluator).renderedText } catch { throw StageError("env \(entry.key): \(error.message)") }
        }
        env["AMPLIFY_RUN_ID"] = job.runId
        env["AMPLIFY_SESSION_ID"] = session.id
        env["AMPLIFY_SESSION_DIR"] = session.directory
        env["AMPLIFY_ITEM_ID"] = job.itemName ?? ""
        env["AMPLIFY_WORKTREE"] = worktree
        env["AMPLIFY_BRANCH"] = branch
        env["AMPLIFY_BASE_BRANCH"] = job.settings.base
        env["AMPLIFY_SLOT"] = String(slot ?? 0)
        env["AMPLIFY_PROMPT_FILE"] = session.path("prompt.md")
        return env
    }

    /// Starts an agent in its own session and process group, output appended to output.log, and
    /// records its identity beside the session directory before returning.
    static func start(_ argv: [String], environment: [String: String], worktree: String, session: SessionFiles, record: inout SessionFiles.Record) throws(StageError) -> (Int32, UInt64) {
        let log = session.path("output.log")
        // Never through a symlink planted in the session directory.
        let fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StageError("cannot open \(log): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let pid: Int32
        do { pid = try ChildProcess.spawn(argv, environment: environment, directory: worktree, stdout: .descriptor(fd), stderr: .descriptor(fd)) } catch {
            throw StageError("cannot start the agent: \(error.description)")
        }
        AgentExits.started(pid)
        let start = Processes.startTime(pid) ?? 0
        record.pid = pid
        record.startTime = start
        try? session.writeRecord(record)
        return (pid, start)
    }
}

extension String {
    /// The path without its last component.
    public var dropLastComponent: String {
        guard let slash = lastIndex(of: "/") else { return "." }
        return String(self[..<slash])
    }
}
