import AmplifyEngine
import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

@Suite("close")
struct CloseTests {
    /// The file-source workflow of the query-ready tests, with a close after each item's step.
    static let workflowText = QueryReadyTests.fileWorkflow + """

      close:
        uses: close
        with: {reason: Done by the test}
    """

    func lines(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if case .string(let id)? = (try? JSONParser.parse(String(line)))?["id"] { out[id] = String(line) }
        }
        return out
    }

    @Test("source: file: the items are closed in the file; other lines stay byte for byte; closing unblocks")
    func fileSource() async throws {
        let box = try Sandbox(Self.workflowText)
        let original = try String(contentsOf: QueryReadyTests.fixtures.appendingPathComponent("beads-issues.jsonl"), encoding: .utf8)
        try original.write(toFile: box.path + "/issues.jsonl", atomically: true, encoding: .utf8)
        let r = try await amplify(["wf.yaml"], in: box)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let after = lines(box.read("issues.jsonl"))
        let before = lines(original)
        for id in ["demo-2", "demo-4"] {
            let v = try JSONParser.parse(try #require(after[id]))
            #expect(v["status"] == .string("closed"))
            #expect(v["close_reason"] == .string("Done by the test"))
            #expect(v["title"] == (try JSONParser.parse(before[id]!))["title"], "the rest of the item is kept")
        }
        for id in ["demo-1", "demo-3", "demo-5", "demo-6", "demo-7"] { #expect(after[id] == before[id], "\(id) untouched") }
        // demo-3 was blocked by demo-2; the next run finds it ready and closes it.
        let again = try await amplify(["wf.yaml"], in: box)
        #expect(again.status == 0)
        #expect(box.read("seen").split(separator: "\n").sorted() == ["demo-2", "demo-3", "demo-4"])
        #expect(lines(box.read("issues.jsonl"))["demo-3"]?.contains("\"status\":\"closed\"") == true)
    }

    @Test("closing a closed item is success and changes nothing")
    func alreadyClosed() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("issues-\(UUID().uuidString).jsonl").path
        defer { unlink(path); unlink(path + ".amplify-lock") }
        try "{\"id\":\"a-1\",\"status\":\"open\"}\n{\"id\":\"a-2\",\"status\":\"open\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(await IssuesFile.closeIssue(id: "a-1", reason: "r", path: path) == .succeeded(OrderedObject([("closed", .bool(true))])))
        let once = try String(contentsOfFile: path, encoding: .utf8)
        #expect(await IssuesFile.closeIssue(id: "a-1", reason: "r", path: path) == .succeeded(OrderedObject([("closed", .bool(false))])))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == once)
        if case .failed(let why) = await IssuesFile.closeIssue(id: "zz", reason: "r", path: path) {
            #expect(why.contains("no issue zz"))
        } else {
            Issue.record("closing an unknown id succeeded")
        }
    }

    @Test("ten items closing at once all land (one writer at a time)")
    func concurrentCloses() async throws {
        let box = try Sandbox(Self.workflowText)
        let issues = (0..<10).map { "{\"id\":\"t-\($0)\",\"title\":\"task \($0)\",\"status\":\"open\",\"priority\":1,\"issue_type\":\"task\",\"created_at\":\"2026-11-20T09:0\($0):00Z\"}" }
        try (issues.joined(separator: "\n") + "\n").write(toFile: box.path + "/issues.jsonl", atomically: true, encoding: .utf8)
        let r = try await amplify(["wf.yaml"], in: box)
        #expect(r.status == 0, "\(r.stdout)")
        let after = lines(box.read("issues.jsonl"))
        #expect(after.count == 10)
        #expect(after.values.allSatisfy { $0.contains("\"status\":\"closed\"") })
    }

    @Test("source: bd: `bd show` first, then `bd close` once; a closed item is not closed again")
    func bdSource() async throws {
        let box = try Sandbox("""
        version: 1
        stages:
          ready: {uses: query-ready, with: {source: bd}}
          close: {uses: close, for-each: "${{ stages.ready.outputs.items }}"}
        """)
        // A bd that keeps its issues in a JSONL file and, like bd, refuses to close a closed issue.
        let bin = box.url.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let bd = """
        #!/bin/sh
        db="\(box.path)/db.jsonl"
        exec 9>"$db.lock"; flock 9   # bd locks its database; so does this stand-in
        echo "$@" >> "\(box.path)/bd-calls"
        case "$1" in
          ready) printf '['; grep -v '"closed"' "$db" | paste -sd, -; printf ']\\n' ;;
          show) grep "\\"id\\":\\"$2\\"" "$db" ;;
          close)
            if grep "\\"id\\":\\"$2\\"" "$db" | grep -q '"closed"'; then echo "Error: $2 is already closed" >&2; exit 1; fi
            sed -i "s/\\"id\\":\\"$2\\",\\"status\\":\\"open\\"/\\"id\\":\\"$2\\",\\"status\\":\\"closed\\"/" "$db" ;;
        esac
        """
        try bd.write(to: bin.appendingPathComponent("bd"), atomically: true, encoding: .utf8)
        chmod(bin.appendingPathComponent("bd").path, 0o755)
        try "{\"id\":\"b-1\",\"status\":\"open\"}\n{\"id\":\"b-2\",\"status\":\"open\"}\n".write(toFile: box.path + "/db.jsonl", atomically: true, encoding: .utf8)
        let r = try await amplify(["wf.yaml"], in: box, environment: ["PATH": "\(bin.path):/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let calls = box.read("bd-calls").split(separator: "\n").map(String.init)
        #expect(calls.filter { $0.hasPrefix("close") }.sorted() == ["close b-1 --reason Merged", "close b-2 --reason Merged"])
        #expect(box.read("db.jsonl").components(separatedBy: "\"closed\"").count == 3)

        // A close run again (its success was never journaled: the runner died) finds b-1 closed
        // and succeeds without calling `bd close`.
        let workflow = try #require(WorkflowChecker.check(box.read("wf.yaml"), file: "wf.yaml").workflow)
        let runDir = box.path + "/scratch"
        for d in [runDir, runDir + "/logs", runDir + "/outputs"] { mkdir(d, 0o700) }
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = "\(bin.path):/usr/bin:/bin"
        let job = StageJob(key: InstanceKey("close", item: 0), attempt: 1, stage: try #require(workflow.stage("close")),
                           context: ExpressionContext(roots: ["item": .object(OrderedObject([("id", .string("b-1"))]))]),
                           runId: "r", runDirectory: runDir, repository: box.path, itemName: "b-1", environment: environment,
                           upstreamQuery: workflow.stage("ready"))
        let result = await StageExecutors().executor(for: .close).execute(job) { _, _ in }
        #expect(result == .succeeded(OrderedObject([("closed", .bool(false))])))
        let closes = box.read("bd-calls").split(separator: "\n").filter { $0.hasPrefix("close") }
        #expect(closes.count == 2, "no second `bd close b-1`")
    }
}
