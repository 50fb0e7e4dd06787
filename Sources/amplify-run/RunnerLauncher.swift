import AmplifyEngine
import AmplifyStages
import ArgumentParser

/// The one way a command starts a `Runner` (`run`, `cancel` settling a dead runner's run, `demo`):
/// the stage executors, the view the run is shown in, and a runner that cannot go on said as
/// every command says an error.
enum RunnerLauncher {
    /// The view of a run: a JSON line per event (`--json`), a live view redrawn on a terminal,
    /// or a timestamped line per event.
    static func observer(workflowPath: String, json: Bool = false, in context: CommandContext) -> RunObserver {
        if json { return JSONObserver(context: context) }
        if context.liveView { return TerminalObserver(workflowPath: workflowPath, context: context) }
        return LineObserver(workflowPath: workflowPath, context: context)
    }

    /// Runs `request` to its end and returns the runner's exit code; a runner that could not
    /// run (`RunFailure`) is said on stderr and thrown as its exit code. `grace`: how long the
    /// stage executors wait for a stopped command before killing it (default: the request's).
    static func run(_ request: RunRequest, observer: RunObserver, grace: Duration? = nil, in context: CommandContext) async throws -> Int32 {
        do {
            let repository = request.repository
            return try await Runner(request: request, executors: StageExecutors(grace: grace ?? request.grace), observer: observer) { targets, vars, environment throws(NotifyError) in
                try NotificationDelivery(targets: targets, vars: vars, environment: environment, directory: repository)
            }.run()
        } catch {
            context.error(error.message)
            throw ExitCode(error.exitCode)
        }
    }
}
