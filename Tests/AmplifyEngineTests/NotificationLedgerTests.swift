import AmplifyEngine
import AmplifyWorkflow
import Testing

/// The pure half of `settings.notify`: which journaled events make notifications, what they say,
/// and which sends are due when — driven with plain values, no sockets.
@Suite("Notifications: the ledger and what each event says")
struct NotificationLedgerTests {
    /// A machine with two items of a dispatch → wait-approved pipeline, dispatched.
    static func machine() -> RunStateMachine {
        let w = workflow("""
            version: 1
            settings:
              budget: {cost: 1}
              notify:
                - {on: [question, waiting, decision, failed, budget, paused, run-end], webhook: "http://127.0.0.1:9/hook"}
                - {on: [run-end], command: [cat]}
            stages:
              ready: {uses: query-ready, with: {source: file, path: issues.jsonl}}
              dispatch:
                uses: dispatch
                for-each: ${{ stages.ready.outputs.items }}
                with: {prompt: "do ${{ item.id }}"}
              approved: {uses: wait-approved}
            """)
        var m = RunStateMachine(workflow: w, runId: "R", maxProcesses: 4)
        let items: [Value] = [.object(OrderedObject([("id", .string("a-1")), ("title", .string("Fix\nthe login"))])), .object(OrderedObject([("id", .string("a-2"))]))]
        m.apply(.instanceSucceeded(InstanceKey("ready"), outputs: OrderedObject([("items", .list(items))])))
        m.apply(.itemsAdded(stage: "dispatch", items: items, closed: true))
        for i in 0..<2 {
            m.apply(.instanceStarted(InstanceKey("dispatch", item: i), attempt: 1, deadline: nil))
            m.apply(.instanceSucceeded(InstanceKey("dispatch", item: i), outputs: OrderedObject([("session", .string("a-\(i + 1)-S"))])))
            m.apply(.instanceStarted(InstanceKey("approved", item: i), attempt: 1, deadline: nil))
        }
        return m
    }

    static let t0: Int64 = 1_764_000_000_000

    static func entry(_ seq: Int, _ event: RunEvent) -> JournalEntry { JournalEntry(seq: seq, at: t0 + Int64(seq), event: event) }

    static let approved = InstanceKey("approved", item: 0)
    static let question = RunEvent.note(approved, kind: "question", fields: OrderedObject([("id", .string("q1")), ("question", .string("Which colour?")), ("options", .list([.string("red"), .string("blue")])), ("session", .string("a-1-S"))]))

    @Test("each event becomes the notification it stands for, with the body's exact keys", arguments: [
        (question, "question", "a-1 (Fix the login) asks: Which colour? (options: red | blue) — answer with: amplify-run answer a-1-S q1 '…'"),
        (RunEvent.note(approved, kind: "waiting", fields: OrderedObject([("message", .string("the agent exited; approve or reject: amplify-run approve a-1-S / amplify-run reject a-1-S"))])), "waiting",
         "a-1 (Fix the login) waits for you: the agent exited; approve or reject: amplify-run approve a-1-S / amplify-run reject a-1-S"),
        (RunEvent.instanceSucceeded(approved, outputs: OrderedObject([("decision", .string("approved")), ("summary", .string("done")), ("decided-by", .string("review.json"))])), "decision", "a-1 (Fix the login) was approved (review.json): done"),
        (RunEvent.instanceFailed(approved, attempt: 1, reason: "rejected (state.json): out of scope", retryAt: nil, kind: .rejected), "decision", "a-1 (Fix the login) was rejected (state.json): out of scope"),
        (RunEvent.instanceFailed(approved, attempt: 1, reason: "timed out after 4h", retryAt: nil, kind: .timedOut), "failed", "a-1 (Fix the login) ended timed out at approved: timed out after 4h"),
        (RunEvent.instanceFailed(InstanceKey("approved", item: 1), attempt: 1, reason: "boom", retryAt: nil, kind: .failed), "failed", "a-2 failed at approved: boom"),
        (RunEvent.note(approved, kind: "paused", fields: OrderedObject([("until", .int(Int(t0 + 3_600_000))), ("profile", .string("claude"))])), "paused",
         "a-1 (Fix the login): the agent (claude) met its provider's usage limit and is paused until 2025-11-24 17:00 UTC; it goes on by itself then."),
        (RunEvent.instanceSkipped(InstanceKey("dispatch", item: 1), reason: "budget: the run's known cost $1.00 reached settings.budget.cost $1.00", afterFailure: true), "budget",
         "The run's budget is used up (the run's known cost $1.00 reached settings.budget.cost $1.00): nothing new is dispatched."),
    ])
    func madeFrom(_ event: RunEvent, _ kind: String, _ message: String) throws {
        let m = Self.machine()
        let n = try #require(Notification.made(by: Self.entry(7, event), in: m, workflow: "wf.yaml"))
        #expect(n.event.rawValue == kind)
        #expect(n.message == message)
        #expect(n.id == "R:7")
        let body = n.value
        guard case .object(let o) = body else { Issue.record("not an object"); return }
        #expect(o.keys == ["id", "event", "run", "workflow", "item", "session", "message", "at"])
        #expect(body["run"] == .string("R") && body["workflow"] == .string("wf.yaml"))
        #expect(body["at"] == .string(Timestamp.iso8601(milliseconds: Self.t0 + 7)))
        if kind == "budget" {
            #expect(body["item"] == .null && body["session"] == .null, "the budget is the run's")
        } else {
            let index = message.hasPrefix("a-2") ? 1 : 0
            #expect(body["item"]?["id"] == .string("a-\(index + 1)"))
            #expect(body["session"] == .string("a-\(index + 1)-S"))
        }
    }

    @Test("events that tell nobody anything make no notification; run-end is the run's")
    func quietEvents() throws {
        var m = Self.machine()
        for e: RunEvent in [.instanceStarted(Self.approved, attempt: 2, deadline: nil),
                            .instanceFailed(Self.approved, attempt: 1, reason: "x", retryAt: Self.t0 + 5, kind: .failed),
                            .instanceSucceeded(InstanceKey("dispatch", item: 0), outputs: OrderedObject()),
                            .note(Self.approved, kind: "spent", fields: OrderedObject()),
                            .instanceSkipped(InstanceKey("approved", item: 1), reason: "needs failed", afterFailure: true)] {
            #expect(Notification.made(by: Self.entry(3, e), in: m, workflow: "wf.yaml") == nil, "\(e)")
        }
        m.apply(.runFinished(.failed))
        let end = try #require(Notification.made(by: Self.entry(9, .runFinished(.failed)), in: m, workflow: "wf.yaml"))
        #expect(end.event == .runEnd && end.item == nil && end.session == nil)
        #expect(end.message.hasPrefix("Run R (test) finished: ") && end.message.hasSuffix("; exit 1."), "\(end.message)")
    }

    @Test("one send per target at a time, in journal order; a delivery ends with its notified event")
    func order() {
        let m = Self.machine()
        var ledger = NotificationLedger(targets: m.workflow.settings.notify, workflowPath: "wf.yaml")
        ledger.observe(Self.entry(1, Self.question), machine: m)
        ledger.observe(Self.entry(2, .instanceFailed(Self.approved, attempt: 1, reason: "no", retryAt: nil, kind: .rejected)), machine: m)
        ledger.observe(Self.entry(3, .runFinished(.failed)), machine: m)
        #expect(ledger.outstanding.map { "\($0.id)@\($0.target)" } == ["R:1@1", "R:2@1", "R:3@1", "R:3@2"])
        let first = ledger.due(now: Self.t0)
        #expect(first.map { "\($0.delivery.id)@\($0.delivery.target)#\($0.attempt)" } == ["R:1@1#1", "R:3@2#1"])
        #expect(ledger.due(now: Self.t0).isEmpty, "each target has one under way")
        let told = ledger.attempted(first[0].delivery, attempt: 1, error: nil, now: Self.t0 + 10)
        #expect(told == .notified(id: "R:1", event: "question", target: 1, attempts: 1, error: nil))
        #expect(ledger.due(now: Self.t0 + 10).map(\.delivery.id) == ["R:2"])
        // Its notified event, journaled and observed, changes nothing more.
        ledger.observe(Self.entry(4, told!), machine: m)
        #expect(ledger.outstanding.count == 3)
    }

    @Test("a failed attempt comes again after 1 s, then 2 s; the third failure is journaled with its reason")
    func retries() {
        let m = Self.machine()
        var ledger = NotificationLedger(targets: [m.workflow.settings.notify[0]], workflowPath: "wf.yaml")
        ledger.observe(Self.entry(1, Self.question), machine: m)
        let d = ledger.due(now: Self.t0)[0].delivery
        #expect(ledger.attempted(d, attempt: 1, error: "HTTP 500", now: Self.t0) == nil)
        #expect(ledger.nextWake == Self.t0 + 1000)
        #expect(ledger.due(now: Self.t0 + 999).isEmpty)
        #expect(ledger.due(now: Self.t0 + 1000).map(\.attempt) == [2])
        #expect(ledger.attempted(d, attempt: 2, error: "HTTP 500", now: Self.t0 + 1100) == nil)
        #expect(ledger.nextWake == Self.t0 + 3100)
        #expect(ledger.due(now: Self.t0 + 3100).map(\.attempt) == [3])
        #expect(ledger.attempted(d, attempt: 1, error: nil, now: Self.t0 + 3200) == nil, "a stale attempt's answer is dropped")
        #expect(ledger.attempted(d, attempt: 3, error: "connection refused", now: Self.t0 + 3300)
                == .notified(id: "R:1", event: "question", target: 1, attempts: 3, error: "connection refused"))
        #expect(ledger.isIdle && ledger.nextWake == nil)
    }

    @Test("a dead target's backlog of thousands: each delivery gets its three attempts and its one notified event; a step looks only at queue heads")
    func deadTargetBacklog() {
        let m = Self.machine()
        var ledger = NotificationLedger(targets: [m.workflow.settings.notify[0]], workflowPath: "wf.yaml")
        let n = 5000
        for seq in 1...n { ledger.observe(Self.entry(seq, Self.question), machine: m) }
        var now = Self.t0
        var sends = 0
        var ended: [RunEvent] = []
        while !ledger.isIdle {
            let due = ledger.due(now: now)
            if due.isEmpty {
                guard let wake = ledger.nextWake else { Issue.record("stuck with \(ledger.outstanding.count) left"); return }
                now = max(now, wake)
                continue
            }
            for send in due {
                sends += 1
                now += 1
                if let e = ledger.attempted(send.delivery, attempt: send.attempt, error: "connection refused", now: now) { ended.append(e) }
            }
        }
        #expect(sends == 3 * n)
        #expect(ended.count == n && ended.allSatisfy { if case .notified(_, _, 1, 3, "connection refused") = $0 { true } else { false } })
        #expect(Set(ended.map { if case .notified(let id, _, _, _, _) = $0 { id } else { "" } }).count == n)
    }

    @Test("a resumed runner sends what was journaled and not delivered; budget is told once")
    func replay() {
        let m = Self.machine()
        var ledger = NotificationLedger(targets: m.workflow.settings.notify, workflowPath: "wf.yaml")
        let skip = { (i: Int) in RunEvent.instanceSkipped(InstanceKey("dispatch", item: i), reason: "budget: spent", afterFailure: true) }
        for e in [Self.entry(1, Self.question), Self.entry(2, skip(0)), Self.entry(3, skip(1)),
                  Self.entry(4, .notified(id: "R:1", event: "question", target: 1, attempts: 1, error: nil))] {
            ledger.observe(e, machine: m)
        }
        #expect(ledger.outstanding.map(\.id) == ["R:2"], "the question was delivered; the second skip tells nothing")
    }

    @Test("the runner leaves: what is under way is cut off, what waits is not sent, both journaled")
    func abandon() {
        let m = Self.machine()
        var ledger = NotificationLedger(targets: m.workflow.settings.notify, workflowPath: "wf.yaml")
        ledger.observe(Self.entry(1, Self.question), machine: m)
        ledger.observe(Self.entry(2, Self.question), machine: m)
        _ = ledger.due(now: Self.t0)
        let left = ledger.abandon()
        #expect(left.count == 2 && ledger.isIdle)
        guard case .notified("R:1", "question", 1, 1, let cut?) = left[0], case .notified("R:2", _, 1, 0, let unsent?) = left[1] else {
            Issue.record("\(left)")
            return
        }
        #expect(cut.contains("cut off") && unsent.contains("not sent"))
    }

    @Test("the notified event round-trips through the journal's JSON, and names no URL")
    func journalLine() throws {
        let e = RunEvent.notified(id: "R:4", event: "failed", target: 2, attempts: 3, error: "HTTP 500")
        let line = e.line(seq: 9, at: Self.t0)
        #expect(line.contains(#""type":"notified","id":"R:4","event":"failed","target":2,"ok":false,"attempts":3,"error":"HTTP 500""#), "\(line)")
        #expect(RunEvent(try JSONParser.parse(bytes: Array(line.utf8))) == e)
        let ok = RunEvent.notified(id: "R:5", event: "run-end", target: 1, attempts: 1, error: nil)
        #expect(RunEvent(try JSONParser.parse(bytes: Array(ok.line(seq: 10, at: Self.t0).utf8))) == ok)
    }
}
