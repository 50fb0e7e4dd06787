/// A checked workflow file: every key validated, every expression parsed and its names resolved.
public struct Workflow: Sendable {
    public var version: Int
    public var name: String
    public var description: String?
    public var settings: Settings
    /// Declared variables and their default values (`--var` may override them).
    public var vars: OrderedObject
    /// The stages in file order.
    public var stages: [Stage]
    /// Agent profiles the workflow declares (`agents:`), beside the built-in ones.
    public var agents: [String: AgentProfile] = [:]

    /// The profile named `name`: the workflow's own, else a built-in one.
    public func agentProfile(_ name: String) -> AgentProfile? {
        agents[name] ?? AgentProfile.builtIn[name]
    }

    public func stage(_ id: String) -> Stage? {
        stages.first { $0.id == id }
    }

    /// The DAG the checker's graph pass compiled from the stages; read it through `Plan`.
    public internal(set) var graph = StageGraph()

    /// The compiled DAG, for the run state machine and the renderer.
    public var plan: Plan { Plan(self) }

    /// Stage ids in an order where every stage comes after the stages it needs (file order breaks ties).
    public var topologicalOrder: [String] { plan.order }
}

/// The `settings:` block with its defaults applied.
public struct Settings: Sendable, Hashable {
    public var base = "main"
    public var worktrees = ".worktrees"
    public var state = ".amplify"
    public var concurrency = 4
    public var poll = WorkflowDuration.seconds(2)
    /// nil = twice the number of cores.
    public var maxProcesses: Int?
    /// Cone-mode sparse checkout of item worktrees: these directories (and the files at the
    /// top) only. Empty = everything.
    public var sparse: [String] = []
    /// The run's budget (`settings.budget`): only `cost` counts for a run.
    public var budget: Budget?
    /// Where a person is told of questions, decisions, failures and the run's end (`settings.notify`).
    public var notify: [NotifyTarget] = []
    /// How agents are fenced in (`none` or `bwrap`); a dispatch's `sandbox` overrides it.
    public var sandbox = "none"
    /// Paths every sandboxed agent may write too (absolute, or `~/…`).
    public var sandboxWritable: [String] = []
    /// Where agents run (`local` or `slurm`); a dispatch's `sessions` overrides it.
    public var sessions = "local"
    /// Each agent's Slurm job options under `sessions: slurm`.
    public var slurm = SlurmOptions()

    public init() {}

    /// The settings as expressions see them (`settings.<key>`).
    public var value: Value {
        var o = OrderedObject()
        o["base"] = .string(base)
        o["worktrees"] = .string(worktrees)
        o["state"] = .string(state)
        o["concurrency"] = .int(concurrency)
        o["poll"] = .string(poll.description)
        o["max-processes"] = maxProcesses.map(Value.int) ?? .null
        o["sparse"] = .list(sparse.map(Value.string))
        o["budget"] = budget?.value ?? .null
        o["notify"] = .list(notify.map(\.value))
        o["sandbox"] = .string(sandbox)
        o["sandbox-writable"] = .list(sandboxWritable.map(Value.string))
        o["sessions"] = .string(sessions)
        o["slurm"] = slurm.value
        return .object(o)
    }
}

/// `retry:` — attempts in all (1 = no retry) and the exponential backoff between them.
public struct RetryPolicy: Sendable, Hashable {
    public var attempts = 1
    public var backoff = WorkflowDuration.seconds(10)
    public var maxBackoff = WorkflowDuration.seconds(300)

    public init(attempts: Int = 1, backoff: WorkflowDuration = .seconds(10), maxBackoff: WorkflowDuration = .seconds(300)) {
        self.attempts = attempts
        self.backoff = backoff
        self.maxBackoff = maxBackoff
    }

    /// The wait before attempt `n` (2, 3, …): backoff doubled each time, capped.
    public func delay(beforeAttempt n: Int) -> WorkflowDuration {
        guard n > 1 else { return WorkflowDuration(milliseconds: 0) }
        var ms = backoff.milliseconds
        for _ in 2..<n {
            ms = ms > maxBackoff.milliseconds / 2 ? maxBackoff.milliseconds : ms * 2
        }
        return WorkflowDuration(milliseconds: min(ms, maxBackoff.milliseconds))
    }
}

/// A command a stage runs.
public enum Command: Sendable, Hashable {
    /// Run by `/bin/sh -c`; each `${{ }}` becomes a quoted environment-variable reference.
    case shell(Template)
    /// An argv; each element is rendered to exactly one argument.
    case argv([Template])
}

/// A value from the workflow file in which strings may hold `${{ }}` expressions.
public indirect enum TemplateValue: Sendable, Hashable {
    case literal(Value)
    case template(Template)
    case list([TemplateValue])
    case object([TemplateEntry])

    /// The value as written, each template as its text (`plan --json` shows argvs so).
    public var sourceValue: Value {
        switch self {
        case .literal(let v): return v
        case .template(let t): return .string(t.sourceText)
        case .list(let items): return .list(items.map(\.sourceValue))
        case .object(let entries): return .object(OrderedObject(entries.map { ($0.key, $0.value.sourceValue) }))
        }
    }

    /// The value with every expression evaluated.
    public func render(_ evaluator: ExpressionEvaluator) throws(EvaluationError) -> Value {
        switch self {
        case .literal(let v): return v
        case .template(let t): return try evaluator.render(t)
        case .list(let items):
            var out: [Value] = []
            for i in items { out.append(try i.render(evaluator)) }
            return .list(out)
        case .object(let entries):
            var o = OrderedObject()
            for e in entries { o[e.key] = try e.value.render(evaluator) }
            return .object(o)
        }
    }

    /// The literal value when there are no expressions in it.
    public var literalValue: Value? {
        switch self {
        case .literal(let v): return v
        case .template: return nil
        case .list(let items):
            var out: [Value] = []
            for i in items {
                guard let v = i.literalValue else { return nil }
                out.append(v)
            }
            return .list(out)
        case .object(let entries):
            var o = OrderedObject()
            for e in entries {
                guard let v = e.value.literalValue else { return nil }
                o[e.key] = v
            }
            return .object(o)
        }
    }
}

public struct TemplateEntry: Sendable, Hashable {
    public var key: String
    public var value: TemplateValue
}

/// One stage of the workflow: a node of the DAG, run once or once per item.
public struct Stage: Sendable {
    public var id: String
    /// Where the stage's id is written.
    public var location: SourcePosition
    public var kind: StageKind
    /// The `with` parameters that were given (defaults are in `kind.parameters`).
    public var with: [String: TemplateValue] = [:]
    /// The command of a `run` stage.
    public var command: Command?
    public var needs: [String] = []
    public var forEach: TemplateValue?
    /// The `if` condition; nil means the default, `success()`.
    public var condition: Template?
    public var timeout: WorkflowDuration?
    public var retry = RetryPolicy()
    public var continueOnError = false
    public var fanIn = false
    /// Instances at once; nil = no limit of its own (merge: 1).
    public var concurrency: Int?
    public var env: [TemplateEntry] = []
    /// For `run` stages: the keys the command may write to $AMPLIFY_OUTPUT; nil = any.
    public var outputs: [String]?
    public var workingDirectory: Template?
    /// The id of the `for-each` stage whose items this stage runs once per; nil = runs once.
    public var itemSource: String?

    public var isPerItem: Bool { itemSource != nil }

    /// The concurrency that applies: merge lands one at a time unless told otherwise — but a
    /// merge that batches, pushes or opens pull requests has no limit of its own: its items wait
    /// together in its queue (which lands one batch at a time), or on their pull requests.
    public var effectiveConcurrency: Int? {
        guard concurrency == nil, kind == .merge else { return concurrency }
        return ["batch", "push", "via"].contains(where: { with[$0] != nil }) ? nil : 1
    }

    /// The names of the outputs an instance may have; nil = any name (a `run` stage without `outputs:`).
    public var outputNames: [String]? {
        let builtIn = kind.outputs.map(\.name)
        if kind == .run {
            guard let outputs else { return nil }
            return builtIn + outputs
        }
        return builtIn
    }

    /// A parameter's value: the given one, else the kind's default.
    public func parameter(_ name: String) -> TemplateValue? {
        if let v = with[name] { return v }
        guard let d = kind.parameters.first(where: { $0.name == name })?.defaultValue else { return nil }
        return WorkflowChecker.templateValue(from: d)
    }
}
