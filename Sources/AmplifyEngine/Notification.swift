import AmplifyWorkflow

/// One thing a person is told (`settings.notify`), as every target gets it:
/// `{"id", "event", "run", "workflow", "item": {"id", "title"}, "session", "message", "at"}`.
///
/// It is made from one journal event (`made(by:in:workflow:)`), and its `id` names that event for
/// good — the run and the event's `seq` — so a delivery sent again after a crash carries the same
/// id (and `Idempotency-Key`).
public struct Notification: Sendable, Equatable {
    /// The item a notification is about.
    public struct Item: Sendable, Equatable {
        public var id: String
        public var title: String?
    }

    public var id: String
    public var event: NotifyEvent
    public var run: String
    /// The workflow's path in the repository (how its runs are found).
    public var workflow: String
    /// nil for the run's own events (`budget`, `run-end`, a stage that runs once).
    public var item: Item?
    public var session: String?
    /// One sentence a person reads, with the command that answers it when there is one.
    public var message: String
    /// When the event was journaled (ms since 1970).
    public var at: Int64

    /// `RUN:SEQ`: the event, named for good.
    public static func id(run: String, seq: Int) -> String { "\(run):\(seq)" }

    /// The body every target gets.
    public var value: Value {
        var o = OrderedObject()
        o["id"] = .string(id)
        o["event"] = .string(event.rawValue)
        o["run"] = .string(run)
        o["workflow"] = .string(workflow)
        o["item"] = item.map { .object(OrderedObject([("id", .string($0.id)), ("title", $0.title.map(Value.string) ?? .null)])) } ?? .null
        o["session"] = session.map(Value.string) ?? .null
        o["message"] = .string(message)
        o["at"] = .string(Timestamp.iso8601(milliseconds: at))
        return .object(o)
    }

    /// The body as sent: compact JSON, UTF-8.
    public var body: [UInt8] { Array(value.json.utf8) }

    /// The notification a journaled event makes, if it makes one — where each event comes from:
    ///
    /// | event | journaled as |
    /// | --- | --- |
    /// | `question` | a `note` of kind `question` |
    /// | `waiting` | a `note` of kind `waiting`: a wait-approved agent exited, and nothing goes on until a person answers or decides |
    /// | `decision` | a wait-approved instance succeeded, or failed as `rejected` |
    /// | `failed` | any instance failed for good (no retry left): failed, conflict, timed out, over budget |
    /// | `budget` | a dispatch skipped for the run's budget (`ledger` tells only the first) |
    /// | `paused` | a `note` of kind `paused` (a usage limit) |
    /// | `run-end` | `run-finished` |
    public static func made(by entry: JournalEntry, in machine: RunStateMachine, workflow: String) -> Notification? {
        var n = Notification(id: id(run: machine.runId, seq: entry.seq), event: .runEnd, run: machine.runId, workflow: workflow, message: "", at: entry.at)
        func about(_ key: InstanceKey) {
            guard let index = key.item else { return }
            let item = machine.item(for: key)
            var title: String?
            if case .string(let t)? = item?["title"] { title = t }
            n.item = Item(id: RunStateMachine.itemName(item, index: index), title: title)
            if let d = machine.dispatchKey(for: key), case .string(let s)? = machine.instance(d)?.outputs["session"] { n.session = s }
        }
        func text(_ v: Value?) -> String { line(v?.renderedText ?? "") }
        switch entry.event {
        case .note(let key, "question", let fields):
            about(key)
            if case .string(let s)? = fields["session"] { n.session = s }
            n.event = .question
            let qid = text(fields["id"])
            var options = ""
            if case .list(let o)? = fields["options"], !o.isEmpty { options = " (options: \(o.map { text($0) }.joined(separator: " | ")))" }
            n.message = "\(label(n)) asks: \(text(fields["question"]))\(options) — answer with: amplify-run answer \(n.session ?? "SESSION") \(qid) '…'"
        case .note(let key, "waiting", let fields):
            about(key)
            n.event = .waiting
            n.message = "\(label(n)) waits for you: \(text(fields["message"]))"
        case .note(let key, "paused", let fields):
            about(key)
            n.event = .paused
            let who = fields["profile"].map { " (\(text($0)))" } ?? ""
            var until = ""
            if case .int(let ms)? = fields["until"] {
                let t = Timestamp.iso8601(milliseconds: Int64(ms))
                until = " until \(t.prefix(10)) \(t.dropFirst(11).prefix(5)) UTC"
            }
            n.message = "\(label(n)): the agent\(who) met its provider's usage limit and is paused\(until); it goes on by itself then."
        case .instanceSucceeded(let key, let outputs) where machine.stage(of: key)?.kind == .waitApproved:
            about(key)
            n.event = .decision
            let summary = text(outputs["summary"])
            n.message = "\(label(n)) was approved (\(text(outputs["decided-by"])))" + (summary.isEmpty ? "." : ": \(summary)")
        case .instanceFailed(let key, _, let reason, nil, let kind):
            about(key)
            let stage = key.stage
            if kind == .rejected {
                n.event = .decision
                n.message = "\(label(n)) was \(line(reason))"
            } else {
                n.event = .failed
                let what = n.item == nil ? "Stage \(stage)" : label(n)
                n.message = "\(what) \(kind == .failed ? "failed" : "ended \(kind.word)") at \(stage): \(line(reason))"
            }
        case .instanceSkipped(_, let reason, _) where reason.hasPrefix(RunStateMachine.budgetReason):
            n.event = .budget
            var why = Substring(reason.dropFirst(RunStateMachine.budgetReason.count))
            while why.first == ":" || why.first == " " { why = why.dropFirst() }
            n.message = "The run's budget is used up (\(line(String(why)))): nothing new is dispatched."
        case .runFinished(let outcome):
            let counts = RunReport.countsPhrase(items: RunReport.itemCounts(machine), instances: RunReport.counts(machine), hasItems: machine.allInstances.contains { $0.key.item != nil })
            let how = outcome == .cancelled ? "was cancelled" : "finished"
            n.message = "Run \(machine.runId) (\(line(machine.workflow.name))) \(how)" + (counts.isEmpty ? "" : ": \(counts)") + "; exit \(outcome.exitCode)."
        default:
            return nil
        }
        return n
    }

    /// `a-1 (Fix the login page)`: the item's id and title.
    private static func label(_ n: Notification) -> String {
        guard let item = n.item else { return "The run" }
        return item.id + (item.title.map { " (\(line($0)))" } ?? "")
    }

    /// Text from others on one line, made visible, at most 400 characters.
    static func line(_ s: String) -> String {
        let one = s.split(whereSeparator: \.isNewline).map { String($0).trimming(" \t") }.filter { !$0.isEmpty }.joined(separator: " ")
        let visible = one.visible
        return visible.count > 400 ? String(visible.prefix(399)) + "…" : visible
    }
}

/// How a run's notifications went, from its `notified` events: what `status` and the summary say.
public struct NotificationTally: Sendable, Equatable {
    public struct Failure: Sendable, Equatable {
        public var id: String
        public var event: String
        public var target: Int
        public var error: String
    }

    public var delivered = 0
    public var failed: [Failure] = []

    public var isEmpty: Bool { delivered == 0 && failed.isEmpty }
}

/// A notification target that cannot be used (a URL that is not http:// or https://, https
/// without curl), or why one delivery failed: words a person can act on, never a secret.
public struct NotifyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}
