import AmplifyTestSupport
import Foundation
import Testing

/// The commands that read runs find them in whichever state directory the repository's workflows
/// name, not only in the default workflow's.
@Suite("State directories named by workflows")
struct StateDirectoryTests {
    @Test("a workflow with settings.state elsewhere: status, runs, logs, answer and approve find its run and sessions")
    func stateElsewhere() async throws {
        let workflow = Orchestra.workflow(timeout: "60s").replacingOccurrences(of: "concurrency: 3}", with: "concurrency: 3, state: .state-elsewhere}")
        #expect(workflow.contains("state: .state-elsewhere"))
        let o = try Orchestra([("e-1", "ask-exit", nil), ("e-2", "human", nil)], workflow: workflow)
        let run = Task { try await o.run() }
        let asked = await o.waitFor({ $0.hasPrefix("e-1-") && $0.hasSuffix("/questions.json") }, under: ".state-elsewhere/sessions", seconds: 60)
        let asking = try #require(asked?.split(separator: "/").first.map(String.init))
        let working = await o.waitFor({ $0.hasPrefix("e-2-") && $0.hasSuffix("/output.log") }, under: ".state-elsewhere/sessions", seconds: 60)
        let human = try #require(working?.split(separator: "/").first.map(String.init))
        for _ in 0..<100 where !o.box.read(".state-elsewhere/sessions/\(human)/state.json").contains("\"completed\"") { try await Task.sleep(for: .milliseconds(100)) }

        let runs = try await o.run(["runs"])
        #expect(runs.status == 0, "\(runs.stderr)")
        #expect(runs.stdout.contains("wf.yaml  running"), "\(runs.stdout)")
        let status = try await o.run(["status"])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("SESSIONS") && status.stdout.contains(asking), "\(status.stdout)")
        let logs = try await o.run(["logs", asking])
        #expect(logs.status == 0, "\(logs.stderr)")
        #expect(logs.stdout.contains("sess-e-1"), "\(logs.stdout)")
        let answer = try await o.run(["answer", asking, "q1", "red"])
        #expect(answer.status == 0, "\(answer.stderr)")
        #expect(answer.stdout.contains("answered q1 of session \(asking)"))
        let approve = try await o.run(["approve", human, "--summary", "fine"])
        #expect(approve.status == 0, "\(approve.stderr)")

        let r = try await run.value
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(try o.landed("e-1") == 1 && o.landed("e-2") == 1)
        let runId = try #require(runs.stdout.split(separator: " ").first.map(String.init))
        let after = try await o.run(["status", runId])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdout.contains("finished"), "\(after.stdout)")
        let finished = try await o.run(["runs", "--json"])
        #expect(finished.stdout.contains("\"finished (succeeded)\""), "\(finished.stdout)")
        #expect(!FileManager.default.fileExists(atPath: o.box.path + "/.amplify"), "nothing written to the default state directory")
    }
}
