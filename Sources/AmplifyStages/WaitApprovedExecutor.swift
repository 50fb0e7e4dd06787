import AmplifyEngine
import AmplifyWorkflow
import CAmplifySystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `wait-approved`: waits for the session's decision — `decision.json` (approve/reject),
/// `review.json`, or `state.json`'s status — journaling each new question once. An agent that
/// exited with a blocking question is started again with `resume:` once it is answered; one
/// that exited without a decision is judged by `on-exit`. Waiting sleeps on inotify (or a poll of
/// `settings.poll`) and the agent's pidfd: no CPU to speak of.
public struct WaitApprovedExecutor: StageExecutor {
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        do {
            return try await wait(job, processStarted: processStarted)
        } catch {
            return error.result
        }
    }

    /// The agent was left running by the dead runner: wait again (re-attach), never end it.
    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        .rerun
    }

    private func wait(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> StageResult {
        guard let dispatched = job.session, case .string(let sid)? = dispatched["session"], SessionFiles.isValidId(sid) else {
            throw StageError("wait-approved: the item has no session (its dispatch did not succeed)")
        }
        let session = SessionFiles(stateDirectory: job.stateDirectory, id: sid)
        let evaluator = ExpressionEvaluator(context: job.context)
        let onExit: String
        do { onExit = try job.stage.value(WaitApprovedParameters.onExit, evaluator) } catch { throw StageError("wait-approved: `on-exit`: \(error.message)") }
        var asked = Set(job.notes.filter { $0.kind == "question" }.compactMap { $0.fields["id"]?.renderedText })
        var warned = Set(job.notes.filter { $0.kind == "warning" }.compactMap { $0.fields["message"]?.renderedText })
        var resumedFor = Set(job.notes.filter { $0.kind == "resumed" }.compactMap { $0.fields["question"]?.renderedText })
        // The starts of the agent after which the session was said to wait for a person.
        var waitingSaid = Set(job.notes.filter { $0.kind == "waiting" }.compactMap { note -> Int? in if case .int(let n)? = note.fields["start"] { n } else { nil } })
        var record = session.readRecord()
        // What a working agent has reported spending, journaled as it grows (the run's budget
        // counts it, and a timed-out item still shows it).
        var journaledCost = job.notes.last { $0.kind == "spent" || $0.kind == "usage" }.flatMap { RunReport.number($0.fields["cost"]) }
        var watched: AgentOutput?
        // Usage-limit pauses journaled by this attempt (`job.notes` holds those of earlier ones).
        var pausedHere = 0
        let slot = dispatched["slot"].flatMap { if case .int(let i) = $0 { i } else { nil } }
        func agentEnvironment(_ r: SessionFiles.Record) throws(StageError) -> [String: String] {
            try Agent.environment(job, session: session, worktree: r.worktree, branch: r.branch, slot: slot, profile: profile(r, job), evaluator: evaluator)
        }
        // A Slurm job whose watcher went with the runner: re-attached by its job id (a new
        // watcher), or submitted again if Slurm forgot it before its agent started.
        if var r = record, r.slurm != nil, !Agent.isAlive(r) {
            if try await Slurm.recover(session: session, record: &r, run: job.runId, environment: try agentEnvironment(r)) { record = r }
        }
        // A restart between starting the agent again and recording it: that agent is found by its
        // environment and waited on, never started a second time.
        if var r = record, r.slurm == nil, !Agent.isAlive(r), let found = Agent.find(session: session, run: job.runId) {
            r.pid = found.pid
            r.startTime = found.startTime
            r.starts.append(session.outputLogTail(0).offset)
            try? session.writeRecord(r)
            record = r
        }
        var reported: Int32?
        // Answers the agent could read while it ran: no reason to start it again for them.
        var answeredWhileAlive = Set<String>()
        let watch = amplify_watch_directory(session.directory)
        defer { if watch >= 0 { close(watch) } }
        // Each problem with a session file is journaled once.
        func warn(_ warnings: [String]) {
            for w in warnings where warned.insert(w).inserted { job.note("warning", OrderedObject([("message", .string(w))])) }
        }
        // A Slurm job's agent may write from another machine, which file notifications never tell.
        let pollEvery: Duration = watch >= 0 && record?.slurm == nil ? .seconds(30) : .milliseconds(job.settings.poll.milliseconds)

        while true {
            // Timed out or cancelled by the runner: nothing more to do here (the result is dropped).
            if job.ended.hasHappened { throw StageError("wait-approved: ended by the runner") }
            // The agent, as the record beside the session directory knows it (a resumed agent replaces it).
            let pid = record?.pid
            // A Slurm job's agent has ended once its exit file is there, a moment before its watcher.
            let alive = Agent.isAlive(record) && !(record.map { Slurm.hasExited(session, $0) } ?? false)
            if alive, let pid, reported != pid {
                processStarted(pid, record?.startTime ?? 0)
                reported = pid
            }

            // Questions (and warnings about unreadable files) first: a session that asked, then
            // decided before this look, still has its questions on record.
            var warnings: [String] = []
            for q in session.questions(warnings: &warnings) where !asked.contains(q.id) {
                var fields = q.fields
                fields["session"] = .string(sid)
                job.note("question", fields)
                asked.insert(q.id)
            }
            warn(warnings)
            warnings = []
            let decision = session.decision(warnings: &warnings)
            warn(warnings)
            if let d = decision {
                // An agent usually decides, then prints its last line (Claude's result, with the
                // cost) and exits: give it a moment to, so the cost is known.
                if alive, let pid {
                    let pidfd = amplify_pidfd_open(pid)
                    if pidfd >= 0 {
                        await FileWatch.wait(watch: -1, pidfd: pidfd, timeout: .seconds(5))
                        close(pidfd)
                    }
                }
                return decided(d, session: session, job: job)
            }
            if alive && !asked.isEmpty { answeredWhileAlive.formUnion(session.answers().keys) }

            if alive, let r = record, watchesSpending(r, job: job) {
                // Read on from where the last look stopped: each second costs only what was added.
                if watched == nil { watched = session.outputReader(agents: job.agents) }
                watched!.starts = r.starts.filter { $0 >= watched!.offset }
                watched!.read(session)
                let report = watched!.report
                if let cost = report.cost, cost != journaledCost {
                    job.note("spent", OrderedObject([("cost", .double(cost))]))
                    journaledCost = cost
                }
                if let over = overBudget(report, record: r, job: job, enforcedByRunner: true) {
                    // Past a limit the CLI cannot enforce itself: the runner ends the agent.
                    await Agent.end(r, grace: grace)
                    // What it printed up to its end, read on from where the last look stopped.
                    watched!.read(session)
                    return overBudgetResult(over + "; the runner ended the agent", report: watched!.report, session: session, job: job)
                }
            }

            if !alive {
                // Said before it went? Look once more, then judge how it ended.
                var ignored: [String] = []
                if let d = session.decision(warnings: &ignored) { return decided(d, session: session, job: job) }
                // A Slurm job's watcher that left while its job goes on, or whose job Slurm forgot
                // before the agent started: watched again, or submitted again.
                if var r = record, r.slurm != nil, try await Slurm.recover(session: session, record: &r, run: job.runId, environment: try agentEnvironment(r)) {
                    record = r
                    continue
                }
                let report = session.agentReport(agents: job.agents)
                // An agent that stopped at its budget is neither started again nor failed for
                // something else; one done and waiting for a person (`completed`) still waits.
                if let r = record, session.status() != "completed", let over = overBudget(report, record: r, job: job, enforcedByRunner: false) {
                    return overBudgetResult(over, report: report, session: session, job: job)
                }
                if let limit = report.usageLimit, var r = record, stoppedByUsageLimit(report, record: r, session: session, job: job) {
                    // Stopped by its provider's usage limit: not a failure. Pause, then continue.
                    let pauses = job.notes.filter { $0.kind == "paused" && $0.fields["start"] != nil }.count + pausedHere
                    guard pauses < WaitApprovedExecutor.mostPauses || job.notes.contains(where: { $0.kind == "paused" && $0.fields["start"] == .int(r.starts.count) }) else {
                        throw StageError("wait-approved: the agent met its provider's usage limit \(pauses) times and was continued each time; giving up: \(limit.said) (log: \(session.path("output.log")))")
                    }
                    if let d = try await pause(for: limit, record: r, session: session, watch: watch, job: job) { return decided(d, session: session, job: job) }
                    pausedHere += 1
                    let env = try agentEnvironment(r)
                    let argv = try resumeArgv(job, session: session, record: r, report: report,
                                              answer: "Continue where you left off: the usage limit that stopped you has reset.")
                    guard !job.ended.hasHappened else { throw StageError("wait-approved: ended by the runner") }
                    job.note("continued", OrderedObject([("start", .int(r.starts.count)), ("session", .string(sid))]))
                    _ = try await Agent.start(argv, environment: env, worktree: r.worktree, session: session, record: &r, ended: job.ended)
                    record = r
                    continue
                }
                let questions = session.questions(warnings: &ignored).filter(\.blocking)
                let answers = session.answers()
                let answered = questions.filter { answers[$0.id] != nil && !resumedFor.contains($0.id) && !answeredWhileAlive.contains($0.id) }
                let open = questions.filter { answers[$0.id] == nil }
                if !answered.isEmpty && open.isEmpty, var r = record {
                    // Answered: start it again where it left off — once its profile's usage limit
                    // (met by another session) has reset.
                    await UsagePause.wait(job, profile: r.profile)
                    let answer = answered.map { answers[$0.id]! }.joined(separator: "\n\n")
                    // The id the agent printed last (a resume may fork a new one), else the one chosen at dispatch.
                    let argv = try resumeArgv(job, session: session, record: r, report: report, answer: answer)
                    let env = try agentEnvironment(r)
                    guard !job.ended.hasHappened else { throw StageError("wait-approved: ended by the runner") }
                    for q in answered {
                        resumedFor.insert(q.id)
                        job.note("resumed", OrderedObject([("question", .string(q.id)), ("session", .string(sid))]))
                    }
                    _ = try await Agent.start(argv, environment: env, worktree: r.worktree, session: session, record: &r, ended: job.ended)
                    record = r
                    continue
                }
                // "completed": done, and waiting for a human's approve or reject.
                if open.isEmpty && session.status() != "completed" {
                    let how = await Agent.termination(record, session: session) ?? "exited"
                    switch onExit {
                    case "approve":
                        return decided(SessionFiles.Decision(approved: true, summary: session.summaryMarkdown(), source: "on-exit: approve"), session: session, job: job)
                    case "wait":
                        break  // A human decides (approve/reject); keep waiting.
                    default:
                        // What it cost is known even though it failed: journaled for the views.
                        let usage = Agent.usage(report, chosen: record?.agentSession)
                        if !usage.isEmpty { job.note("usage", usage) }
                        throw StageError(session.failureReason(how, report: report))
                    }
                }
                // Nothing goes on now until a person answers or decides: said once per start of
                // the agent (a `waiting` note, which notifications and the views read).
                let start = record?.starts.count ?? 0
                if !open.isEmpty || session.status() == "completed" || onExit == "wait", waitingSaid.insert(start).inserted {
                    // A sandboxed session's work is in its own repository: brought to the item's
                    // branch now, so the person who decides sees it (`logs`, the page's diff).
                    if let r = record, r.sandbox != nil, FileManager.default.fileExists(atPath: r.worktree + ".git") {
                        let fetched = await Git(job.repository, environment: job.environment).collectBranch(r.branch, from: r.worktree)
                        if !fetched.succeeded { job.note("warning", OrderedObject([("message", .string("cannot bring \(r.branch) back from the session's repository: \(fetched.failure(["git", "fetch"]))"))])) }
                    }
                    var fields = OrderedObject([("session", .string(sid)), ("start", .int(start))])
                    if let q = open.first {
                        fields["question"] = .string(q.id)
                        fields["message"] = .string("the agent exited with a question unanswered: [\(q.id)] \(q.question) — amplify-run answer \(sid) \(q.id) '…'")
                    } else {
                        fields["message"] = .string("the agent exited; approve or reject: amplify-run approve \(sid) / amplify-run reject \(sid)")
                    }
                    job.note("waiting", fields)
                }
            }
            let pidfd = alive ? pid.map { amplify_pidfd_open($0) } ?? -1 : -1
            // A budget the runner enforces is checked each second while the agent works.
            let watching = alive && record.map { watchesSpending($0, job: job) } == true
            await FileWatch.wait(watch: watch, pidfd: pidfd, timeout: watching ? .seconds(1) : pollEvery)
            if pidfd >= 0 { close(pidfd) }
            if record?.pid != pid || record == nil { record = session.readRecord() }
        }
    }

    /// The session's profile (nil for an argv agent).
    private func profile(_ r: SessionFiles.Record, _ job: StageJob) -> AgentProfile? {
        r.profile.flatMap(job.agentProfile)
    }

    /// The argv that starts the agent again with `answer`: the stage's `resume:`, else its
    /// profile's. An agent session id that neither the agent's output nor dispatch gave is an
    /// error here, never an empty `--resume ""` (which Claude refuses). The CLI's own limits get
    /// what is left of the item's budget.
    /// `report` is what the agent said so far (read once by the caller): the session id it
    /// printed last (a resume may fork a new one), else the one chosen at dispatch, and what it spent.
    private func resumeArgv(_ job: StageJob, session: SessionFiles, record: SessionFiles.Record, report: AgentReport, answer: String) throws(StageError) -> [String] {
        let profile = profile(record, job)
        let agentSession = report.agentSession ?? record.agentSession
        var left = record.budget
        if let b = record.budget {
            left?.cost = b.cost.map { max(0.01, $0 - (report.cost ?? 0)) }
            left?.turns = b.turns.map { max(1, $0 - (report.turns ?? 0)) }
        }
        func render(_ agentSession: Value) throws(StageError) -> [String] {
            var context = job.context
            context.roots["session"] = .object(OrderedObject([("id", .string(session.id)), ("dir", .string(session.directory)), ("agent-session", agentSession)]))
            context.roots["answer"] = .string(answer)
            let argv: [String]
            if job.stage.parameter(WaitApprovedParameters.resume) != nil {
                do { argv = try job.stage.value(WaitApprovedParameters.resume, ExpressionEvaluator(context: context)) ?? [] } catch {
                    throw StageError("wait-approved: `resume`: \(error)")
                }
            } else if let profile, let resume = profile.resume {
                argv = try Agent.argv(resume, limits: profile, budget: left, context: context, what: "wait-approved: the \(profile.name) profile's `resume`")
            } else if let profile {
                throw StageError("wait-approved: cannot start the agent again: the \(profile.name) profile has no `resume`; give the stage a `resume:` argv; the answer is in \(session.path("answers.json")), approve or reject by hand")
            } else {
                throw StageError("wait-approved: cannot start the agent again: dispatch's `agent` is an argv, so the stage needs a `resume:` argv (or name a profile in `agent:`); the answer is in \(session.path("answers.json")), approve or reject by hand")
            }
            guard !argv.isEmpty else { throw StageError("wait-approved: `resume` must be a non-empty argv") }
            return argv
        }
        if let agentSession { return try render(.string(agentSession)) }
        // Unknown: fine only if `resume` does not use it.
        let probe = "\u{1}amplify-unknown-agent-session\u{1}"
        guard !(try render(.string(probe))).contains(where: { $0.contains(probe) }) else {
            throw StageError("wait-approved: cannot resume the agent: `resume` uses ${{ session.agent-session }}, but the agent printed no session id and dispatch chose none (add `--session-id ${{ session.agent-session }}` to the agent's argv); the answer is in \(session.path("answers.json")), approve or reject by hand")
        }
        return try render(.null)
    }

    // MARK: - Budgets and usage limits

    /// Whether the runner must watch a figure of the item's budget: one the CLI has no flag for.
    private func runnerEnforcesBudget(_ r: SessionFiles.Record, job: StageJob) -> Bool {
        guard let b = r.budget else { return false }
        let p = profile(r, job)
        return (b.cost != nil && p?.costLimit == nil) || (b.turns != nil && p?.turnsLimit == nil)
    }

    /// Whether the agent's output is read each second while it works: for a budget the runner
    /// enforces, or the run's budget (which counts what working agents have spent).
    private func watchesSpending(_ r: SessionFiles.Record, job: StageJob) -> Bool {
        runnerEnforcesBudget(r, job: job) || job.settings.budget?.cost != nil
    }

    /// The most times one session is paused for a usage limit and continued.
    static let mostPauses = 10

    /// Whether the last start ended because of the usage limit it reported: it ended in error
    /// (the profile's `error` rule, when it has one), and the session is not done (`completed`).
    private func stoppedByUsageLimit(_ report: AgentReport, record r: SessionFiles.Record, session: SessionFiles, job: StageJob) -> Bool {
        guard session.status() != "completed" else { return false }
        // An argv agent is read with claude's rules, which have an `error` rule.
        let hasErrorRule = r.profile == nil || profile(r, job)?.error != nil
        return hasErrorRule ? report.isError == true : true
    }

    /// Why the item is over its budget, if it is. While the agent runs (`enforcedByRunner`) only
    /// the figures the CLI cannot enforce count, and only once past the limit; once it has ended
    /// without a decision, reaching a limit is what stopped it.
    private func overBudget(_ report: AgentReport, record r: SessionFiles.Record, job: StageJob, enforcedByRunner: Bool) -> String? {
        guard let b = r.budget else { return nil }
        let p = profile(r, job)
        if let limit = b.cost, let cost = report.cost, enforcedByRunner ? (p?.costLimit == nil && cost > limit) : cost >= limit {
            return "over budget: the agent reported \(RunReport.dollars(cost)), and the item's limit is \(RunReport.dollars(limit))" + (report.errorMessage.map { " (the agent said: \($0))" } ?? "")
        }
        if let limit = b.turns, let turns = report.turns, enforcedByRunner ? (p?.turnsLimit == nil && turns > limit) : turns >= limit {
            return "over budget: the agent took \(turns) turns, and the item's limit is \(limit)" + (report.errorMessage.map { " (the agent said: \($0))" } ?? "")
        }
        return nil
    }

    /// `report`: what the agent said, as the caller read it.
    private func overBudgetResult(_ why: String, report: AgentReport, session: SessionFiles, job: StageJob) -> StageResult {
        let usage = Agent.usage(report, chosen: session.readRecord()?.agentSession)
        if !usage.isEmpty { job.note("usage", usage) }
        return .failedAs(.overBudget, why + " (log: \(session.path("output.log")))")
    }

    /// Waits out a usage limit that stopped the agent's last start: until its reset (plus a
    /// minute), or 30 minutes when the agent did not say when. The deadline is journaled (a
    /// `paused` note for that start) before the wait, so a restarted runner waits for the same
    /// moment; other dispatches of the profile wait too (`UsagePause`). A decision written
    /// meanwhile ends the wait (returned).
    private func pause(for limit: AgentReport.UsageLimit, record r: SessionFiles.Record, session: SessionFiles, watch: Int32, job: StageJob) async throws(StageError) -> SessionFiles.Decision? {
        let start = r.starts.count
        let until: Int64
        if case .int(let journaled)? = job.notes.last(where: { $0.kind == "paused" && $0.fields["start"] == .int(start) })?.fields["until"] {
            until = Int64(journaled)
        } else {
            let now = Processes.now()
            // A minute past the reset: the provider's clock and ours differ. (Tests shorten it.)
            let margin = job.environment["AMPLIFY_USAGE_LIMIT_MARGIN_MS"].flatMap { Int64($0) } ?? 60_000
            until = max(limit.resetsAt ?? now + 30 * 60_000, now) + margin
            UsagePause.set(job.stateDirectory, profile: r.profile, until: until)
            job.note("paused", OrderedObject([("start", .int(start)), ("until", .int(Int(until))), ("profile", .string(r.profile ?? "argv agent")),
                                              ("reason", .string("usage limit")), ("said", .string(limit.said))]))
        }
        while Processes.now() < until {
            if job.ended.hasHappened { throw StageError("wait-approved: ended by the runner") }
            var ignored: [String] = []
            if let d = session.decision(warnings: &ignored) { return d }
            await FileWatch.wait(watch: watch, pidfd: -1, timeout: .milliseconds(min(30_000, max(1, until - Processes.now()))))
        }
        return nil
    }

    private func decided(_ d: SessionFiles.Decision, session: SessionFiles, job: StageJob) -> StageResult {
        let usage = Agent.usage(session.agentReport(agents: job.agents), chosen: session.readRecord()?.agentSession)
        var o = OrderedObject()
        o["decision"] = .string(d.approved ? "approved" : "rejected")
        o["summary"] = .string(d.summary)
        o["decided-by"] = .string(d.source)
        for (k, v) in usage { o[k] = v }
        guard d.approved else {
            // A rejected item has no outputs: what it cost goes to the journal as a note.
            if !usage.isEmpty { job.note("usage", usage) }
            return .failedAs(.rejected, "rejected (\(d.source))" + (d.summary.isEmpty ? "" : ": " + String(d.summary.prefix(300))))
        }
        return .succeeded(o)
    }
}

extension Optional {
    func asyncMap<T>(_ f: (Wrapped) async -> T) async -> T? {
        guard let v = self else { return nil }
        return await f(v)
    }
}
