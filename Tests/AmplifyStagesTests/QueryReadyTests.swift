import AmplifyEngine
import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

@Suite("query-ready")
struct QueryReadyTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func issues() throws -> [Value] {
        try BeadsReadiness.parseIssues(String(contentsOf: fixtures.appendingPathComponent("beads-issues.jsonl"), encoding: .utf8))
    }

    func ids(_ items: [Value]) -> [String] { items.compactMap { $0["id"]?.renderedText } }

    /// Ready items from `issues.jsonl`; each one's id is appended to `seen`.
    static let fileWorkflow = """
    version: 1
    stages:
      ready:
        uses: query-ready
        with: {source: file, path: issues.jsonl, exclude-type: [epic]}
      show:
        for-each: ${{ stages.ready.outputs.items }}
        run: ["sh", "-c", "echo \\"$1\\" >> seen", "sh", "${{ item.id }}"]
    """

    @Test("bd's ready rules on the fixture: demo-2, demo-1, demo-4 (priority, then created_at)")
    func fixtureAnswer() throws {
        #expect(ids(BeadsReadiness.ready(try Self.issues(), now: "2026-11-24T12:00:00.000Z")) == ["demo-2", "demo-1", "demo-4"])
    }

    @Test("closing a blocker makes what it blocks ready")
    func closingUnblocks() throws {
        var issues = try Self.issues()
        for (i, v) in issues.enumerated() where v["id"] == .string("demo-2") { issues[i]["status"] = .string("closed") }
        #expect(ids(BeadsReadiness.ready(issues, now: "2026-11-24T12:00:00.000Z")) == ["demo-3", "demo-1", "demo-4"])
    }

    @Test("a blocked ancestor blocks its descendants; a deferred parent defers its children; pinned blockers do not block")
    func ancestry() throws {
        let text = """
        {"id":"p","status":"open","priority":1,"dependencies":[{"issue_id":"p","depends_on_id":"x","type":"blocks"}]}
        {"id":"x","status":"in_progress","priority":1}
        {"id":"c","status":"open","priority":1,"dependencies":[{"issue_id":"c","depends_on_id":"p","type":"parent-child"}]}
        {"id":"g","status":"open","priority":1,"dependencies":[{"issue_id":"g","depends_on_id":"c","type":"parent-child"}]}
        {"id":"d","status":"open","priority":2,"defer_until":"2099-01-01T00:00:00Z"}
        {"id":"dc","status":"open","priority":2,"parent":"d"}
        {"id":"q","status":"open","priority":3,"dependencies":[{"issue_id":"q","depends_on_id":"pin","type":"blocks"},{"issue_id":"q","depends_on_id":"x","type":"related"}]}
        {"id":"pin","status":"pinned","priority":4}
        {"id":"loop1","status":"open","priority":5,"parent":"loop2"}
        {"id":"loop2","status":"open","priority":5,"parent":"loop1"}
        """
        let ready = ids(BeadsReadiness.ready(try BeadsReadiness.parseIssues(text), now: "2026-11-24T12:00:00.000Z"))
        #expect(ready == ["q", "loop1", "loop2"], "\(ready)")
    }

    @Test("a malformed issues file is an error with its byte offset, not a crash")
    func malformedFile() {
        #expect(throws: JSONParser.Error.self) { try BeadsReadiness.parseIssues("{\"id\":\"a\"}\n{\"id\": oops}\n") }
    }

    @Test("source: file in a run: epics left out, ids that would leave a folder refused")
    func fileSourceRun() async throws {
        let box = try Sandbox(Self.fileWorkflow)
        var text = try String(contentsOf: Self.fixtures.appendingPathComponent("beads-issues.jsonl"), encoding: .utf8)
        text += "{\"id\":\"../../etc\",\"title\":\"escape\",\"status\":\"open\",\"priority\":0}\n"
        try text.write(toFile: box.path + "/issues.jsonl", atomically: true, encoding: .utf8)
        let r = try await amplify(["wf.yaml"], in: box)
        #expect(r.status == 1, "an invalid id makes exit 1: \(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("invalid id: \"../../etc\""), "\(r.stdout)")
        #expect(box.read("seen") .split(separator: "\n").sorted() == ["demo-2", "demo-4"])
        let journal = try String(contentsOfFile: try #require(try box.journals().first), encoding: .utf8)
        #expect(journal.contains("\"invalid\":[{\"id\":\"../../etc\""))
    }

    @Test("source: bd runs `bd ready --json` with its flags; unknown fields are kept")
    func bdSource() async throws {
        let box = try Sandbox("""
        version: 1
        stages:
          ready:
            uses: query-ready
            with: {source: bd, limit: 5, label: [api]}
          show:
            for-each: ${{ stages.ready.outputs.items }}
            run: ["sh", "-c", "echo \\"$1 $2\\" >> seen", "sh", "${{ item.id }}", "${{ item.metadata.estimate }}"]
        """)
        let bin = box.url.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let script = """
        #!/bin/sh
        echo "$@" > "\(box.path)/bd-args"
        cat "\(Self.fixtures.path)/bd-ready.json"
        """
        try script.write(to: bin.appendingPathComponent("bd"), atomically: true, encoding: .utf8)
        chmod(bin.appendingPathComponent("bd").path, 0o755)
        let r = try await runProcessWithPath(bin.path, in: box)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(box.read("bd-args") == "ready --json --limit 5 --label api\n")
        // bd filtered nothing (this script ignores flags); the label filter kept shop-7 only.
        #expect(box.read("seen") == "shop-7 \n")
    }

    @Test("--dry-run lists what would be dispatched and changes nothing")
    func dryRun() async throws {
        let box = try Sandbox(Self.fileWorkflow)
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("beads-issues.jsonl"), to: box.url.appendingPathComponent("issues.jsonl"))
        let r = try await amplify(["wf.yaml", "--dry-run"], in: box)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("show would run for 2 items:\n  demo-2  Write greet()\n  demo-4  Document greet()"), "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: box.path + "/seen"), "no command but the query ran")
        #expect(!FileManager.default.fileExists(atPath: box.path + "/.amplify"), "no run was recorded")
    }

    @Test("`bd` missing from PATH is a clear error that names `source: file`")
    func bdMissing() async throws {
        let box = try Sandbox("version: 1\nstages: {ready: {uses: query-ready}}")
        let r = try await runProcessWithPath("/nonexistent", in: box)
        #expect(r.status == 1)
        #expect(r.stdout.contains("`bd` is not on PATH") && r.stdout.contains("source: file"), "\(r.stdout)")
    }

    /// Runs amplify-run with PATH set to `dir` (then the system's directories).
    func runProcessWithPath(_ dir: String, in box: Sandbox) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await amplify(["wf.yaml"], in: box, environment: ["PATH": "\(dir):/usr/bin:/bin"])
    }
}
