import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `cancel [RUN-ID]`: a live runner asked to cancel, or a dead runner's run settled here.
struct CancelCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a run (default: the newest unfinished one): stop dispatching, end running commands, keep worktrees.",
        discussion: "With a live runner, asks it to cancel and waits until it has; with a dead one, settles the run itself under the run's lock. The run ends as cancelled; its runner exits 3."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The run id (see `amplify-run runs`).", valueName: "RUN-ID"))
    var runId: String?

    func run(_ context: CommandContext) async throws {
        guard let states = StateDirectories.find(from: context.directory) else { throw ExitCode(4) }
        let found: (store: RunStore, summary: RunStore.Summary)?
        if let runId {
            found = states.store(holding: runId).flatMap { store in store.summary(of: runId).map { (store: store, summary: $0) } }
        } else {
            found = states.newestUnfinished()
        }
        guard let (store, summary) = found else {
            context.error("\(runId.map { "no run '\($0)'\(DidYouMean.hint($0, states.runs.map(\.id)))" } ?? "no unfinished run") in \(states.description)")
            throw ExitCode(2)
        }
        if let outcome = summary.outcome {
            context.error("run \(summary.id) has already finished (\(outcome.rawValue)); a finished run is never written again")
            throw ExitCode(2)
        }
        let reason = "cancelled by `amplify-run cancel` (pid \(getpid()))"
        do { try RunStore.writeAtomically(Array(reason.utf8), to: store.cancelRequest(of: summary.id)) } catch {
            context.error(error.message)
            throw ExitCode(4)
        }
        let lock = store.lock(of: summary.id)
        if RunLock.isHeld(path: lock), let pid = RunLock.holder(path: lock) {
            guard kill(pid, SIGUSR1) == 0 else {
                context.error("cannot signal the runner (pid \(pid)): \(String(cString: strerror(errno)))")
                throw ExitCode(4)
            }
            context.out.line("amplify-run: asked the runner of \(summary.id) (pid \(pid)) to cancel; waiting for it")
            while RunLock.isHeld(path: lock) { try await Task.sleep(for: .milliseconds(50)) }
            let after = store.summary(of: summary.id)
            context.out.line("amplify-run: run \(summary.id) \(after?.outcome == .cancelled ? "cancelled" : "ended: \(after?.outcome?.rawValue ?? "interrupted")")")
            return
        }
        // No live runner: settle the run here, under its lock, with the copy it started with.
        guard let bytes = try? WorkflowFile.read(store.workflowCopy(of: summary.id)) else {
            context.error("run \(summary.id) has no readable workflow copy")
            throw ExitCode(4)
        }
        var request = RunRequest(repository: states.repository, workflowPath: summary.workflow, workflowBytes: bytes, environment: context.environment)
        request.runId = summary.id
        request.cancelOnStart = true
        let code = try await RunnerLauncher.run(request, observer: LineObserver(workflowPath: summary.workflow, context: context), in: context)
        if code != RunOutcome.cancelled.exitCode { throw ExitCode(code) }
    }
}
