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
        rows = machine.allInstances.map { key, inst in
            let item = key.item.map { RunStateMachine.itemName(machine.item(for: key), index: $0) }
            var title: String?
            if case .object(let o)? = machine.item(for: key), case .string(let t)? = o["title"] { title = t }
            var detail: String?
            switch inst.status {
            case .failed(let r), .cancelled(let r): detail = r.replacingOccurrences("\n", with: " ")
            case .skipped(let r, _): detail = r
            case .retrying(let next, let at): detail = "attempt \(next) at \(Timestamp.iso8601(milliseconds: at))"
            default: break
            }
            let end = inst.endedAt ?? (inst.status.isEnded ? nil : now)
            let duration = inst.startedAt.flatMap { s in end.map { $0 - s } }
            return Row(key: key, item: item, title: title, status: inst.status, attempts: inst.attempts, duration: duration, detail: detail)
        }
        var byItem: [String: [Row]] = [:]
        var order: [String] = []
        for r in rows where r.key.item != nil {
            let id = "\(r.item ?? "")\u{0}\(r.key.item!)"
            if byItem[id] == nil { order.append(id) }
            byItem[id, default: []].append(r)
        }
        items = order.map { id in
            let rs = byItem[id]!
            var row = ItemRow(item: rs[0].item ?? "-", title: rs[0].title, outcome: "pending")
            let starts = rs.compactMap { r in machine.instance(r.key)?.startedAt }
            let ends = rs.compactMap { r in machine.instance(r.key)?.endedAt ?? (r.status.isEnded ? nil : now) }
            if let a = starts.min(), let b = ends.max() { row.duration = b - a }
            for r in rs {
                if case .double(let c)? = machine.instance(r.key)?.outputs["cost"] { row.cost = c }
                if case .int(let c)? = machine.instance(r.key)?.outputs["cost"] { row.cost = Double(c) }
            }
            if let f = rs.first(where: { if case .failed = $0.status { return true } else { return false } }) {
                let kind = machine.instance(f.key)?.failureKind ?? .failed
                row.outcome = kind.rawValue
                row.stage = f.key.stage
                row.detail = f.detail
            } else if let c = rs.first(where: { if case .cancelled = $0.status { return true } else { return false } }) {
                row.outcome = "cancelled"
                row.stage = c.key.stage
                row.detail = c.detail
            } else if let live = rs.first(where: { !$0.status.isEnded && $0.status != .pending }) ?? rs.first(where: { !$0.status.isEnded }) {
                row.outcome = live.status.word
                row.stage = live.key.stage
            } else if rs.contains(where: { machine.stage(of: $0.key)?.kind == .merge && $0.status == .succeeded }) {
                row.outcome = rs.contains(where: { machine.stage(of: $0.key)?.kind == .close && $0.status == .succeeded }) ? "merged and closed" : "merged"
            } else if let skipped = rs.first(where: { if case .skipped = $0.status { return machine.stage(of: $0.key)?.kind != .cleanup } else { return false } }) {
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
    public var counts: [(String, Int)] {
        var c: [String: Int] = [:]
        for r in rows { c[r.status.word, default: 0] += 1 }
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
