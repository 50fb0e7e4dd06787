import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `--json`: every journal line on stdout, nothing else.
struct JSONObserver: RunObserver {
    var context: CommandContext

    func begin(run: String, resumed: Bool, notes: [String]) {
        for n in notes { context.err.line("amplify-run: \(n)") }
    }

    func record(_ entry: JournalEntry, line: String, state: RunStateMachine) {
        context.out.line(line)
    }

    func end(state: RunStateMachine, exitCode: Int32) {}
}

/// A timestamped line per transition (the view for pipes and logs), and the summary at the end.
struct LineObserver: RunObserver {
    var workflowPath: String
    var context: CommandContext

    func begin(run: String, resumed: Bool, notes: [String]) {
        context.out.line(resumed ? "amplify-run: resuming run \(run) of \(workflowPath.visible)" : "amplify-run: starting run \(run) of \(workflowPath.visible)")
        for n in notes { context.out.line("amplify-run: \(n.visible)") }
    }

    func record(_ entry: JournalEntry, line: String, state: RunStateMachine) {
        guard let text = LineObserver.describe(entry.event, state: state) else { return }
        let time = Timestamp.iso8601(milliseconds: entry.at).dropFirst(11).prefix(8)
        // Titles, reasons and questions come from others: one line each, nothing a terminal obeys.
        context.out.line("\(time)  \(text.visible)")
    }

    func end(state: RunStateMachine, exitCode: Int32) {
        RunSummaryPrinter.print(RunReport(state, now: context.now()), exitCode: exitCode, interrupted: state.interruptedBy, to: context.out)
    }

    static func name(_ key: InstanceKey, _ state: RunStateMachine) -> String {
        guard let i = key.item else { return key.stage }
        return "\(key.stage)[\(RunStateMachine.itemName(state.item(for: key), index: i))]"
    }

    static func describe(_ event: RunEvent, state: RunStateMachine) -> String? {
        switch event {
        case .instanceStarted(let key, let attempt, _):
            return "\(name(key, state)) started" + (attempt > 1 ? " (attempt \(attempt))" : "")
        case .instanceSucceeded(let key, _):
            let d = state.instance(key).flatMap { i in i.startedAt.flatMap { s in i.endedAt.map { RunReport.format(milliseconds: $0 - s) } } }
            var line = "\(name(key, state)) succeeded" + (d.map { " in \($0)" } ?? "")
            if case .list(let bad)? = state.instance(key)?.outputs["invalid"], !bad.isEmpty {
                line += "; not dispatched, invalid id: " + bad.map(RunReport.idText).joined(separator: ", ")
            }
            return line
        case .instanceFailed(let key, let attempt, let reason, let retryAt, let kind):
            if let retryAt {
                return "\(name(key, state)) attempt \(attempt) failed: \(reason); retrying at \(Timestamp.iso8601(milliseconds: retryAt).dropFirst(11).prefix(8))"
            }
            return "\(name(key, state)) \(kind.word): \(reason)"
        case .note(let key, let kind, let fields):
            return noteText(kind, fields).map { "\(name(key, state)) \($0)" }
        case .refilled(let stage, let items, let error):
            if let error { return "\(stage) asked again: \(error)" }
            return items.isEmpty ? nil : "\(stage) asked again: \(items.count) new item\(items.count == 1 ? "" : "s")"
        case .instanceSkipped(let key, let reason, _):
            return "\(name(key, state)) skipped: \(reason)"
        case .instanceCancelled(let key, let reason):
            return "\(name(key, state)) cancelled: \(reason)"
        case .itemsAdded(let stage, let items, _):
            return "\(stage): \(items.count) item\(items.count == 1 ? "" : "s")"
        case .expansionEnded(let stage, let failed, let reason):
            return "\(stage) \(failed ? "failed" : "skipped"): \(reason)"
        case .interrupted(let signal):
            return "interrupted by signal \(signal); run the same command again to resume"
        case .cancelRequested(let reason):
            return "cancel requested: \(reason)"
        case .runFinished(let outcome):
            // "failed" would say the run broke when an item was merely rejected: the summary says what happened.
            switch outcome {
            case .succeeded: return "run finished"
            case .failed: return "run finished; exit 1"
            case .cancelled: return "run cancelled"
            }
        case .notified(let id, let event, let target, let attempts, let error):
            let name = state.workflow.settings.notify.indices.contains(target - 1) ? state.workflow.settings.notify[target - 1].name(target) : "target #\(target)"
            guard let error else { return "told \(name) of \(event) (\(id))" }
            return "\(name) was not told of \(event) (\(id)) after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(error)"
        case .runStarted, .runnerStarted, .processStarted, .refillStarted:
            return nil
        }
    }

    /// A note as one line: a question with its id and how to answer it, or a warning.
    /// nil for a note the views do not show as a line (`spent`: a working agent's cost so far).
    static func noteText(_ kind: String, _ fields: OrderedObject) -> String? {
        let text = fields["question"]?.renderedText ?? fields["message"]?.renderedText ?? ""
        switch kind {
        case "spent":
            return nil
        case "question":
            let session = fields["session"]?.renderedText ?? "SESSION"
            let id = fields["id"]?.renderedText ?? "ID"
            var line = "asks [\(id)]: \(text)"
            if case .list(let options)? = fields["options"], !options.isEmpty { line += " (options: \(options.map(\.renderedText).joined(separator: " | ")))" }
            return line + " — amplify-run answer \(session) \(id) '…'"
        case "usage":
            // What the agent of a failed or rejected session reported spending.
            var spent: [String] = []
            if let cost = RunReport.number(fields["cost"]) { spent.append(RunReport.dollars(cost)) }
            if case .int(let tokens)? = fields["tokens"] { spent.append("\(RunReport.grouped(tokens)) tokens") }
            if case .int(let turns)? = fields["turns"] { spent.append("\(turns) turn\(turns == 1 ? "" : "s")") }
            return "the agent reported " + (spent.isEmpty ? "no cost" : spent.joined(separator: ", "))
        case "paused":
            // A provider's usage limit: the agent is started again (or dispatched) after it resets.
            guard case .int(let until)? = fields["until"] else { return "paused: usage limit" }
            let who = fields["profile"]?.renderedText ?? "the agent"
            let said = fields["said"].map { ": " + $0.renderedText } ?? ""
            return "paused until \(Timestamp.localClock(milliseconds: Int64(until), now: Processes.now())) — \(who)'s usage limit\(said)"
        case "continued":
            return "the usage limit has reset; the agent continues"
        case "waiting":
            return "waiting for you: \(fields["message"]?.renderedText ?? "")"
        case _ where RunStateMachine.landingNoteKinds.contains(kind):
            return RunReport.landingText(kind, fields, batchSize: nil)
        default:
            return "\(kind): \(text)"
        }
    }
}

/// The end-of-run summary, also printed by `status`: a row per item (its outcome, the stage it is
/// about, time, cost, title) with its reason whole on the line below, then one line of counts.
/// Every text from others is shown through `visible`.
enum RunSummaryPrinter {
    /// `state`: how `status` sees the run (running, interrupted…); nil = judged from the report.
    static func print(_ report: RunReport, exitCode: Int32?, interrupted: Int32?, state: String? = nil, instances: Bool = false, to out: OutputWriter) {
        out.line("")
        let onceFailed = report.rows.contains { r in r.key.item == nil && !(r.status == .succeeded || r.status == .pending) }
        if instances || report.items.isEmpty || onceFailed {
            var lines: [[String]] = [["INSTANCE", "ITEM", "STATUS", "TIME", "DETAIL"]]
            for r in report.rows {
                let status = r.attempts > 1 ? "\(r.status.word) (\(r.attempts) attempts)" : r.status.word
                lines.append([r.key.stage, (r.item ?? "-").visible, status, r.duration.map { RunReport.format(milliseconds: $0) } ?? "-", (r.detail ?? "").visible])
            }
            table(lines, to: out)
            if !report.items.isEmpty { out.line("") }
        }
        if !report.items.isEmpty {
            var lines: [[String]] = [["ITEM", "OUTCOME", "STAGE", "TIME", "SPENT", "TITLE"]]
            var details: [String?] = [nil]
            for r in report.items {
                lines.append([r.item.visible, r.outcome, r.stage ?? "-", r.duration.map { RunReport.format(milliseconds: $0) } ?? "-", r.usageText ?? "-", (r.title ?? "").visible])
                // The reason whole (a failing agent's message, a conflict's paths, a question), on its own line.
                details.append(r.detail.map { "    " + $0.visible })
            }
            table(lines, details: details, to: out)
        }
        for p in report.problems { out.line("problem: \(p.visible)") }
        if let limit = report.budget {
            let spent = report.spent ?? 0
            out.line("budget: \(RunReport.dollars(spent)) known spent of \(RunReport.dollars(limit))" + (spent >= limit ? " — used up: nothing new was dispatched" : ""))
        } else if let spent = report.spent {
            out.line("spent: \(RunReport.dollars(spent)) (what the agents reported)")
        }
        if !report.notifications.isEmpty {
            let failed = report.notificationFailures
            out.line("notifications: \(report.notifications.delivered) delivered" + (failed.isEmpty ? "" : " · \(failed.count) not delivered"))
            for f in failed.prefix(5) { out.line("  not delivered: \(f.visible)") }
            if failed.count > 5 { out.line("  … and \(failed.count - 5) more (journal.jsonl: \"notified\" events)") }
        }
        out.line(lastLine(report, exitCode: exitCode, interrupted: interrupted, state: state, instances: instances))
    }

    /// `run RUN (NAME): finished — 4 merged · 1 rejected · 0 waiting for you; exit 1`.
    static func lastLine(_ report: RunReport, exitCode: Int32?, interrupted: Int32?, state: String?, instances: Bool) -> String {
        var last = "run \(report.runId) (\(report.workflowName.visible)): "
        if let o = report.outcome { last += o == .cancelled ? "cancelled" : "finished" }
        else if let state { last += state }
        else if let s = interrupted { last += "interrupted by signal \(s), resumable" }
        else { last += "not finished" }
        let hasItems = !report.items.isEmpty
        let counts = RunReport.countsPhrase(items: report.itemCounts, instances: report.counts, hasItems: hasItems)
        if !counts.isEmpty { last += " — \(counts)" }
        if instances && hasItems { last += " (instances: " + report.counts.map { "\($0.1) \($0.0)" }.joined(separator: ", ") + ")" }
        if let code = exitCode ?? report.outcome?.exitCode { last += "; exit \(code)" }
        return last
    }
}

/// Columns padded to their widest cell (in terminal columns); the last column left as it is; a
/// row's detail, if any, on the line below it. Built as one string and written once: `status` of
/// a run of 10,000 items prints 30,000 lines.
private func table(_ lines: [[String]], details: [String?] = [], to output: OutputWriter) {
    guard let columns = lines.first?.count else { return }
    // Widths in terminal columns, counted once per cell.
    let counts = lines.map { $0.map(\.displayWidth) }
    var widths = [Int](repeating: 0, count: columns)
    for l in counts { for (i, c) in l.enumerated() where i < columns - 1 { widths[i] = max(widths[i], c) } }
    var out = ""
    out.reserveCapacity(lines.count * (widths.reduce(0, +) + 2 * columns + 40))
    for (n, (l, cells)) in zip(counts, lines).enumerated() {
        var line = ""
        for (i, cell) in cells.enumerated() {
            if i > 0 { line += "  " }
            line += cell
            if i < columns - 1 { line += String(repeating: " ", count: max(0, widths[i] - l[i])) }
        }
        while line.utf8.last == 0x20 { line.removeLast() }
        out += line
        out += "\n"
        if n < details.count, let detail = details[n] {
            out += detail
            out += "\n"
        }
    }
    output.text(out)
}

extension String {
    /// Padded with spaces to `n` terminal columns (wide characters count two).
    func padding(toLength n: Int) -> String {
        let w = displayWidth
        return w >= n ? self : self + String(repeating: " ", count: n - w)
    }
}
