import AmplifyWorkflow
import DequeModule

/// Which notifications are due, to which target, and when: the pure half of `settings.notify`.
/// The driver performs the sends (`NotificationSender`) and reports each attempt back; nothing
/// here does I/O or reads a clock.
///
/// It is built from the journal, as the machine is: every event the driver journals, and every
/// event a resumed runner replays, is `observe`d. An event a target listens for becomes a
/// delivery; the delivery's `notified` event ends it. So a resumed runner sends exactly what was
/// journaled and not yet delivered, and only a send cut off by a kill goes twice (same `id`).
///
/// Each target gets one send at a time, in journal order, so a dead target delays only itself
/// and never the run. A failed attempt is tried again after a backoff (1 s, then 2 s), three
/// attempts in all, while the target's next notifications go; then its failure is journaled.
/// The cost of a step does not grow with what waits: a dead target's backlog is queues, looked
/// at only at their heads.
public struct NotificationLedger: Sendable {
    /// One notification to one target (numbered from 1, as messages name it).
    public struct Delivery: Sendable, Hashable {
        public var id: String
        public var target: Int
    }

    /// An attempt the driver is to make now.
    public struct Send: Sendable, Equatable {
        public var delivery: Delivery
        public var attempt: Int
        public var notification: Notification
    }

    public static let attempts = 3
    /// The wait before the second attempt (ms); it doubles.
    public static let backoff: Int64 = 1000

    private struct Pending: Sendable {
        var notification: Notification
        /// Its place in the journal's order, for `outstanding` and `abandon`.
        var order: Int
        /// Attempts made so far.
        var attempts = 0
    }

    /// The events each target wants, in `settings.notify`'s order.
    let targets: [Set<NotifyEvent>]
    let workflowPath: String
    /// Deliveries not ended. The queues below may still hold ended ones: they are passed over.
    private var pending: [Delivery: Pending] = [:]
    private var made = 0
    /// Per target: deliveries never tried, in journal order; and those whose backoff has passed.
    private var fresh: [Int: Deque<Delivery>] = [:]
    private var again: [Int: Deque<Delivery>] = [:]
    /// Deliveries waiting out a backoff, one queue per attempt to come (2, 3): each queue's times
    /// only grow, so its head is its soonest.
    private var backingOff: [Deque<(at: Int64, delivery: Delivery)>] = Array(repeating: [], count: NotificationLedger.attempts - 1)
    /// The one send under way per target.
    private var inFlight: [Int: Delivery] = [:]
    /// `budget` is told once per run: at the first dispatch skipped for it.
    private var budgetTold = false

    public init(targets: [NotifyTarget], workflowPath: String) {
        self.targets = targets.map(\.events)
        self.workflowPath = workflowPath
    }

    /// Nothing left to send.
    public var isIdle: Bool { pending.isEmpty }

    /// The deliveries not ended yet, in journal order.
    public var outstanding: [Delivery] { pending.sorted { $0.value.order < $1.value.order }.map(\.key) }

    /// A journaled event (live or replayed): the deliveries it makes, or the one it ends.
    public mutating func observe(_ entry: JournalEntry, machine: RunStateMachine) {
        if case .notified(let id, _, let target, _, _) = entry.event {
            end(Delivery(id: id, target: target))
            return
        }
        guard !targets.isEmpty, let n = Notification.made(by: entry, in: machine, workflow: workflowPath) else { return }
        if n.event == .budget {
            guard !budgetTold else { return }
            budgetTold = true
        }
        for (i, events) in targets.enumerated() where events.contains(n.event) {
            let d = Delivery(id: n.id, target: i + 1)
            guard pending[d] == nil else { continue }
            made += 1
            pending[d] = Pending(notification: n, order: made)
            fresh[d.target, default: []].append(d)
        }
    }

    /// The sends to start now: for each target with none under way, a delivery whose backoff
    /// has passed, else its next one never tried.
    public mutating func due(now: Int64) -> [Send] {
        for k in backingOff.indices {
            while let head = backingOff[k].first, head.at <= now {
                backingOff[k].removeFirst()
                if pending[head.delivery] != nil { again[head.delivery.target, default: []].append(head.delivery) }
            }
        }
        var sends: [Send] = []
        for target in 1...max(1, targets.count) where inFlight[target] == nil {
            guard let d = next(&again[target]) ?? next(&fresh[target]), var p = pending[d] else { continue }
            p.attempts += 1
            pending[d] = p
            inFlight[target] = d
            sends.append(Send(delivery: d, attempt: p.attempts, notification: p.notification))
        }
        return sends
    }

    /// The first delivery of `queue` not ended yet, taken off it.
    private func next(_ queue: inout Deque<Delivery>?) -> Delivery? {
        while let d = queue?.popFirst() {
            if pending[d] != nil { return d }
        }
        return nil
    }

    /// When the next backoff ends, if one is running.
    public var nextWake: Int64? {
        backingOff.compactMap { $0.first?.at }.min()
    }

    /// An attempt ended (`error` nil: delivered). Returns the `notified` event to journal once the
    /// delivery has ended — delivered, or failed on its last attempt; nil while another attempt
    /// is to come.
    public mutating func attempted(_ d: Delivery, attempt: Int, error: String?, now: Int64) -> RunEvent? {
        guard inFlight[d.target] == d, let p = pending[d], p.attempts == attempt else { return nil }
        inFlight[d.target] = nil
        if error != nil, attempt < NotificationLedger.attempts {
            backingOff[attempt - 1].append((now + NotificationLedger.backoff << Int64(attempt - 1), d))
            return nil
        }
        end(d)
        return .notified(id: d.id, event: p.notification.event.rawValue, target: d.target, attempts: attempt, error: error)
    }

    /// The runner leaves (the run ended, and the time to finish sending is up): every delivery
    /// not ended is journaled as not delivered. One under way may still arrive.
    public mutating func abandon() -> [RunEvent] {
        let events = outstanding.compactMap { d -> RunEvent? in
            guard let p = pending[d] else { return nil }
            let why = inFlight[d.target] == d
                ? "cut off: the runner ended while attempt \(p.attempts) was under way (it may have arrived)"
                : "not sent: the runner ended before attempt \(p.attempts + 1)"
            return .notified(id: d.id, event: p.notification.event.rawValue, target: d.target, attempts: p.attempts, error: why)
        }
        pending.removeAll()
        fresh.removeAll()
        again.removeAll()
        backingOff = Array(repeating: [], count: NotificationLedger.attempts - 1)
        inFlight.removeAll()
        return events
    }

    /// A delivery ended: it leaves `pending` (the queues pass over it from now on).
    private mutating func end(_ d: Delivery) {
        guard pending.removeValue(forKey: d) != nil else { return }
        if inFlight[d.target] == d { inFlight[d.target] = nil }
    }
}
