import AmplifyEngine
@testable import AmplifyStages
import AmplifyWorkflow
import Foundation
import Testing

/// What an agent said, read by its profile's rules. WORK IN PROGRESS (wip/agent-profiles).
@Suite("profile output rules")
struct ProfileOutputTests {
    static let research = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/research/fixtures")

    static func report(_ profile: String, _ text: String) throws -> AgentReport {
        ProfileOutput(profile: try #require(AgentProfile.builtIn[profile])).report(Array(text.utf8)[...])
    }

    @Test("codex: the thread id, the session's running token total, a failed turn's own words (codex 0.147.0's real output)")
    func codex() throws {
        // turn.completed lines as codex exec --json prints them (docs/research/agent-clis.md §2).
        let ok = try Self.report("codex", """
        {"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}
        {"type":"turn.started"}
        {"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}
        """)
        #expect(ok.agentSession == "0199a213-81c0-7800-8aa1-bbab2a035a53" && ok.tokens == 122 && ok.cost == nil && ok.errorMessage == nil)
        let failed = try Self.report("codex", try String(contentsOf: Self.research.appendingPathComponent("codex-0.147.0-offline-turn-failed.jsonl"), encoding: .utf8))
        #expect(failed.agentSession == "01a22e89-dce0-7220-b2dc-6cfd86686dce")
        #expect(failed.errorMessage?.contains("error sending request") == true || failed.errorMessage?.contains("stream disconnected") == true, "\(String(describing: failed.errorMessage))")
    }

    @Test("claude's rules read the same as the hand-written Claude reader from Claude 2.1.332's not-logged-in output")
    func claudeAgrees() throws {
        let bytes = Array(try Data(contentsOf: Self.research.appendingPathComponent("claude-2.1.332-session-id-not-logged-in.jsonl")))
        let rules = ProfileOutput(profile: try #require(AgentProfile.builtIn["claude"])).report(bytes[...])
        let native = ClaudeStreamJSON().report(bytes[...])
        #expect(rules.agentSession == native.agentSession && rules.cost == native.cost && rules.turns == native.turns)
        #expect(rules.errorMessage == native.errorMessage, "\(String(describing: rules.errorMessage)) vs \(String(describing: native.errorMessage))")
    }

    @Test("opencode: cost and tokens are summed over the steps of one start")
    func opencodeSums() throws {
        let r = try Self.report("opencode", """
        {"type":"step_start","sessionID":"ses_1","part":{"type":"step-start"}}
        {"type":"step_finish","sessionID":"ses_1","part":{"type":"step-finish","tokens":{"output":21},"cost":0.01}}
        {"type":"step_finish","sessionID":"ses_1","part":{"type":"step-finish","tokens":{"output":9},"cost":0.02}}
        """)
        #expect(r.agentSession == "ses_1" && r.tokens == 30)
        #expect(abs((r.cost ?? 0) - 0.03) < 1e-9)
    }
}
