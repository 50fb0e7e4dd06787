import AmplifyEngine
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// The webhook receiver (`Fixtures/notify-receiver`, Python) on loopback: it records every POST it
/// gets, answers 500 to the first `failFirst` attempts of each Idempotency-Key, or never answers
/// (`hang`). It stops by itself after two minutes at most.
final class Receiver: @unchecked Sendable {  // read-only after init
    let process: Process
    let port: Int
    let log: String

    init(in dir: String, failFirst: Int = 0, hang: Bool = false) async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/notify-receiver")
        log = dir + "/receiver-\(UUID().uuidString).jsonl"
        let portFile = log + ".port"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixture.path, "--port-file", portFile, "--log", log, "--fail-first", String(failFirst), "--lifetime", "120"] + (hang ? ["--hang"] : [])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var port: Int?
        for _ in 0..<400 {  // up to 20 s: python starting on a loaded machine
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            if port != nil { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        self.port = try #require(port, "the receiver did not start")
    }

    deinit { stop() }

    /// Ends the receiver (it would end by itself after two minutes).
    func stop() {
        if process.isRunning { process.terminate() }
    }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    /// Every request, in the order it came: `status`, `path`, `key`, `type`, `body`.
    var requests: [Value] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { try? JSONParser.parse(bytes: Array($0.utf8)) }
    }

    /// Requests answered 200: the deliveries.
    var delivered: [Value] { requests.filter { $0["status"] == .int(200) } }

    /// Waits (without blocking the pool) until a delivered request passes `test`.
    func waitFor(seconds: Double, _ test: (Value) -> Bool) async -> Value? {
        var found: Value?
        await eventually(seconds: seconds) {
            found = delivered.first(where: test)
            return found != nil
        }
        return found
    }
}

/// The journal of a run, parsed: what notifications it should have made, and how they went.
struct JournalView {
    let lines: [Value]
    let run: String

    init(_ path: String) throws {
        lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(bytes: Array($0.utf8)) }
        run = lines.first?["run"]?.renderedText ?? ""
    }

    /// `RUN:SEQ` → event, worked out from the journal as README's table says (not by the code under test).
    var expected: [String: String] {
        var out: [String: String] = [:]
        for l in lines {
            let id = "\(run):\(l["seq"]?.renderedText ?? "")"
            switch l["type"]?.renderedText {
            case "note":
                if let kind = l["kind"]?.renderedText, ["question", "waiting", "paused"].contains(kind) { out[id] = kind }
            case "instance-succeeded" where l["stage"] == .string("approved"):
                out[id] = "decision"
            case "instance-failed" where l["retry-at"] == nil:
                out[id] = l["kind"] == .string("rejected") ? "decision" : "failed"
            case "run-finished":
                out[id] = "run-end"
            default:
                break
            }
        }
        return out
    }

    /// The `notified` events of a target.
    func notified(target: Int) -> [Value] {
        lines.filter { $0["type"] == .string("notified") && $0["target"] == .int(target) }
    }

    func at(_ type: String) -> Int64? {
        lines.first { $0["type"] == .string(type) }.flatMap { $0["at"]?.renderedText }.flatMap(Timestamp.parse)
    }
}

@Suite("Notifications, end to end: a webhook receiver on loopback and command targets", .serialized)
struct NotifyTests {
    /// Orchestra's workflow with `settings.notify` holding `targets` (YAML list items, indented by
    /// 4), and `settings` lines of its own (indented by 2).
    static func workflow(_ targets: String, settings: String = "", timeout: String = "20s", concurrency: Int = 3) -> String {
        Orchestra.workflow(timeout: timeout, concurrency: concurrency).replacingOccurrences(
            of: "settings: {base: main, poll: 200ms, concurrency: \(concurrency)}",
            with: "settings:\n  base: main\n  poll: 200ms\n  concurrency: \(concurrency)\n" + settings + "  notify:\n" + targets)
    }

    static let allEvents = "[question, waiting, decision, failed, budget, paused, run-end]"
    /// One webhook target, told of every event, at `${{ env.HOOK }}`.
    static let hookTarget = "    - {on: \(allEvents), webhook: \"${{ env.HOOK }}\"}\n"

    /// Runs the workflow to its end with HOOK pointing at `receiver`.
    static func run(_ o: Orchestra, telling receiver: Receiver) async throws -> (status: Int32, stdout: String, stderr: String) {
        var env = o.environment
        env["HOOK"] = receiver.url
        return try await amplify(["wf.yaml"], in: o.box, environment: env)
    }

    @Test("each event is delivered once, as it happens, with the body and Idempotency-Key; a command target gets the same JSON on stdin")
    func deliveredOnce() async throws {
        let o = try Orchestra([("n-1", "approve", nil), ("n-2", "reject", nil), ("n-3", "crash", nil), ("n-4", "ask-exit", nil), ("n-5", "human", nil)],
                              workflow: Self.workflow("""
                                  - on: \(Self.allEvents)
                                    webhook: ${{ env.HOOK }}
                                  - on: [decision, run-end]
                                    command: [sh, -c, 'cat > "$NOTIFY_OUT/$AMPLIFY_NOTIFY_ID.json"']
                              """))
        let receiver = try await Receiver(in: o.box.path)
        defer { receiver.stop() }
        try FileManager.default.createDirectory(atPath: o.box.path + "/told", withIntermediateDirectories: true)
        var env = o.environment
        env["HOOK"] = receiver.url
        env["NOTIFY_OUT"] = o.box.path + "/told"
        let run = Task { try await amplify(["wf.yaml"], in: o.box, environment: env) }

        // `waiting` comes while the run goes on: then a person answers, and approves.
        let asked = try #require(await receiver.waitFor(seconds: 30) { $0["body"]?["event"] == .string("waiting") && $0["body"]?["item"]?["id"] == .string("n-4") })
        let askedSession = try #require(asked["body"]?["session"]?.renderedText)
        #expect(try await amplify(["answer", askedSession, "q1", "blue"], in: o.box, environment: env).status == 0)
        let done = try #require(await receiver.waitFor(seconds: 30) { $0["body"]?["event"] == .string("waiting") && $0["body"]?["item"]?["id"] == .string("n-5") })
        let doneSession = try #require(done["body"]?["session"]?.renderedText)
        #expect(done["body"]?["message"]?.renderedText.contains("amplify-run approve \(doneSession)") == true, "\(done)")
        #expect(try await amplify(["approve", doneSession], in: o.box, environment: env).status == 0)
        let r = try await run.value
        #expect(r.status == 1, "n-2 rejected and n-3 failed\n\(r.stdout)\(r.stderr)")

        let journal = try JournalView(try o.box.journals().last!)
        let expected = journal.expected
        #expect(expected.values.sorted() == ["decision", "decision", "decision", "decision", "failed", "question", "run-end", "waiting", "waiting"], "\(expected)")
        // Each exactly once, nothing else, every body whole.
        let delivered = receiver.delivered
        #expect(delivered.count == expected.count)
        #expect(Set(delivered.compactMap { $0["key"]?.renderedText }) == Set(expected.keys))
        for request in delivered {
            let body = try #require(request["body"])
            guard case .object(let fields) = body else { Issue.record("not an object: \(body)"); continue }
            #expect(fields.keys == ["id", "event", "run", "workflow", "item", "session", "message", "at"])
            let id = body["id"]?.renderedText ?? ""
            #expect(request["key"] == .string(id), "Idempotency-Key is the id")
            #expect(request["type"] == .string("application/json") && request["path"] == .string("/hook"))
            #expect(body["event"] == expected[id].map(Value.string), "\(id)")
            #expect(body["run"] == .string(journal.run) && body["workflow"] == .string("wf.yaml"))
            #expect(body["at"].flatMap { Timestamp.parse($0.renderedText) } != nil)
            if body["event"] == .string("run-end") {
                #expect(body["item"] == .null && body["session"] == .null)
                #expect(body["message"]?.renderedText.contains("finished: 3 merged · 1 rejected · 1 failed") == true, "\(body)")
            } else {
                let item = body["item"]?["id"]?.renderedText ?? ""
                #expect(body["item"]?["title"] == .string("Item \(item)"))
                #expect(body["session"]?.renderedText.hasPrefix(item + "-") == true, "\(body)")
            }
        }
        let question = try #require(delivered.first { $0["body"]?["event"] == .string("question") }?["body"])
        #expect(question["message"]?.renderedText == "n-4 (Item n-4) asks: Which colour? (options: red | blue) — answer with: amplify-run answer \(askedSession) q1 '…'")
        #expect(delivered.contains { $0["body"]?["message"] == .string("n-2 (Item n-2) was rejected (state.json): out of scope") })
        #expect(delivered.contains { $0["body"]?["event"] == .string("failed") && $0["body"]?["message"]?.renderedText.hasPrefix("n-3 (Item n-3) failed at approved: the agent exited with status 3") == true })

        // The command target: the same JSON, on stdin, for the events it listens for.
        let told = try FileManager.default.contentsOfDirectory(atPath: o.box.path + "/told").sorted()
        #expect(told == expected.filter { ["decision", "run-end"].contains($0.value) }.keys.map { $0 + ".json" }.sorted())
        for file in told {
            let onStdin = try JSONParser.parse(bytes: Array(try String(contentsOfFile: o.box.path + "/told/" + file, encoding: .utf8).utf8))
            #expect(delivered.first { $0["key"] == onStdin["id"] }?["body"] == onStdin, "\(file)")
        }
        // Journaled: every delivery, once, delivered.
        #expect(journal.notified(target: 1).count == expected.count && journal.notified(target: 1).allSatisfy { $0["ok"] == .bool(true) && $0["attempts"] == .int(1) })
        #expect(journal.notified(target: 2).count == told.count)
        let status = try await amplify(["status"], in: o.box, environment: env)
        #expect(status.stdout.contains("notifications: \(expected.count + told.count) delivered"), "\(status.stdout)")
        let runs = try await amplify(["runs"], in: o.box, environment: env)
        #expect(runs.stdout.contains("finished"), "notified lines after run-finished leave the run finished: \(runs.stdout)")
    }

    @Test("a webhook that answers 500 twice is tried a third time, and that delivery is journaled as one")
    func retried() async throws {
        let o = try Orchestra([("f-1", "approve", nil)], workflow: Self.workflow(Self.hookTarget))
        let receiver = try await Receiver(in: o.box.path, failFirst: 2)
        defer { receiver.stop() }
        let r = try await Self.run(o, telling: receiver)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let journal = try JournalView(try o.box.journals().last!)
        #expect(Set(journal.expected.values) == ["decision", "run-end"])
        for id in journal.expected.keys {
            #expect(receiver.requests.filter { $0["key"] == .string(id) }.map { $0["status"] } == [.int(500), .int(500), .int(200)], "\(id)")
        }
        let notified = journal.notified(target: 1)
        #expect(notified.count == 2 && notified.allSatisfy { $0["ok"] == .bool(true) && $0["attempts"] == .int(3) }, "\(notified)")
    }

    @Test("the run's budget, used up, is told once, however many dispatches it skips")
    func budgetOnce() async throws {
        let o = try Orchestra([("b-1", "approve", nil), ("b-2", "approve", nil), ("b-3", "approve", nil)],
                              workflow: Self.workflow(Self.hookTarget, settings: "  budget: {cost: 0.2}\n", concurrency: 1))
        let receiver = try await Receiver(in: o.box.path)
        defer { receiver.stop() }
        let r = try await Self.run(o, telling: receiver)
        #expect(r.status == 1, "items skipped for the run's budget: \(r.stdout)\(r.stderr)")
        let journal = try JournalView(try o.box.journals().last!)
        #expect(journal.lines.filter { $0["type"] == .string("instance-skipped") && $0["reason"]?.renderedText.hasPrefix("budget") == true }.count == 2)
        let events = receiver.delivered.compactMap { $0["body"]?["event"]?.renderedText }
        #expect(events == ["decision", "budget", "run-end"], "\(events)")
        let budget = try #require(receiver.delivered.first { $0["body"]?["event"] == .string("budget") }?["body"])
        #expect(budget["item"] == .null && budget["session"] == .null)
        #expect(budget["message"] == .string("The run's budget is used up (the run's known cost $0.25 reached settings.budget.cost $0.20): nothing new is dispatched."), "\(budget)")
    }

    @Test("dead webhooks (one that never answers, one that refuses) never hold up the run; their failures are journaled")
    func deadWebhooks() async throws {
        let o = try Orchestra([("d-1", "approve", nil), ("d-2", "reject", nil)], workflow: Self.workflow("""
                - {on: \(Self.allEvents), webhook: "${{ env.HANG }}"}
                - {on: \(Self.allEvents), webhook: "http://127.0.0.1:1/refused"}
            """))
        let hanging = try await Receiver(in: o.box.path, hang: true)
        defer { hanging.stop() }
        var env = o.environment
        env["HANG"] = hanging.url
        let started = Date()
        let r = try await amplify(["wf.yaml"], in: o.box, environment: env)
        let wall = Date().timeIntervalSince(started)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        let journal = try JournalView(try o.box.journals().last!)
        let ran = Double(try #require(journal.at("run-finished")) - (try #require(journal.at("run-started")))) / 1000
        // The run did its work at its own pace; the runner then waited at most 5 s for the sends
        // (three attempts of 10 s each at the hanging one would have been 30 s and more).
        #expect(ran < 25, "the run took \(ran) s")
        #expect(wall < ran + 9, "the runner left \(wall - ran) s after the run ended")
        let expected = journal.expected.count
        let refused = journal.notified(target: 2)
        #expect(refused.count == expected && refused.allSatisfy { $0["ok"] == .bool(false) && $0["attempts"] == .int(3) && $0["error"] == .string("connection refused") }, "\(refused)")
        let hung = journal.notified(target: 1)
        #expect(hung.count == expected && hung.allSatisfy { $0["ok"] == .bool(false) }, "\(hung)")
        #expect(hung.contains { $0["error"]?.renderedText.hasPrefix("cut off") == true }, "\(hung)")
        #expect(r.stdout.contains("notifications: 0 delivered · \(2 * expected) not delivered"), "\(r.stdout)")
        #expect(r.stdout.contains("not delivered: webhook #2, decision"), "\(r.stdout)")
    }

    @Test("kill -9 of the runner mid-run, then resume: every event delivered, no id twice but the one in flight")
    func killedAndResumed() async throws {
        let o = try Orchestra([("k-1", "approve", nil), ("k-2", "reject", nil), ("k-3", "approve", "k-1"), ("k-4", "crash", nil)],
                              workflow: Self.workflow(Self.hookTarget))
        let receiver = try await Receiver(in: o.box.path)
        defer { receiver.stop() }
        var env = o.environment
        env["HOOK"] = receiver.url
        env["AGENT_DELAY"] = "1"
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: env)
        // Killed once the first delivery is in: more are journaled, in flight or to come.
        _ = await receiver.waitFor(seconds: 30) { _ in true }
        kill(runner.processIdentifier, SIGKILL)
        while runner.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let before = receiver.delivered.count
        let r = try await amplify(["wf.yaml"], in: o.box, environment: env)
        #expect(r.status == 1 && r.stdout.contains("resuming run"), "\(r.stdout)\(r.stderr)")

        let journal = try JournalView(try o.box.journals().last!)
        let expected = journal.expected
        #expect(Set(expected.values) == ["decision", "failed", "run-end"], "\(expected)")
        let ids = receiver.delivered.compactMap { $0["key"]?.renderedText }
        #expect(Set(ids) == Set(expected.keys), "every event delivered")
        #expect(ids.count - Set(ids).count <= 1, "no id twice but the one in flight: \(ids)")
        #expect(before >= 1 && before < ids.count, "some before the kill (\(before)), the rest after")
        #expect(journal.notified(target: 1).allSatisfy { $0["ok"] == .bool(true) })
    }

    @Test("a secret from ${{ env.X }} never appears in the journal, status, logs or stderr; https goes through curl with the URL on its stdin")
    func secretKept() async throws {
        let secret = "s3cr3t-TOKEN-4242"
        let o = try Orchestra([("s-1", "approve", nil)], workflow: Self.workflow("""
                - {on: [decision, run-end], webhook: "${{ env.HOOK }}"}
                - {on: [decision, run-end], webhook: "${{ env.HTTPS_HOOK }}"}
                - {on: [run-end], command: [sh, -c, 'echo "cannot reach ${{ env.HOOK }}" >&2; exit 3', "${{ env.TOKEN }}"]}
            """))
        // A curl that records what it was given and answers 200.
        try "#!/bin/sh\necho \"$@\" > \"$CURL_LOG.argv\"\ncat > \"$CURL_LOG.stdin\"\nprintf 200\n".write(toFile: o.bin.path + "/curl", atomically: true, encoding: .utf8)
        chmod(o.bin.path + "/curl", 0o755)
        var env = o.environment
        env["HOOK"] = "http://127.0.0.1:1/hooks/\(secret)"
        env["HTTPS_HOOK"] = "https://hooks.example.com/services/\(secret)"
        env["TOKEN"] = secret
        env["CURL_LOG"] = o.box.path + "/curl"

        // Unset, it is refused before anything runs, naming the template, not a value.
        var unset = env
        unset["HOOK"] = nil
        let refused = try await amplify(["wf.yaml"], in: o.box, environment: unset)
        #expect(refused.status == 2 && refused.stderr.contains("webhook #1 is not an http:// or https:// URL with a host (it comes from `${{ env.HOOK }}`"), "\(refused.stderr)")
        let runsBefore = (try? FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.amplify/runs")) ?? []
        #expect(runsBefore.isEmpty, "nothing was run")

        let r = try await amplify(["wf.yaml"], in: o.box, environment: env)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let status = try await amplify(["status"], in: o.box, environment: env)
        let json = try await amplify(["status", "--json"], in: o.box, environment: env)
        let runDir = URL(fileURLWithPath: try o.box.journals().last!).deletingLastPathComponent().path
        var seen = [r.stdout, r.stderr, status.stdout, status.stderr, json.stdout, json.stderr]
        for file in (FileManager.default.enumerator(atPath: runDir)?.allObjects as? [String]) ?? [] {
            seen.append((try? String(contentsOfFile: runDir + "/" + file, encoding: .utf8)) ?? "")
        }
        for text in seen { #expect(!text.contains(secret), "the secret shows in: \(text)") }
        // What failed is said all the same, by target number, the secret cut out.
        let journal = try JournalView(runDir + "/journal.jsonl")
        #expect(journal.notified(target: 1).allSatisfy { $0["error"] == .string("connection refused") })
        #expect(journal.notified(target: 2).allSatisfy { $0["ok"] == .bool(true) })
        let command = try #require(journal.notified(target: 3).first?["error"]?.renderedText)
        #expect(command == "exited with status 3: cannot reach [redacted]", "\(command)")
        #expect(status.stdout.contains("not delivered: command #3, run-end"), "\(status.stdout)")
        // curl got everything on stdin; its argv holds no secret.
        let argv = o.box.read("curl.argv")
        #expect(argv.trimmingCharacters(in: .whitespacesAndNewlines) == "-q --config -")
        let config = o.box.read("curl.stdin")
        #expect(config.contains("url = \"https://hooks.example.com/services/\(secret)\""), "\(config)")
        #expect(config.contains("header = \"Idempotency-Key: \(journal.run):"))
        #expect(config.contains(#"data-binary = "{\"id\":\""#), "\(config)")
    }
}
