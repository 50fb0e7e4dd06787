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

    /// 2026-11-24T12:00:00Z, in milliseconds since the epoch.
    static let now: Int64 = 1_795_521_600_000

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
        #expect(ids(BeadsReadiness.ready(try Self.issues(), now: Self.now)) == ["demo-2", "demo-1", "demo-4"])
    }

    @Test("closing a blocker makes what it blocks ready")
    func closingUnblocks() throws {
        var issues = try Self.issues()
        for (i, v) in issues.enumerated() where v["id"] == .string("demo-2") { issues[i]["status"] = .string("closed") }
        #expect(ids(BeadsReadiness.ready(issues, now: Self.now)) == ["demo-3", "demo-1", "demo-4"])
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
        let ready = ids(BeadsReadiness.ready(try BeadsReadiness.parseIssues(text), now: Self.now))
        #expect(ready == ["q", "loop1", "loop2"], "\(ready)")
    }

    @Test("a malformed issues file is an error with its line, column and byte offset, not a crash", arguments: [
        // JSONL, LF and CRLF, a blank line between.
        ("{\"id\":\"a\"}\n\n{\"id\": oops}\n", 3, 8, 19),
        ("{\"id\":\"a\"}\r\n\r\n{\"id\": oops}\r\n", 3, 8, 21),
        // A byte order mark counts in the offset, not in the column.
        ("\u{FEFF}{\"id\": oops}\n", 1, 8, 10),
        // A JSON array after blank lines: the offset is the file's, not the trimmed text's.
        ("\r\n\r\n[\r\n  {\"id\": \"é\", \"x\": oops}\r\n]\r\n", 4, 20, 27),
    ])
    func malformedFile(text: String, line: Int, column: Int, offset: Int) {
        #expect(throws: BeadsReadiness.ParseError(line: line, column: column, offset: offset, message: "unexpected character")) {
            try BeadsReadiness.parseIssues(text)
        }
    }

    @Test("CRLF line endings (a file checked out with eol=crlf), a byte order mark, no last newline: read as the same issues")
    func lineEndings() throws {
        let lf = try String(contentsOf: Self.fixtures.appendingPathComponent("beads-issues.jsonl"), encoding: .utf8)
        let expected = try BeadsReadiness.parseIssues(lf)
        #expect(expected.count == 7)
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        // (To Swift's String "\r\n" is one Character: `dropLast()` takes the whole CRLF.)
        for variant in [crlf, "\u{FEFF}" + lf, "\u{FEFF}" + crlf, String(crlf.dropLast()), String(lf.dropLast())] {
            #expect(try BeadsReadiness.parseIssues(variant) == expected)
        }
        let array = "[" + lf.split(separator: "\n").joined(separator: ",\r\n") + "]"
        #expect(try BeadsReadiness.parseIssues("\u{FEFF}" + array) == expected)
        #expect(ids(BeadsReadiness.ready(try BeadsReadiness.parseIssues(crlf), now: Self.now)) == ["demo-2", "demo-1", "demo-4"])
    }

    /// `item` deferred until `until`; whether it is left out at `now` (both as written).
    @Test("defer_until is compared as an instant: offsets, fractions, lower case, a date alone; unreadable defers nothing", arguments: [
        ("2026-12-01T09:00:00+02:00", "2026-12-01T08:00:00Z", false),   // 07:00Z: passed, though the text is greater
        ("2026-12-01T09:00:00+02:00", "2026-12-01T06:59:59Z", true),
        ("2026-12-01T03:00:00-05:30", "2026-12-01T08:00:00Z", true),    // 08:30Z: to come, though the text is smaller
        ("2026-12-01T08:00:00.5Z", "2026-12-01T08:00:00Z", true),
        ("2026-12-01T08:00:00.123456789Z", "2026-12-01T08:00:00.124Z", false),
        ("2026-12-01t08:00:00z", "2026-12-01T09:00:00Z", false),
        ("2026-12-01", "2026-11-30T23:59:59Z", true),                   // a date alone: its midnight, UTC
        ("2026-12-01", "2026-12-01T00:00:00Z", false),
        ("next tuesday", "2026-11-24T00:00:00Z", false),
        ("", "2026-11-24T00:00:00Z", false),
    ])
    func deferUntil(until: String, now: String, deferred: Bool) throws {
        let issues = try BeadsReadiness.parseIssues("""
        {"id":"d","status":"open","priority":1,"defer_until":"\(until)"}
        {"id":"child","status":"open","priority":2,"parent":"d"}
        """)
        let instant = try #require(BeadsReadiness.RFC3339.milliseconds(now))
        #expect(ids(BeadsReadiness.ready(issues, now: instant)) == (deferred ? [] : ["d", "child"]))
    }

    @Test("same priority: ordered by created_at as instants; unreadable or missing ones last, in file order")
    func createdAtOrder() throws {
        let issues = try BeadsReadiness.parseIssues("""
        {"id":"garbage","status":"open","priority":1,"created_at":"yesterday"}
        {"id":"missing","status":"open","priority":1}
        {"id":"b","status":"open","priority":1,"created_at":"2026-11-20T09:00:00Z"}
        {"id":"d","status":"open","priority":1,"created_at":"2026-11-20T09:00:00.5Z"}
        {"id":"c","status":"open","priority":1,"created_at":"2026-11-20T08:30:00.000000001Z"}
        {"id":"a","status":"open","priority":1,"created_at":"2026-11-20T10:00:00+02:00"}
        {"id":"first","status":"open","priority":0,"created_at":"2099-01-01T00:00:00Z"}
        """)
        #expect(ids(BeadsReadiness.ready(issues, now: Self.now)) == ["first", "a", "c", "b", "d", "garbage", "missing"])
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
