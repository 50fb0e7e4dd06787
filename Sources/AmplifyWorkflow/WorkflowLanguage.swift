/// The shape of a value in the workflow file: what the checker accepts and the schema describes.
public indirect enum ValueType: Sendable, Hashable {
    case string
    case integer(minimum: Int)
    case boolean
    case duration
    /// One of these words.
    case choice([String])
    /// A string or a list of strings (`label: api` or `label: [api, cli]`).
    case stringOrList
    /// A list of strings (argv-like), at least one element.
    case argv
    /// A string run by `/bin/sh -c`, or a list that is an argv.
    case command
    /// One command or a list of commands.
    case commands
    /// A mapping of names to strings (`env`).
    case stringMap
    /// A list given literally or as one `${{ }}` expression (`for-each`).
    case listExpression
    /// An expression, with or without `${{ }}`, or `true`/`false` (`if`).
    case condition
    /// A count, or `{attempts, backoff, max-backoff}` (`retry`).
    case retry
    /// A list of names (`outputs`, `copy`).
    case names
    /// The name of an agent profile, or an argv (`dispatch`'s `agent`).
    case agent
    /// `{cost, turns}`: dollars and turns (`budget`).
    case budget
    /// A list of notification targets (`settings.notify`).
    case notify
    /// `{partition, time, cpus, mem, account, extra-args}`: a Slurm job's options (`slurm`).
    case slurm
    /// Any value.
    case any

    /// How a message names the expected type.
    public var expectation: String {
        switch self {
        case .string: return "a string"
        case .integer(let minimum): return minimum == 0 ? "a whole number" : "a whole number ≥ \(minimum)"
        case .boolean: return "true or false"
        case .duration: return "a duration such as 500ms, 90s, 15m, 4h or 1h30m"
        case .choice(let words): return "one of " + words.map { "'\($0)'" }.joined(separator: ", ")
        case .stringOrList: return "a string or a list of strings"
        case .argv: return "a list of strings (an argv)"
        case .command: return "a command: a string for /bin/sh -c, or a list of strings (an argv)"
        case .commands: return "a command or a list of commands"
        case .stringMap: return "a mapping of names to strings"
        case .listExpression: return "a list, or a `${{ }}` expression that gives one"
        case .condition: return "an expression or true/false"
        case .retry: return "a number of attempts or {attempts, backoff, max-backoff}"
        case .names: return "a list of names"
        case .agent: return "the name of an agent profile (claude, codex, gemini, opencode or one under `agents:`) or a list of strings (an argv)"
        case .budget: return "{cost: dollars, turns: a whole number}"
        case .notify: return "a list of targets, each {on: [events], webhook: URL} or {on: [events], command: [argv]}"
        case .slurm: return "{partition, time, cpus, mem, account, extra-args}"
        case .any: return "a value"
        }
    }
}

/// One key of a mapping in the workflow file: its type, default and the help editors show.
public struct KeySpec: Sendable {
    public var name: String
    public var type: ValueType
    public var required: Bool
    public var defaultValue: Value?
    public var description: String

    public init(_ name: String, _ type: ValueType, required: Bool = false, default defaultValue: Value? = nil, _ description: String) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.description = description
    }
}

/// A built-in stage kind (`uses:`): its parameters, its outputs and where it may stand.
public enum StageKind: String, CaseIterable, Sendable, Hashable {
    case queryReady = "query-ready"
    case dispatch
    case waitApproved = "wait-approved"
    case merge
    case close
    case cleanup
    case run

    public var summary: String {
        switch self {
        case .queryReady: return "Ask the issue tracker which work items are ready (bd ready --json, a Beads file, or a command)."
        case .dispatch: return "Per item: claim it, create its worktree and branch and session directory, and start the agent."
        case .waitApproved: return "Per item: wait until the session is approved or rejected, surfacing its questions."
        case .merge: return "Per item: merge the approved branch into the base branch, one at a time (git merge --no-ff by default)."
        case .close: return "Per item: close the item in the tracker (bd close <id> --reason Merged)."
        case .cleanup: return "Per item: remove the worktree (and the branch once merged) and archive the session directory."
        case .run: return "Run a command: a string under /bin/sh -c, or an argv list."
        }
    }

    /// Kinds that work on one item and so must be per-item stages.
    public var isPerItemOnly: Bool {
        switch self {
        case .dispatch, .waitApproved, .merge, .close, .cleanup: return true
        case .queryReady, .run: return false
        }
    }

    /// Kinds that act on an item's session and so need a `dispatch` stage upstream.
    public var needsSession: Bool {
        switch self {
        case .waitApproved, .merge, .cleanup: return true
        default: return false
        }
    }

    /// The kind's `with` parameters, in the order the schema and the messages list them.
    public var parameters: [KeySpec] {
        switch self {
        case .queryReady: return QueryReadyParameters.all
        case .dispatch: return DispatchParameters.all
        case .waitApproved: return WaitApprovedParameters.all
        case .merge: return MergeParameters.all
        case .close: return CloseParameters.all
        case .cleanup: return CleanupParameters.all
        case .run: return RunParameters.all
        }
    }

    /// The outputs every instance of the kind sets, with their descriptions.
    public var outputs: [(name: String, description: String)] {
        switch self {
        case .queryReady: return [("items", "The ready items (objects as the tracker prints them)."), ("count", "How many items.")]
        case .dispatch: return [("session", "The session id."), ("dir", "The session directory."), ("worktree", "The item's worktree."), ("branch", "The item's branch."), ("pid", "The agent's process id."), ("agent-profile", "The agent's profile (claude, codex, …), absent for an argv agent.")]
        case .waitApproved: return [("decision", "approved or rejected."), ("summary", "The session's summary."), ("cost", "Cost in USD, when the agent reports it."), ("tokens", "Output tokens, when the agent reports them."), ("turns", "Turns, when the agent reports them.")]
        case .merge: return [("commit", "The commit that landed on the base branch (with `via: pull-request`, GitHub's merge commit)."),
                             ("batch", "The number of the batch it landed in (`batch`)."),
                             ("pr", "The pull request's number (`via: pull-request`)."), ("pr-url", "The pull request's address (`via: pull-request`).")]
        case .close: return []
        case .cleanup: return []
        case .run: return [("exit-code", "The command's exit status."), ("stdout", "Its standard output, trimmed, at most 1 MiB.")]
        }
    }
}

/// The keys of the workflow file, shared by the checker and the JSON Schema.
public enum WorkflowLanguage {
    public static let supportedVersion = 1

    public static let topLevelKeys: [KeySpec] = [
        KeySpec("version", .integer(minimum: 1), required: true, "The version of the workflow language; this amplify-run reads version 1."),
        KeySpec("name", .string, "The workflow's name (default: the file name)."),
        KeySpec("description", .string, "What the workflow does, for people."),
        KeySpec("settings", .any, "Run-wide settings; every key is optional."),
        KeySpec("vars", .any, "Variables for `${{ vars.<name> }}`, overridable with `--var NAME=VALUE`."),
        KeySpec("stages", .any, required: true, "The stages, in order: each stage needs the one above it unless `needs` says otherwise."),
        KeySpec("agents", .any, "Agent profiles the workflow declares (name → {command, resume, output, session-id, cost, tokens, turns, error}), beside the built-in claude, codex, gemini and opencode."),
    ]

    public static let agentProfileKeys: [KeySpec] = [
        KeySpec("command", .argv, required: true, "The argv that starts a session; may use `${{ prompt }}` and `${{ session.agent-session }}`."),
        KeySpec("resume", .argv, "The argv that resumes a session with `${{ answer }}`; `${{ session.agent-session }}` is the session's id."),
        KeySpec("output", .choice(["jsonl", "text"]), default: .string("jsonl"), "What the agent prints: JSON lines, or text."),
        KeySpec("session-id", .any, "The rule that reads the agent's session id."),
        KeySpec("cost", .any, "The rule that reads what the agent spent, in dollars."),
        KeySpec("tokens", .any, "The rule that reads the tokens the agent used."),
        KeySpec("turns", .any, "The rule that reads the agent's turns."),
        KeySpec("error", .any, "The rule that reads the agent's own error message."),
        KeySpec("usage-limit", .any, "The rule that reads a stop by the provider's usage limit: its field is the reset time (Unix seconds, or text such as \"try again at 3:28 PM\" or \"reset after 1h49m8s\")."),
        KeySpec("cost-limit", .argv, "Arguments that give the CLI its own cost limit, with `${{ budget.cost }}` (claude: [--max-budget-usd, \"${{ budget.cost }}\"]); without them the runner ends the agent."),
        KeySpec("turns-limit", .argv, "Arguments that give the CLI its own turn limit, with `${{ budget.turns }}` (claude: [--max-turns, \"${{ budget.turns }}\"])."),
        KeySpec("environment", .stringMap, "Environment the agent needs to run unattended."),
        KeySpec("sandbox-writable", .names, "Paths the CLI writes (its config and session files, `~/` for the home directory), writable under `sandbox: bwrap`; a trailing `/` marks a directory, made when missing."),
    ]

    public static let outputRuleKeys: [KeySpec] = [
        KeySpec("type", .string, required: true, "The JSON lines whose `type` is this."),
        KeySpec("field", .stringOrList, required: true, "A dotted path, or a list of them: the first present and non-empty is read."),
        KeySpec("when", .any, "Only lines whose field of this name is true, or (a mapping {FIELD: VALUE}) whose fields equal these values."),
        KeySpec("contains", .string, "Only when the value read contains this text."),
        KeySpec("sum", .boolean, default: .bool(false), "Add up the lines' values within one start of the agent (else the last counts)."),
        KeySpec("total", .boolean, default: .bool(false), "The agent reports a running total for the session: the last start's figure is the session's."),
    ]

    public static let settingsKeys: [KeySpec] = [
        KeySpec("base", .string, default: .string("main"), "The branch approved work is merged into."),
        KeySpec("worktrees", .string, default: .string(".worktrees"), "Where item worktrees are created, relative to the repository."),
        KeySpec("state", .string, default: .string(".amplify"), "The state directory (runs, sessions, archive), relative to the repository."),
        KeySpec("concurrency", .integer(minimum: 1), default: .int(4), "Item pipelines that may hold a live session at once."),
        KeySpec("poll", .duration, default: .string("2s"), "Fallback poll interval when file notifications are unavailable."),
        KeySpec("max-processes", .integer(minimum: 1), "Child processes of `run` stages at once (default: twice the number of cores)."),
        KeySpec("sparse", .stringOrList, "Directories item worktrees check out (git's cone-mode sparse checkout; the files at the top come too); default: everything."),
        KeySpec("budget", .budget, "The run's budget: {cost: dollars}. When the known cost reaches it, nothing new is dispatched and the items not started are skipped (reason: budget)."),
        KeySpec("sandbox", .choice(["none", "bwrap"]), default: .string("none"), "How agents are fenced in: `none`, or `bwrap` (bubblewrap: each agent can write only its own repository, its session directory, a private /tmp and its profile's config directories; see the README's threat model). A dispatch's `sandbox` overrides it."),
        KeySpec("sandbox-writable", .names, "Paths (absolute, or `~/` for the home directory) every sandboxed agent may write too; a trailing `/` marks a directory, made when missing (any other missing path is left out)."),
        KeySpec("sessions", .choice(SessionsBackend.names), default: .string("local"), "Where agents run: `local` (processes on this machine) or `slurm` (each agent a Slurm batch job; the worktrees and the state directory must be on a filesystem the nodes share; see the README). A dispatch's `sessions` overrides it."),
        KeySpec("slurm", .slurm, "Each agent's Slurm job under `sessions: slurm`: {partition, time, cpus, mem, account, extra-args}; a dispatch's `slurm` keys win over these."),
        KeySpec("notify", .notify, "Where a person is told of what the run needs or did: a list of targets, each `{on: [events], webhook: URL}` (an HTTP POST of the event's JSON) or `{on: [events], command: [argv]}` (the JSON on stdin)."),
    ]

    public static let notifyTargetKeys: [KeySpec] = [
        KeySpec("on", .names, required: true, "The events this target is told of: " + NotifyEvent.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", ") + "."),
        KeySpec("webhook", .string, "An http:// or https:// URL the event's JSON is POSTed to; a secret comes from the environment: `${{ env.SLACK_WEBHOOK }}`."),
        KeySpec("command", .argv, "An argv run with the event's JSON on its stdin (exit status 0 = delivered)."),
        KeySpec("timeout", .duration, default: .string(NotifyTarget.defaultTimeout.description), "How long one attempt may take."),
    ]

    public static let stageKeys: [KeySpec] = [
        KeySpec("uses", .choice(StageKind.allCases.map(\.rawValue)), "A built-in stage kind."),
        KeySpec("run", .command, "Shorthand for `uses: run` with this command: a string runs under /bin/sh -c, a list is an argv."),
        KeySpec("with", .any, "The stage kind's parameters."),
        KeySpec("needs", .stringOrList, "Stage ids this stage waits for; omitted = the stage above it in the file; [] = none."),
        KeySpec("for-each", .listExpression, "An expression giving a list: one instance of the stage per element (`item`)."),
        KeySpec("if", .condition, "An expression; false skips the instance. `success()`, `failure()`, `always()` and `cancelled()` decide whether it runs after what it needs failed."),
        KeySpec("timeout", .duration, "How long one attempt may take (500ms, 90s, 15m, 4h, 1h30m); time the runner was down counts."),
        KeySpec("retry", .retry, "Attempts after a failure: `3` or `{attempts: 3, backoff: 10s, max-backoff: 5m}` (exponential backoff)."),
        KeySpec("continue-on-error", .boolean, default: .bool(false), "A failed instance still lets its dependants run and does not fail the run."),
        KeySpec("fan-in", .boolean, default: .bool(false), "Run once, after every item's instance of the stages it needs has ended; sees lists of their outputs."),
        KeySpec("concurrency", .integer(minimum: 1), "Instances of this stage running at once (merge: 1 unless set)."),
        KeySpec("env", .stringMap, "Extra environment for the commands the stage runs."),
        KeySpec("outputs", .names, "For `run` stages: the keys the command may write to $AMPLIFY_OUTPUT."),
        KeySpec("working-directory", .string, "For `run` stages: where the command runs, relative to the repository."),
    ]

    public static let retryKeys: [KeySpec] = [
        KeySpec("attempts", .integer(minimum: 1), required: true, "Attempts in all, the first included."),
        KeySpec("backoff", .duration, default: .string("10s"), "The wait before the second attempt; it doubles each time."),
        KeySpec("max-backoff", .duration, default: .string("5m"), "The longest wait between attempts."),
    ]

    /// Names an expression may start with.
    public static let expressionRoots = ["item", "stages", "vars", "env", "run", "session", "settings", "prompt", "answer", "budget"]
    public static let sessionFields = ["id", "dir", "agent-session"]
    public static let runFields = ["id"]
}

// MARK: - The parameters of each stage kind
//
// Each parameter is written once, here: its name, type, default and help. The checker, the
// schema and the executors (`stage.value(MergeParameters.strategy, evaluator)`) all read it.

/// The `with` parameters of `query-ready` stages.
public enum QueryReadyParameters {
    public static let source = StageParameter<String, WithDefault>(KeySpec("source", .choice(["bd", "file", "command"]), default: .string("bd"), "Where ready items come from: `bd` runs `bd ready --json`; `file` reads a Beads JSON/JSONL issues file the way bd does; `command` runs any command that prints a JSON array of objects with an `id`."))
    public static let path = StageParameter<String, WithoutDefault>(KeySpec("path", .string, "With `source: file`: the Beads issues file (JSON array or JSONL), relative to the repository."))
    public static let command = StageParameter<Command, WithoutDefault>(KeySpec("command", .command, "With `source: command`: the command that prints the JSON array of items."))
    public static let limit = StageParameter<Int, WithoutDefault>(KeySpec("limit", .integer(minimum: 1), "At most this many new items per query (applied after items already seen in this run are left out)."))
    public static let label = StageParameter<[String], WithoutDefault>(KeySpec("label", .stringOrList, "Only items with every one of these labels."))
    public static let excludeType = StageParameter<[String], WithoutDefault>(KeySpec("exclude-type", .stringOrList, "Leave out items of these `issue_type`s (for example `[epic]`)."))
    public static let args = StageParameter<[String], WithoutDefault>(KeySpec("args", .argv, "Extra arguments for `bd ready` (with `source: bd`)."))
    public static let refill = StageParameter<Bool, WithDefault>(KeySpec("refill", .boolean, default: .bool(false), "Query again each time an item's pipeline ends and every `refill-interval`; new items get their own pipelines."))
    public static let refillInterval = StageParameter<WorkflowDuration, WithDefault>(KeySpec("refill-interval", .duration, default: .string("30s"), "With `refill: true`: how often to query while pipelines run."))
    public static let maxItems = StageParameter<Int, WithoutDefault>(KeySpec("max-items", .integer(minimum: 1), "The most items one run dispatches."))

    static let all: [KeySpec] = [source.spec, path.spec, command.spec, limit.spec, label.spec, excludeType.spec, args.spec, refill.spec, refillInterval.spec, maxItems.spec]
}

/// The `with` parameters of `dispatch` stages.
public enum DispatchParameters {
    public static let agent = StageParameter<AgentChoice, WithDefault>(KeySpec("agent", .agent, default: .string("claude"), "The agent: the name of a profile (built-in claude, codex, gemini, opencode, or one under `agents:`), or an argv started in the item's worktree, where `${{ prompt }}` is the rendered prompt (also in the file named by $AMPLIFY_PROMPT_FILE) and `${{ session.agent-session }}` a session id (a UUID) the runner chose for the agent."))
    public static let budget = StageParameter<Budget, WithoutDefault>(KeySpec("budget", .budget, "Per item: {cost: dollars, turns: N}. Passed to the CLI when its profile has `cost-limit`/`turns-limit`; else the runner ends the agent when its reported figures pass the limit. Either way the item ends `over-budget`."))
    public static let prompt = StageParameter<String, WithoutDefault>(KeySpec("prompt", .string, required: true, "The prompt for the agent; may use `${{ item.<field> }}`, `${{ session.dir }}` and the rest. Tracker text is untrusted: it is a prompt-injection surface."))
    public static let branch = StageParameter<String, WithDefault>(KeySpec("branch", .string, default: .string("amplify/${{ item.id }}"), "The item's branch name template."))
    public static let setup = StageParameter<[Command], WithoutDefault>(KeySpec("setup", .commands, "Commands run in the new worktree before the agent starts."))
    public static let copy = StageParameter<[String], WithoutDefault>(KeySpec("copy", .names, "Untracked files of the repository (such as `.env`) copied into the worktree."))
    public static let sandbox = StageParameter<String, WithoutDefault>(KeySpec("sandbox", .choice(["none", "bwrap"]), "`bwrap`: the agent runs under bubblewrap, able to write only its own repository, its session directory, a private /tmp and its profile's config directories; default: settings.sandbox."))
    public static let sandboxWritable = StageParameter<[String], WithoutDefault>(KeySpec("sandbox-writable", .argv, "More paths (absolute, or `~/` for the home directory) the agent may write under `sandbox: bwrap`, beside settings.sandbox-writable; a trailing `/` marks a directory, made when missing."))

    public static let sessions = StageParameter<String, WithoutDefault>(KeySpec("sessions", .choice(SessionsBackend.names), "Where the agent runs: `local` or `slurm` (a Slurm batch job); default: settings.sessions."))
    public static let slurm = StageParameter<SlurmOptions, WithoutDefault>(KeySpec("slurm", .slurm, "The agent's Slurm job under `sessions: slurm`: {partition, time, cpus, mem, account, extra-args}, over settings.slurm key by key."))

    static let all: [KeySpec] = [agent.spec, prompt.spec, branch.spec, setup.spec, copy.spec, budget.spec, sandbox.spec, sandboxWritable.spec, sessions.spec, slurm.spec]
}

/// The `with` parameters of `wait-approved` stages.
public enum WaitApprovedParameters {
    public static let onExit = StageParameter<String, WithDefault>(KeySpec("on-exit", .choice(["fail", "wait", "approve"]), default: .string("fail"), "When the agent exits without a decision: `fail` the item, `wait` for a human decision, or `approve`."))
    public static let resume = StageParameter<[String], WithoutDefault>(KeySpec("resume", .argv, "The argv that restarts an agent that exited with a blocking question, once it is answered (`${{ answer }}`), or after a usage limit (`continue`); default: the agent profile's `resume`. Needed when dispatch's `agent` is an argv."))

    static let all: [KeySpec] = [onExit.spec, resume.spec]
}

/// The `with` parameters of `merge` stages.
public enum MergeParameters {
    public static let strategy = StageParameter<String, WithDefault>(KeySpec("strategy", .choice(["no-ff", "squash", "rebase"]), default: .string("no-ff"), "How the branch is merged: a merge commit (`no-ff`), one squashed commit, or the branch rebased onto the base."))
    public static let verify = StageParameter<[Command], WithoutDefault>(KeySpec("verify", .commands, "Commands run on the merged tree before it lands (the project's tests); a failure leaves the base as it was."))
    public static let commitLeftovers = StageParameter<Bool, WithDefault>(KeySpec("commit-leftovers", .boolean, default: .bool(true), "Commit changes the session left uncommitted before merging; `false` fails the item instead."))
    public static let empty = StageParameter<String, WithDefault>(KeySpec("empty", .choice(["fail", "skip"]), default: .string("fail"), "A branch with no commits beyond the base: fail the item, or skip it."))
    public static let message = StageParameter<String, WithDefault>(KeySpec("message", .string, default: .string("Merge ${{ item.id }}: ${{ item.title }}"), "The merge commit's subject."))
    public static let hooks = StageParameter<String, WithDefault>(KeySpec("hooks", .choice(["run", "skip"]), default: .string("run"), "The repository's hooks (`pre-commit`, `pre-merge-commit`, `commit-msg`, …) run for every commit the stage makes, and a refusal fails the item with their output; `skip` runs none."))

    public static let batch = StageParameter<Int, WithDefault>(KeySpec("batch", .integer(minimum: 1), default: .int(1), "Approved items landed together: their merge commits chained, `verify` run once on the tip, split and verified again on failure until each failing item is alone."))
    public static let batchWait = StageParameter<WorkflowDuration, WithDefault>(KeySpec("batch-wait", .duration, default: .string("0s"), "How long a batch waits, from its first approval, for more items to arrive."))
    public static let verifyConcurrency = StageParameter<Int, WithDefault>(KeySpec("verify-concurrency", .integer(minimum: 1), default: .int(1), "Verifications that may run at once (both halves of a split batch; speculation)."))
    public static let speculate = StageParameter<Bool, WithDefault>(KeySpec("speculate", .boolean, default: .bool(false), "While a batch verifies, build and verify the next one on top of it (needs `verify-concurrency` of 2 or more)."))
    public static let push = StageParameter<String, WithoutDefault>(KeySpec("push", .string, "A remote (e.g. `origin`) the base is pushed to after landing, as a fast-forward; never forced."))
    public static let pushAttempts = StageParameter<Int, WithDefault>(KeySpec("push-attempts", .integer(minimum: 1), default: .int(3), "Pushes refused because the remote's base moved, before the items fail (each time: fetch, rebuild, verify again)."))
    public static let via = StageParameter<String, WithDefault>(KeySpec("via", .choice(["local", "pull-request"]), default: .string("local"), "Land in the local repository (`local`), or push the branch and open a pull request with GitHub's CLI (`pull-request`)."))
    public static let remote = StageParameter<String, WithDefault>(KeySpec("remote", .string, default: .string("origin"), "The remote a pull request's branch is pushed to."))
    public static let wait = StageParameter<String, WithDefault>(KeySpec("wait", .choice(["opened", "merged"]), default: .string("merged"), "With `via: pull-request`: end the stage once the pull request is open, or once it is merged."))
    public static let autoMerge = StageParameter<Bool, WithDefault>(KeySpec("auto-merge", .boolean, default: .bool(false), "With `via: pull-request`: `gh pr merge --auto` with the stage's strategy, so GitHub merges it once its checks pass."))

    static let all: [KeySpec] = [strategy.spec, verify.spec, commitLeftovers.spec, empty.spec, message.spec, hooks.spec,
                                 batch.spec, batchWait.spec, verifyConcurrency.spec, speculate.spec, push.spec, pushAttempts.spec,
                                 via.spec, remote.spec, wait.spec, autoMerge.spec]
}

/// The `with` parameters of `close` stages.
public enum CloseParameters {
    public static let reason = StageParameter<String, WithDefault>(KeySpec("reason", .string, default: .string("Merged"), "The reason recorded with `bd close`."))
    public static let command = StageParameter<Command, WithoutDefault>(KeySpec("command", .command, "The command that closes the item when the source is `command`."))

    static let all: [KeySpec] = [reason.spec, command.spec]
}

/// The `with` parameters of `cleanup` stages.
public enum CleanupParameters {
    public static let removeBranch = StageParameter<String, WithDefault>(KeySpec("remove-branch", .choice(["merged", "always", "never"]), default: .string("merged"), "Delete the item's branch: once merged (default), always, or never."))

    static let all: [KeySpec] = [removeBranch.spec]
}

/// The `with` parameters of `run` stages.
public enum RunParameters {
    public static let command = StageParameter<Command, WithoutDefault>(KeySpec("command", .command, "The command: a string under /bin/sh -c (each `${{ }}` becomes a quoted environment variable reference) or an argv list."))
    public static let workingDirectory = StageParameter<String, WithoutDefault>(KeySpec("working-directory", .string, "Where the command runs, relative to the repository (default: the repository)."))

    static let all: [KeySpec] = [command.spec, workingDirectory.spec]
}
