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
/// Two seams are where what comes next plugs in, each with one implementation today:
/// `SessionLauncher` is where and how the process runs (this machine; a bubblewrap sandbox would
/// wrap the argv, a Slurm launcher would submit a batch job and find it by its job id), and
/// `AgentOutputFormat` is how its output is read (Claude's stream-json; codex, gemini or opencode
/// print their own JSON). An agent's argv, and its resume argv, come from the workflow (`agent:`,
/// `resume:`), so a per-CLI profile is a pair of argvs plus its output format.
enum Agent {
    /// Where agents run.
    static let launcher: any SessionLauncher = LocalProcessLauncher()
    /// How agents' output is read.
    static let outputFormat: any AgentOutputFormat = ClaudeStreamJSON()

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
        let (pid, start) = try launcher.launch(argv, environment: environment, directory: worktree, output: fd)
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

    /// How the agent ended, once it has; nil for one this runner did not start.
    static func termination(_ pid: Int32) async -> ChildProcess.Termination? {
        await launcher.termination(pid)
    }

    /// What an agent reported spending, as outputs (`cost`, `turns`, `agent-session`); only what it said.
    static func usage(_ report: AgentReport, chosen: String?) -> OrderedObject {
        var o = OrderedObject()
        if let cost = report.cost { o["cost"] = .double(cost) }
        if let turns = report.turns { o["turns"] = .int(turns) }
        if let s = report.agentSession ?? chosen { o["agent-session"] = .string(s) }
        return o
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

// MARK: - What an agent said

/// How an agent CLI's output is read for what it reported at its end. One implementation today,
/// `ClaudeStreamJSON`; codex, gemini and opencode print JSON of their own.
protocol AgentOutputFormat: Sendable {
    /// What the end of the agent's output (its last bytes, whole lines or not) says.
    func report(_ logEnd: ArraySlice<UInt8>) -> AgentReport
}

/// What an agent said at its end: cost, turns, its session id, and its own words when it ended
/// in error.
public struct AgentReport: Sendable, Equatable {
    public var cost: Double?
    public var turns: Int?
    /// Tokens, for agents that report no cost (codex, gemini).
    public var tokens: Int?
    public var agentSession: String?
    public var isError: Bool?
    /// The agent's error in its own words: the `result` (or `errors`) of a result line with
    /// `is_error`, else the `error` of its last assistant message (`authentication_failed`).
    public var errorMessage: String?

    public init() {}
}


/// Claude Code's `--output-format stream-json`: one JSON object a line, the last `result` line
/// with the cost and the turns, `session_id` on every line.
struct ClaudeStreamJSON: AgentOutputFormat {
    func report(_ logEnd: ArraySlice<UInt8>) -> AgentReport {
        var report = AgentReport()
        var assistantError: String?
        for line in logEnd.split(separator: UInt8(ascii: "\n")) where line.first == UInt8(ascii: "{") {
            guard let v = try? JSONParser.parse(String(decoding: line, as: UTF8.self)) else { continue }
            if case .string(let sid)? = v["session_id"], !sid.isEmpty { report.agentSession = sid }
            if v["type"] == .string("assistant"), case .string(let e)? = v["error"], !e.isEmpty { assistantError = e }
            guard v["type"] == .string("result") else { continue }
            switch v["total_cost_usd"] {
            case .double(let d)?: report.cost = d
            case .int(let i)?: report.cost = Double(i)
            default: break
            }
            if case .int(let t)? = v["num_turns"] { report.turns = t }
            if case .bool(let e)? = v["is_error"] { report.isError = e }
            report.errorMessage = nil
            if report.isError == true {
                var words: [String] = []
                if case .string(let r)? = v["result"] { words.append(r) }
                if case .list(let errors)? = v["errors"] { words += errors.map(\.renderedText) }
                words = words.map { $0.trimming(" \t\r\n") }.filter { !$0.isEmpty }
                if words.isEmpty, case .string(let subtype)? = v["subtype"] { words.append(subtype) }
                report.errorMessage = words.isEmpty ? nil : String(words.joined(separator: "; ").prefix(500))
            }
        }
        if report.errorMessage == nil, report.isError != false, let assistantError { report.errorMessage = assistantError }
        return report
    }
}

/// What an agent said, read by its profile's rules (SPEC §11) — any CLI that prints JSON lines.
/// WORK IN PROGRESS: not yet chosen by dispatch; `ClaudeStreamJSON` still reads every agent.
struct ProfileOutput: AgentOutputFormat {
    var profile: AgentProfile

    func report(_ logEnd: ArraySlice<UInt8>) -> AgentReport {
        var report = AgentReport()
        var sums: [String: Double] = [:]
        func number(_ v: Value) -> Double? {
            switch v {
            case .double(let d): return d
            case .int(let i): return Double(i)
            default: return nil
            }
        }
        func figure(_ rule: OutputRule?, _ name: String, _ line: Value) -> Double? {
            guard let rule, let v = rule.read(line), let n = number(v) else { return nil }
            if rule.sum { sums[name, default: 0] += n; return sums[name] }
            return n
        }
        for line in logEnd.split(separator: UInt8(ascii: "\n")) where line.first == UInt8(ascii: "{") {
            guard let v = try? JSONParser.parse(String(decoding: line, as: UTF8.self)) else { continue }
            if case .string(let sid)? = profile.sessionId?.read(v), !sid.isEmpty { report.agentSession = sid }
            if let c = figure(profile.cost, "cost", v) { report.cost = c }
            if let t = figure(profile.tokens, "tokens", v) { report.tokens = Int(t) }
            if let t = figure(profile.turns, "turns", v) { report.turns = Int(t) }
            if let e = profile.error?.read(v) {
                let words: [String]
                if case .list(let items) = e { words = items.map(\.renderedText) } else { words = [e.renderedText] }
                let said = words.map { $0.trimming(" \t\r\n") }.filter { !$0.isEmpty }.joined(separator: "; ")
                if !said.isEmpty {
                    report.errorMessage = String(said.prefix(500))
                    report.isError = true
                }
            }
        }
        return report
    }
}

extension SessionFiles {
    /// What the agent said, from the last 1 MiB of `output.log`.
    public func agentReport() -> AgentReport {
        Agent.outputFormat.report(outputLogEnd(SessionFiles.fileLimit))
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
