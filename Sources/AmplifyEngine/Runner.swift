import AmplifyWorkflow
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// What the user asked for: which workflow, in which repository, with which variables.
public struct RunRequest: Sendable {
    /// The repository's top level (absolute).
    public var repository: String
    /// The workflow file, relative to the repository: how runs of it are found again.
    public var workflowPath: String
    public var workflowBytes: [UInt8]
    public var varOverrides: [String: String]
    public var forceNew: Bool
    public var environment: [String: String]
    /// How long a process group gets between SIGTERM and SIGKILL.
    public var grace: Duration
    /// Act on this run (resume or settle it) rather than the newest unfinished one of the workflow.
    public var runId: String?
    /// Cancel the run as soon as it is resumed (`cancel` on a run whose runner is dead).
    public var cancelOnStart = false
    /// Said before the run begins (e.g. items earlier runs claimed and never finished).
    public var notes: [String] = []

    public init(repository: String, workflowPath: String, workflowBytes: [UInt8], varOverrides: [String: String] = [:], forceNew: Bool = false, environment: [String: String] = [:], grace: Duration = .seconds(10)) {
        self.repository = repository
        self.workflowPath = workflowPath
        self.workflowBytes = workflowBytes
        self.varOverrides = varOverrides
        self.forceNew = forceNew
        self.environment = environment
        self.grace = grace
    }
}

/// Where a run's progress is shown: the terminal view, a line per event, or JSON.
public protocol RunObserver: Sendable {
    /// The first thing said: a new run, or which run is resumed (and from what).
    func begin(run: String, resumed: Bool, notes: [String])
    /// Each event once it is in the journal, with the state after it.
    func record(_ entry: JournalEntry, line: String, state: RunStateMachine)
    /// The run stopped: finished, or interrupted by a signal.
    func end(state: RunStateMachine, exitCode: Int32)
}

/// A run that cannot proceed, with the exit code it means (2: usage, 4: locked or unusable state).
public struct RunFailure: Error, Sendable, CustomStringConvertible {
    public var exitCode: Int32
    public var message: String
    public var description: String { message }
}

/// The async driver: replays the journal, reconciles what was in flight, then runs one loop in
/// which the state machine's decisions are journaled before they are carried out.
public final class Runner: Sendable {
    enum Input: Sendable {
        case result(InstanceKey, attempt: Int, StageResult)
        case process(InstanceKey, attempt: Int, pid: Int32, startTime: UInt64)
        case note(InstanceKey, attempt: Int, kind: String, fields: OrderedObject)
        case refill(stage: String, StageResult)
        case wake
        case signal(Int32)
        case cancel(reason: String)
    }

    let request: RunRequest
    let executors: StageExecutorRegistry
    let observer: RunObserver

    public init(request: RunRequest, executors: StageExecutorRegistry, observer: RunObserver) {
        self.request = request
        self.executors = executors
        self.observer = observer
    }

    /// Runs (or resumes) the workflow; returns the process exit code of SPEC §3.
    public func run(signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]) async throws(RunFailure) -> Int32 {
        // The workflow as given now.
        let checked = WorkflowChecker.check(bytes: request.workflowBytes, file: request.workflowPath)
        guard let current = checked.workflow else {
            throw RunFailure(exitCode: 2, message: checked.diagnostics.map(\.description).joined(separator: "\n"))
        }
        let store = RunStore(root: request.repository + "/" + current.settings.state)
        var notes: [String] = request.notes

        // One runner of a workflow at a time, unless a second is started alongside on purpose
        // (`--new`): two runners started together would otherwise both start a new run.
        for dir in [store.root, store.runsDirectory, store.locksDirectory] where mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw RunFailure(exitCode: 4, message: "the state directory is unusable: cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        var workflowLock: RunLock?
        do { if request.runId == nil { workflowLock = try RunLock(path: store.workflowLock(request.workflowPath)) } } catch let held as RunLock.Held {
            guard request.forceNew else {
                let run = store.newestUnfinished(workflow: request.workflowPath).map { " (run \($0.id))" } ?? ""
                throw RunFailure(exitCode: 4, message: "another runner (pid \(held.pid.map(String.init) ?? "unknown")) is running \(request.workflowPath)\(run); follow it with `amplify-run status`, wait for it to end, or start a second run alongside it on purpose with --new (an item either run has claimed is never the other's)")
            }
            workflowLock = nil
        } catch {
            throw RunFailure(exitCode: 4, message: "the state directory is unusable: \(error)")
        }

        // A run to resume, or a new one.
        var existing = request.forceNew ? nil : store.newestUnfinished(workflow: request.workflowPath)
        if let id = request.runId {
            guard let s = store.summary(of: id), s.outcome == nil else {
                throw RunFailure(exitCode: 2, message: "run \(id) is not an unfinished run in \(store.root)")
            }
            existing = s
        }
        let runId: String
        var workflow = current
        var vars = current.vars
        for (k, v) in request.varOverrides {
            guard vars[k] != nil else {
                throw RunFailure(exitCode: 2, message: "--var \(k): the workflow declares no variable '\(k)'\(DidYouMean.hint(k, vars.keys))")
            }
            vars[k] = .string(v)
        }
        if let existing {
            runId = existing.id
            guard let stored = try? WorkflowFile.read(store.workflowCopy(of: runId)) else {
                throw RunFailure(exitCode: 4, message: "run \(runId) has no readable workflow copy (\(store.workflowCopy(of: runId))); start afresh with --new")
            }
            // Checked under the workflow's own path, so its default name is the same as at the start.
            let storedCheck = WorkflowChecker.check(bytes: stored, file: request.workflowPath)
            guard let storedWorkflow = storedCheck.workflow else {
                throw RunFailure(exitCode: 4, message: "the workflow copy of run \(runId) no longer checks with this amplify-run:\n" + storedCheck.diagnostics.map(\.description).joined(separator: "\n"))
            }
            workflow = storedWorkflow
            if stored != request.workflowBytes {
                notes.append("warning: \(request.workflowPath) changed since run \(runId) started; continuing with the copy it started with (use --new to start afresh with the new one)")
            }
            if !request.varOverrides.isEmpty {
                var wanted = existing.vars
                for (k, v) in request.varOverrides { wanted[k] = .string(v) }
                if wanted != existing.vars {
                    throw RunFailure(exitCode: 2, message: "run \(runId) started with other --var values (\(existing.vars.map { "\($0.0)=\($0.1.renderedText)" }.joined(separator: ", "))); resume it without --var, or start a new run with --new")
                }
            }
            vars = existing.vars
        } else {
            do {
                runId = try store.createNewRun(now: Processes.now())
                try RunStore.writeAtomically(request.workflowBytes, to: store.workflowCopy(of: runId))
            } catch {
                throw RunFailure(exitCode: 4, message: "the state directory is unusable: \(error.message)")
            }
        }

        // One live runner per run.
        let lock: RunLock
        do { lock = try RunLock(path: store.lock(of: runId)) } catch let held as RunLock.Held {
            throw RunFailure(exitCode: 4, message: "cannot run \(runId): \(held)")
        } catch {
            throw RunFailure(exitCode: 4, message: "the state directory is unusable: \(error)")
        }

        // Replay.
        let journalPath = store.journal(of: runId)
        var machine = RunStateMachine(workflow: workflow, runId: runId, vars: vars, environment: request.environment, maxProcesses: 2 * max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        let journal: Journal
        do throws(JournalError) {
            var entries: [JournalEntry] = []
            var size = 0
            if existing != nil {
                let read = try Journal.read(path: journalPath)
                if read.tornTail {
                    try Journal.truncate(path: journalPath, to: read.validSize)
                    notes.append("note: cut off a torn last line of the journal (the runner died while writing it)")
                }
                entries = read.entries
                size = read.validSize
            }
            for e in entries { machine.apply(e.event, at: e.at) }
            journal = try Journal(path: journalPath, lastSeq: entries.last?.seq ?? 0, size: size)
            if machine.isFinished {
                throw JournalError("run \(runId) has already finished; start a new one with --new")
            }
        } catch {
            throw RunFailure(exitCode: 4, message: error.message)
        }
        observer.begin(run: runId, resumed: existing != nil, notes: notes)

        let (inputs, continuation) = AsyncStream<Input>.makeStream()
        let cancelFile = store.cancelRequest(of: runId)
        let trap = SignalTrap(signals: signals + [SIGUSR1]) { signal in
            if signal == SIGUSR1 {
                // `amplify-run cancel` leaves its request in the run's directory, then signals.
                if let reason = try? WorkflowFile.read(cancelFile) {
                    continuation.yield(.cancel(reason: String(decoding: reason, as: UTF8.self)))
                }
            } else {
                continuation.yield(.signal(signal))
            }
        }
        defer { trap.cancel(); withExtendedLifetime(lock) {}; withExtendedLifetime(workflowLock) {} }

        let context = DriverContext(request: request, runId: runId, runDirectory: store.directory(of: runId), executors: executors, continuation: continuation)
        var driver = Driver(machine: machine, journal: journal, observer: observer, context: context)
        do throws(JournalError) {
            let now = Processes.now()
            if existing == nil {
                try driver.record([.runStarted(run: runId, workflow: request.workflowPath, name: workflow.name, vars: vars)], now: now, sync: true)
            }
            try driver.record([.runnerStarted(pid: getpid(), resumed: existing != nil)], now: now, sync: false)
            if request.cancelOnStart {
                let reason = (try? WorkflowFile.read(cancelFile)).map { String(decoding: $0, as: UTF8.self) } ?? "cancelled"
                try await driver.cancel(reason: reason, settlingDeadRunner: true)
            }
            try await driver.reconcile()
            return try await driver.loop(inputs)
        } catch {
            throw RunFailure(exitCode: 4, message: "cannot go on: \(error.message)")
        }
    }
}

/// What launched executors need, shared by the driver's tasks.
struct DriverContext: Sendable {
    var request: RunRequest
    var runId: String
    var runDirectory: String
    var executors: StageExecutorRegistry
    var continuation: AsyncStream<Runner.Input>.Continuation
}

/// The loop's state: the machine, the journal, and what is in flight.
struct Driver {
    var machine: RunStateMachine
    let journal: Journal
    let observer: RunObserver
    let context: DriverContext
    var timer: Task<Void, Never>?
    var timerAt: Int64?

    /// Journals events (one write, synced when any of them must be), then applies and shows them.
    /// Events from `decide()` are applied already (`applied: true`).
    mutating func record(_ events: [RunEvent], now: Int64, sync: Bool? = nil, applied: Bool = false) throws(JournalError) {
        guard !events.isEmpty else { return }
        let entries = try journal.append(events, at: now, sync: sync ?? mustSync(events))
        for entry in entries {
            if !applied { machine.apply(entry.event, at: entry.at) }
            observer.record(entry, line: entry.event.line(seq: entry.seq, at: entry.at), state: machine)
        }
    }

    /// Write-ahead: a batch that starts a side effect not safe to repeat (anything but `run` and
    /// `query-ready`, which are at-least-once) is on disk before the effect starts.
    func mustSync(_ events: [RunEvent]) -> Bool {
        events.contains { e in
            if e.needsSync { return true }
            if case .instanceStarted(let key, _, _) = e, let kind = machine.stage(of: key)?.kind { return kind != .run && kind != .queryReady }
            return false
        }
    }

    func job(_ key: InstanceKey, attempt: Int) -> StageJob? {
        guard let stage = machine.stage(of: key) else { return nil }
        let item = machine.item(for: key)
        var job = StageJob(key: key, attempt: attempt, stage: stage, context: machine.expressionContext(for: key), runId: context.runId,
                           runDirectory: context.runDirectory, repository: context.request.repository,
                           itemName: key.item.map { RunStateMachine.itemName(item, index: $0) }, environment: context.request.environment,
                           upstreamQuery: machine.nearestAncestor(of: key.stage, kind: .queryReady))
        job.settings = machine.workflow.settings
        job.notes = machine.notes[key] ?? []
        job.slot = machine.slots[key]
        job.runCancelled = machine.cancelRequested
        if let d = machine.dispatchKey(for: key), d != key, machine.instance(d)?.status == .succeeded { job.session = machine.instance(d)?.outputs }
        let continuation = context.continuation
        job.note = { kind, fields in continuation.yield(.note(key, attempt: attempt, kind: kind, fields: fields)) }
        return job
    }

    /// Asks a refilling query again; its answer comes back as `.refill`.
    func launchRefill(_ stageId: String) {
        guard var job = job(InstanceKey(stageId), attempt: 0), let stage = machine.stage(of: InstanceKey(stageId)) else { return }
        job.seenItemIds = machine.seenItemIds(of: stageId)
        let executor = context.executors.executor(for: stage.kind)
        let continuation = context.continuation
        Task.detached {
            let result = await executor.execute(job) { _, _ in }
            continuation.yield(.refill(stage: stageId, result))
        }
    }

    /// Starts the executor of an instance whose start is in the journal.
    func launch(_ key: InstanceKey, attempt: Int) {
        guard let job = job(key, attempt: attempt), let stage = machine.stage(of: key) else { return }
        let executor = context.executors.executor(for: stage.kind)
        let continuation = context.continuation
        Task.detached {
            let result = await executor.execute(job) { pid, startTime in
                continuation.yield(.process(key, attempt: attempt, pid: pid, startTime: startTime))
            }
            continuation.yield(.result(key, attempt: attempt, result))
        }
    }

    /// Cancels the run: journal it, end the process groups of running instances, mark them
    /// cancelled. Pending instances are cancelled by the machine (those with `always()` still run).
    mutating func cancel(reason: String, settlingDeadRunner: Bool) async throws(JournalError) {
        guard !machine.cancelRequested else { return }
        try record([.cancelRequested(reason: reason)], now: Processes.now(), sync: true)
        for (key, inst) in machine.runningInstances {
            // A landing merge is let finish: its base moves whole or not at all.
            if machine.stage(of: key)?.kind == .merge { continue }
            if let p = inst.process {
                if settlingDeadRunner {
                    if Processes.isAlive(pid: p.pid, startTime: p.startTime) {
                        await ChildProcess.terminateGroup(p.pid, startTime: p.startTime, grace: context.request.grace)
                    }
                } else {
                    Processes.signalGroup(p.pid, SIGTERM)
                    scheduleKill(p.pid)
                }
            }
            try record([.instanceCancelled(key, reason: "ended by cancel")], now: Processes.now())
        }
        // Agents whose dispatch has ended but whose wait has not started yet.
        for key in machine.liveSessions.sorted() {
            guard let p = machine.instance(key)?.process, Processes.isAlive(pid: p.pid, startTime: p.startTime) else { continue }
            await ChildProcess.terminateGroup(p.pid, startTime: p.startTime, grace: context.request.grace)
        }
    }

    /// Settles instances the journal shows in flight: a dead runner's work.
    mutating func reconcile() async throws(JournalError) {
        for (key, instance) in machine.runningInstances {
            guard case .running(let attempt, let deadline) = instance.status, let job = job(key, attempt: attempt), let stage = machine.stage(of: key) else { continue }
            let outcome = await context.executors.executor(for: stage.kind).reconcile(job, process: instance.process)
            switch outcome {
            case .rerun:
                try record([.instanceStarted(key, attempt: attempt, deadline: deadline)], now: Processes.now())
                launch(key, attempt: attempt)
            case .ended(.succeeded(let outputs)):
                try record([.instanceSucceeded(key, outputs: outputs)], now: Processes.now())
            case .ended(.failed(let reason)):
                let now = Processes.now()
                try record([machine.failure(key, reason: reason, now: now)], now: now)
            case .ended(.failedAs(let kind, let reason)):
                let now = Processes.now()
                try record([machine.failure(key, reason: reason, now: now, kind: kind)], now: now)
            }
        }
        for stage in machine.refillsInFlight { launchRefill(stage) }
        machine.markAllPendingDirty()
    }

    mutating func loop(_ inputs: AsyncStream<Runner.Input>) async throws(JournalError) -> Int32 {
        var iterator = inputs.makeAsyncIterator()
        while true {
            let now = Processes.now()
            // Deadlines that have passed: end the attempt's process group, fail (or retry) it.
            for key in machine.expired(now: now) {
                guard let inst = machine.instance(key), let stage = machine.stage(of: key) else { continue }
                if let p = inst.process { Processes.signalGroup(p.pid, SIGTERM); scheduleKill(p.pid) }
                try record([machine.failure(key, reason: "timed out after \(stage.timeout?.description ?? "its timeout")", now: now, kind: stage.kind == .run ? .failed : .timedOut)], now: now)
            }
            let events = machine.decide(now: now)
            if !events.isEmpty {
                // decide() has applied them; journal them, then carry them out.
                try record(events, now: now, applied: true)
                for e in events {
                    if case .instanceStarted(let key, let attempt, _) = e { launch(key, attempt: attempt) }
                    if case .refillStarted(let stage) = e { launchRefill(stage) }
                }
            }
            if let outcome = machine.outcome {
                timer?.cancel()
                observer.end(state: machine, exitCode: outcome.exitCode)
                return outcome.exitCode
            }
            armTimer()
            guard let input = await iterator.next() else { return 4 }
            switch input {
            case .wake:
                timerAt = nil
            case .process(let key, let attempt, let pid, let startTime):
                guard case .running(attempt, _)? = machine.instance(key)?.status else { continue }
                try record([.processStarted(key, pid: pid, startTime: startTime)], now: Processes.now())
            case .result(let key, let attempt, let result):
                guard case .running(attempt, _)? = machine.instance(key)?.status else { continue }
                let now = Processes.now()
                switch result {
                case .succeeded(let outputs): try record([.instanceSucceeded(key, outputs: outputs)], now: now)
                case .failed(let reason): try record([machine.failure(key, reason: reason, now: now)], now: now)
                case .failedAs(let kind, let reason): try record([machine.failure(key, reason: reason, now: now, kind: kind)], now: now)
                }
            case .note(let key, let attempt, let kind, let fields):
                guard case .running(attempt, _)? = machine.instance(key)?.status else { continue }
                try record([.note(key, kind: kind, fields: fields)], now: Processes.now())
            case .refill(let stage, let result):
                switch result {
                case .succeeded(let outputs):
                    let items: [Value] = if case .list(let l)? = outputs["items"] { l } else { [] }
                    try record([.refilled(stage: stage, items: items, error: nil)], now: Processes.now())
                case .failed(let reason), .failedAs(_, let reason):
                    try record([.refilled(stage: stage, items: [], error: reason)], now: Processes.now())
                }
            case .cancel(let reason):
                try await cancel(reason: reason, settlingDeadRunner: false)
            case .signal(let signal):
                // Checkpoint, end the process groups of `run` stages (they run again on resume), leave.
                // Agents go on working; git and bd calls in progress finish on their own.
                try record([.interrupted(signal: signal)], now: Processes.now(), sync: true)
                for (key, inst) in machine.runningInstances where machine.stage(of: key)?.kind == .run {
                    if let p = inst.process { Processes.signalGroup(p.pid, SIGTERM) }
                }
                timer?.cancel()
                let code = 128 + signal
                observer.end(state: machine, exitCode: code)
                return code
            }
        }
    }

    func scheduleKill(_ pgid: Int32) {
        let grace = context.request.grace
        Task.detached {
            try? await Task.sleep(for: grace)
            if Processes.groupExists(pgid) { Processes.signalGroup(pgid, SIGKILL) }
        }
    }

    private mutating func armTimer() {
        guard let next = machine.nextWakeup else { return }
        if let timerAt, timerAt <= next { return }
        timer?.cancel()
        timerAt = next
        let continuation = context.continuation
        let delay = max(0, next - Processes.now())
        timer = Task.detached {
            try? await Task.sleep(for: .milliseconds(delay + 1))
            if !Task.isCancelled { continuation.yield(.wake) }
        }
    }
}

/// Signal handlers as dispatch sources, made outside any actor (a handler made in main-actor
/// code asserted on the wrong queue when the signal came). The default action is ignored
/// while the trap is set; a second signal of the same kind exits at once.
final class SignalTrap: @unchecked Sendable {  // dispatch sources are thread-safe
    private let sources: [DispatchSourceSignal]

    nonisolated init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        let queue = DispatchQueue(label: "amplify-run.signals")
        sources = signals.map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            nonisolated(unsafe) var seen = false
            source.setEventHandler {
                if seen && signalNumber != SIGUSR1 { exit(128 + signalNumber) }
                seen = true
                handler(signalNumber)
            }
            source.resume()
            return source
        }
    }

    func cancel() {
        for s in sources { s.cancel() }
    }
}
