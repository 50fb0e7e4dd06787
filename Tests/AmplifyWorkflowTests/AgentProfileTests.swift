import AmplifyWorkflow
import Foundation
import Testing

/// Agent profiles as data (SPEC §11): the checker of `agents:` and the rules that read what an
/// agent prints. WORK IN PROGRESS: dispatch does not use profiles yet.
@Suite("Agent profiles")
struct AgentProfileTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/research/fixtures")

    /// What a rule reads from a whole output, line by line: the last value it picks.
    static func lastValue(_ rule: OutputRule, in file: String) throws -> Value? {
        let text = try String(contentsOf: fixtures.appendingPathComponent(file), encoding: .utf8)
        var last: Value?
        for line in text.split(separator: "\n") {
            guard let v = try? JSONParser.parse(String(line)) else { continue }
            if let read = rule.read(v) { last = read }
        }
        return last
    }

    @Test("the built-in codex profile reads the thread id and the failed turn's message from codex 0.147.0's real output")
    func codexOutput() throws {
        let codex = try #require(AgentProfile.builtIn["codex"])
        let file = "codex-0.147.0-offline-turn-failed.jsonl"
        #expect(try Self.lastValue(try #require(codex.sessionId), in: file) == .string("01a22e89-dce0-7220-b2dc-6cfd86686dce"))
        let message = try Self.lastValue(try #require(codex.error), in: file)
        guard case .string(let s)? = message else { Issue.record("no error read: \(String(describing: message))"); return }
        #expect(s.contains("stream disconnected") || s.contains("error sending request"), "\(s)")
    }

    @Test("the built-in claude profile reads Claude 2.1.332's not-logged-in result: its words, no JSON")
    func claudeOutput() throws {
        let claude = try #require(AgentProfile.builtIn["claude"])
        let file = "claude-2.1.332-session-id-not-logged-in.jsonl"
        #expect(try Self.lastValue(try #require(claude.sessionId), in: file) == .string("11111111-2222-4333-8444-555555555555"))
        guard case .string(let s)? = try Self.lastValue(try #require(claude.error), in: file) else { Issue.record("no error read"); return }
        #expect(s.contains("Not logged in"), "\(s)")
        #expect(try Self.lastValue(try #require(claude.cost), in: file) != nil)
    }

    @Test("a rule's `field` list takes the first path present and not empty; `when` picks lines whose field is true")
    func ruleFields() throws {
        let rule = OutputRule(type: "result", field: ["result", "errors"], when: "is_error")
        let failed = try JSONParser.parse(#"{"type":"result","is_error":true,"result":"","errors":["quota"]}"#)
        #expect(rule.read(failed) == .list([.string("quota")]))
        let fine = try JSONParser.parse(#"{"type":"result","is_error":false,"result":"done"}"#)
        #expect(rule.read(fine) == nil)
        let other = try JSONParser.parse(#"{"type":"assistant","is_error":true,"result":"x"}"#)
        #expect(rule.read(other) == nil)
    }

    @Test("a workflow declares its own profile under `agents:`; the checker reads its rules")
    func declared() throws {
        let w = try #require(check("""
        version: 1
        agents:
          my-agent:
            command: [my-agent, --json, "${{ prompt }}"]
            resume: [my-agent, --json, --continue, "${{ session.agent-session }}", "${{ answer }}"]
            session-id: {type: thread.started, field: thread_id}
            tokens: {type: turn.completed, field: usage.output_tokens, sum: true}
            error: {type: result, when: is_error, field: [result, errors]}
            environment: {MY_AGENT_TRUST: "1"}
        stages: {a: {run: x}}
        """).workflow)
        let p = try #require(w.agentProfile("my-agent"))
        #expect(p.tokens == OutputRule(type: "turn.completed", field: ["usage.output_tokens"], sum: true))
        #expect(p.error?.field == [["result"], ["errors"]])
        #expect(p.environment == ["MY_AGENT_TRUST": "1"])
        #expect(w.agentProfile("codex")?.name == "codex", "the built-ins are there too")
    }

    @Test("a bad profile is an error at its place", arguments: [
        ("  claude: {command: [x]}", "3:3: 'claude' is a built-in profile"),
        ("  mine: {comand: [x]}", "did you mean 'command'"),
        ("  mine: {command: x}", "must be a list of strings"),
        ("  mine: {command: [x], tokens: {type: t}}", "missing the required key 'field'"),
        ("  mine: {command: [x], tokens: {type: t, field: 'a..b'}}", "is not a dotted path"),
        ("  mine: {command: [x], cost: {type: t, field: c, sum: true, total: true}}", "cannot both be true"),
        ("  mine: {command: [x], output: xml}", "unknown value 'xml'"),
    ])
    func badProfiles(_ profile: String, _ expected: String) {
        let e = errors("version: 1\nagents:\n\(profile)\nstages: {a: {run: x}}\n")
        #expect(e.contains { $0.contains(expected) }, "\(e)")
    }
}
