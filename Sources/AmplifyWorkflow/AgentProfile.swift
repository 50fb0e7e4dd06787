// Agent profiles (SPEC §11): how an agent CLI is started and resumed, and how to read what it
// prints — as data, so a workflow can declare its own under `agents:` without Swift.
//
// WORK IN PROGRESS (branch wip/agent-profiles): the model, the built-in profiles and the checker
// of `agents:`; dispatch and wait-approved do not use them yet.

/// One agent CLI: its argv to start a session and to resume one, and the rules that read its output.
public struct AgentProfile: Sendable, Hashable {
    public enum OutputKind: String, Sendable, Hashable, CaseIterable {
        case jsonl, text
    }

    public var name: String
    /// argv; may use `${{ prompt }}`, `${{ session.* }}`, `${{ item.* }}`, `${{ vars.* }}`.
    public var command: TemplateValue
    /// argv; may use `${{ answer }}` and `${{ session.agent-session }}` too. nil: no resume.
    public var resume: TemplateValue?
    public var output: OutputKind
    public var sessionId: OutputRule?
    public var cost: OutputRule?
    public var tokens: OutputRule?
    public var turns: OutputRule?
    public var error: OutputRule?
    /// Environment the CLI needs to run unattended (gemini's workspace trust, opencode's permissions).
    public var environment: [String: String]

    public init(name: String, command: TemplateValue, resume: TemplateValue? = nil, output: OutputKind = .jsonl,
                sessionId: OutputRule? = nil, cost: OutputRule? = nil, tokens: OutputRule? = nil, turns: OutputRule? = nil,
                error: OutputRule? = nil, environment: [String: String] = [:]) {
        self.name = name; self.command = command; self.resume = resume; self.output = output
        self.sessionId = sessionId; self.cost = cost; self.tokens = tokens; self.turns = turns; self.error = error
        self.environment = environment
    }
}

/// Picks the JSON lines whose `type` is `type` (and, with `when`, whose named field is true) and
/// reads `field`: the first of its dotted paths that is present and not empty. Within one start of
/// the agent the last value counts, or their sum with `sum`; a session's starts add up, unless
/// `total` (the agent reports a running total for the whole session).
public struct OutputRule: Sendable, Hashable {
    public var type: String
    public var field: [[String]]
    public var when: [String]?
    public var sum: Bool
    public var total: Bool

    public init(type: String, field: [String], when: String? = nil, sum: Bool = false, total: Bool = false) {
        self.type = type
        self.field = field.map { $0.split(separator: ".").map(String.init) }
        self.when = when.map { $0.split(separator: ".").map(String.init) }
        self.sum = sum
        self.total = total
    }

    /// The value this rule reads from one parsed line, if the line is one it picks.
    public func read(_ line: Value) -> Value? {
        guard case .object(let o) = line, o["type"] == .string(type) else { return nil }
        if let when, OutputRule.lookup(line, when) != .bool(true) { return nil }
        for path in field {
            guard let v = OutputRule.lookup(line, path) else { continue }
            switch v {
            case .null: continue
            case .string(let s) where s.isEmpty: continue
            case .list(let l) where l.isEmpty: continue
            default: return v
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
                error: OutputRule(type: "result", field: ["result", "errors"], when: "is_error")),
            AgentProfile(
                name: "codex",
                command: argv(["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "${{ prompt }}"]),
                resume: argv(["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                              "resume", "${{ session.agent-session }}", "${{ answer }}"]),
                sessionId: OutputRule(type: "thread.started", field: ["thread_id"]),
                tokens: OutputRule(type: "turn.completed", field: ["usage.output_tokens"], total: true),
                error: OutputRule(type: "turn.failed", field: ["error.message"])),
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
        return Dictionary(uniqueKeysWithValues: profiles.map { ($0.name, $0) })
    }()
}
