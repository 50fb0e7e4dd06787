import AmplifyEngine
import AmplifyWorkflow

/// `run` stages: a shell string or an argv, in the repository or `working-directory`, with
/// `$AMPLIFY_OUTPUT`, stdout captured (trimmed, at most 1 MiB), outputs per `outputs:` — all of
/// it `CommandRunner`'s. At-least-once: an attempt in flight when the runner died is started
/// again (what was left of its process group is ended first).
public struct CommandStageExecutor: StageExecutor {
    public static let stdoutLimit = CommandRunner.stdoutLimit
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        guard let command = job.stage.command else { return .failed("the stage has no command") }
        return await CommandRunner().run(command, for: job, outputs: job.stage.outputs, processStarted: processStarted)
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        await Reconciliation.rerun(ending: process, grace: grace)
    }

    /// A command with its expressions rendered (`CommandRunner.prepare`).
    public static func prepare(_ command: Command, job: StageJob, evaluator: ExpressionEvaluator) throws(EvaluationError) -> PreparedCommand {
        try CommandRunner.prepare(command, job: job, evaluator: evaluator)
    }
}
