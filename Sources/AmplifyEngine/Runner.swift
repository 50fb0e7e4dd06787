import AmplifyWorkflow
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// A run from start to end: checks the workflow, takes the locks, finds the run to resume (or
/// makes a new one), replays its journal into the state machine, and hands both to the `Driver`,
/// which carries out what the machine decides.
public final class Runner: Sendable {
    let request: RunRequest
    let executors: StageExecutorRegistry
    let observer: RunObserver
    let notifications: NotificationSenderFactory?

    /// Makes the sender of a workflow's `settings.notify` targets, once the runner knows which
    /// workflow it runs and with which variables; a target that cannot be used (a URL that is not
    /// http:// or https://) is a `NotifyError`, said before the run starts.
    public typealias NotificationSenderFactory = @Sendable (_ targets: [NotifyTarget], _ vars: OrderedObject, _ environment: [String: String]) throws(NotifyError) -> NotificationSender

    public init(request: RunRequest, executors: StageExecutorRegistry, observer: RunObserver, notifications: NotificationSenderFactory? = nil) {
        self.request = request
        self.executors = executors
        self.observer = observer
        self.notifications = notifications
    }

    /// Runs (or resumes) the workflow; returns the process exit code (README, "Exit codes").
    public func run(signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]) async throws(RunFailure) -> Int32 {
        // The workflow as given now (checked once: by the caller when it did).
        let current: Workflow
        if let checked = request.checked {
            current = checked
        } else {
            let checked = WorkflowChecker.check(bytes: request.workflowBytes, file: request.workflowPath)
            guard let workflow = checked.workflow else {
                throw RunFailure(exitCode: 2, message: checked.diagnostics.map(\.description).joined(separator: "\n"))
            }
            current = workflow
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
        var workflow = current
        var vars = current.vars
        for (k, v) in request.varOverrides {
            guard vars[k] != nil else {
                throw RunFailure(exitCode: 2, message: "--var \(k): the workflow declares no variable '\(k)'\(DidYouMean.hint(k, vars.keys))")
            }
            vars[k] = .string(v)
        }
        if let existing {
            let runId = existing.id
            guard let stored = try? WorkflowFile.read(store.workflowCopy(of: runId)) else {
                throw RunFailure(exitCode: 4, message: "run \(runId) has no readable workflow copy (\(store.workflowCopy(of: runId))); start afresh with --new")
            }
            if stored != request.workflowBytes {
                // Checked under the workflow's own path, so its default name is the same as at the start.
                let storedCheck = WorkflowChecker.check(bytes: stored, file: request.workflowPath)
                guard let storedWorkflow = storedCheck.workflow else {
                    throw RunFailure(exitCode: 4, message: "the workflow copy of run \(runId) no longer checks with this amplify-run:\n" + storedCheck.diagnostics.map(\.description).joined(separator: "\n"))
                }
                workflow = storedWorkflow
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
        }

        // Notification targets, rendered once (their secrets come from the environment): one
        // that cannot be used stops the run before it starts.
        var sender: NotificationSender?
        var targets = workflow.settings.notify
        if !targets.isEmpty {
            do throws(NotifyError) {
                guard let notifications else { throw NotifyError("this runner cannot send notifications") }
                sender = try notifications(targets, vars, request.environment)
            } catch {
                // `cancel` settling a dead runner's run cancels it all the same, untold.
                guard request.cancelOnStart else { throw RunFailure(exitCode: 2, message: "settings.notify: \(error.message)") }
                notes.append("warning: settings.notify: \(error.message); nobody is told of this cancel")
                targets = []
            }
        }

        let runId: String
        if let existing {
            runId = existing.id
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
        // What is due to be told: notifications journaled and not yet delivered are sent again.
        var ledger = NotificationLedger(targets: targets, workflowPath: request.workflowPath)
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
            for e in entries {
                machine.apply(e.event, at: e.at)
                ledger.observe(e, machine: machine)
            }
            journal = try Journal(path: journalPath, lastSeq: entries.last?.seq ?? 0, size: size)
            if machine.isFinished {
                throw JournalError("run \(runId) has already finished; start a new one with --new")
            }
        } catch {
            throw RunFailure(exitCode: 4, message: error.message)
        }
        observer.begin(run: runId, resumed: existing != nil, notes: notes)

        let (inputs, continuation) = AsyncStream<Driver.Input>.makeStream()
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

        let context = DriverContext(request: request, runId: runId, runDirectory: store.directory(of: runId), executors: executors, sender: sender, continuation: continuation)
        var driver = Driver(machine: machine, ledger: ledger, journal: journal, observer: observer, context: context)
        let cancelling = request.cancelOnStart ? (try? WorkflowFile.read(cancelFile)).map { String(decoding: $0, as: UTF8.self) } ?? "cancelled" : nil
        do throws(JournalError) {
            return try await driver.run(newRun: existing == nil, cancelling: cancelling, inputs: inputs)
        } catch {
            throw RunFailure(exitCode: 4, message: "cannot go on: \(error.message)")
        }
    }
}
