// Agent profiles (SPEC §11): how an agent CLI is started and resumed, and how to read what it
// prints — as data, so a workflow can declare its own under `agents:` without Swift.

/// One agent CLI: its argv to start a session and to resume one, and the rules that read its output.
public struct AgentProfile: Sendable, Hashable {
    public enum OutputKind: String, Sendable, Hashable, CaseIterable {
        case jsonl, text
    }

    public var name: String
    /// argv; may use `${{ prompt }}`, `${{ session.* }}`, `${{ vars.* }}`, `${{ env.* }}`.
    public var command: TemplateValue
    /// argv; may use `${{ answer }}` and `${{ session.agent-session }}` too. nil: no resume.
    public var resume: TemplateValue?
    /// `text`: nothing is read from its output (no cost, session id or error; a failure shows
    /// the end of its output).
    public var output: OutputKind
    public var sessionId: OutputRule?
    public var cost: OutputRule?
    public var tokens: OutputRule?
    public var turns: OutputRule?
    public var error: OutputRule?
    /// A stop by the provider's usage limit; its value is the reset time (see `UsageLimit`).
    public var usageLimit: OutputRule?
    /// Arguments that pass the CLI its own limits (`${{ budget.cost }}`, `${{ budget.turns }}`),
    /// placed before the argv's `--` (else at its end). nil: the runner enforces the limit.
    public var costLimit: TemplateValue?
    public var turnsLimit: TemplateValue?
    /// Environment the CLI needs to run unattended (gemini's workspace trust, opencode's permissions).
    public var environment: [String: String]
    /// What the CLI writes outside the worktree (its config and sessions), writable under
    /// `sandbox: bwrap`; `~/` is the home directory.
    public var sandboxWritable: [String] = []

    public init(name: String, command: TemplateValue, resume: TemplateValue? = nil, output: OutputKind = .jsonl,
                sessionId: OutputRule? = nil, cost: OutputRule? = nil, tokens: OutputRule? = nil, turns: OutputRule? = nil,
                error: OutputRule? = nil, usageLimit: OutputRule? = nil, costLimit: TemplateValue? = nil, turnsLimit: TemplateValue? = nil,
                environment: [String: String] = [:]) {
        self.name = name; self.command = command; self.resume = resume; self.output = output
        self.sessionId = sessionId; self.cost = cost; self.tokens = tokens; self.turns = turns; self.error = error
        self.usageLimit = usageLimit; self.costLimit = costLimit; self.turnsLimit = turnsLimit
        self.environment = environment
    }

    /// The keys of a profile that hold an output rule.
    public static let ruleKeys = ["session-id", "cost", "tokens", "turns", "error", "usage-limit"]

    /// The rules by the figure they read (`cost`, `tokens`, `turns`).
    public var figureRules: [(name: String, rule: OutputRule)] {
        [("cost", cost), ("tokens", tokens), ("turns", turns)].compactMap { pair in pair.1.map { (pair.0, $0) } }
    }
}

/// Picks the JSON lines whose `type` is `type` (and, with `when`, whose named field is true, or
/// whose named fields equal the given values) and reads `field`: the first of its dotted paths that
/// is present and not empty (and, with `contains`, whose text holds it). Within one start of the
/// agent the last value counts, or their sum with `sum`; a session's starts add up, unless `total`
/// (the agent reports a running total for the whole session).
public struct OutputRule: Sendable, Hashable {
    public var type: String
    public var field: [[String]]
    /// Each path must hold the value (`true` for the plain `when: FIELD`).
    public var when: [(path: [String], equals: Value)]
    public var contains: String?
    public var sum: Bool
    public var total: Bool

    public init(type: String, field: [String], when: String? = nil, equals: [(String, Value)] = [], contains: String? = nil, sum: Bool = false, total: Bool = false) {
        self.type = type
        self.field = field.map { $0.split(separator: ".").map(String.init) }
        let conditions: [(String, Value)] = (when.map { [($0, Value.bool(true))] } ?? []) + equals
        self.when = conditions.map { (path: $0.0.split(separator: ".").map(String.init), equals: $0.1) }
        self.contains = contains
        self.sum = sum
        self.total = total
    }

    public static func == (a: OutputRule, b: OutputRule) -> Bool {
        a.type == b.type && a.field == b.field && a.contains == b.contains && a.sum == b.sum && a.total == b.total
            && a.when.map(\.path) == b.when.map(\.path) && a.when.map(\.equals) == b.when.map(\.equals)
    }

    public func hash(into h: inout Hasher) {
        h.combine(type); h.combine(field); h.combine(contains); h.combine(sum); h.combine(total)
        for w in when { h.combine(w.path) }
    }

    /// The value this rule reads from one parsed line, if the line is one it picks.
    public func read(_ line: Value) -> Value? {
        guard case .object(let o) = line, o["type"] == .string(type) else { return nil }
        for w in when where OutputRule.lookup(line, w.path) != w.equals { return nil }
        for path in field {
            guard let v = OutputRule.lookup(line, path) else { continue }
            switch v {
            case .null: continue
            case .string(let s) where s.isEmpty: continue
            case .list(let l) where l.isEmpty: continue
            default:
                if let contains, !v.renderedText.contains(contains) { continue }
                return v
            }
        }
        return nil
    }

    static func lookup(_ value: Value, _ path: [String]) -> Value? {
        var current = value
        for key in path {
            guard case .object(let o) = current, let next = o[key] else { return nil }
            current = next
        }
        return current
    }
}

extension AgentProfile {
    private static func argv(_ parts: [String]) -> TemplateValue {
        .list(parts.map { part in
            let parsed = Template.parse(part)
            return parsed.errors.isEmpty && parsed.template.hasExpressions ? .template(parsed.template) : .literal(.string(part))
        })
    }

    /// The profiles every workflow has; a workflow's `agents:` may add others (not replace these).
    /// Flags and fields: docs/research/agent-clis.md, which cites each one's source.
    public static let builtIn: [String: AgentProfile] = {
        let profiles = [
            AgentProfile(
                name: "claude",
                command: argv(["claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions",
                               "--session-id", "${{ session.agent-session }}", "--", "${{ prompt }}"]),
                resume: argv(["claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions",
                              "--resume", "${{ session.agent-session }}", "--", "${{ answer }}"]),
                sessionId: OutputRule(type: "system", field: ["session_id"]),
                cost: OutputRule(type: "result", field: ["total_cost_usd"]),
                tokens: OutputRule(type: "result", field: ["usage.output_tokens"]),
                turns: OutputRule(type: "result", field: ["num_turns"]),
                error: OutputRule(type: "result", field: ["result", "errors"], when: "is_error"),
                usageLimit: OutputRule(type: "rate_limit_event", field: ["rate_limit_info.resetsAt"], equals: [("rate_limit_info.status", .string("rejected"))]),
                costLimit: argv(["--max-budget-usd", "${{ budget.cost }}"]),
                turnsLimit: argv(["--max-turns", "${{ budget.turns }}"])),
            AgentProfile(
                name: "codex",
                command: argv(["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "${{ prompt }}"]),
                resume: argv(["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                              "resume", "${{ session.agent-session }}", "${{ answer }}"]),
                sessionId: OutputRule(type: "thread.started", field: ["thread_id"]),
                tokens: OutputRule(type: "turn.completed", field: ["usage.output_tokens"], total: true),
                error: OutputRule(type: "turn.failed", field: ["error.message"]),
                usageLimit: OutputRule(type: "turn.failed", field: ["error.message"], contains: "usage limit")),
            AgentProfile(
                name: "gemini",
                command: argv(["gemini", "-o", "stream-json", "--approval-mode", "yolo", "-p", "${{ prompt }}"]),
                resume: argv(["gemini", "-o", "stream-json", "--approval-mode", "yolo", "-r", "${{ session.agent-session }}", "-p", "${{ answer }}"]),
                sessionId: OutputRule(type: "init", field: ["session_id"]),
                tokens: OutputRule(type: "result", field: ["stats.output_tokens"]),
                error: OutputRule(type: "result", field: ["error.message"]),
                environment: ["GEMINI_CLI_TRUST_WORKSPACE": "true"]),
            AgentProfile(
                name: "opencode",
                command: argv(["opencode", "run", "--format", "json", "--", "${{ prompt }}"]),
                resume: argv(["opencode", "run", "--format", "json", "--session", "${{ session.agent-session }}", "--", "${{ answer }}"]),
                sessionId: OutputRule(type: "step_start", field: ["sessionID"]),
                cost: OutputRule(type: "step_finish", field: ["part.cost"], sum: true),
                tokens: OutputRule(type: "step_finish", field: ["part.tokens.output"], sum: true),
                error: OutputRule(type: "error", field: ["error.data.message", "error.name"]),
                environment: ["OPENCODE_PERMISSION": #"{"*":"allow"}"#]),
        ]
        // Where each CLI keeps its login, settings and sessions (each CLI's docs; see the README's
        // profile table): writable in a sandbox, or it cannot log in or resume.
        // A trailing `/`: a directory, made when missing. opencode's config (~/.config/opencode)
        // stays read-only: its plugins run code.
        let writable = ["claude": ["~/.claude/", "~/.claude.json"], "codex": ["~/.codex/"], "gemini": ["~/.gemini/"],
                        "opencode": ["~/.local/share/opencode/", "~/.cache/opencode/"]]
        return Dictionary(uniqueKeysWithValues: profiles.map { p in
            var p = p
            p.sandboxWritable = writable[p.name] ?? []
            return (p.name, p)
        })
    }()
}
