import AmplifyEngine
@testable import AmplifyStages
import AmplifyWorkflow
import Foundation
import Testing

/// What an agent said, read by its profile's rules, over the starts of its session.
@Suite("profile output rules")
struct ProfileOutputTests {
    /// Each CLI's output shape, cited in Fixtures/agents/README.md.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/agents")

    static func fixture(_ name: String) throws -> String {
        try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
    }

    static func report(_ profile: String, _ text: String, starts: [Int] = [], now: Int64 = 1_780_000_000_000) throws -> AgentReport {
        AgentOutput(profile: try #require(AgentProfile.builtIn[profile])).report(Array(text.utf8)[...], from: 0, starts: starts, now: now)
    }

    @Test("codex: the thread id, the session's running token total, a failed turn's own words (codex 0.147.0's real output)")
    func codex() throws {
        // turn.completed lines as codex exec --json prints them (docs/research/agent-clis.md §2).
        let ok = try Self.report("codex", try Self.fixture("codex-exec-docs.jsonl"))
        #expect(ok.agentSession == "0199a213-81c0-7800-8aa1-bbab2a035a53" && ok.tokens == 122 && ok.cost == nil && ok.errorMessage == nil)
        let failed = try Self.report("codex", try Self.fixture("codex-0.147.0-offline-turn-failed.jsonl"))
        #expect(failed.agentSession == "01a22e89-dce0-7220-b2dc-6cfd86686dce")
        #expect(failed.errorMessage?.contains("error sending request") == true, "\(String(describing: failed.errorMessage))")
        #expect(failed.usageLimit == nil)
    }

    @Test("claude: Claude 2.1.332's real not-logged-in output gives its session id and its own words")
    func claudeNotLoggedIn() throws {
        let text = try Self.fixture("claude-2.1.332-not-logged-in.jsonl")
        let r = try Self.report("claude", text)
        #expect(r.errorMessage?.contains("Not logged in") == true, "\(String(describing: r.errorMessage))")
        #expect(r.agentSession != nil && r.isError == true)
    }

    @Test("opencode: cost and tokens are summed over the steps of one start; its error's own words")
    func opencode() throws {
        let r = try Self.report("opencode", try Self.fixture("opencode-1.14.25-run.jsonl"))
        #expect(r.agentSession == "ses_236c713fcffel8QozOz4ca0AYK" && r.tokens == 78)
        #expect(abs((r.cost ?? 0) - 0.000363204) < 1e-12)
        let e = try Self.report("opencode", try Self.fixture("opencode-1.14.25-error.jsonl"))
        #expect(e.errorMessage == "Model not found: nonexistent/nonexistent." && e.cost == nil)
    }

    @Test("gemini: the session id and the tokens of its result; an error result's own words")
    func gemini() throws {
        let r = try Self.report("gemini", try Self.fixture("gemini-stream-json.jsonl"))
        #expect(r.agentSession == "test-session-123" && r.tokens == 50 && r.cost == nil && r.errorMessage == nil)
        let e = try Self.report("gemini", try Self.fixture("gemini-0.50.0-api-key-invalid.jsonl"))
        #expect(e.errorMessage == "[API Error: … API_KEY_INVALID …]" && e.tokens == 0)
    }

    @Test("a session's starts add up (claude's cost per start); a running total (codex's tokens) is the last start's")
    func startsAddUp() throws {
        let first = #"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"total_cost_usd":0.25,"session_id":"s1"}"# + "\n"
        let second = #"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"total_cost_usd":0.5,"session_id":"s1"}"# + "\n"
        let claude = try Self.report("claude", first + second, starts: [0, first.utf8.count])
        #expect(claude.cost == 0.75 && claude.turns == 5)
        // Without the start boundary the last result counts.
        #expect(try Self.report("claude", first + second).cost == 0.5)
        let c1 = #"{"type":"turn.completed","usage":{"output_tokens":100}}"# + "\n"
        let c2 = #"{"type":"turn.completed","usage":{"output_tokens":160}}"# + "\n"
        #expect(try Self.report("codex", c1 + c2, starts: [0, c1.utf8.count]).tokens == 160)
    }

    @Test("a usage limit: Claude's rejected rate_limit_event in Unix seconds, codex's \"try again at 3:28 PM\", Gemini's \"reset after 1h49m8s\"")
    func usageLimits() throws {
        // The rejected event as Claude Code prints it (PR paperclipai/paperclip#5776, docs/research §1.4).
        let claude = try Self.report("claude", try Self.fixture("claude-rate-limit-rejected.jsonl") + """
        {"type":"result","subtype":"success","is_error":true,"num_turns":1,"result":"Claude AI usage limit reached","session_id":"s1"}
        """)
        #expect(claude.usageLimit?.resetsAt == 1_778_565_600_000)
        #expect(claude.usageLimit?.said.contains("usage limit") == true)
        let allowed = try Self.report("claude", #"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1778598000}}"#)
        #expect(allowed.usageLimit == nil)
        // codex: error.rs's message (docs/research §2.6, 10): the next 15:28 on this machine's clock.
        let now: Int64 = 1_780_000_000_000
        let codex = try Self.report("codex", try Self.fixture("codex-usage-limit.jsonl"), now: now)
        let at = try #require(codex.usageLimit?.resetsAt)
        #expect(at > now && at <= now + 86_400_000)
        var t = time_t(at / 1000), tm = tm()
        localtime_r(&t, &tm)
        #expect(tm.tm_hour == 15 && tm.tm_min == 28)
        #expect(UsageLimitClock.fromText("Your quota will reset after 1h49m8s.", now: now) == now + 6_548_000)
        #expect(UsageLimitClock.fromText("try again later", now: now) == nil)
    }

    @Test("hostile figures neither crash the runner nor defeat a budget: NaN, negative and huge numbers, a reset years away")
    func hostileFigures() throws {
        let now: Int64 = 1_780_000_000_000
        let r = try Self.report("claude", """
        {"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":99999999999999999}}
        {"type":"result","is_error":true,"num_turns":1e300,"total_cost_usd":"nan","usage":{"output_tokens":-5},"result":"limit"}
        """, now: now)
        #expect(r.cost == nil && r.tokens == nil && r.turns == 1_000_000_000_000_000)
        #expect(r.usageLimit?.resetsAt == now + UsageLimitClock.longest)
        let far = try Self.report("claude", #"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1e300}}"#, now: now)
        #expect(far.usageLimit?.resetsAt == now + UsageLimitClock.longest)
        #expect(UsageLimitClock.resetTime(.string("Your quota will reset after 99999999999999999999h."), now: now) == now + UsageLimitClock.longest)
        #expect(try Self.report("opencode", #"{"type":"step_finish","part":{"cost":-1,"tokens":{"output":"inf"}}}"#).cost == nil)
    }

    @Test("codex's usage limit on another day: \"try again at Nov 5th, 2025 3:28 PM\" (codex-rs error.rs's dated form)")
    func codexDatedReset() throws {
        let now: Int64 = 1_700_000_000_000  // 2023-11-14
        let at = try #require(UsageLimitClock.fromText("You've hit your usage limit. Upgrade to Pro or try again at Nov 5th, 2025 3:28 PM.", now: now))
        var t = time_t(at / 1000), tm = tm()
        localtime_r(&t, &tm)
        #expect(tm.tm_year == 125 && tm.tm_mon == 10 && tm.tm_mday == 5 && tm.tm_hour == 15 && tm.tm_min == 28)
    }

    @Test("a long session is read whole: $0.10 steps between 300 KB lines over 6 MB sum to $2.00, a 2 MB line is skipped, and reading as the log grows gives the same")
    func longLogIsReadWhole() throws {
        let profile = AgentProfile(name: "steps", command: .list([.literal(.string("x"))]), cost: OutputRule(type: "step", field: ["cost"], sum: true))
        let filler = #"{"type":"tool","output":""# + String(repeating: "x", count: 300_000) + "\"}\n"
        var log = ""
        for i in 0..<20 {
            log += filler + #"{"type":"step","cost":0.1}"# + "\n"
            if i == 10 { log += String(repeating: "y", count: 2 << 20) + "\n" }
        }
        let bytes = Array(log.utf8)
        let whole = AgentOutput(profile: profile).report(bytes[...], from: 0, starts: [])
        #expect(abs((whole.cost ?? 0) - 2.0) < 1e-9, "\(String(describing: whole.cost))")
        var growing = AgentOutput(profile: profile)
        var at = 0, size = 1
        while at < bytes.count {
            let end = min(bytes.count, at + size)
            growing.feed(bytes[at..<end])
            at = end
            size = size * 3 % 1_000_003 + 1
        }
        #expect(growing.report.cost == whole.cost)
    }
}
