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
        var record = session.readRecord()
        var reported: Int32?
        // Answers the agent could read while it ran: no reason to start it again for them.
        var answeredWhileAlive = Set<String>()
        let watch = amplify_watch_directory(session.directory)
        defer { if watch >= 0 { close(watch) } }
        // Each problem with a session file is journaled once.
        func warn(_ warnings: [String]) {
            for w in warnings where warned.insert(w).inserted { job.note("warning", OrderedObject([("message", .string(w))])) }
        }
        let pollEvery: Duration = watch >= 0 ? .seconds(30) : .milliseconds(job.settings.poll.milliseconds)

        while true {
            // Timed out or cancelled by the runner: nothing more to do here (the result is dropped).
            if job.ended.hasHappened { throw StageError("wait-approved: ended by the runner") }
            // The agent, as the record beside the session directory knows it (a resumed agent replaces it).
            let pid = record?.pid
            let alive = Agent.isAlive(record)
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

            if !alive {
                // Said before it went? Look once more, then judge how it ended.
                var ignored: [String] = []
                if let d = session.decision(warnings: &ignored) { return decided(d, session: session, job: job) }
                let questions = session.questions(warnings: &ignored).filter(\.blocking)
                let answers = session.answers()
                let answered = questions.filter { answers[$0.id] != nil && !resumedFor.contains($0.id) && !answeredWhileAlive.contains($0.id) }
                let open = questions.filter { answers[$0.id] == nil }
                if !answered.isEmpty && open.isEmpty, var r = record {
                    // Answered: start it again where it left off.
                    let answer = answered.map { answers[$0.id]! }.joined(separator: "\n\n")
                    // The id the agent printed last (a resume may fork a new one), else the one chosen at dispatch.
                    let agentSession = session.agentReport().agentSession ?? r.agentSession
                    let argv = try resumeArgv(job, session: session, agentSession: agentSession, answer: answer)
                    let env = try Agent.environment(job, session: session, worktree: r.worktree, branch: r.branch,
                                                    slot: dispatched["slot"].flatMap { if case .int(let i) = $0 { i } else { nil } }, evaluator: evaluator)
                    guard !job.ended.hasHappened else { throw StageError("wait-approved: ended by the runner") }
                    for q in answered {
                        resumedFor.insert(q.id)
                        job.note("resumed", OrderedObject([("question", .string(q.id)), ("session", .string(sid))]))
                    }
                    _ = try Agent.start(argv, environment: env, worktree: r.worktree, session: session, record: &r)
                    record = r
                    continue
                }
                // "completed": done, and waiting for a human's approve or reject.
                if open.isEmpty && session.status() != "completed" {
                    let how = await pid.asyncMap { await Agent.termination($0) }.flatMap { $0 }?.description ?? "exited"
                    switch onExit {
                    case "approve":
                        return decided(SessionFiles.Decision(approved: true, summary: session.summaryMarkdown(), source: "on-exit: approve"), session: session, job: job)
                    case "wait":
                        break  // A human decides (approve/reject); keep waiting.
                    default:
                        // What it cost is known even though it failed: journaled for the views.
                        let report = session.agentReport()
                        let usage = Agent.usage(report, chosen: record?.agentSession)
                        if !usage.isEmpty { job.note("usage", usage) }
                        throw StageError(session.failureReason(how, report: report))
                    }
                }
            }
            let pidfd = alive ? pid.map { amplify_pidfd_open($0) } ?? -1 : -1
            await FileWatch.wait(watch: watch, pidfd: pidfd, timeout: pollEvery)
            if pidfd >= 0 { close(pidfd) }
            if record?.pid != pid || record == nil { record = session.readRecord() }
        }
    }

    /// The `resume:` argv for an answer. An agent session id that neither the agent's output
    /// nor dispatch gave is an error here, never an empty `--resume ""` (which Claude refuses).
    private func resumeArgv(_ job: StageJob, session: SessionFiles, agentSession: String?, answer: String) throws(StageError) -> [String] {
        func render(_ agentSession: Value) throws(StageError) -> [String] {
            var context = job.context
            context.roots["session"] = .object(OrderedObject([("id", .string(session.id)), ("dir", .string(session.directory)), ("agent-session", agentSession)]))
            context.roots["answer"] = .string(answer)
            let argv: [String]
            do { argv = try job.stage.value(WaitApprovedParameters.resume, ExpressionEvaluator(context: context)) } catch {
                throw StageError("wait-approved: `resume`: \(error)")
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

    private func decided(_ d: SessionFiles.Decision, session: SessionFiles, job: StageJob) -> StageResult {
        let usage = Agent.usage(session.agentReport(), chosen: session.readRecord()?.agentSession)
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
