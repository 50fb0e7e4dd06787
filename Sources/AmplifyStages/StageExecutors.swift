import AmplifyEngine
import AmplifyWorkflow

/// The executor of each stage kind.
public struct StageExecutors: StageExecutorRegistry {
    public var run: StageExecutor
    public var queryReady: StageExecutor
    public var grace: Duration

    public init(grace: Duration = .seconds(10)) {
        self.grace = grace
        run = CommandStageExecutor(grace: grace)
        queryReady = QueryReadyExecutor(grace: grace)
    }

    public func executor(for kind: StageKind) -> StageExecutor {
        switch kind {
        case .run: return run
        case .queryReady: return queryReady
        case .close: return CloseExecutor(grace: grace)
        case .dispatch: return DispatchExecutor(grace: grace)
        case .waitApproved: return WaitApprovedExecutor(grace: grace)
        case .merge: return MergeExecutor(grace: grace)
        case .cleanup: return CleanupExecutor(grace: grace)
        }
    }
}

extension Reconciliation {
    /// Runs the attempt again, once what the dead runner left of its command (a query, a setup or
    /// verify command, a close) has ended with its process group: a stage whose work is safe to
    /// repeat.
    static func rerun(ending process: (pid: Int32, startTime: UInt64)?, grace: Duration) async -> Reconciliation {
        if let process, Processes.isAlive(pid: process.pid, startTime: process.startTime) {
            await ChildProcess.terminateGroup(process.pid, startTime: process.startTime, grace: grace)
        }
        return .rerun
    }
}
