import AmplifyWorkflow

/// What happened to every instance of a run, for `status`, `runs` and the final summary.
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
        public var outcome: String
        public var stage: String?
        public var duration: Int64?
        public var cost: Double?
        public var detail: String?
    }

    public var runId: String
    public var workflowName: String
    public var rows: [Row]
    public var items: [ItemRow] = []
    public var outcome: RunOutcome?
    public var problems: [String]

    public init(_ machine: RunStateMachine, now: Int64) {
        runId = machine.runId
        workflowName = machine.workflow.name
        outcome = machine.outcome
        problems = []
        struct Facts {
            var start: Int64?
            var end: Int64?
            var cost: Double?
            var kind: StageKind?
            var failureKind: FailureKind
        }
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
            case .failed(let r), .cancelled(let r): detail = r.replacingOccurrences("\n", with: " ")
            case .skipped(let r, _): detail = r
            case .retrying(let next, let at): detail = "attempt \(next) at \(Timestamp.iso8601(milliseconds: at))"
            default: break
            }
            let end = inst.endedAt ?? (inst.status.isEnded ? nil : now)
            let duration = inst.startedAt.flatMap { s in end.map { $0 - s } }
            var cost: Double?
            switch inst.outputs["cost"] {
            case .double(let c)?: cost = c
            case .int(let c)?: cost = Double(c)
            default: break
            }
            facts.append(Facts(start: inst.startedAt, end: end, cost: cost, kind: machine.stage(of: key)?.kind, failureKind: inst.failureKind))
            return Row(key: key, item: item, title: title, status: inst.status, attempts: inst.attempts, duration: duration, detail: detail)
        }
        // Rows come item by item (allInstances' order): an item's rows are the run of rows with
        // its index and name.
        struct ItemKey: Hashable { var index: Int; var name: String? }
        var byItem: [ItemKey: [Int]] = [:]
        var order: [ItemKey] = []
        for (n, r) in rows.enumerated() where r.key.item != nil {
            let k = ItemKey(index: r.key.item!, name: r.item)
            if byItem[k] == nil { order.append(k) }
            byItem[k, default: []].append(n)
        }
        items = order.map { k in
            let ns = byItem[k]!
            let rs = ns.map { rows[$0] }
            var row = ItemRow(item: rs[0].item ?? "-", title: rs[0].title, outcome: "pending")
            if let a = ns.compactMap({ facts[$0].start }).min(), let b = ns.compactMap({ facts[$0].end }).max() { row.duration = b - a }
            row.cost = ns.compactMap { facts[$0].cost }.last
            func kind(_ r: Row) -> StageKind? { facts[ns[rs.firstIndex { $0.key == r.key }!]].kind }
            if let (i, f) = rs.enumerated().first(where: { if case .failed = $0.element.status { return true } else { return false } }) {
                row.outcome = facts[ns[i]].failureKind.rawValue
                row.stage = f.key.stage
                row.detail = f.detail
            } else if let c = rs.first(where: { if case .cancelled = $0.status { return true } else { return false } }) {
                row.outcome = "cancelled"
                row.stage = c.key.stage
                row.detail = c.detail
            } else if let live = rs.first(where: { !$0.status.isEnded && $0.status != .pending }) ?? rs.first(where: { !$0.status.isEnded }) {
                row.outcome = live.status.word
                row.stage = live.key.stage
            } else if rs.contains(where: { kind($0) == .merge && $0.status == .succeeded }) {
                row.outcome = rs.contains(where: { kind($0) == .close && $0.status == .succeeded }) ? "merged and closed" : "merged"
            } else if let skipped = rs.first(where: { if case .skipped = $0.status { return kind($0) != .cleanup } else { return false } }) {
                row.outcome = "skipped"
                row.stage = skipped.key.stage
                row.detail = skipped.detail
            } else {
                row.outcome = "done"
            }
            return row
        }
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

extension String {
    func replacingOccurrences(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
