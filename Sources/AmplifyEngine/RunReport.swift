import AmplifyWorkflow

/// What happened to every instance of a run, and to every work item, for `status`, `runs`, the
/// live view and the final summary.
///
/// A person counts items, not stage instances: the views lead with `items` (merged, rejected,
/// conflict, failed, timed out, skipped, running, waiting for you, pending) and keep `rows`, one per
/// stage instance, for `--instances` and for runs that have no items. Texts here are as they were
/// written (a reason keeps its newlines); views show them through `visible`.
public struct RunReport: Sendable {
    public struct Row: Sendable {
        public var key: InstanceKey
        public var item: String?
        public var title: String?
        public var status: RunStateMachine.Status
        public var attempts: Int
        public var duration: Int64?
        public var detail: String?
    }

    /// One work item's pipeline as a whole: merged, rejected, conflict, failed, skipped…
    public struct ItemRow: Sendable {
        public var item: String
        public var title: String?
        /// A word of `ItemOutcome.words`: how the item ended, or where it is.
        public var outcome: String
        /// The stage the outcome belongs to (the stage that rejected or failed it, the stage
        /// running or waiting); nil once the pipeline ended well.
        public var stage: String?
        public var duration: Int64?
        public var cost: Double?
        /// Output tokens and turns, when the agent reported them (codex and gemini report no cost).
        public var tokens: Int?
        public var turns: Int?
        /// The agent profile its dispatch used (nil for an argv agent).
        public var profile: String?
        public var detail: String?

        /// What the agent reported spending, in a few words: `$0.84 · 7 turns`, `1,234 tokens`; nil when nothing.
        public var usageText: String? {
            var parts: [String] = []
            if let cost { parts.append(RunReport.dollars(cost)) }
            if let tokens { parts.append("\(RunReport.grouped(tokens)) tokens") }
            if let turns { parts.append("\(turns) turn\(turns == 1 ? "" : "s")") }
            return parts.isEmpty ? nil : parts.joined(separator: " · ")
        }
    }

    /// What only a session's directory knows: the questions answered there, and whether the agent
    /// has exited (a session still waited on is then waiting for a person's decision).
    public struct SessionState: Sendable {
        public var answered: Set<String>
        public var agentExited: Bool

        public init(answered: Set<String>, agentExited: Bool) {
            self.answered = answered
            self.agentExited = agentExited
        }
    }

    /// Looks a session up by id; nil = unknown (the journal alone then decides).
    public typealias SessionLookup = (String) -> SessionState?

    public var runId: String
    public var workflowName: String
    public var rows: [Row]
    public var items: [ItemRow] = []
    public var outcome: RunOutcome?
    public var problems: [String]
    /// The run's known cost and its budget (`settings.budget.cost`), when either is known.
    public var spent: Double?
    public var budget: Double?
    /// How its notifications went (`settings.notify`), and each failed one in words:
    /// `webhook #1, question RUN:12: HTTP 500` (a target by its number, never its URL).
    public var notifications = NotificationTally()
    public var notificationFailures: [String] = []

    /// `sessions` lets `status` say "waiting for you" of a session whose agent exited and waits
    /// for a decision, and not say it of a question answered while the agent ran; without it a
    /// question counts as open until the journal shows the agent resumed for it.
    public init(_ machine: RunStateMachine, now: Int64, sessions: SessionLookup? = nil) {
        runId = machine.runId
        workflowName = machine.workflow.name
        outcome = machine.outcome
        problems = []
        var facts: [Facts] = []
        let instances = machine.allInstances
        facts.reserveCapacity(instances.count)
        rows = instances.map { key, inst in
            let itemValue = key.item == nil ? nil : machine.item(for: key)
            let item = key.item.map { RunStateMachine.itemName(itemValue, index: $0) }
            var title: String?
            if case .object(let o)? = itemValue, case .string(let t)? = o["title"] { title = t }
            var detail: String?
            switch inst.status {
            case .failed(let r), .cancelled(let r): detail = r
            case .skipped(let r, _): detail = r
            case .retrying(let next, let at): detail = "attempt \(next) at \(Timestamp.iso8601(milliseconds: at))"
            default: break
            }
            let end = inst.endedAt ?? (inst.status.isEnded ? nil : now)
            let duration = inst.startedAt.flatMap { s in end.map { $0 - s } }
            // A failed or rejected session has no outputs: what its agent spent is in a `usage` note.
            var spent = inst.outputs
            // A timed-out one's is its last `spent` note.
            if case .failed = inst.status, let usage = (machine.notes[key] ?? []).last(where: { $0.kind == "usage" || $0.kind == "spent" }) { spent = usage.fields }
            var f = Facts(key: key, instance: inst, stage: machine.stage(of: key), start: inst.startedAt, end: end, cost: RunReport.number(spent["cost"]))
            if case .int(let t)? = spent["tokens"] { f.tokens = t }
            if case .int(let t)? = spent["turns"] { f.turns = t }
            facts.append(f)
            return Row(key: key, item: item, title: title, status: inst.status, attempts: inst.attempts, duration: duration, detail: detail)
        }
        items = RunReport.groups(rows.map(\.key), names: rows.map(\.item)).map { ns in
            let first = rows[ns[0]]
            var row = ItemRow(item: first.item ?? "-", title: first.title, outcome: "pending")
            if let a = ns.compactMap({ facts[$0].start }).min(), let b = ns.compactMap({ facts[$0].end }).max() { row.duration = b - a }
            row.cost = ns.compactMap { facts[$0].cost }.last
            row.tokens = ns.compactMap { facts[$0].tokens }.last
            row.turns = ns.compactMap { facts[$0].turns }.last
            row.profile = ns.lazy.compactMap { i -> String? in
                if case .string(let p)? = facts[i].instance.outputs["agent-profile"] { return p } else { return nil }
            }.first
            let judged = RunReport.judge(ns.map { facts[$0] }, machine: machine, sessions: sessions, now: now)
            row.outcome = judged.outcome
            if let at = judged.at {
                row.stage = rows[ns[at]].key.stage
                row.detail = judged.detail ?? rows[ns[at]].detail
            }
            return row
        }
        budget = machine.workflow.settings.budget?.cost
        notifications = machine.notifications
        let targets = machine.workflow.settings.notify
        notificationFailures = notifications.failed.map { f in
            let name = targets.indices.contains(f.target - 1) ? targets[f.target - 1].name(f.target) : "target #\(f.target)"
            return "\(name), \(f.event) \(f.id): \(f.error)"
        }
        let known = facts.contains { $0.cost != nil }
        spent = budget != nil || known ? machine.spent : nil
        problems = machine.sources.compactMap { s, source in
            if case .failed(let reason) = source.state { return "\(machine.workflow.stages[s].id): \(reason)" }
            return nil
        }.sorted()
        for r in rows where r.key.item == nil {
            if case .list(let bad)? = machine.instance(r.key)?.outputs["invalid"] {
                for item in bad { problems.append("\(r.key.stage): an item with an invalid id was not dispatched: \(RunReport.idText(item))") }
            }
        }
    }

    /// What judging an item needs to know of one of its instances.
    struct Facts {
        var key: InstanceKey
        var instance: RunStateMachine.Instance
        var stage: Stage?
        var start: Int64? = nil
        var end: Int64? = nil
        var cost: Double? = nil
        var tokens: Int? = nil
        var turns: Int? = nil
    }

    /// Indices of the instances of each item, items in order of appearance. Instances come item
    /// by item (`allInstances`' order); an item is its index and name.
    static func groups(_ keys: [InstanceKey], names: [String?]) -> [[Int]] {
        struct ItemKey: Hashable { var index: Int; var name: String? }
        var byItem: [ItemKey: Int] = [:]
        var out: [[Int]] = []
        for (n, key) in keys.enumerated() {
            guard let index = key.item else { continue }
            let k = ItemKey(index: index, name: names[n])
            if let g = byItem[k] { out[g].append(n) } else { byItem[k] = out.count; out.append([n]) }
        }
        return out
    }

    /// An item's outcome from its instances: the first failure decides (a `continue-on-error`
    /// stage's does not), then a cancellation, then what is still going on, then merged, skipped,
    /// done. `at` is the instance the outcome is about.
    static func judge(_ facts: [Facts], machine: RunStateMachine, sessions: SessionLookup?, now: Int64? = nil) -> (outcome: String, at: Int?, detail: String?) {
        if let i = facts.firstIndex(where: { if case .failed = $0.instance.status { return $0.stage?.continueOnError != true } else { return false } }) {
            return (ItemOutcome.word(for: facts[i].instance.failureKind), i, nil)
        }
        if let i = facts.firstIndex(where: { if case .cancelled = $0.instance.status { return true } else { return false } }) {
            return (ItemOutcome.cancelled, i, nil)
        }
        if let i = facts.firstIndex(where: { !$0.instance.status.isEnded && $0.instance.status != .pending }) {
            // Paused by a usage limit: the agent exited, but the runner starts it again by itself.
            if let now, let paused = pausedUntil(facts[i], machine: machine, now: now) { return (ItemOutcome.running, i, paused) }
            if let why = waitingForYou(facts[i], machine: machine, sessions: sessions) { return (ItemOutcome.waitingForYou, i, why) }
            return (ItemOutcome.running, i, inQueue(facts[i], machine: machine))
        }
        if let i = facts.firstIndex(where: { !$0.instance.status.isEnded }) {
            // Between stages (e.g. queued for the merge lock) is still running; nothing begun is pending.
            return (facts.contains { $0.instance.startedAt != nil } ? ItemOutcome.running : ItemOutcome.pending, i, nil)
        }
        if facts.contains(where: { $0.stage?.kind == .merge && $0.instance.status == .succeeded }) { return (ItemOutcome.merged, nil, nil) }
        if let i = facts.firstIndex(where: { if case .skipped = $0.instance.status { return $0.stage?.kind != .cleanup } else { return false } }) {
            return (ItemOutcome.skipped, i, nil)
        }
        return (ItemOutcome.done, nil, nil)
    }

    /// Why a running wait-approved instance waits for a person, or nil: a question nobody answered
    /// yet, or an agent that exited leaving the decision to a person.
    static func waitingForYou(_ f: Facts, machine: RunStateMachine, sessions: SessionLookup?) -> String? {
        guard f.stage?.kind == .waitApproved, f.instance.status.isRunning else { return nil }
        let notes = machine.notes[f.key] ?? []
        let resumed = Set(notes.filter { $0.kind == "resumed" }.compactMap { $0.fields["question"]?.renderedText })
        var session = notes.lazy.compactMap { $0.fields["session"]?.renderedText }.first
        if session == nil, let d = machine.dispatchKey(for: f.key), case .string(let s)? = machine.instance(d)?.outputs["session"] { session = s }
        let state = session.flatMap { sessions?($0) }
        let open = notes.filter { note in
            guard note.kind == "question", let id = note.fields["id"]?.renderedText else { return false }
            return !resumed.contains(id) && state?.answered.contains(id) != true
        }
        if let q = open.first {
            let text = q.fields["question"]?.renderedText ?? ""
            let more = open.count > 1 ? " (and \(open.count - 1) more)" : ""
            return "asks [\(q.fields["id"]?.renderedText ?? "?")]: \(text)\(more) — amplify-run answer \(session ?? "SESSION") \(q.fields["id"]?.renderedText ?? "ID") '…'"
        }
        if state?.agentExited == true, let session {
            return "the agent exited; approve or reject: amplify-run approve \(session) / amplify-run reject \(session)"
        }
        return nil
    }

    /// Where a running merge instance is in its stage's queue (SPEC §10), or which pull request it
    /// waits for, from its latest note:
    /// "in the merge queue", "batch 3 of 4 items: verifying (verification 7)", "batch 3:
    /// bisecting — verification 9 of q-5, q-6", "batch 3: verification 8 passed, landing",
    /// "pull request #12: waiting for GitHub to merge it — URL".
    static func inQueue(_ f: Facts, machine: RunStateMachine) -> String? {
        guard f.stage?.kind == .merge, f.instance.status.isRunning,
              let note = machine.landingNote(f.key) else { return nil }
        let size: Int? = machine.notes[f.key]?.last(where: { $0.kind == "batch" }).flatMap { if case .list(let l)? = $0.fields["items"] { l.count } else { nil } }
        return landingText(note.kind, note.fields, batchSize: size)
    }

    /// A merge queue's or pull request's note (`queued`, `batch`, `verifying`, `verified`,
    /// `pull-request`) in words; `batchSize` (the item's batch as it was made) tells a bisection's
    /// verification from the whole batch's.
    public static func landingText(_ kind: String, _ fields: OrderedObject, batchSize: Int?) -> String {
        if kind == "pull-request" {
            return "pull request #\(fields["pr"]?.renderedText ?? "?"): waiting for GitHub to merge it — \(fields["url"]?.renderedText ?? "")"
        }
        let batch = fields["batch"].map { "batch \($0.renderedText)" } ?? "batch"
        let items: [String] = if case .list(let l)? = fields["items"] { l.map(\.renderedText) } else { [] }
        let verification = fields["verification"]?.renderedText ?? "?"
        switch kind {
        case "queued": return "in the merge queue"
        case "batch": return "\(batch) of \(items.count) item\(items.count == 1 ? "" : "s"): being built"
        case "verifying" where batchSize.map({ items.count < $0 }) == true:
            return "\(batch): bisecting — verification \(verification) of \(items.joined(separator: ", "))"
        case "verifying": return "\(batch) of \(items.count) item\(items.count == 1 ? "" : "s"): verifying (verification \(verification))"
        default:
            return fields["passed"] == .bool(true) ? "\(batch): verification \(verification) passed, landing" : "\(batch): verification \(verification) failed; bisecting"
        }
    }

    /// "paused until 14:05 — usage limit" for a running instance whose agent's provider stopped it
    /// (a `paused` note not yet followed by `continued`, its deadline still ahead).
    static func pausedUntil(_ f: Facts, machine: RunStateMachine, now: Int64) -> String? {
        guard f.instance.status.isRunning, let notes = machine.notes[f.key],
              let last = notes.lastIndex(where: { $0.kind == "paused" }),
              !notes[last...].contains(where: { $0.kind == "continued" }),
              case .int(let until)? = notes[last].fields["until"], Int64(until) > now else { return nil }
        let profile = notes[last].fields["profile"]?.renderedText
        return "paused until \(Timestamp.localClock(milliseconds: Int64(until), now: now)) — usage limit" + (profile.map { " (\($0))" } ?? "")
    }

    /// 12345 → "12,345".
    public static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// Items by outcome, in `ItemOutcome.words`' order (nonzero counts only).
    public var itemCounts: [(String, Int)] { ItemOutcome.order(items.map(\.outcome)) }

    /// Items by outcome straight from the machine, without building a report (the live view's
    /// header; no session lookups, so only questions make "waiting for you").
    public static func itemCounts(_ machine: RunStateMachine) -> [(String, Int)] {
        let instances = machine.allInstances
        let keys = instances.map(\.key)
        let names = instances.map { entry in entry.key.item.map { i in RunStateMachine.itemName(machine.item(for: entry.key), index: i) } }
        let outcomes = groups(keys, names: names).map { ns in
            judge(ns.map { Facts(key: instances[$0].key, instance: instances[$0].instance, stage: machine.stage(of: instances[$0].key)) }, machine: machine, sessions: nil).outcome
        }
        return ItemOutcome.order(outcomes)
    }

    /// The run in one phrase of counts: items when it has any (`4 merged · 1 rejected · 0 waiting
    /// for you`; waiting for you always shown, it is what a person acts on), else instances
    /// (`5 succeeded, 1 failed`).
    public static func countsPhrase(items: [(String, Int)], instances: [(String, Int)], hasItems: Bool) -> String {
        guard hasItems else { return instances.map { "\($0.1) \($0.0)" }.joined(separator: ", ") }
        var parts = items.filter { $0.0 != ItemOutcome.waitingForYou }.map { "\($0.1) \($0.0)" }
        parts.append("\(items.first { $0.0 == ItemOutcome.waitingForYou }?.1 ?? 0) \(ItemOutcome.waitingForYou)")
        return parts.joined(separator: " · ")
    }

    /// An item's id for a message: quoted JSON, at most 80 characters.
    public static func idText(_ item: Value) -> String {
        String((item["id"] ?? item).json.prefix(80))
    }

    /// Counts of instances by status word.
    public var counts: [(String, Int)] { RunReport.order(rows.map(\.status.word)) }

    /// The same counts straight from the machine, without building a report (the live view's header).
    public static func counts(_ machine: RunStateMachine) -> [(String, Int)] {
        order(machine.allInstances.map(\.instance.status.word))
    }

    private static func order(_ words: [String]) -> [(String, Int)] {
        var c: [String: Int] = [:]
        for w in words { c[w, default: 0] += 1 }
        return ["succeeded", "failed", "skipped", "cancelled", "running", "retrying", "pending"].compactMap { w in c[w].map { (w, $0) } }
    }

    /// A JSON number as a Double (an integral cost is written as an integer).
    public static func number(_ v: Value?) -> Double? {
        switch v {
        case .double(let d)?: return d
        case .int(let i)?: return Double(i)
        default: return nil
        }
    }

    /// `$0.84`: a cost in USD, to the cent.
    public static func dollars(_ cost: Double) -> String {
        let cents = Int((cost * 100).rounded())
        return "$\(cents / 100)." + (cents % 100 < 10 ? "0" : "") + "\(cents % 100)"
    }

    /// `1.2s`, `3m04s`, `1h02m`.
    public static func format(milliseconds ms: Int64) -> String {
        if ms < 1000 { return "\(ms)ms" }
        if ms < 60_000 { return String(ms / 1000) + "." + String(ms % 1000 / 100) + "s" }
        let s = ms / 1000
        if s < 3600 { return "\(s / 60)m" + (s % 60 < 10 ? "0" : "") + "\(s % 60)s" }
        return "\(s / 3600)h" + (s % 3600 / 60 < 10 ? "0" : "") + "\(s % 3600 / 60)m"
    }
}

/// The words the views use for how an item ended, or where it is: the words a person uses.
public enum ItemOutcome {
    public static let merged = "merged"
    /// The pipeline ended well without a merge stage (a workflow that only runs commands per item).
    public static let done = "done"
    public static let cancelled = "cancelled"
    public static let skipped = "skipped"
    public static let running = "running"
    /// A session asks a question nobody answered, or its agent exited and a person must decide.
    public static let waitingForYou = "waiting for you"
    public static let pending = "pending"

    /// Every word, in the order counts are shown; failure kinds other engineers add come after
    /// `timed out`, in their own words.
    public static let words = [merged, done, "rejected", "conflict", "failed", "timed out", "over budget", cancelled, skipped, running, waitingForYou, pending]

    /// `rejected`, `conflict`, `failed`, `timed out` (a kind's raw value with its hyphens as spaces).
    public static func word(for kind: FailureKind) -> String {
        String(kind.rawValue.map { $0 == "-" ? " " : $0 })
    }

    static func order(_ outcomes: [String]) -> [(String, Int)] {
        var c: [String: Int] = [:]
        for w in outcomes { c[w, default: 0] += 1 }
        let known = words.compactMap { w in c[w].map { (w, $0) } }
        let others = c.filter { !words.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        // Other failure kinds read next to the known ones.
        let at = known.firstIndex { words.firstIndex(of: $0.0)! > words.firstIndex(of: "timed out")! } ?? known.count
        return Array(known[..<at]) + others + Array(known[at...])
    }
}
