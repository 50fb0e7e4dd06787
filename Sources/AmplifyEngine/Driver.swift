import AmplifyWorkflow
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What launched work needs, shared by the driver's child tasks.
struct DriverContext: Sendable {
    var request: RunRequest
    var runId: String
    var runDirectory: String
    var executors: StageExecutorRegistry
    /// Performs the sends of `settings.notify`; nil when the workflow has no targets.
    var sender: NotificationSender?
    var continuation: AsyncStream<Driver.Input>.Continuation
}

/// Carries out what the `RunStateMachine` decides, in the shape of swift-service-lifecycle's
/// `ServiceGroup`: one loop over one stream of inputs, inside one task group whose child tasks
/// (attempts, refilling queries, timers, delayed kills) report back into that stream. Each input
/// goes to the machine's event method of the same name; the actions it returns are performed in
/// order — journal, start, terminate, wake, finish — and nothing here decides anything.
///
/// Notifications go the same way beside the machine: each journaled event is shown to the
/// `NotificationLedger`, which says what is due; the sends are child tasks of their own (a slow
/// or dead target never holds up the loop), whose outcomes come back as inputs and are journaled.
/// Once the run has finished, the runner waits at most `notificationDrain` for what is still
/// being sent before it leaves.
struct Driver {
    /// An input of the loop: from the world (signals, `amplify-run cancel`) or from a child task.
    enum Input: Sendable {
        case attemptEnded(InstanceKey, attempt: Int, StageResult)
        case processStarted(InstanceKey, attempt: Int, pid: Int32, startTime: UInt64)
        /// `written` is called once the note is in the journal (or dropped: its attempt has ended).
        case note(InstanceKey, attempt: Int, kind: String, fields: OrderedObject, written: (@Sendable () -> Void)? = nil)
        case refillAnswered(stage: String, StageResult)
        /// A timer armed for `at` fired.
        case wake(at: Int64)
        case signal(Int32)
        case cancel(reason: String)
        /// A notification's send ended (`error` nil: delivered).
        case notificationAttempted(NotificationLedger.Delivery, attempt: Int, error: String?)
    }

    var machine: RunStateMachine
    var ledger: NotificationLedger
    let journal: Journal
    let observer: RunObserver
    let context: DriverContext
    /// The time the timer is armed for.
    var timerAt: Int64?
    /// The attempts whose executors are at work, each with the signal that it has ended.
    var working: [InstanceKey: AttemptEnd] = [:]
    /// How long a finished run's runner waits for notifications still being sent (ms).
    static let notificationDrain: Int64 = 5000

    /// Runs the run to its end or to a signal; returns the exit code. On the way out the group's
    /// children are cancelled: timers and delayed kills stop, and attempts still running are left
    /// to themselves (see `unbound`).
    mutating func run(newRun: Bool, cancelling: String?, inputs: AsyncStream<Input>) async throws(JournalError) -> Int32 {
        let result = await withDiscardingTaskGroup(returning: Result<Int32, JournalError>.self) { group in
            defer { group.cancelAll() }
            do throws(JournalError) {
                return .success(try await drive(newRun: newRun, cancelling: cancelling, inputs: inputs, group: &group))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private mutating func drive(newRun: Bool, cancelling: String?, inputs: AsyncStream<Input>, group: inout DiscardingTaskGroup) async throws(JournalError) -> Int32 {
        var now = Processes.now()
        var iterator = inputs.makeAsyncIterator()
        var start: [RunStateMachine.Action] = []
        if newRun { start += machine.runCreated(workflowPath: context.request.workflowPath, now: now) }
        start += machine.runnerStarted(pid: getpid(), resumed: !newRun, cancelling: cancelling, now: now)
        if let ending = try await perform(start, group: &group) { return try await finish(ending, inputs: &iterator, group: &group) }
        if let ending = try await perform(machine.reconcileEnded(now: Processes.now()), group: &group) {
            return try await finish(ending, inputs: &iterator, group: &group)
        }

        while let input = await iterator.next() {
            now = Processes.now()
            let actions: [RunStateMachine.Action]
            var written: (@Sendable () -> Void)?
            switch input {
            case .attemptEnded(let key, let attempt, let result):
                actions = machine.attemptEnded(key, attempt: attempt, result, now: now)
            case .processStarted(let key, let attempt, let pid, let startTime):
                actions = machine.processStarted(key, attempt: attempt, pid: pid, startTime: startTime, now: now)
            case .note(let key, let attempt, let kind, let fields, let whenWritten):
                actions = machine.noteRecorded(key, attempt: attempt, kind: kind, fields: fields, now: now)
                written = whenWritten
            case .refillAnswered(let stage, let result):
                actions = machine.refillAnswered(stage: stage, result, now: now)
            case .wake(let at):
                if timerAt == at { timerAt = nil }
                actions = machine.tick(now: now)
            case .signal(let signal):
                actions = machine.signalled(signal, now: now)
            case .cancel(let reason):
                actions = machine.cancelRequested(reason: reason, now: now)
            case .notificationAttempted(let delivery, let attempt, let error):
                actions = ledger.attempted(delivery, attempt: attempt, error: error, now: now).map { machine.notified($0, now: now) } ?? []
            }
            let ending = try await perform(actions, group: &group)
            written?()
            if let ending { return try await finish(ending, inputs: &iterator, group: &group) }
        }
        return 4
    }

    /// The runner stops: a finished run's notifications still being sent get up to
    /// `notificationDrain` (what is left then is journaled as not delivered); an interrupted run's
    /// are sent by the runner that resumes it. Then the summary.
    private mutating func finish(_ ending: RunStateMachine.Ending, inputs: inout AsyncStream<Input>.Iterator, group: inout DiscardingTaskGroup) async throws(JournalError) -> Int32 {
        if case .finished = ending, !ledger.isIdle {
            let deadline = Processes.now() + Driver.notificationDrain
            drain: while !ledger.isIdle, Processes.now() < deadline {
                sendNotifications(group: &group)
                arm(deadline, group: &group)
                guard let input = await inputs.next() else { break }
                switch input {
                case .notificationAttempted(let delivery, let attempt, let error):
                    let now = Processes.now()
                    if let event = ledger.attempted(delivery, attempt: attempt, error: error, now: now) {
                        _ = try await perform(machine.notified(event, now: now), group: &group)
                    }
                case .signal:
                    break drain
                case .wake(let at):
                    if timerAt == at { timerAt = nil }
                case .note(_, _, _, _, let written):
                    written?()
                case .attemptEnded, .processStarted, .refillAnswered, .cancel:
                    // The run has ended: what its abandoned work says now changes nothing.
                    continue
                }
            }
            let left = ledger.abandon()
            if !left.isEmpty { _ = try await perform(machine.notified(left, now: Processes.now()), group: &group) }
        }
        observer.end(state: machine, exitCode: ending.exitCode)
        return ending.exitCode
    }

    /// Starts the notification sends that are due, each a child task of its own, and arms the
    /// timer for the next one held back by its backoff.
    private mutating func sendNotifications(group: inout DiscardingTaskGroup) {
        guard let sender = context.sender else { return }
        let continuation = context.continuation
        for send in ledger.due(now: Processes.now()) {
            group.addTask {
                // Unbound: a send in flight when the runner leaves is let go, not waited for.
                if let error = await Driver.unbound({ await sender.send(send.notification, to: send.delivery.target) }) {
                    continuation.yield(.notificationAttempted(send.delivery, attempt: send.attempt, error: error?.message))
                }
            }
        }
        if let at = ledger.nextWake { arm(at, group: &group) }
    }

    /// Performs actions in order; returns how the run ends once one is `finish`.
    private mutating func perform(_ actions: [RunStateMachine.Action], group: inout DiscardingTaskGroup) async throws(JournalError) -> RunStateMachine.Ending? {
        var actions = actions
        var i = 0
        while i < actions.count {
            let action = actions[i]
            i += 1
            switch action {
            case .persist(let events, let at, let sync):
                // An attempt ended by the machine (not by its executor: a deadline, a cancel)
                // tells its executor to stop; one ended by its executor needs no telling.
                for event in events {
                    switch event {
                    case .instanceFailed(let key, _, _, _, _), .instanceCancelled(let key, _), .instanceSucceeded(let key, _):
                        working.removeValue(forKey: key)?.signal()
                    default:
                        break
                    }
                }
                for entry in try journal.append(events, at: at, sync: sync) {
                    observer.record(entry, line: entry.event.line(seq: entry.seq, at: entry.at), state: machine)
                    ledger.observe(entry, machine: machine)
                }
            case .start(let key, let attempt):
                launch(key, attempt: attempt, group: &group)
            case .startRefill(let stage):
                launchRefill(stage, group: &group)
            case .reconcile(let key, let attempt, let process):
                guard let job = job(key, attempt: attempt), let stage = machine.stage(of: key) else { continue }
                let outcome = await context.executors.executor(for: stage.kind).reconcile(job, process: process.map { ($0.leader, $0.startTime) })
                actions.insert(contentsOf: machine.reconciled(key, attempt: attempt, outcome, now: Processes.now()), at: i)
            case .terminate(let process, let how):
                switch how {
                case .signal:
                    Processes.signalGroup(process.leader, SIGTERM)
                case .killAfterGrace:
                    Processes.signalGroup(process.leader, SIGTERM)
                    killAfterGrace(process.leader, group: &group)
                case .awaitExit:
                    if Processes.isAlive(pid: process.leader, startTime: process.startTime) {
                        await ChildProcess.terminateGroup(process.leader, startTime: process.startTime, grace: context.request.grace)
                    }
                }
            case .wake(let at):
                arm(at, group: &group)
            case .finish(let ending):
                return ending
            }
        }
        sendNotifications(group: &group)
        return nil
    }

    /// What an executor is given for one attempt.
    private func job(_ key: InstanceKey, attempt: Int) -> StageJob? {
        guard let stage = machine.stage(of: key) else { return nil }
        let item = machine.item(for: key)
        var job = StageJob(key: key, attempt: attempt, stage: stage, context: machine.expressionContext(for: key), runId: context.runId,
                           runDirectory: context.runDirectory, repository: context.request.repository,
                           itemName: key.item.map { RunStateMachine.itemName(item, index: $0) }, environment: context.request.environment,
                           upstreamQuery: machine.nearestAncestor(of: key.stage, kind: .queryReady))
        job.settings = machine.workflow.settings
        job.agents = machine.workflow.agents
        job.notes = machine.notes[key] ?? []
        job.slot = machine.slots[key]
        job.runCancelled = machine.cancelRequested
        if let d = machine.dispatchKey(for: key), d != key, machine.instance(d)?.status == .succeeded { job.session = machine.instance(d)?.outputs }
        let continuation = context.continuation
        job.note = { kind, fields in continuation.yield(.note(key, attempt: attempt, kind: kind, fields: fields)) }
        job.record = { kind, fields in
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let once = Mutex(Optional(done))
                let result = continuation.yield(.note(key, attempt: attempt, kind: kind, fields: fields, written: { once.withLock { $0.take() }?.resume() }))
                // The runner has stopped reading: nothing will be written, and nothing waits.
                if case .terminated = result { once.withLock { $0.take() }?.resume() }
            }
        }
        return job
    }

    /// Starts the executor of an attempt whose start is in the journal, as a child task.
    private mutating func launch(_ key: InstanceKey, attempt: Int, group: inout DiscardingTaskGroup) {
        guard let job = job(key, attempt: attempt), let stage = machine.stage(of: key) else { return }
        working[key] = job.ended
        let executor = context.executors.executor(for: stage.kind)
        let continuation = context.continuation
        group.addTask {
            let result = await Driver.unbound {
                await executor.execute(job) { pid, startTime in
                    continuation.yield(.processStarted(key, attempt: attempt, pid: pid, startTime: startTime))
                }
            }
            if let result { continuation.yield(.attemptEnded(key, attempt: attempt, result)) }
        }
    }

    /// Asks a refilling query again, as a child task.
    private func launchRefill(_ stageId: String, group: inout DiscardingTaskGroup) {
        guard var refill = job(InstanceKey(stageId), attempt: 0), let stage = machine.stage(of: InstanceKey(stageId)) else { return }
        refill.seenItemIds = machine.seenItemIds(of: stageId)
        let job = refill
        let executor = context.executors.executor(for: stage.kind)
        let continuation = context.continuation
        group.addTask {
            let result = await Driver.unbound { await executor.execute(job) { _, _ in } }
            if let result { continuation.yield(.refillAnswered(stage: stageId, result)) }
        }
    }

    /// SIGKILL to what is left of a group once the grace has passed.
    private func killAfterGrace(_ pgid: Int32, group: inout DiscardingTaskGroup) {
        let grace = context.request.grace
        group.addTask {
            try? await Task.sleep(for: grace)
            if !Task.isCancelled, Processes.groupExists(pgid) { Processes.signalGroup(pgid, SIGKILL) }
        }
    }

    /// A child that reports `.wake(at:)` at `at`, unless one that comes sooner is armed. A timer
    /// armed earlier for a later time still fires; the machine finds nothing to do then.
    private mutating func arm(_ at: Int64, group: inout DiscardingTaskGroup) {
        if let timerAt, timerAt <= at { return }
        timerAt = at
        let continuation = context.continuation
        let delay = max(0, at - Processes.now())
        group.addTask {
            try? await Task.sleep(for: .milliseconds(delay + 1))
            if !Task.isCancelled { continuation.yield(.wake(at: at)) }
        }
    }

    /// Runs an executor so that the child task awaiting it can be cancelled without waiting for
    /// it: when the runner leaves (a signal, or the run's end while an abandoned wait goes on), an
    /// agent's wait may last hours and a landing merge must not be cut short. Cancelling returns nil
    /// at once and leaves the work to finish on its own (its result is dropped); the work is never
    /// cancelled, so no agent's process is tied to task cancellation.
    static func unbound<T: Sendable>(_ work: @escaping @Sendable () async -> T) async -> T? {
        let handoff = Handoff<T>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
                guard handoff.wait(continuation) else { return }
                Task {
                    let value = await work()
                    handoff.resume(value)
                }
            }
        } onCancel: {
            handoff.resume(nil)
        }
    }

    /// The one continuation `unbound` resumes, once: with the work's result or with nil on cancel.
    private final class Handoff<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T?, Never>?
            var resumed = false
        }
        private let state = Mutex(State())

        /// Keeps the continuation; false (and resumed with nil) when it was cancelled already.
        func wait(_ continuation: CheckedContinuation<T?, Never>) -> Bool {
            let cancelled = state.withLock { s -> Bool in
                if s.resumed { return true }
                s.continuation = continuation
                return false
            }
            if cancelled { continuation.resume(returning: nil) }
            return !cancelled
        }

        func resume(_ value: T?) {
            state.withLock { s -> CheckedContinuation<T?, Never>? in
                s.resumed = true
                return s.continuation.take()
            }?.resume(returning: value)
        }
    }
}
