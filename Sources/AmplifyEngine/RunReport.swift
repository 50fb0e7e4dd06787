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

    public var runId: String
    public var workflowName: String
    public var rows: [Row]
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
            case .failed(let r), .cancelled(let r): detail = r
            case .skipped(let r, _): detail = r
            case .retrying(let next, let at): detail = "attempt \(next) at \(Timestamp.iso8601(milliseconds: at))"
            default: break
            }
            let end = inst.endedAt ?? (inst.status.isEnded ? nil : now)
            let duration = inst.startedAt.flatMap { s in end.map { $0 - s } }
            return Row(key: key, item: item, title: title, status: inst.status, attempts: inst.attempts, duration: duration, detail: detail)
        }
        problems = machine.sources.compactMap { s, source in
            if case .failed(let reason) = source.state { return "\(machine.workflow.stages[s].id): \(reason)" }
            return nil
        }.sorted()
    }

    /// Counts of instances by status word.
    public var counts: [(String, Int)] {
        var c: [String: Int] = [:]
        for r in rows { c[r.status.word, default: 0] += 1 }
        return ["succeeded", "failed", "skipped", "cancelled", "running", "retrying", "pending"].compactMap { w in c[w].map { (w, $0) } }
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
