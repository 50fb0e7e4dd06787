import AmplifyWorkflow

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
    /// `workflowBytes` as the caller checked them already (one check per run); nil = check them here.
    public var checked: Workflow?

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
