import AmplifyEngine
import AmplifyWorkflow
import Testing

/// The machine's event methods, driven with plain values: what each input makes the driver do.
@Suite("Run state machine: events in, actions out")
struct RunStateMachineEventTests {
    typealias Action = RunStateMachine.Action
    static let t0: Int64 = 1_000_000
    static let group = RunStateMachine.ProcessGroup(leader: 4242, startTime: 77)

    /// A machine whose one stage `a` is running attempt 1 with process group 4242 (from `tick` at t0).
    static func running(_ yaml: String) -> RunStateMachine {
        var m = RunStateMachine(workflow: workflow(yaml), runId: "test-run", maxProcesses: 100)
        _ = m.tick(now: t0)
        _ = m.processStarted(InstanceKey("a"), attempt: 1, pid: group.leader, startTime: group.startTime, now: t0 + 1)
        return m
    }

    static func events(_ actions: [Action]) -> [RunEvent] {
        actions.flatMap { action -> [RunEvent] in
            if case .persist(let events, _, _) = action { return events }
            return []
        }
    }

    static func failure(_ actions: [Action]) -> (kind: FailureKind, retryAt: Int64?)? {
        for e in events(actions) { if case .instanceFailed(_, _, _, let retryAt, let kind) = e { return (kind, retryAt) } }
        return nil
    }

    @Test("a start is persisted before it is carried out, with its deadline, and the driver is woken at the deadline")
    func startAndWake() {
        var m = RunStateMachine(workflow: workflow("version: 1\nstages: {a: {run: x, timeout: 1s}}"), runId: "test-run")
        let deadline = Self.t0 + 1_000
        #expect(m.tick(now: Self.t0) == [
            .persist([.instanceStarted(InstanceKey("a"), attempt: 1, deadline: deadline)], at: Self.t0, sync: false),
            .start(InstanceKey("a"), attempt: 1),
            .wake(at: deadline),
        ])
    }

    // A table: what a timeout ends as, per stage kind and retry.
    @Test("a timeout ends the attempt's group and fails it as its kind says", arguments: [
        ("a: {run: x, timeout: 1s}", FailureKind.failed, false, RunOutcome?.some(.failed)),
        ("a: {run: x, timeout: 1s, retry: {attempts: 2}}", .failed, true, nil),
        ("a: {uses: query-ready, with: {source: command, command: [x]}, timeout: 1s}", .timedOut, false, .failed),
        ("a: {uses: query-ready, with: {source: command, command: [x]}, timeout: 1s, retry: {attempts: 2}}", .timedOut, false, .failed),
    ])
    func timeout(_ stage: String, _ kind: FailureKind, _ retried: Bool, _ outcome: RunOutcome?) throws {
        var m = Self.running("version: 1\nstages:\n  \(stage)\n")
        #expect(m.tick(now: Self.t0 + 999).allSatisfy { if case .wake = $0 { true } else { false } }, "nothing before the deadline")
        let actions = m.tick(now: Self.t0 + 1_000)
        #expect(actions.first == .terminate(Self.group, how: .killAfterGrace))
        let failure = try #require(Self.failure(actions))
        #expect(failure.kind == kind)
        #expect((failure.retryAt != nil) == retried)
        #expect(actions.last == (outcome.map { Action.finish(.finished($0)) } ?? .wake(at: failure.retryAt ?? 0)))
        // The executor's result, when it comes after, has nothing left to end.
        #expect(Self.events(m.attemptEnded(InstanceKey("a"), attempt: 1, .succeeded(OrderedObject()), now: Self.t0 + 1_001)).isEmpty)
    }

    @Test("an attempt's result is classified by the machine", arguments: [
        (StageResult.succeeded(OrderedObject()), "succeeded"),
        (.failed("boom"), "failed"),
        (.failedAs(.rejected, "no"), "failed"),
    ])
    func attemptEnded(_ result: StageResult, _ word: String) {
        var m = Self.running("version: 1\nstages: {a: {run: x}}")
        let actions = m.attemptEnded(InstanceKey("a"), attempt: 1, result, now: Self.t0 + 5)
        #expect(m.instance(InstanceKey("a"))?.status.word == word)
        #expect(actions.last == .finish(.finished(word == "succeeded" ? .succeeded : .failed)))
        if case .failedAs(let kind, _) = result { #expect(m.instance(InstanceKey("a"))?.failureKind == kind) }
        #expect(m.attemptEnded(InstanceKey("a"), attempt: 2, result, now: Self.t0 + 6).isEmpty, "another attempt's result is dropped")
    }

    // A table: a live runner's cancel and a dead runner's (settled by the next one).
    @Test("cancel persists itself first, ends running attempts' groups, and cancels what was to come", arguments: [false, true])
    func cancel(_ runnerDied: Bool) {
        var m = Self.running("version: 1\nstages: {a: {run: x}, b: {run: y}, c: {run: z, needs: a, if: '${{ always() }}'}}")
        let actions = runnerDied
            ? m.runnerStarted(pid: 1, resumed: true, cancelling: "stop", now: Self.t0 + 5) + m.reconcileEnded(now: Self.t0 + 5)
            : m.cancelRequested(reason: "stop", now: Self.t0 + 5)
        let cancel = actions.firstIndex(of: .persist([.cancelRequested(reason: "stop")], at: Self.t0 + 5, sync: true))
        let end = actions.firstIndex(of: .terminate(Self.group, how: runnerDied ? .awaitExit : .killAfterGrace))
        #expect(cancel != nil && end != nil && cancel! < end!, "the cancel is on disk before anything is ended")
        #expect(Self.events(actions).contains(.instanceCancelled(InstanceKey("a"), reason: "ended by cancel")))
        #expect(m.instance(InstanceKey("b"))?.status.word == "cancelled")
        #expect(actions.contains(.start(InstanceKey("c"), attempt: 1)), "`always()` still runs")
        #expect(m.cancelRequested(reason: "again", now: Self.t0 + 6).allSatisfy { if case .persist = $0 { false } else { true } }, "a second cancel changes nothing")
    }

    @Test("a signal persists the interrupt, ends `run` stages' groups with SIGTERM only, and finishes interrupted")
    func signal() {
        var m = Self.running("version: 1\nstages: {a: {run: x}, b: {uses: query-ready, with: {source: command, command: [x]}, needs: []}}")
        _ = m.processStarted(InstanceKey("b"), attempt: 1, pid: 5151, startTime: 1, now: Self.t0 + 2)
        let actions = m.signalled(2, now: Self.t0 + 5)
        #expect(actions == [
            .persist([.interrupted(signal: 2)], at: Self.t0 + 5, sync: true),
            .terminate(Self.group, how: .signal),
            .finish(.interrupted(signal: 2)),
        ])
        #expect(RunStateMachine.Ending.interrupted(signal: 2).exitCode == 130)
        #expect(m.interruptedBy == 2)
    }

    @Test("a resumed runner reconciles what was in flight before anything new starts; a rerun keeps its deadline")
    func reconcile() {
        var m = RunStateMachine(workflow: workflow("version: 1\nstages: {a: {run: x, timeout: 1m}, b: {run: y, needs: []}}"), runId: "test-run")
        m.apply(.instanceStarted(InstanceKey("a"), attempt: 1, deadline: Self.t0 + 60_000), at: Self.t0)
        m.apply(.processStarted(InstanceKey("a"), pid: Self.group.leader, startTime: Self.group.startTime), at: Self.t0)
        let started = m.runnerStarted(pid: 9, resumed: true, now: Self.t0 + 10)
        #expect(started == [
            .persist([.runnerStarted(pid: 9, resumed: true)], at: Self.t0 + 10, sync: false),
            .reconcile(InstanceKey("a"), attempt: 1, process: Self.group),
        ])
        #expect(m.tick(now: Self.t0 + 10).isEmpty, "nothing new starts while settling")
        #expect(m.reconciled(InstanceKey("a"), attempt: 1, .rerun, now: Self.t0 + 20) == [
            .persist([.instanceStarted(InstanceKey("a"), attempt: 1, deadline: Self.t0 + 60_000)], at: Self.t0 + 20, sync: false),
            .start(InstanceKey("a"), attempt: 1),
        ])
        #expect(m.reconcileEnded(now: Self.t0 + 30).contains(.start(InstanceKey("b"), attempt: 1)))
    }
}
