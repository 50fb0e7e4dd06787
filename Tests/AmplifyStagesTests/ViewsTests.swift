import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// What a person sees of a run: items counted as items, and text from others shown on one line,
/// with nothing in it a terminal would obey.
@Suite("What the views show, end to end", .serialized)
struct ViewsTests {
    /// A title with a newline, a clear-screen escape and a right-to-left override; a reason of
    /// a few hundred characters.
    static let hostile = "first line\nsecond \u{1B}[2J cleared \u{202E}desrever"
    static let longReason = (1...40).map { "word\($0)" }.joined(separator: " ")

    @Test("a title with a newline, ESC and a bidi override shows on one line, visibly, in the summary and `status`; a long reason whole")
    func hostileText() async throws {
        let box = try Sandbox("""
        version: 1
        stages:
          list:
            uses: query-ready
            with: {source: command, command: ["cat", "items.json"]}
          build:
            for-each: ${{ stages.list.outputs.items }}
            run: ["sh", "-c", "[ -z \\"$1\\" ] || { printf '%s\\\\n' \\"$1\\" >&2; exit 1; }", "build", "${{ item.why }}"]
        """)
        let items: Value = .list([
            .object(OrderedObject([("id", .string("h-1")), ("title", .string(Self.hostile))])),
            .object(OrderedObject([("id", .string("h-2")), ("title", .string("plain")), ("why", .string(Self.longReason))])),
        ])
        try items.json.write(toFile: box.path + "/items.json", atomically: true, encoding: .utf8)
        let run = try await amplify(["wf.yaml"], in: box, environment: ["NO_COLOR": "1"])
        #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
        let status = try await amplify(["status"], in: box)
        for (view, text) in [("summary", run.stdout), ("status", status.stdout)] {
            #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x202E }, "\(view) carries no ESC or bidi override")
            let rows = text.split(separator: "\n").filter { $0.hasPrefix("h-1 ") }
            #expect(rows.count == 1, "\(view): one row for h-1\n\(text)")
            #expect(rows.first?.contains("first line⏎second ␛[2J cleared <U+202E>desrever") == true, "\(view): the title, visibly\n\(text)")
            #expect(text.contains(Self.longReason), "\(view) shows the reason whole\n\(text)")
        }
        // JSON keeps the text exact.
        let json = try JSONParser.parse(try await amplify(["status", "--json"], in: box).stdout)
        guard case .list(let rows)? = json["items"] else { Issue.record("status --json has no items"); return }
        #expect(rows.first?["title"] == .string(Self.hostile))
        #expect(rows.first?["outcome"] == .string("done"))
        #expect(rows.last?["outcome"] == .string("failed"))
        #expect(rows.last?["detail"]?.renderedText.contains(Self.longReason) == true)
    }

    @Test("the demo's last line counts items; the rejected item's row says rejected, at the stage that rejected it")
    func demoCountsItems() async throws {
        let box = try Sandbox("version: 1\nstages: {a: {run: x}}")
        let keep = box.path + "/demo"
        let demo = try await amplify(["demo", "--keep", keep], in: box, environment: ["NO_COLOR": "1"])
        #expect(demo.status == 0, "the demo went as it intends\n\(demo.stdout)\(demo.stderr)")
        let lines = demo.stdout.split(separator: "\n").map(String.init)
        let last = lines.last { $0.hasPrefix("run ") && $0.contains("(default): ") }
        #expect(last?.hasSuffix("(default): finished — 4 merged · 1 rejected · 0 waiting for you; exit 1") == true, "\(demo.stdout)")
        let rejected = lines.first { $0.hasPrefix("demo-3 ") }
        #expect(rejected?.split(separator: " ").prefix(3).joined(separator: " ") == "demo-3 rejected approved", "\(rejected ?? demo.stdout)")
        #expect(lines.filter { $0.hasPrefix("demo-") && $0.contains(" merged ") }.count == 4, "\(demo.stdout)")
        let status = try await runProcess(executable, ["-C", keep + "/repo", "status"], in: box.url)
        #expect(status.stdout.contains("finished — 4 merged · 1 rejected · 0 waiting for you; exit 1"), "\(status.stdout)")
    }

    @Test("a session asking a question, and one whose agent exited undecided, are waiting for you")
    func waitingForYou() async throws {
        let o = try Orchestra([("w-1", "ask-exit", nil), ("w-2", "human", nil)])
        let run = Task { try await o.run() }
        var outcomes: [String: String] = [:]
        var text = ""
        for _ in 0..<150 {
            let json = try await o.run(["status", "--json"])
            if case .list(let rows)? = (try? JSONParser.parse(json.stdout))?["items"] {
                for r in rows { outcomes[r["item"]?.renderedText ?? "?"] = r["outcome"]?.renderedText }
            }
            if outcomes["w-1"] == "waiting for you" && outcomes["w-2"] == "waiting for you" {
                text = try await o.run(["status"]).stdout
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(outcomes == ["w-1": "waiting for you", "w-2": "waiting for you"])
        #expect(text.contains("— 0 merged · 2 waiting for you") || text.contains("2 waiting for you"), "\(text)")
        #expect(text.contains("Which colour?"), "the question is the reason: \(text)")
        // Let the run end: answer w-1, approve w-2.
        let sessions = try FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.amplify/sessions")
        for s in sessions where s.hasPrefix("w-1-") { _ = try await o.run(["answer", s, "q1", "blue"]) }
        for s in sessions where s.hasPrefix("w-2-") { _ = try await o.run(["approve", s]) }
        let r = try await run.value
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("finished — 2 merged · 0 waiting for you; exit 0"), "\(r.stdout)")
    }
}
