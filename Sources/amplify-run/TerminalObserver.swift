import AmplifyEngine
import AmplifyWorkflow
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The view on a terminal: one line per item (id, title, stage, elapsed, last event) and the
/// run-wide stages, redrawn in place at most ten times a second; then the summary.
final class TerminalObserver: RunObserver {
    private struct Line {
        var name: String
        var title: String
        var stage = "-"
        var since: Int64 = 0
        var event = "waiting"
        var active = false
        var ended = false
    }

    private struct State {
        var lines: [String: Line] = [:]
        var order: [String] = []
        var drawn = 0
        var lastDraw: Int64 = 0
        var machine: RunStateMachine?
        var finished = false
    }

    private let state = Mutex(State())
    private let workflowPath: String
    private let context: CommandContext
    private let color: Bool

    init(workflowPath: String, context: CommandContext) {
        self.workflowPath = workflowPath
        self.context = context
        color = context.environment["NO_COLOR"] == nil
    }

    func begin(run: String, resumed: Bool, notes: [String]) {
        context.out.line(resumed ? "amplify-run: resuming run \(run) of \(workflowPath.visible)" : "amplify-run: starting run \(run) of \(workflowPath.visible)")
        for n in notes { context.out.line("amplify-run: \(n.visible)") }
        // Elapsed times move, and the last events show, even when nothing happens.
        Task.detached { [self] in
            while !state.withLock({ $0.finished }) {
                try? await Task.sleep(for: .milliseconds(500))
                if !state.withLock({ $0.finished || $0.order.isEmpty }) { redraw(now: context.now()) }
            }
        }
    }

    func record(_ entry: JournalEntry, line: String, state machine: RunStateMachine) {
        let key: InstanceKey
        var text: String
        switch entry.event {
        case .instanceStarted(let k, let attempt, _): key = k; text = attempt > 1 ? "attempt \(attempt)" : "started"
        case .instanceSucceeded(let k, _): key = k; text = "succeeded"
        case .instanceFailed(let k, _, let reason, let retryAt, let kind): key = k; text = (retryAt == nil ? kind.word + ": " : "will retry: ") + reason
        case .note(let k, let kind, let fields):
            guard let t = LineObserver.noteText(kind, fields) else { return }
            key = k; text = t
        case .instanceSkipped(let k, let reason, _): key = k; text = "skipped: " + reason
        case .instanceCancelled(let k, _): key = k; text = "cancelled"
        default: return
        }
        // Ids, titles, reasons and questions come from others: shown on one line, with nothing in
        // them the terminal would obey (an ESC could clear the screen or retitle the window).
        text = text.visible
        let id = (key.item.map { RunStateMachine.itemName(machine.item(for: key), index: $0) } ?? key.stage).visible
        var title = ""
        if case .object(let o)? = machine.item(for: key), case .string(let t)? = o["title"] { title = t.visible }
        let now = entry.at
        let draw = state.withLock { s -> Bool in
            if s.lines[id] == nil {
                s.lines[id] = Line(name: id, title: title)
                s.order.append(id)
            }
            s.lines[id]!.stage = key.stage
            s.lines[id]!.event = text
            if case .instanceStarted = entry.event { s.lines[id]!.since = now; s.lines[id]!.active = true }
            if machine.instance(key)?.status.isEnded == true { s.lines[id]!.active = false }
            s.machine = machine
            return now - s.lastDraw >= 100
        }
        if case .note(_, "question", _) = entry.event {
            // A question stays on screen, whole, above the live lines: it is what the user must act on.
            let clear = state.withLock { s -> String in
                defer { s.drawn = 0 }
                return s.drawn > 0 ? "\u{1B}[\(s.drawn)A\u{1B}[J" : ""
            }
            fputsStdout(clear + (color ? "\u{1B}[1;35m" : "") + "? \(id): \(text)" + (color ? "\u{1B}[0m" : "") + "\n")
            redraw(now: now)
            return
        }
        if draw { redraw(now: now) }
    }

    func end(state machine: RunStateMachine, exitCode: Int32) {
        redraw(now: context.now())
        state.withLock { $0.finished = true }
        RunSummaryPrinter.print(RunReport(machine, now: context.now()), exitCode: exitCode, interrupted: machine.interruptedBy, to: context.out)
    }

    private func redraw(now: Int64) {
        let rows = Int(Terminal.rows) - 2
        let columns = Int(Terminal.columns)
        let output = state.withLock { s -> String in
            s.lastDraw = now
            let out = s.drawn > 0 ? "\u{1B}[\(s.drawn)A\u{1B}[J" : ""
            // Live items first, then the most recent others, within the terminal's height.
            let live = s.order.filter { s.lines[$0]!.active }
            let rest = s.order.filter { !s.lines[$0]!.active }.suffix(max(0, rows - live.count))
            let shown = Array((live + rest).prefix(max(1, rows)))
            // Counted here, at most ten times a second, not for every event: items when the run
            // has any (what a person counts), else instances.
            var header = ""
            if let m = s.machine {
                let items = RunReport.itemCounts(m)
                header = RunReport.countsPhrase(items: items, instances: items.isEmpty ? RunReport.counts(m) : [], hasItems: !items.isEmpty)
            }
            // Every line fits the terminal's width: a wrapped line would throw the redraw off.
            var lines = [bold("amplify-run") + " " + "\(workflowPath.visible): \(header)".truncated(toWidth: max(10, columns - 13))]
            // The title gives way first, so the last event (a failure's reason) keeps ~40 columns.
            let titleWidth = max(8, min(30, columns - 1 - 39 - 40))
            for id in shown {
                let l = s.lines[id]!
                let elapsed = l.active ? RunReport.format(milliseconds: now - l.since) : ""
                let head = "  \(l.name.truncated(toWidth: 14).padding(toLength: 14)) \(l.title.truncated(toWidth: titleWidth).padding(toLength: titleWidth)) \(l.stage.truncated(toWidth: 12).padding(toLength: 12)) \(elapsed.padding(toLength: 7)) "
                let event = l.event.truncated(toWidth: max(12, columns - 1 - head.displayWidth))
                lines.append(head + paint(event))
            }
            s.drawn = lines.count
            return out + lines.joined(separator: "\n") + "\n"
        }
        fputsStdout(output)
    }

    private func bold(_ s: String) -> String { color ? "\u{1B}[1m\(s)\u{1B}[0m" : s }

    private func paint(_ event: String) -> String {
        guard color else { return event }
        if event.hasPrefix("failed") || event.hasPrefix("rejected") || event.hasPrefix("conflict") || event.hasPrefix("timed-out") || event.hasPrefix("timed out") { return "\u{1B}[31m\(event)\u{1B}[0m" }
        if event.hasPrefix("asks") { return "\u{1B}[1;35m\(event)\u{1B}[0m" }
        if event.hasPrefix("succeeded") { return "\u{1B}[32m\(event)\u{1B}[0m" }
        if event.hasPrefix("will retry") || event.hasPrefix("skipped") || event.hasPrefix("cancelled") { return "\u{1B}[33m\(event)\u{1B}[0m" }
        return event
    }

    private func fputsStdout(_ s: String) {
        context.out.text(s)
    }
}
