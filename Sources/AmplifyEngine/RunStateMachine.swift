import AmplifyWorkflow
import DequeModule

/// The run as a pure state machine over stage instances, in the style of swift-nio's state
/// machines: no I/O, no clock of its own. Every decision about the run is made here; the driver
/// (`Driver`) only carries out the actions it is given.
///
/// Events in, actions out: one `mutating func` per input, named after it — `runCreated`,
/// `runnerStarted`, `reconciled`, `reconcileEnded`, `processStarted`, `noteRecorded`,
/// `attemptEnded`, `refillAnswered`, `tick` (time passed), `cancelRequested`, `signalled` — each
/// returning the `Action`s to carry out in order: `persist` events in the journal, then `start`
/// attempts, `startRefill`, `reconcile`, `terminate` process groups, `wake` the machine at a time,
/// `finish`.
///
/// **Where is a timeout decided?** Here, in three steps: a stage's `timeout` becomes the attempt's
/// deadline when the machine starts it (`instanceStarted(…, deadline:)`, journaled, so time the
/// runner was down counts); `wake(at:)` asks the driver to come back at the nearest deadline;
/// and `deadlinesPassed(now:)`, run at every event, ends each attempt past its deadline —
/// `terminate` of its process group, and an `instanceFailed` whose kind is `timed-out` (a `run`
/// stage's timeout is a plain failure, retried like one). No executor keeps a timer of its own.
///
/// It is event-sourced. `apply(_:at:)` is the only way its state changes: each event method
/// applies the events it decides on and hands them to the driver to `persist`, and a replay of
/// the journal (any prefix of it) through `apply` rebuilds exactly the state the live run had.
/// The cost of an event does not grow with the size of the run: only instances an event can
/// have made ready are looked at again (the `dirty` set).
public struct RunStateMachine: Sendable {
    /// Where an instance is.
    public enum Status: Sendable, Equatable {
        case pending
        case running(attempt: Int, deadline: Int64?)
        /// A failed attempt waiting for its next one.
        case retrying(nextAttempt: Int, at: Int64)
        case succeeded
        case failed(reason: String)
        case skipped(reason: String, afterFailure: Bool)
        case cancelled(reason: String)

        public var isRunning: Bool {
            if case .running = self { return true }
            return false
        }

        public var isEnded: Bool {
            switch self {
            case .succeeded, .failed, .skipped, .cancelled: return true
            case .pending, .running, .retrying: return false
            }
        }

        /// The word `status` and the summary show.
        public var word: String {
            switch self {
            case .pending: return "pending"
            case .running: return "running"
            case .retrying: return "retrying"
            case .succeeded: return "succeeded"
            case .failed: return "failed"
            case .skipped: return "skipped"
            case .cancelled: return "cancelled"
            }
        }
    }

    /// One instance's state.
    public struct Instance: Sendable, Equatable {
        public var status: Status = .pending
        public var outputs = OrderedObject()
        public var attempts = 0
        public var startedAt: Int64?
        public var endedAt: Int64?
        public var process: (pid: Int32, startTime: UInt64)?
        /// With `.failed`: rejected, conflict, timed out, or a plain failure.
        public var failureKind = FailureKind.failed

        public static func == (a: Instance, b: Instance) -> Bool {
            a.status == b.status && a.outputs == b.outputs && a.attempts == b.attempts && a.startedAt == b.startedAt && a.failureKind == b.failureKind
                && a.endedAt == b.endedAt && a.process?.pid == b.process?.pid && a.process?.startTime == b.process?.startTime
        }
    }

    /// The items of a `for-each` stage.
    public struct Source: Sendable, Equatable {
        public enum State: Sendable, Equatable {
            case waiting
            case expanded
            case skipped(reason: String)
            case failed(reason: String)
        }
        public var state: State = .waiting
        public var items: [Value] = []
        public var closed = false

        var isSettled: Bool {
            switch state {
            case .waiting: return false
            case .expanded: return closed
            case .skipped, .failed: return true
            }
        }
    }

    /// What the stage needs, worked out once from the workflow.
    struct StageInfo: Sendable {
        var stage: Stage
        var needs: [Int]
        var dependants: [Int] = []
        var source: Int?
        var conditionUsesStatus: Bool
        var ancestors: [Int]
    }

    public let workflow: Workflow
    public let runId: String
    let stages: [StageInfo]
    let index: [String: Int]
    /// Stage numbers in dependency order (the plan's).
    let order: [Int]
    /// For `success()`, `env.*` and the rest: what expressions see besides stages and items.
    public var vars: OrderedObject
    public let environment: [String: String]
    /// Processes of `run` stages at once.
    public var maxProcesses: Int

    public private(set) var once: [Int: Instance] = [:]
    public private(set) var perItem: [Int: [Instance]] = [:]
    public private(set) var sources: [Int: Source] = [:]
    public private(set) var cancelRequested = false
    public private(set) var outcome: RunOutcome?
    public private(set) var interruptedBy: Int32?
    public private(set) var eventCount = 0
    /// How the run's notifications went (`notified` events): for `status` and the summary.
    public private(set) var notifications = NotificationTally()
    /// What instances reported while they ran (questions, warnings), in journal order.
    public private(set) var notes: [InstanceKey: [(kind: String, fields: OrderedObject)]] = [:]
    /// What each instance's agent reported spending (a `cost` output, or a `usage` note of a
    /// failed or rejected one): the run's known cost is their sum (`settings.budget`).
    private var spentBy: [InstanceKey: Double] = [:]
    /// The run's known cost, in dollars.
    public var spent: Double { spentBy.values.reduce(0, +) }
    /// The run's budget is used up: nothing new is dispatched.
    public var overBudget: Bool { workflow.settings.budget?.cost.map { spent >= $0 } ?? false }
    /// Items were skipped for the run's budget: the run fails (exit 1).
    private var skippedForBudget = false
    static let budgetReason = "budget"

    /// Items of each dispatch stage holding a live agent session: at most `settings.concurrency`.
    public private(set) var liveSessions = Set<InstanceKey>()
    /// `AMPLIFY_SLOT` of each live session: 0 … concurrency−1, freed slots reused.
    public private(set) var slots: [InstanceKey: Int] = [:]

    /// A `query-ready` stage with `refill: true`: asked again while pipelines run.
    struct Refill: Sendable {
        var interval: Int64
        var maxItems: Int?
        /// The for-each stages whose items it gives.
        var fed: [Int]
        var seen = Set<String>()
        var inFlight = false
        var lastStart: Int64 = 0
        /// `pipelinesEnded` when the last query started: a query made after the last pipeline ended closes the list.
        var endsAtStart = 0
        /// The last query brought nothing new.
        var dry = false
    }
    private var refills: [Int: Refill] = [:]
    /// Unended per-item instances of each item, per for-each stage: an item's pipeline ends at 0.
    private var unendedPerItem: [Int: [Int]] = [:]
    /// Items of each for-each stage whose pipeline has not ended (kept, not counted, per event).
    private var openPipelines: [Int: Int] = [:]
    private var pipelinesEnded = 0
    /// The dispatch stage of each for-each stage's items.
    private var dispatchOf: [Int: Int] = [:]

    private var dirty = Set<InstanceKey>()
    private var dirtySources = Set<Int>()
    /// Instances cleared to start, waiting only for a concurrency slot: a queue per stage, so
    /// that instances held back by a limit are not looked at again on every event.
    private var ready: [Int: Deque<InstanceKey>] = [:]
    private var queued = Set<InstanceKey>()
    private let environmentValue: Value
    /// Running instances and their deadlines, and instances waiting for a retry: kept apart so
    /// that nothing per event scans every instance.
    private var running: [InstanceKey: Int64?] = [:]
    private var retrying: [InstanceKey: Int64] = [:]
    private var runningPerStage: [Int: Int] = [:]
    /// Instances of each per-item stage not ended yet: a fan-in stage is looked at only when it reaches 0.
    private var unendedPerStage: [Int: Int] = [:]
    /// A runner is settling what the journal shows in flight (`runnerStarted` … `reconcileEnded`):
    /// nothing new starts meanwhile.
    private var settling = false
    private var runningProcesses = 0
    private var unended = 0

    public init(workflow: Workflow, runId: String, vars: OrderedObject? = nil, environment: [String: String] = [:], maxProcesses: Int = 4) {
        self.workflow = workflow
        self.runId = runId
        self.vars = vars ?? workflow.vars
        self.environment = environment
        self.environmentValue = .object(OrderedObject(environment.sorted { $0.key < $1.key }.map { ($0.key, Value.string($0.value)) }))
        self.maxProcesses = workflow.settings.maxProcesses ?? maxProcesses
        // The DAG as the checker compiled it (`Plan`): nothing about the graph is worked out again here.
        let graph = workflow.graph
        self.index = graph.index
        let infos = workflow.stages.enumerated().map { i, stage -> StageInfo in
            let node = graph.nodes[i]
            return StageInfo(stage: stage, needs: node.needs, dependants: node.dependants, source: node.itemSource,
                             conditionUsesStatus: node.conditionUsesStatus, ancestors: node.ancestors)
        }
        self.stages = infos
        self.order = graph.order
        for (i, info) in infos.enumerated() {
            let node = graph.nodes[i]
            if let d = node.dispatch { dispatchOf[i] = d }
            if let r = node.refill { refills[i] = Refill(interval: r.interval, maxItems: r.maxItems, fed: r.fed) }
            if info.stage.forEach != nil {
                sources[i] = Source()
                dirtySources.insert(i)
            } else if info.source == nil {
                once[i] = Instance()
                unended += 1
                dirty.insert(InstanceKey(info.stage.id))
            }
        }
    }

    // MARK: - Events in, actions out

    /// What the driver carries out, in the order given, without deciding anything itself.
    public enum Action: Sendable, Equatable {
        /// Journal these events, which happened at `at`, in one write, and show them. The machine
        /// has taken them in already. With `sync` they are on disk before the next action
        /// (write-ahead: a side effect that is not safe to repeat starts only once its start is).
        case persist([RunEvent], at: Int64, sync: Bool)
        /// Start an attempt (its `instanceStarted` is persisted before); its end comes back as
        /// `attemptEnded`, the processes it starts as `processStarted`, its notes as `noteRecorded`.
        case start(InstanceKey, attempt: Int)
        /// Ask a refilling query again; its answer comes back as `refillAnswered`.
        case startRefill(stage: String)
        /// Ask the executor how an attempt that a dead runner left in flight stands; the answer
        /// comes back as `reconciled`.
        case reconcile(InstanceKey, attempt: Int, process: ProcessGroup?)
        /// End a process group, the way `how` says.
        case terminate(ProcessGroup, how: Termination)
        /// Come back with `tick` at this time (ms since 1970) if no input comes first.
        case wake(at: Int64)
        /// The runner stops, with `ending.exitCode`.
        case finish(Ending)
    }

    /// A process group: its leader and the leader's start time (a reused pid is not the same process).
    public struct ProcessGroup: Sendable, Hashable {
        public var leader: Int32
        public var startTime: UInt64

        public init(leader: Int32, startTime: UInt64) {
            self.leader = leader
            self.startTime = startTime
        }
    }

    /// How a process group is ended.
    public enum Termination: Sendable, Equatable {
        /// SIGTERM only; the runner goes on (a `run` stage on interrupt: it runs again on resume).
        case signal
        /// SIGTERM now, SIGKILL after the grace to whatever of the group is left; the runner goes on.
        case killAfterGrace
        /// If the leader still lives: SIGTERM, up to the grace for it to go, then SIGKILL; the runner waits.
        case awaitExit
    }

    /// Why the runner stops.
    public enum Ending: Sendable, Equatable {
        case finished(RunOutcome)
        /// A signal: the run is checkpointed and resumable.
        case interrupted(signal: Int32)

        /// The process exit code (README, "Exit codes").
        public var exitCode: Int32 {
            switch self {
            case .finished(let outcome): return outcome.exitCode
            case .interrupted(let signal): return 128 + signal
            }
        }
    }

    /// A new run: its first event.
    public mutating func runCreated(workflowPath: String, now: Int64) -> [Action] {
        record([.runStarted(run: runId, workflow: workflowPath, name: workflow.name, vars: vars)], now: now, sync: true)
    }

    /// A runner took the run (after replaying its journal, when `resumed`). With `cancelling`, the
    /// run is cancelled first (`cancel` of a run whose runner died). Then each attempt the journal
    /// shows in flight is to be reconciled; nothing new starts until `reconcileEnded`.
    public mutating func runnerStarted(pid: Int32, resumed: Bool, cancelling reason: String? = nil, now: Int64) -> [Action] {
        settling = true
        var actions = record([.runnerStarted(pid: pid, resumed: resumed)], now: now, sync: false)
        if let reason { actions += cancel(reason: reason, now: now, runnerDied: true) }
        for (key, inst) in runningInstances {
            guard case .running(let attempt, _) = inst.status else { continue }
            actions.append(.reconcile(key, attempt: attempt, process: inst.process.map { ProcessGroup(leader: $0.pid, startTime: $0.startTime) }))
        }
        return actions
    }

    /// How an attempt a dead runner left in flight stands, as its executor found: run it again
    /// (with the deadline it had), or end it as it ended.
    public mutating func reconciled(_ key: InstanceKey, attempt: Int, _ outcome: Reconciliation, now: Int64) -> [Action] {
        guard case .running(attempt, let deadline)? = instance(key)?.status else { return [] }
        switch outcome {
        case .rerun:
            return record([.instanceStarted(key, attempt: attempt, deadline: deadline)], now: now) + [.start(key, attempt: attempt)]
        case .ended(let result):
            return record([ended(key, result, now: now)], now: now)
        }
    }

    /// Every attempt in flight is reconciled: refilling queries in flight are asked again, every
    /// instance is looked at once more, and the run goes on.
    public mutating func reconcileEnded(now: Int64) -> [Action] {
        settling = false
        let refills = refillsInFlight.map { Action.startRefill(stage: $0) }
        markAllPendingDirty()
        return refills + advance(now: now)
    }

    /// An attempt started a process: its group is what a timeout, a cancel or a resume ends.
    public mutating func processStarted(_ key: InstanceKey, attempt: Int, pid: Int32, startTime: UInt64, now: Int64) -> [Action] {
        guard case .running(attempt, _)? = instance(key)?.status else { return advance(now: now) }
        return advance(now: now, after: [.processStarted(key, pid: pid, startTime: startTime)])
    }

    /// An attempt reported something (a question, a warning).
    public mutating func noteRecorded(_ key: InstanceKey, attempt: Int, kind: String, fields: OrderedObject, now: Int64) -> [Action] {
        guard case .running(attempt, _)? = instance(key)?.status else { return advance(now: now) }
        return advance(now: now, after: [.note(key, kind: kind, fields: fields)])
    }

    /// An attempt's executor returned. An attempt that is no longer running (it timed out, or was
    /// cancelled, before it returned) has ended already: its result is dropped.
    public mutating func attemptEnded(_ key: InstanceKey, attempt: Int, _ result: StageResult, now: Int64) -> [Action] {
        guard case .running(attempt, _)? = instance(key)?.status else { return advance(now: now) }
        return advance(now: now, after: [ended(key, result, now: now)])
    }

    /// A refilling query answered.
    public mutating func refillAnswered(stage: String, _ result: StageResult, now: Int64) -> [Action] {
        let event: RunEvent
        switch result {
        case .succeeded(let outputs):
            let items: [Value] = if case .list(let l)? = outputs["items"] { l } else { [] }
            event = .refilled(stage: stage, items: items, error: nil)
        case .failed(let reason), .failedAs(_, let reason):
            event = .refilled(stage: stage, items: [], error: reason)
        }
        return advance(now: now, after: [event])
    }

    /// Notifications' sends ended (`NotificationLedger` decided they have): journaled. They change
    /// nothing of the run, which may have finished already.
    public mutating func notified(_ events: [RunEvent], now: Int64) -> [Action] {
        events.isEmpty ? [] : record(events, now: now)
    }

    public mutating func notified(_ event: RunEvent, now: Int64) -> [Action] {
        notified([event], now: now)
    }

    /// Time passed (the `wake` came, or any moment): attempts past their deadline end, retries
    /// whose time came start, refills that are due are asked.
    public mutating func tick(now: Int64) -> [Action] {
        advance(now: now)
    }

    /// `amplify-run cancel`: running attempts end (their process groups too, SIGKILL after the
    /// grace), but a landing merge, which is let finish; agents whose dispatch ended and whose wait
    /// has not started are ended; pending instances are cancelled as they come up (those whose
    /// `if` asks for `cancelled()` or `always()` still run).
    public mutating func cancelRequested(reason: String, now: Int64) -> [Action] {
        cancel(reason: reason, now: now, runnerDied: false) + advance(now: now)
    }

    /// SIGINT, SIGTERM or SIGHUP: checkpoint, end the process groups of `run` stages (they run again
    /// on resume), and stop. Agents go on working; git and bd calls in progress finish on their own.
    public mutating func signalled(_ signal: Int32, now: Int64) -> [Action] {
        var actions = record([.interrupted(signal: signal)], now: now, sync: true)
        for (key, inst) in runningInstances where stage(of: key)?.kind == .run {
            if let p = inst.process { actions.append(.terminate(ProcessGroup(leader: p.pid, startTime: p.startTime), how: .signal)) }
        }
        return actions + [.finish(.interrupted(signal: signal))]
    }

    /// A merge instance's latest note about its landing (SPEC §10): where it is in its stage's
    /// queue (`queued`, `batch`, `verifying`, `verified`), or the pull request it waits for.
    func landingNote(_ key: InstanceKey) -> (kind: String, fields: OrderedObject)? {
        notes[key]?.last(where: { RunStateMachine.landingNoteKinds.contains($0.kind) })
    }

    /// The kinds of the notes about a merge's landing (`RunReport.landingText` puts them in words).
    public static let landingNoteKinds: Set<String> = ["queued", "batch", "verifying", "verified", "pull-request"]

    /// A merge instance that waits rather than lands: one of `via: pull-request`, or one whose
    /// latest note says it is in the merge queue, not yet taken into a batch.
    func waitsToLand(_ key: InstanceKey) -> Bool {
        stage(of: key)?.literal(MergeParameters.via) == "pull-request" || landingNote(key)?.kind == "queued"
    }

    private mutating func cancel(reason: String, now: Int64, runnerDied: Bool) -> [Action] {
        guard !cancelRequested else { return [] }
        var actions = record([.cancelRequested(reason: reason)], now: now, sync: true)
        for (key, inst) in runningInstances {
            // A landing merge is let finish: its base moves whole or not at all. One that only
            // waits — in its stage's queue, not yet in a batch, or for a pull request that GitHub
            // lands — holds nothing, and ends.
            if stage(of: key)?.kind == .merge, !waitsToLand(key) { continue }
            if let p = inst.process {
                // A dead runner's processes may be gone, and its pids reused: checked, and waited for.
                actions.append(.terminate(ProcessGroup(leader: p.pid, startTime: p.startTime), how: runnerDied ? .awaitExit : .killAfterGrace))
            }
            actions += record([.instanceCancelled(key, reason: "ended by cancel")], now: now)
        }
        // Agents whose dispatch has ended but whose wait has not started yet.
        for key in liveSessions.sorted() {
            guard let p = instance(key)?.process else { continue }
            actions.append(.terminate(ProcessGroup(leader: p.pid, startTime: p.startTime), how: .awaitExit))
        }
        return actions
    }

    /// What happens now that `events` (taken in already) happened: attempts past their deadline
    /// end, then everything `decideEvents` finds, persisted in one write together; then the
    /// starts, and the run's end or the next time to look again.
    private mutating func advance(now: Int64, after events: [RunEvent] = []) -> [Action] {
        for e in events { apply(e, at: now) }
        guard outcome == nil, !settling else { return events.isEmpty ? [] : [.persist(events, at: now, sync: mustSync(events))] }
        var batch = events
        var actions = deadlinesPassed(now: now, into: &batch)
        let decided = decideEvents(now: now)
        batch += decided
        if !batch.isEmpty { actions.append(.persist(batch, at: now, sync: mustSync(batch))) }
        for e in decided {
            if case .instanceStarted(let key, let attempt, _) = e { actions.append(.start(key, attempt: attempt)) }
            if case .refillStarted(let stage) = e { actions.append(.startRefill(stage: stage)) }
        }
        if let outcome {
            actions.append(.finish(.finished(outcome)))
        } else if let next = nextWakeup {
            actions.append(.wake(at: next))
        }
        return actions
    }

    /// Where a timeout is decided: each attempt past its deadline has its process group ended and
    /// fails as `timed-out` — a `run` stage's as a plain failure, which its `retry` may repeat.
    private mutating func deadlinesPassed(now: Int64, into events: inout [RunEvent]) -> [Action] {
        var actions: [Action] = []
        for key in expired(now: now) {
            guard let inst = instance(key), let stage = stage(of: key) else { continue }
            if let p = inst.process { actions.append(.terminate(ProcessGroup(leader: p.pid, startTime: p.startTime), how: .killAfterGrace)) }
            let kind: FailureKind = stage.kind == .run ? .failed : .timedOut
            let e = failure(key, reason: "timed out after \(stage.timeout?.description ?? "its timeout")", now: now, kind: kind)
            apply(e, at: now)
            events.append(e)
        }
        return actions
    }

    /// How an attempt's result is journaled: a success, or a failure of its kind (with a retry
    /// while attempts remain, for a plain failure).
    private func ended(_ key: InstanceKey, _ result: StageResult, now: Int64) -> RunEvent {
        switch result {
        case .succeeded(let outputs): return .instanceSucceeded(key, outputs: outputs)
        case .failed(let reason): return failure(key, reason: reason, now: now)
        case .failedAs(let kind, let reason): return failure(key, reason: reason, now: now, kind: kind)
        }
    }

    /// Applies events and asks for them to be persisted in one write.
    private mutating func record(_ events: [RunEvent], now: Int64, sync: Bool? = nil) -> [Action] {
        for e in events { apply(e, at: now) }
        return [.persist(events, at: now, sync: sync ?? mustSync(events))]
    }

    /// Write-ahead: a batch that starts a side effect not safe to repeat (anything but `run` and
    /// `query-ready`, which are at-least-once) is on disk before the effect starts.
    private func mustSync(_ events: [RunEvent]) -> Bool {
        events.contains { e in
            if e.needsSync { return true }
            if case .instanceStarted(let key, _, _) = e, let kind = stage(of: key)?.kind { return kind != .run && kind != .queryReady }
            return false
        }
    }

    // MARK: - Reading the state

    public func instance(_ key: InstanceKey) -> Instance? {
        guard let s = index[key.stage] else { return nil }
        if let item = key.item { return perItem[s]?.indices.contains(item) == true ? perItem[s]![item] : nil }
        return once[s]
    }

    public func stage(of key: InstanceKey) -> Stage? {
        index[key.stage].map { stages[$0].stage }
    }

    /// Every instance in pipeline order: the once-stages before the per-item ones, then item by
    /// item, then the once-stages after them (fan-in).
    public var allInstances: [(key: InstanceKey, instance: Instance)] {
        var out: [(InstanceKey, Instance)] = []
        let firstPerItem = order.firstIndex { stages[$0].source != nil } ?? order.count
        for s in order[..<firstPerItem] { if let inst = once[s] { out.append((InstanceKey(stages[s].stage.id), inst)) } }
        let perItemOrder = order.filter { stages[$0].source != nil }
        let maxItems = perItem.values.map(\.count).max() ?? 0
        for item in 0..<maxItems {
            for s in perItemOrder {
                if let list = perItem[s], item < list.count { out.append((InstanceKey(stages[s].stage.id, item: item), list[item])) }
            }
        }
        for s in order[firstPerItem...] { if let inst = once[s] { out.append((InstanceKey(stages[s].stage.id), inst)) } }
        return out
    }

    /// The nearest stage of a kind that `stageId` depends on (directly or through others).
    public func nearestAncestor(of stageId: String, kind: StageKind) -> Stage? {
        guard let s = index[stageId] else { return nil }
        return stages[s].ancestors.reversed().map { stages[$0].stage }.first { $0.kind == kind }
    }

    /// The items of the `for-each` stage a per-item stage runs over.
    public func items(of stageId: String) -> [Value] {
        guard let s = index[stageId], let source = stages[s].source ?? (sources[s] != nil ? s : nil) else { return [] }
        return sources[source]?.items ?? []
    }

    /// The item an instance works on.
    public func item(for key: InstanceKey) -> Value? {
        guard let i = key.item else { return nil }
        let list = items(of: key.stage)
        return list.indices.contains(i) ? list[i] : nil
    }

    /// A short name for an item: its `id` field, or the item itself when it is a scalar.
    public static func itemName(_ item: Value?, index: Int) -> String {
        switch item {
        case .object(let o)?:
            if let id = o["id"], id != .null { return id.renderedText }
            return "#\(index)"
        case .string(let s)?: return s
        case .int, .double, .bool: return item!.renderedText
        case .null?, .list?, nil: return "#\(index)"
        }
    }

    public var isFinished: Bool { outcome != nil }

    /// Instances whose attempt has passed its deadline.
    public func expired(now: Int64) -> [InstanceKey] {
        running.compactMap { key, deadline in deadline.flatMap { $0 <= now ? key : nil } }.sorted()
    }

    /// The instances that are running now.
    public var runningInstances: [(key: InstanceKey, instance: Instance)] {
        running.keys.sorted().compactMap { key in instance(key).map { (key, $0) } }
    }

    /// When `decide` next has something to do that only time brings (a retry, a deadline, a refill).
    public var nextWakeup: Int64? {
        let deadlines = running.values.compactMap { $0 }
        let refillTimes = refills.filter { s, r in
            !r.inFlight && once[s]?.status == .succeeded && r.fed.contains { sources[$0]?.state == .expanded && sources[$0]?.closed == false }
        }.map { $0.value.lastStart + $0.value.interval }
        return (deadlines + Array(retrying.values) + refillTimes).min()
    }

    /// Refilling queries started and not answered (in flight when a runner died: asked again).
    public var refillsInFlight: [String] {
        refills.filter(\.value.inFlight).keys.sorted().map { stages[$0].stage.id }
    }

    /// The ids of items this run has seen from a refilling query.
    public func seenItemIds(of stageId: String) -> Set<String> {
        index[stageId].flatMap { refills[$0]?.seen } ?? []
    }

    /// The dispatch instance of the item an instance works on (where its session is).
    public func dispatchKey(for key: InstanceKey) -> InstanceKey? {
        guard let item = key.item, let s = index[key.stage], let src = stages[s].source, let d = dispatchOf[src] else { return nil }
        return InstanceKey(stages[d].stage.id, item: item)
    }

    // MARK: - Applying events (the only way state changes)

    /// Applies one event that happened at `at` (ms since 1970).
    public mutating func apply(_ event: RunEvent, at: Int64 = 0) {
        eventCount += 1
        switch event {
        case .runStarted, .runnerStarted:
            break
        case .itemsAdded(let stageId, let items, let closed):
            guard let s = index[stageId], var source = sources[s] else { return }
            let first = source.items.count
            source.items.append(contentsOf: items)
            source.state = .expanded
            source.closed = closed
            sources[s] = source
            var counts = unendedPerItem[s] ?? []
            let perItemStages = stages.indices.filter { stages[$0].source == s }.count
            counts.append(contentsOf: repeatElement(perItemStages, count: items.count))
            unendedPerItem[s] = counts
            if perItemStages > 0 { openPipelines[s, default: 0] += items.count }
            if let ri = refills.first(where: { $0.value.fed.contains(s) })?.key {
                for item in items { if case .string(let id)? = item["id"] { refills[ri]!.seen.insert(id) } }
            }
            for (i, info) in stages.enumerated() where info.source == s {
                var list = perItem[i] ?? []
                for item in first..<(first + items.count) {
                    list.append(Instance())
                    unended += 1
                    unendedPerStage[i, default: 0] += 1
                    if i == s { markDirty(InstanceKey(info.stage.id, item: item)) }
                }
                perItem[i] = list
            }
            if closed { markFanInDependants(ofSource: s) }
        case .expansionEnded(let stageId, let failed, let reason):
            guard let s = index[stageId], var source = sources[s] else { return }
            source.state = failed ? .failed(reason: reason) : .skipped(reason: reason)
            source.closed = true
            sources[s] = source
            markFanInDependants(ofSource: s)
        case .instanceStarted(let key, let attempt, let deadline):
            let old = update(key) { inst in
                inst.status = .running(attempt: attempt, deadline: deadline)
                inst.attempts = attempt
                inst.process = nil
                if inst.startedAt == nil { inst.startedAt = at }
            }
            if let old, !old.isRunning { countRunning(key, +1) }
            if old != nil {
                running[key] = deadline
                retrying[key] = nil
                if stages[index[key.stage]!].stage.kind == .dispatch, liveSessions.insert(key).inserted {
                    let used = Set(slots.values)
                    slots[key] = (0...).first { !used.contains($0) }
                }
            }
            queued.remove(key)
        case .processStarted(let key, let pid, let startTime):
            update(key) { $0.process = (pid, startTime) }
        case .instanceSucceeded(let key, let outputs):
            end(key, .succeeded, at: at) { $0.outputs = outputs }
            if let cost = RunReport.number(outputs["cost"]), cost.isFinite, cost >= 0 { spentBy[key] = cost }
            if key.item == nil, let s = index[key.stage], var r = refills[s] {
                // The first query: refills count from its start.
                r.lastStart = once[s]?.startedAt ?? at
                refills[s] = r
            }
        case .instanceFailed(let key, let attempt, let reason, let retryAt, let kind):
            if let retryAt {
                let old = update(key) { $0.status = .retrying(nextAttempt: attempt + 1, at: retryAt) }
                if old?.isRunning == true { countRunning(key, -1) }
                if old != nil {
                    running[key] = nil
                    retrying[key] = retryAt
                }
            } else {
                end(key, .failed(reason: reason), at: at) { $0.failureKind = kind }
            }
        case .instanceSkipped(let key, let reason, let afterFailure):
            end(key, .skipped(reason: reason, afterFailure: afterFailure), at: at) { _ in }
            if reason.hasPrefix(RunStateMachine.budgetReason) { skippedForBudget = true }
        case .instanceCancelled(let key, let reason):
            end(key, .cancelled(reason: reason), at: at) { _ in }
        case .cancelRequested:
            cancelRequested = true
            markAllPendingDirty()
        case .note(let key, let kind, let fields):
            notes[key, default: []].append((kind, fields))
            // `usage`: what a failed or rejected agent reported; `spent`: a working agent's cost so far.
            if kind == "usage" || kind == "spent", let cost = RunReport.number(fields["cost"]), cost.isFinite, cost >= 0 { spentBy[key] = cost }
            // A usage-limit pause does not count against the stage's timeout: the deadline moves
            // by the pause (journaled with the note, so a replay moves it the same).
            if kind == "paused", case .int(let until)? = fields["until"], Int64(until) > at,
               case .running(let attempt, let deadline?)? = instance(key)?.status {
                let moved = deadline + (Int64(until) - at)
                update(key) { $0.status = .running(attempt: attempt, deadline: moved) }
                running[key] = moved
            }
        case .refillStarted(let stageId):
            guard let s = index[stageId], var r = refills[s] else { return }
            r.inFlight = true
            r.lastStart = at
            r.endsAtStart = pipelinesEnded
            refills[s] = r
        case .refilled(let stageId, let items, _):
            guard let s = index[stageId], var r = refills[s] else { return }
            r.inFlight = false
            var fresh: [Value] = []
            for item in items {
                guard case .string(let id)? = item["id"], !r.seen.contains(id) else { continue }
                if let m = r.maxItems, r.seen.count + fresh.count >= m { break }
                fresh.append(item)
                r.seen.insert(id)
            }
            r.dry = fresh.isEmpty
            refills[s] = r
            if !fresh.isEmpty, var inst = once[s] {
                // `outputs.items` grows in first-seen order.
                var all: [Value] = []
                if case .list(let l)? = inst.outputs["items"] { all = l }
                all += fresh
                inst.outputs["items"] = .list(all)
                inst.outputs["count"] = .int(all.count)
                once[s] = inst
            }
            for f in r.fed { dirtySources.insert(f) }
        case .interrupted(let signal):
            interruptedBy = signal
        case .runFinished(let o):
            outcome = o
        case .notified(let id, let event, let target, _, let error):
            // Counted for the views (`status`, the summary); what is due is `NotificationLedger`'s.
            if let error { notifications.failed.append(NotificationTally.Failure(id: id, event: event, target: target, error: error)) } else { notifications.delivered += 1 }
        }
    }

    /// Changes an instance in place; returns its status before the change (nil: no such instance).
    @discardableResult
    private mutating func update(_ key: InstanceKey, _ body: (inout Instance) -> Void) -> Status? {
        guard let s = index[key.stage] else { return nil }
        if let item = key.item {
            guard perItem[s]?.indices.contains(item) == true else { return nil }
            let old = perItem[s]![item].status
            body(&perItem[s]![item])
            return old
        } else if once[s] != nil {
            let old = once[s]!.status
            body(&once[s]!)
            return old
        }
        return nil
    }

    private mutating func end(_ key: InstanceKey, _ status: Status, at: Int64, _ body: (inout Instance) -> Void) {
        let old = update(key) { inst in
            inst.status = status
            inst.endedAt = at
            body(&inst)
        }
        guard let old, !old.isEnded, let s = index[key.stage] else { return }
        if old.isRunning { countRunning(key, -1) }
        running[key] = nil
        retrying[key] = nil
        unended -= 1
        if key.item != nil { unendedPerStage[s, default: 0] -= 1 }
        queued.remove(key)
        switch stages[s].stage.kind {
        case .dispatch: if status != .succeeded { releaseSession(key) }
        case .waitApproved: if let d = dispatchKey(for: key) { releaseSession(d) }
        case .queryReady, .merge, .close, .cleanup, .run: break
        }
        if let item = key.item, let src = stages[s].source, unendedPerItem[src]?.indices.contains(item) == true {
            unendedPerItem[src]![item] -= 1
            if unendedPerItem[src]![item] == 0 {
                pipelinesEnded += 1
                openPipelines[src, default: 1] -= 1
                if let d = dispatchKey(for: key) { releaseSession(d) }
                for refill in refills.values where refill.fed.contains(src) { dirtySources.formUnion(refill.fed) }
            }
        }
        for d in stages[s].dependants {
            let info = stages[d]
            if info.stage.forEach != nil {
                dirtySources.insert(d)
            } else if info.source != nil && stages[s].source == info.source {
                markDirty(InstanceKey(info.stage.id, item: key.item))
            } else if info.source != nil {
                // A per-item stage that needs a once-stage: any of its items may be ready now.
                for item in (perItem[d] ?? []).indices { markDirty(InstanceKey(info.stage.id, item: item)) }
            } else if key.item == nil || unendedPerStage[s, default: 0] == 0 {
                // A fan-in stage: only once every item's instance has ended.
                markDirty(InstanceKey(info.stage.id))
            }
        }
    }

    private mutating func releaseSession(_ key: InstanceKey) {
        liveSessions.remove(key)
        slots[key] = nil
    }

    private mutating func countRunning(_ key: InstanceKey, _ delta: Int) {
        guard let s = index[key.stage] else { return }
        runningPerStage[s, default: 0] += delta
        if stages[s].stage.kind == .run { runningProcesses += delta }
    }

    private mutating func markDirty(_ key: InstanceKey) {
        dirty.insert(key)
    }

    private mutating func markFanInDependants(ofSource s: Int) {
        for info in stages where info.source == nil && info.ancestors.contains(where: { stages[$0].source == s || $0 == s }) {
            markDirty(InstanceKey(info.stage.id))
        }
        for (i, info) in stages.enumerated() where info.stage.forEach != nil && info.ancestors.contains(where: { stages[$0].source == s || $0 == s }) {
            dirtySources.insert(i)
        }
    }

    /// After a replay: look at every instance once more.
    public mutating func markAllPendingDirty() {
        for (s, inst) in once where !inst.status.isEnded { dirty.insert(InstanceKey(stages[s].stage.id)) }
        for (s, list) in perItem {
            for (i, inst) in list.enumerated() where !inst.status.isEnded { dirty.insert(InstanceKey(stages[s].stage.id, item: i)) }
        }
        for (s, source) in sources where source.state == .waiting { dirtySources.insert(s) }
    }

    // MARK: - Deciding what happens next

    /// The events that should happen now, in order; each is applied as it is decided.
    private mutating func decideEvents(now: Int64) -> [RunEvent] {
        guard outcome == nil else { return [] }
        var events: [RunEvent] = []

        // Fixed point: a skip or an expansion can make more instances decidable.
        var progress = true
        while progress {
            progress = false
            for s in dirtySources.sorted() {
                dirtySources.remove(s)
                guard let e = expansion(of: s) else { continue }
                events.append(e)
                apply(e, at: now)
                progress = true
            }
            let keys = dirty.sorted()
            dirty.removeAll()
            for key in keys {
                guard let inst = instance(key), inst.status == .pending, !queued.contains(key) else { continue }
                switch gate(key) {
                case .wait:
                    continue
                case .run:
                    enqueue(key)
                case .skip(let reason, let afterFailure):
                    let e: RunEvent = cancelRequested && afterFailure ? .instanceCancelled(key, reason: "the run was cancelled") : .instanceSkipped(key, reason: reason, afterFailure: afterFailure)
                    events.append(e)
                    apply(e, at: now)
                    progress = true
                case .fail(let reason):
                    let e = RunEvent.instanceFailed(key, attempt: 0, reason: reason, retryAt: nil)
                    events.append(e)
                    apply(e, at: now)
                    progress = true
                }
            }
        }

        // Refilling queries due now (the driver runs them; their answers come back as `refilled`).
        for e in dueRefills(now: now) {
            events.append(e)
            apply(e, at: now)
        }

        // Retries whose time has come.
        for (key, at) in retrying.sorted(by: { $0.key < $1.key }) where at <= now && !queued.contains(key) {
            enqueue(key)
        }

        // Starts, within the concurrency limits; the rest wait in order. The queues are changed in
        // place: a copy taken out of the dictionary would copy the whole queue on every start.
        for s in ready.keys.sorted() {
            let info = stages[s]
            while let key = ready[s]?.first {
                func pop() {
                    ready[s]!.removeFirst()
                    if ready[s]!.isEmpty { ready[s] = nil }
                }
                guard let inst = instance(key) else { pop(); continue }
                let attempt: Int
                switch inst.status {
                case .pending: attempt = 1
                case .retrying(let next, _): attempt = next
                case .running, .succeeded, .failed, .skipped, .cancelled:
                    pop()
                    queued.remove(key)
                    continue
                }
                if cancelRequested && !info.conditionUsesStatus {
                    pop()
                    let e = RunEvent.instanceCancelled(key, reason: "the run was cancelled")
                    events.append(e); apply(e, at: now)
                    continue
                }
                if info.stage.kind == .dispatch, overBudget, let limit = workflow.settings.budget?.cost {
                    // The run's budget is spent: agents already working finish; nothing new starts.
                    pop()
                    let e = RunEvent.instanceSkipped(key, reason: "\(RunStateMachine.budgetReason): the run's known cost \(RunReport.dollars(spent)) reached settings.budget.cost \(RunReport.dollars(limit))", afterFailure: true)
                    events.append(e); apply(e, at: now)
                    continue
                }
                if let limit = info.stage.effectiveConcurrency, runningPerStage[s, default: 0] >= limit { break }
                if info.stage.kind == .run, runningProcesses >= maxProcesses { break }
                if info.stage.kind == .dispatch, !liveSessions.contains(key), liveSessions.count >= workflow.settings.concurrency { break }
                pop()
                let deadline = info.stage.timeout.map { now + $0.milliseconds }
                let e = RunEvent.instanceStarted(key, attempt: attempt, deadline: deadline)
                events.append(e)
                apply(e, at: now)
            }
        }

        if unended == 0, ready.isEmpty, sources.values.allSatisfy(\.isSettled), runningProcesses == 0 {
            let e = RunEvent.runFinished(finalOutcome)
            events.append(e)
            apply(e, at: now)
        }
        return events
    }

    /// How the run ended, from the instances' states.
    public var finalOutcome: RunOutcome {
        if cancelRequested { return .cancelled }
        if skippedForBudget { return .failed }
        for (s, inst) in once { if case .failed = inst.status, !stages[s].stage.continueOnError { return .failed } }
        for (s, list) in perItem where !stages[s].stage.continueOnError {
            if list.contains(where: { if case .failed = $0.status { return true } else { return false } }) { return .failed }
        }
        if sources.values.contains(where: { if case .failed = $0.state { return true } else { return false } }) { return .failed }
        // Items the tracker gave with ids that may not be used (never dispatched) count as failures.
        if once.values.contains(where: { if case .list(let l)? = $0.outputs["invalid"] { return !l.isEmpty } else { return false } }) { return .failed }
        return .succeeded
    }

    private mutating func enqueue(_ key: InstanceKey) {
        guard let s = index[key.stage], queued.insert(key).inserted else { return }
        ready[s, default: Deque()].append(key)
    }

    // MARK: - Gates

    private enum Gate {
        case wait
        case run
        case skip(reason: String, afterFailure: Bool)
        case fail(reason: String)
    }

    /// How the things a stage needs ended, for an instance (or a source expansion) of it.
    private struct NeedsSummary {
        var ended = true
        var failed: [String] = []
    }

    private func needsSummary(of s: Int, item: Int?) -> NeedsSummary {
        var summary = NeedsSummary()
        let info = stages[s]
        for n in info.needs {
            let need = stages[n]
            if need.source != nil && need.source == info.source && item != nil {
                // The same item's instance.
                guard let inst = perItem[n]?[safe: item!] else { summary.ended = false; continue }
                classify(inst, need, &summary)
            } else if let src = need.source {
                // Every item's instance (fan-in, or a once-stage after a per-item one).
                guard let source = sources[src], source.isSettled else { summary.ended = false; continue }
                if case .failed(let reason) = source.state { summary.failed.append("\(need.stage.id) (\(reason))") }
                for inst in perItem[n] ?? [] { classify(inst, need, &summary) }
            } else if let inst = once[n] {
                classify(inst, need, &summary)
            } else if let source = sources[n] {
                // A for-each stage with no instances (its list was skipped or failed).
                guard source.isSettled else { summary.ended = false; continue }
                if case .failed(let reason) = source.state { summary.failed.append("\(need.stage.id) (\(reason))") }
            }
        }
        return summary
    }

    private func classify(_ inst: Instance, _ need: StageInfo, _ summary: inout NeedsSummary) {
        switch inst.status {
        case .pending, .running, .retrying: summary.ended = false
        case .succeeded: break
        case .failed: if !need.stage.continueOnError && !summary.failed.contains(need.stage.id) { summary.failed.append(need.stage.id) }
        case .skipped(_, let afterFailure): if afterFailure && !summary.failed.contains(need.stage.id) { summary.failed.append(need.stage.id) }
        case .cancelled: if !summary.failed.contains(need.stage.id) { summary.failed.append(need.stage.id) }
        }
    }

    private func gate(_ key: InstanceKey) -> Gate {
        guard let s = index[key.stage] else { return .wait }
        let summary = needsSummary(of: s, item: key.item)
        guard summary.ended else { return .wait }
        let info = stages[s]
        let failed = !summary.failed.isEmpty
        if cancelRequested && !info.conditionUsesStatus { return .skip(reason: "the run was cancelled", afterFailure: true) }
        guard let condition = info.stage.condition else {
            return failed ? .skip(reason: "needs failed: \(summary.failed.joined(separator: ", "))", afterFailure: true) : .run
        }
        if failed && !info.conditionUsesStatus {
            return .skip(reason: "needs failed: \(summary.failed.joined(separator: ", "))", afterFailure: true)
        }
        var context = expressionContext(for: key)
        context.dependencyFailed = failed
        context.runCancelled = cancelRequested
        do {
            let v = try ExpressionEvaluator(context: context).render(condition)
            if v.isTruthy { return .run }
            return .skip(reason: "`if` is false", afterFailure: failed)
        } catch {
            return .fail(reason: "`if`: \(error.message)")
        }
    }

    private func expansion(of s: Int) -> RunEvent? {
        guard let source = sources[s] else { return nil }
        if source.state == .expanded && !source.closed { return refillExpansion(of: s) }
        guard source.state == .waiting else { return nil }
        let info = stages[s]
        let summary = needsSummary(of: s, item: nil)
        guard summary.ended else { return nil }
        if (!summary.failed.isEmpty || cancelRequested) && !info.conditionUsesStatus {
            return .expansionEnded(stage: info.stage.id, failed: false, reason: cancelRequested ? "the run was cancelled" : "needs failed: \(summary.failed.joined(separator: ", "))")
        }
        guard let forEach = info.stage.forEach else { return nil }
        do {
            let value = try forEach.render(ExpressionEvaluator(context: expressionContext(for: InstanceKey(info.stage.id))))
            switch value {
            case .list(let items):
                // Items of a refilling query: the list stays open while pipelines run.
                let refilling = refills.contains { $0.value.fed.contains(s) } && !items.isEmpty
                return .itemsAdded(stage: info.stage.id, items: items, closed: !refilling)
            case .null: return .itemsAdded(stage: info.stage.id, items: [], closed: true)
            case .bool, .int, .double, .string, .object: return .expansionEnded(stage: info.stage.id, failed: true, reason: "`for-each` gave \(value.kindDescription), not a list")
            }
        } catch {
            return .expansionEnded(stage: info.stage.id, failed: true, reason: "`for-each`: \(error.message)")
        }
    }

    /// A for-each stage fed by a refilling query: the items its list gained since it was last
    /// expanded, or its close once a query made after the last pipeline ended brought nothing new.
    private func refillExpansion(of s: Int) -> RunEvent? {
        guard let refill = refills.values.first(where: { $0.fed.contains(s) }), let source = sources[s] else { return nil }
        let info = stages[s]
        let allEnded = openPipelines[s, default: 0] == 0
        if cancelRequested { return .itemsAdded(stage: info.stage.id, items: [], closed: true) }
        guard !refill.inFlight, let forEach = info.stage.forEach else { return nil }
        var fresh: [Value] = []
        if case .list(let all)? = try? forEach.render(ExpressionEvaluator(context: expressionContext(for: InstanceKey(info.stage.id)))), all.count > source.items.count {
            fresh = Array(all[source.items.count...])
        }
        if !fresh.isEmpty { return .itemsAdded(stage: info.stage.id, items: fresh, closed: false) }
        if allEnded && refill.dry && refill.endsAtStart == pipelinesEnded {
            return .itemsAdded(stage: info.stage.id, items: [], closed: true)
        }
        return nil
    }

    /// Refilling queries due now: a pipeline ended since the last one started, or its interval passed.
    private func dueRefills(now: Int64) -> [RunEvent] {
        var events: [RunEvent] = []
        for (s, r) in refills.sorted(by: { $0.key < $1.key }) where !r.inFlight && !cancelRequested {
            guard once[s]?.status == .succeeded, r.fed.contains(where: { sources[$0]?.state == .expanded && sources[$0]?.closed == false }) else { continue }
            if r.endsAtStart != pipelinesEnded || now >= r.lastStart + r.interval {
                events.append(.refillStarted(stage: stages[s].stage.id))
            }
        }
        return events
    }

    // MARK: - Expressions

    /// What an instance's expressions see: its item, the outputs of the stages it depends on,
    /// vars, env, run, settings.
    public func expressionContext(for key: InstanceKey) -> ExpressionContext {
        var roots: [String: Value] = [:]
        if let item = item(for: key) { roots["item"] = item }
        var stagesObject = OrderedObject()
        if let s = index[key.stage] {
            let info = stages[s]
            for a in info.ancestors {
                let ancestor = stages[a]
                let outputs: Value
                if let src = ancestor.source {
                    if let item = key.item, src == info.source {
                        outputs = .object(perItem[a]?[safe: item]?.outputs ?? OrderedObject())
                    } else {
                        // Lists over every item, for fan-in stages.
                        let list = perItem[a] ?? []
                        var o = OrderedObject()
                        for name in ancestor.stage.outputNames ?? Array(Set(list.flatMap(\.outputs.keys))).sorted() {
                            o[name] = .list(list.map { $0.outputs[name] ?? .null })
                        }
                        outputs = .object(o)
                    }
                } else {
                    outputs = .object(once[a]?.outputs ?? OrderedObject())
                }
                stagesObject[ancestor.stage.id] = .object(OrderedObject([("outputs", outputs)]))
            }
        }
        roots["stages"] = .object(stagesObject)
        if let d = dispatchKey(for: key), d != key, let session = instance(d), session.status == .succeeded {
            var o = OrderedObject()
            o["id"] = session.outputs["session"] ?? .null
            o["dir"] = session.outputs["dir"] ?? .null
            o["agent-session"] = .null
            roots["session"] = .object(o)
        }
        roots["vars"] = .object(vars)
        roots["env"] = environmentValue
        roots["run"] = .object(OrderedObject([("id", .string(runId))]))
        roots["settings"] = workflow.settings.value
        return ExpressionContext(roots: roots)
    }

    /// The failure event for an attempt: with a retry time while attempts remain.
    public func failure(_ key: InstanceKey, reason: String, now: Int64, kind: FailureKind = .failed) -> RunEvent {
        guard let inst = instance(key), let stage = stage(of: key) else {
            return .instanceFailed(key, attempt: 1, reason: reason, retryAt: nil, kind: kind)
        }
        let attempt = max(1, inst.attempts)
        if kind == .failed && attempt < stage.retry.attempts && !cancelRequested {
            return .instanceFailed(key, attempt: attempt, reason: reason, retryAt: now + stage.retry.delay(beforeAttempt: attempt + 1).milliseconds)
        }
        return .instanceFailed(key, attempt: attempt, reason: reason, retryAt: nil, kind: kind)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
