import AmplifyWorkflow
import Synchronization

/// Everything an executor needs to run one attempt of one instance.
public struct StageJob: Sendable {
    public var key: InstanceKey
    public var attempt: Int
    public var stage: Stage
    /// What the instance's expressions see (item, outputs of what it needs, vars, env, …).
    public var context: ExpressionContext
    public var runId: String
    public var runDirectory: String
    public var repository: String
    public var itemName: String?
    /// The runner's environment, which commands inherit.
    public var environment: [String: String]
    /// The nearest `query-ready` stage this instance depends on: the tracker its item came from.
    public var upstreamQuery: Stage?
    /// Workflow settings (base branch, worktrees, state directory, poll).
    public var settings = Settings()
    /// The agent profiles the workflow declares (`agents:`); the built-in ones are `AgentProfile.builtIn`.
    public var agents: [String: AgentProfile] = [:]
    /// The outputs of the item's dispatch (its session, worktree, branch, agent), for the stages after it.
    public var session: OrderedObject?
    /// The run is being cancelled (cleanup then keeps worktrees and branches).
    public var runCancelled = false
    /// `AMPLIFY_SLOT` of a dispatch: its place among the live sessions.
    public var slot: Int?
    /// Ids of the items this run has seen already (for a refilling query).
    public var seenItemIds: Set<String> = []
    /// The profile named `name`: the workflow's own, else a built-in one.
    public func agentProfile(_ name: String) -> AgentProfile? { agents[name] ?? AgentProfile.builtIn[name] }
    /// Notes this instance journaled already (kind, fields), e.g. questions asked before a restart.
    public var notes: [(kind: String, fields: OrderedObject)] = []
    /// Journals a note (a question, a warning) for this instance.
    public var note: @Sendable (String, OrderedObject) -> Void = { _, _ in }
    /// Journals a note and returns once it is written (or the runner has let the attempt go):
    /// for what must be in the journal before a side effect, like a merge queue's verdicts.
    public var record: @Sendable (String, OrderedObject) async -> Void = { _, _ in }
    /// Whether the machine has ended this attempt already (see `AttemptEnd`).
    public var ended = AttemptEnd()

    public init(key: InstanceKey, attempt: Int, stage: Stage, context: ExpressionContext, runId: String, runDirectory: String, repository: String, itemName: String?, environment: [String: String], upstreamQuery: Stage? = nil) {
        self.upstreamQuery = upstreamQuery
        self.key = key
        self.attempt = attempt
        self.stage = stage
        self.context = context
        self.runId = runId
        self.runDirectory = runDirectory
        self.repository = repository
        self.itemName = itemName
        self.environment = environment
    }

    /// A file name for this instance's logs and outputs: `build.3.a-1.2` (stage, item, name, attempt).
    public var fileStem: String {
        var s = key.stage
        if let item = key.item { s += ".\(item)" }
        if let name = itemName { s += "." + RunPaths.safeName(name) }
        return s + ".\(attempt)"
    }
}

/// Set by the driver when the machine ends an attempt while its executor still works on it (its
/// deadline passed, or the run was cancelled): the executor stops before any further side
/// effect — a wait does not start its agent again, a merge does not land. Its result is dropped.
public final class AttemptEnd: Sendable {
    private let ended = Atomic<Bool>(false)

    public init() {}

    /// The machine has ended this attempt.
    public var hasHappened: Bool { ended.load(ordering: .acquiring) }

    public func signal() { ended.store(true, ordering: .releasing) }
}

/// How an attempt ended.
public enum StageResult: Sendable, Equatable {
    case succeeded(OrderedObject)
    case failed(String)
    /// Ended as more than a failure (rejected, conflict): never retried.
    case failedAs(FailureKind, String)
}

/// What every stage kind implements: start an instance, and settle one that was in flight
/// when the last runner died.
public protocol StageExecutor: Sendable {
    /// Runs one attempt. `processStarted` is called with the pid and start time of each process
    /// the attempt starts, so the runner can journal them and end their group on timeout.
    func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult

    /// An instance found running in the journal of a dead runner: what to do with it.
    func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation
}

/// The outcome of reconciling an in-flight instance.
public enum Reconciliation: Sendable, Equatable {
    /// Start it again (at-least-once kinds, after ending what was left of it).
    case rerun
    /// It had already ended this way.
    case ended(StageResult)
}

/// Names made from untrusted text (item ids) for use in file names.
public enum RunPaths {
    /// Letters, digits, `.`, `_` and `-` kept, anything else `_`, at most 64 characters, never `.` or `..`.
    public static func safeName(_ s: String) -> String {
        var out = String(s.unicodeScalars.prefix(64).map { c -> Character in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "." || c == "_" || c == "-") ? Character(c) : "_"
        })
        if out.allSatisfy({ $0 == "." }) { out = "_" + out }
        return out
    }
}

/// Finds the executor of each stage kind; the runner is given one (AmplifyStages provides it).
public protocol StageExecutorRegistry: Sendable {
    func executor(for kind: StageKind) -> StageExecutor
}
