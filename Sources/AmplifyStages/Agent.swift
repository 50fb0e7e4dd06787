import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An agent, as the runner deals with one: started in its worktree for its session (`start`),
/// found again after the runner died (`find`, by the environment it was given), asked how it
/// ended (`termination`), and read for what it said (`report`, `failureReason`).
///
/// Two seams are where what comes next plugs in: where and how the process runs (this machine,
/// `SessionLauncher`; a Slurm batch job with a watcher here, `Slurm`; a bubblewrap sandbox wraps
/// the argv, `Bubblewrap`), and the session's `AgentProfile`: how it is started, resumed and read
/// (AgentOutput.swift).
enum Agent {
    /// Where agents run.
    static let launcher: any SessionLauncher = LocalProcessLauncher()

    /// The agent's environment: the runner's (less git's redirections), the stage's `env`, and AMPLIFY_*.
    static func environment(_ job: StageJob, session: SessionFiles, worktree: String, branch: String, slot: Int?, profile: AgentProfile?, evaluator: ExpressionEvaluator) throws(StageError) -> [String: String] {
        var env = job.environment
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] { env[name] = nil }
        // What the CLI needs to run unattended; the runner's environment and the stage's `env` win.
        for (k, v) in profile?.environment ?? [:] where env[k] == nil { env[k] = v }
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

    /// A profile's argv (its `command` or `resume`) rendered for one start, with the CLI's own
    /// limits for `budget` (`cost-limit`, `turns-limit`) placed before the argv's `--`, else at its end.
    static func argv(_ template: TemplateValue, limits profile: AgentProfile, budget: Budget?, context: ExpressionContext, what: String) throws(StageError) -> [String] {
        var context = context
        context.roots["budget"] = budget?.value ?? .object(OrderedObject())
        let evaluator = ExpressionEvaluator(context: context)
        func render(_ t: TemplateValue) throws(StageError) -> [String] {
            let v: Value
            do { v = try t.render(evaluator) } catch { throw StageError("\(what): \(error.message)") }
            guard case .list(let items) = v else { throw StageError("\(what) must be an argv, not \(v.kindDescription)") }
            return items.map(\.renderedText)
        }
        var argv = try render(template)
        var limits: [String] = []
        if budget?.cost != nil, let c = profile.costLimit { limits += try render(c) }
        if budget?.turns != nil, let t = profile.turnsLimit { limits += try render(t) }
        if let dashes = argv.firstIndex(of: "--") { argv.insert(contentsOf: limits, at: dashes) } else { argv += limits }
        return argv
    }

    /// Starts an agent in its own session and process group, output appended to output.log, and
    /// records its identity beside the session directory before returning. Where this start's
    /// output begins is recorded too: a session's figures add up over its starts. A sandboxed
    /// session's agent starts inside its walls (`record.sandbox`): the sandbox is its process.
    /// A session of `sessions: slurm` (`record.slurm`) starts it as a batch job, and its watcher
    /// on this machine is the process recorded.
    /// `ended`: the attempt's; a Slurm submission it ends meanwhile is given up (and its job cancelled).
    static func start(_ argv: [String], environment: [String: String], worktree: String, session: SessionFiles, record: inout SessionFiles.Record,
                      ended: AttemptEnd) async throws(StageError) -> (Int32, UInt64) {
        let fd = try session.openOutputLog()
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0 { record.starts.append(Int(st.st_size)) }
        let walled = record.sandbox?.wrap(argv) ?? argv
        let (pid, start) = record.slurm != nil
            ? try await Slurm.start(walled, environment: environment, worktree: worktree, session: session, output: fd, record: &record, ended: ended)
            : try launcher.launch(walled, environment: environment, directory: worktree, output: fd)
        record.pid = pid
        record.startTime = start
        try? session.writeRecord(record)
        return (pid, start)
    }

    /// The agent of `session` started by `run`, found by the environment it was given: the
    /// runner died between starting it and recording it.
    static func find(session: SessionFiles, run: String) -> (pid: Int32, startTime: UInt64)? {
        launcher.find(environment: ["AMPLIFY_SESSION_ID=\(session.id)", "AMPLIFY_RUN_ID=\(run)"])
    }

    /// Whether the agent a record names is still running (the same process, not a reused pid).
    static func isAlive(_ record: SessionFiles.Record?) -> Bool {
        guard let pid = record?.pid, let start = record?.startTime else { return false }
        return launcher.isAlive(pid: pid, startTime: start)
    }

    /// Ends the agent a record names, with everything in its process group (SIGTERM, then SIGKILL
    /// after `grace`).
    static func end(_ record: SessionFiles.Record, grace: Duration) async {
        guard let pid = record.pid, let start = record.startTime else { return }
        await launcher.end(pid: pid, startTime: start, grace: grace)
    }

    /// How the agent the record names ended, in words, once it has: a Slurm job's from its exit
    /// file, a local agent's as its parent saw it (nil for one this runner did not start).
    static func termination(_ record: SessionFiles.Record?, session: SessionFiles) async -> String? {
        guard let record else { return nil }
        if record.slurm != nil { return Slurm.ending(session: session, record: record) }
        guard let pid = record.pid else { return nil }
        return await launcher.termination(pid)?.description
    }

    /// What an agent reported spending, as outputs (`cost`, `tokens`, `turns`, `agent-session`);
    /// only what it said: a figure it never gave stays absent, never zero.
    static func usage(_ report: AgentReport, chosen: String?) -> OrderedObject {
        var o = OrderedObject()
        if let cost = report.cost { o["cost"] = .double(cost) }
        if let tokens = report.tokens { o["tokens"] = .int(tokens) }
        if let turns = report.turns { o["turns"] = .int(turns) }
        if let s = report.agentSession ?? chosen { o["agent-session"] = .string(s) }
        return o
    }
}

// MARK: - A provider's usage limit

/// A profile's pause after its provider's usage limit, shared by the sessions of every run in the
/// state directory (the limit is the account's): a file `<state>/paused/<profile>` holding the
/// moment it ends, in ms since the epoch. Dispatch starts nothing of that profile until then.
enum UsagePause {
    static func path(_ stateDirectory: String, profile: String?) -> String {
        stateDirectory + "/paused/" + (profile ?? "argv-agent")
    }

    static func until(_ stateDirectory: String, profile: String?) -> Int64? {
        Int64(CommandRunner.readCapped(path(stateDirectory, profile: profile), limit: 64).trimming(" \n"))
    }

    static func set(_ stateDirectory: String, profile: String?, until: Int64) {
        let dir = stateDirectory + "/paused"
        mkdir(dir, 0o700)
        if let current = UsagePause.until(stateDirectory, profile: profile), current >= until { return }
        try? RunStore.writeAtomically(Array("\(until)\n".utf8), to: path(stateDirectory, profile: profile))
    }

    /// Waits out a pause of `profile`, journaling it once so `status` shows "paused until …".
    static func wait(_ job: StageJob, profile: String?) async {
        guard let until = until(job.stateDirectory, profile: profile), until > Processes.now() else { return }
        let already = job.notes.contains { $0.kind == "paused" && $0.fields["until"] == .int(Int(until)) }
        if !already {
            job.note("paused", OrderedObject([("until", .int(Int(until))), ("profile", .string(profile ?? "argv agent")), ("reason", .string("usage limit"))]))
        }
        while !job.ended.hasHappened, Processes.now() < until {
            try? await Task.sleep(for: .milliseconds(min(1000, max(1, until - Processes.now()))))
        }
    }
}

// MARK: - Where an agent runs

/// Where and how an agent's process is started, found again, and watched. One implementation
/// today, `LocalProcessLauncher`; a sandbox (bubblewrap) or a cluster (Slurm) is another.
protocol SessionLauncher: Sendable {
    /// Starts `argv` in `directory`, in a session and process group of its own that outlives the
    /// runner, stdout and stderr to `output`. Returns its pid and start time.
    func launch(_ argv: [String], environment: [String: String], directory: String, output: Int32) throws(StageError) -> (pid: Int32, startTime: UInt64)
    /// A running agent whose environment holds every one of `environment` (`NAME=value`).
    func find(environment: [String]) -> (pid: Int32, startTime: UInt64)?
    /// Whether the process is the one started (its start time tells a reused pid).
    func isAlive(pid: Int32, startTime: UInt64) -> Bool
    /// Ends it and everything it started (SIGTERM, then SIGKILL after `grace`).
    func end(pid: Int32, startTime: UInt64, grace: Duration) async
    /// How it ended, once it has; nil when this runner did not start it.
    func termination(_ pid: Int32) async -> ChildProcess.Termination?
}

/// Agents as processes on this machine, children of the runner while it lives.
struct LocalProcessLauncher: SessionLauncher {
    /// Exit statuses of agents this runner started (it is their parent): reaped as they end, so
    /// wait-approved can tell how an agent ended. An agent of an earlier runner is not here.
    private static let exits = Mutex<[Int32: Task<ChildProcess.Termination, Never>]>([:])

    func launch(_ argv: [String], environment: [String: String], directory: String, output: Int32) throws(StageError) -> (pid: Int32, startTime: UInt64) {
        let pid: Int32
        do { pid = try ChildProcess.spawn(argv, environment: environment, directory: directory, stdout: .descriptor(output), stderr: .descriptor(output)) } catch {
            throw StageError("cannot start the agent: \(error.description)")
        }
        LocalProcessLauncher.exits.withLock { $0[pid] = Task.detached { await ChildProcess.wait(pid) } }
        return (pid, Processes.startTime(pid) ?? 0)
    }

    func find(environment: [String]) -> (pid: Int32, startTime: UInt64)? {
        Processes.groupLeaders(withEnvironment: environment).first.map { ($0.pid, $0.startTime) }
    }

    func isAlive(pid: Int32, startTime: UInt64) -> Bool {
        Processes.isAlive(pid: pid, startTime: startTime)
    }

    func end(pid: Int32, startTime: UInt64, grace: Duration) async {
        await ChildProcess.terminateGroup(pid, startTime: startTime, grace: grace)
    }

    func termination(_ pid: Int32) async -> ChildProcess.Termination? {
        guard let task = LocalProcessLauncher.exits.withLock({ $0[pid] }) else { return nil }
        return await task.value
    }
}

extension SessionFiles {
    /// `output.log`, opened for appending (made 0600 when missing): what an agent's start, or a
    /// Slurm job's watcher, writes to. Never through a symlink planted in the session directory.
    func openOutputLog() throws(StageError) -> Int32 {
        let log = path("output.log")
        let fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StageError("cannot open \(log): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// What the agent said over all its starts, read by its profile's rules (an argv agent is
    /// read as Claude's stream-json, as it always was).
    public func agentReport(agents: [String: AgentProfile] = [:]) -> AgentReport {
        var output = outputReader(agents: agents)
        output.read(self)
        return output.report
    }

    /// A reader of the session's output.log by its profile (`read` it, then ask its `report`).
    func outputReader(agents: [String: AgentProfile]) -> AgentOutput {
        let record = readRecord()
        let profile = record?.profile.flatMap { agents[$0] ?? AgentProfile.builtIn[$0] } ?? AgentProfile.builtIn["claude"]!
        return AgentOutput(profile: profile, starts: record?.starts ?? [])
    }

    /// Why an agent that ended without a decision failed its item, in words a person reads: the
    /// agent's own error when its output has one (never its raw JSON), else the end of what it
    /// printed; always with the path of `output.log`.
    /// `report` is this session's `agentReport()`, read once by the caller.
    public func failureReason(_ how: String, report: AgentReport) -> String {
        var reason = "the agent \(how) without a decision"
        let end = String(decoding: outputLogEnd(8192), as: UTF8.self)
        if let said = report.errorMessage {
            reason += ": " + said
        } else {
            let tail = SessionFiles.readableTail(end)
            if !tail.isEmpty { reason += "; output.log ends: " + tail }
        }
        // Claude Code refuses --dangerously-skip-permissions as root unless IS_SANDBOX=1 (NOTES.md).
        if end.contains("root/sudo privileges") {
            reason += " (as root, Claude Code needs IS_SANDBOX=1 in the runner's environment; see the README)"
        }
        return reason + " (log: \(path("output.log")))"
    }

    /// The last lines of an agent's output, short: a JSON line longer than a glance is cut.
    static func readableTail(_ text: String, lines: Int = 5) -> String {
        // Split on scalars: "\r\n" is one Character, which a split on "\n" would not cut.
        let kept = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: true)
            .map { String(String.UnicodeScalarView($0)).trimming(" \t\r") }
            .filter { !$0.isEmpty }
            .suffix(lines)
            .map { $0.count > 160 ? String($0.prefix(157)) + "…" : $0 }
        return kept.joined(separator: " | ")
    }
}
