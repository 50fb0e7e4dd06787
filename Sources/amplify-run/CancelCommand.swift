import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a run (default: the newest unfinished one): stop dispatching, end running commands, keep worktrees.",
        discussion: "With a live runner, asks it to cancel and waits until it has; with a dead one, settles the run itself under the run's lock. The run ends as cancelled; its runner exits 3."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The run id (see `amplify-run runs`).", valueName: "RUN-ID"))
    var runId: String?

    func run() async throws {
        guard let (store, repository) = RunReader.store() else { throw ExitCode(4) }
        guard let summary = runId.flatMap({ store.summary(of: $0) }) ?? (runId == nil ? store.newestUnfinished() : nil) else {
            Terminal.err("amplify-run: error: \(runId.map { "no run '\($0)'\(DidYouMean.hint($0, store.runIds()))" } ?? "no unfinished run") in \(store.root)")
            throw ExitCode(2)
        }
        if let outcome = summary.outcome {
            Terminal.err("amplify-run: error: run \(summary.id) has already finished (\(outcome.rawValue)); a finished run is never written again")
            throw ExitCode(2)
        }
        let reason = "cancelled by `amplify-run cancel` (pid \(getpid()))"
        do { try RunStore.writeAtomically(Array(reason.utf8), to: store.cancelRequest(of: summary.id)) } catch {
            Terminal.err("amplify-run: error: \(error.message)")
            throw ExitCode(4)
        }
        let lock = store.lock(of: summary.id)
        if RunLock.isHeld(path: lock), let pid = RunLock.holder(path: lock) {
            guard kill(pid, SIGUSR1) == 0 else {
                Terminal.err("amplify-run: error: cannot signal the runner (pid \(pid)): \(String(cString: strerror(errno)))")
                throw ExitCode(4)
            }
            print("amplify-run: asked the runner of \(summary.id) (pid \(pid)) to cancel; waiting for it")
            while RunLock.isHeld(path: lock) { try await Task.sleep(for: .milliseconds(50)) }
            let after = store.summary(of: summary.id)
            print("amplify-run: run \(summary.id) \(after?.outcome == .cancelled ? "cancelled" : "ended: \(after?.outcome?.rawValue ?? "interrupted")")")
            return
        }
        // No live runner: settle the run here, under its lock, with the copy it started with.
        guard let bytes = try? WorkflowFile.read(store.workflowCopy(of: summary.id)) else {
            Terminal.err("amplify-run: error: run \(summary.id) has no readable workflow copy")
            throw ExitCode(4)
        }
        var request = RunRequest(repository: repository, workflowPath: summary.workflow, workflowBytes: bytes, environment: RunCommand.environment())
        request.runId = summary.id
        request.cancelOnStart = true
        do {
            let code = try await Runner(request: request, executors: StageExecutors(grace: request.grace), observer: LineObserver(workflowPath: summary.workflow)).run()
            if code != RunOutcome.cancelled.exitCode { throw ExitCode(code) }
        } catch let failure as RunFailure {
            Terminal.err("amplify-run: error: \(failure.message)")
            throw ExitCode(failure.exitCode)
        }
    }
}
