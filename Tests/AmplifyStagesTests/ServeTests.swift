import AmplifyTestSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `amplify-run serve` through the binary, over the demo's finished run: the API says what the CLI
/// says, and every bad request is refused with a JSON error (SPEC §9). The page itself is tested
/// in a real browser (Tests/Browser/dashboard.py, run by .ci/run).
@Suite(.serialized) final class ServeTests {
    let demo: URL
    let repo: URL

    init() async throws {
        demo = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("amplify-serve-\(UUID().uuidString)")
        repo = demo.appendingPathComponent("repo")
        let r = try await runProcess(executable, ["demo", "--keep", demo.path], in: nil)
        #expect(r.status == 0, "\(r.stderr)")
    }

    deinit { try? FileManager.default.removeItem(at: demo) }

    /// A server on a free port; its address from its first line.
    final class Server {
        let process = Process()
        let base: String
        private let out = Pipe()

        init(_ repo: URL, _ arguments: [String] = [], environment: [String: String] = [:]) throws {
            process.executableURL = executable
            process.arguments = ["serve", "--listen", "127.0.0.1:0"] + arguments
            process.currentDirectoryURL = repo
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var line = Data()
            while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line += byte }
            let text = String(decoding: line, as: UTF8.self)
            guard text.hasPrefix("serving http://") else { throw CocoaError(.fileReadUnknown) }
            base = String(text.dropFirst("serving ".count).dropLast())
        }

        func stop() -> Int32 {
            process.terminate()
            process.waitUntilExit()
            return process.terminationStatus
        }

        func request(_ path: String, method: String = "GET", body: Data? = nil, headers: [String: String] = [:]) async throws -> (status: Int, body: Data, headers: [AnyHashable: Any]) {
            var r = URLRequest(url: URL(string: base + path)!)
            r.httpMethod = method
            r.httpBody = body
            for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
            let (data, response) = try await URLSession.shared.data(for: r)
            let http = response as! HTTPURLResponse
            return (http.statusCode, data, http.allHeaderFields)
        }

        func json(_ path: String, method: String = "GET", body: String? = nil, headers: [String: String] = [:]) async throws -> (status: Int, value: Any?) {
            var h = headers
            if body != nil && h["Content-Type"] == nil { h["Content-Type"] = "application/json" }
            let r = try await request(path, method: method, body: body.map { Data($0.utf8) }, headers: h)
            return (r.status, try? JSONSerialization.jsonObject(with: r.body))
        }
    }

    func cli(_ arguments: [String]) async throws -> Any? {
        let r = try await runProcess(executable, arguments, in: repo)
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }

    @Test("the API says what the CLI says: runs, a run's status, its plan, a session, its log and diff")
    func apiIsTheCLI() async throws {
        let server = try Server(repo)
        defer { _ = server.stop() }
        let runs = try await server.json("/api/runs")
        #expect(runs.status == 200)
        #expect(NSDictionary(dictionary: ["v": runs.value as Any]) == NSDictionary(dictionary: ["v": try await cli(["runs", "--json"]) as Any]))
        let run = try #require((runs.value as? [[String: Any]])?.last?["run"] as? String)
        let status = try await server.json("/api/runs/\(run)")
        #expect(status.status == 200)
        #expect(NSDictionary(dictionary: ["v": status.value as Any]) == NSDictionary(dictionary: ["v": try await cli(["status", run, "--json"]) as Any]))
        let plan = try await server.json("/api/runs/\(run)/plan")
        #expect(NSDictionary(dictionary: ["v": plan.value as Any]) == NSDictionary(dictionary: ["v": try await cli(["plan", "--format", "json", "workflows/default.yaml"]) as Any]))
        let svg = try await server.request("/api/runs/\(run)/dag.svg")
        #expect(svg.status == 200 && String(decoding: svg.body, as: UTF8.self).contains("data-stage=\"merge\""))

        // demo-1's session: archived (its item ended) but still readable.
        let sessions = (status.value as? [String: Any])?["sessions"] as? [[String: Any]] ?? []
        let sid = try #require(sessions.first { $0["item"] as? String == "demo-1" }?["session"] as? String)
        let session = try await server.json("/api/sessions/\(sid)")
        #expect(session.status == 200)
        let s = try #require(session.value as? [String: Any])
        #expect(s["branch"] as? String == "amplify/demo-1" && (s["item"] as? [String: Any])?["id"] as? String == "demo-1", "\(s)")
        let log = try await server.request("/api/sessions/\(sid)/log?from=0")
        #expect(log.status == 200 && String(decoding: log.body, as: UTF8.self).contains("Committed notes/demo-1.md"))
        let size = try #require(Int(log.headers["X-Log-Size"] as? String ?? ""))
        let tail = try await server.request("/api/sessions/\(sid)/log?from=\(size - 10)")
        #expect(tail.body.count == 10)
        // demo-1 was merged and its branch removed: said so. demo-3 was rejected: its branch stays.
        let gone = try await server.json("/api/sessions/\(sid)/diff")
        #expect(gone.status == 404 && ((gone.value as? [String: Any])?["error"] as? String ?? "").contains("amplify/demo-1 is gone"), "\(gone)")
        let rejected = try #require(sessions.first { $0["item"] as? String == "demo-3" }?["session"] as? String)
        let diff = try await server.request("/api/sessions/\(rejected)/diff")
        #expect(String(decoding: diff.body, as: UTF8.self).contains("+++ b/notes/demo-3.md"), "\(String(decoding: diff.body, as: UTF8.self))")

        // The event stream gives the journal from a seq on, each event with its seq as its id,
        // and stays open (curl is cut off after a second).
        let stream = try await runProcess(URL(fileURLWithPath: "/usr/bin/curl"), ["-sN", "--max-time", "1", "-D", "-", server.base + "/api/runs/\(run)/events?after=3"], in: nil)
        #expect(stream.status == 28, "still open when cut off")
        #expect(stream.stdout.lowercased().contains("content-type: text/event-stream"))
        // The headers end in "\r\n", one Character: lines are split on scalars.
        let ids = stream.stdout.unicodeScalars.split(separator: "\n").map { String(String.UnicodeScalarView($0)) }.filter { $0.hasPrefix("id: ") }.prefix(3).map { Int($0.dropFirst(4)) ?? -1 }
        #expect(ids == [4, 5, 6], "\(stream.stdout.prefix(600))")
    }

    @Test("bad requests get a JSON error, never a crash: no JSON (415), another origin (403), too big (413), not JSON (400), unknown (404), wrong method (405), a finished run (409)")
    func refusals() async throws {
        let server = try Server(repo)
        let runs = try await server.json("/api/runs")
        let run = try #require((runs.value as? [[String: Any]])?.last?["run"] as? String)
        let status = try await server.json("/api/runs/\(run)")
        let sid = try #require(((status.value as? [String: Any])?["sessions"] as? [[String: Any]])?.first?["session"] as? String)
        func error(_ r: (status: Int, value: Any?)) -> String { (r.value as? [String: Any])?["error"] as? String ?? "" }

        let noJSON = try await server.json("/api/sessions/\(sid)/approve", method: "POST", body: "{}", headers: ["Content-Type": "text/plain"])
        #expect(noJSON.status == 415 && !error(noJSON).isEmpty)
        let crossSite = try await server.json("/api/runs/\(run)/cancel", method: "POST", body: "{}", headers: ["Origin": "http://evil.example"])
        #expect(crossSite.status == 403 && error(crossSite).contains("another origin"))
        let sameSite = try await server.json("/api/sessions/\(sid)/approve", method: "POST", body: "{}", headers: ["Origin": server.base])
        #expect(sameSite.status == 409, "same origin passes the check; the run has finished: \(sameSite)")
        #expect(error(sameSite).contains("has ended"))
        let big = try await server.json("/api/sessions/\(sid)/answer", method: "POST", body: "{\"answer\": \"" + String(repeating: "x", count: 70_000) + "\"}")
        #expect(big.status == 413)
        let notJSON = try await server.json("/api/sessions/\(sid)/answer", method: "POST", body: "{not json")
        #expect(notJSON.status == 400)
        let missing = try await server.json("/api/sessions/\(sid)/answer", method: "POST", body: "{\"questionId\": 3}")
        #expect(missing.status == 400)
        #expect(try await server.json("/api/sessions/nope-1/approve", method: "POST", body: "{}").status == 404)
        #expect(try await server.json("/api/sessions/..%2F..%2Fetc").status == 404)
        #expect(try await server.json("/api/runs/no-such-run").status == 404)
        #expect(try await server.json("/api/nothing").status == 404)
        #expect(try await server.json("/api/runs", method: "POST", body: "{}").status == 405)
        #expect(try await server.json("/api/runs/\(run)/cancel", method: "POST", body: "{}").status == 409)
        #expect(try await server.json("/api/sessions/\(sid)/log?from=-4").status == 400)
        // A page of another site whose name was pointed here (DNS rebinding) is not answered.
        let rebound = try await server.json("/api/runs", headers: ["Host": "evil.example:8787"])
        #expect(rebound.status == 403 && error(rebound).contains("loopback"), "\(rebound)")
        // Still serving after all that; SIGTERM stops it, exit 0.
        #expect(try await server.json("/api/runs").status == 200)
        #expect(server.stop() == 0)
    }

    @Test("a token: every request needs it (401 without), in the Authorization header or once in the address, which sets an HttpOnly SameSite=Strict cookie")
    func token() async throws {
        let tokenFile = demo.appendingPathComponent("token")
        try "s3cret-token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let server = try Server(repo, ["--token-file", tokenFile.path])
        defer { _ = server.stop() }
        #expect(try await server.json("/api/runs").status == 401)
        #expect(try await server.request("/").status == 401)
        #expect(try await server.json("/api/runs", headers: ["Authorization": "Bearer s3cret-tokem"]).status == 401)
        #expect(try await server.json("/api/runs", headers: ["Authorization": "Bearer s3cret-token"]).status == 200)
        let page = try await server.request("/?token=s3cret-token")
        #expect(page.status == 200)
        let cookie = page.headers["Set-Cookie"] as? String ?? ""
        #expect(cookie.contains("amplify_token=s3cret-token") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "\(cookie)")
        #expect(try await server.json("/api/runs", headers: ["Cookie": "amplify_token=s3cret-token"]).status == 200)
    }

    @Test("listening beyond loopback without a token is refused before anything is served")
    func publicNeedsToken() async throws {
        let r = try await runProcess(executable, ["serve", "--listen", "0.0.0.0:0"], in: repo)
        #expect(r.status == 2)
        #expect(r.stderr.contains("set a token"), "\(r.stderr)")
    }

    @Test("cancel from the API: 202 at once, and the live run ends cancelled as `cancel` ends it")
    func cancelLiveRun() async throws {
        let repo = try RealRepo(items: ["c-1"], agent: "sleep 30\n")
        let runner = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        for _ in 0..<100 where repo.agentStarts().isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        let server = try Server(repo.box.url, environment: repo.environment)
        defer { _ = server.stop() }
        let runs = try await server.json("/api/runs")
        let run = try #require((runs.value as? [[String: Any]])?.last?["run"] as? String)
        let cancel = try await server.json("/api/runs/\(run)/cancel", method: "POST", body: "{}")
        #expect(cancel.status == 202, "\(cancel)")
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 3)
        let status = try await server.json("/api/runs/\(run)")
        #expect((status.value as? [String: Any])?["outcome"] as? String == "cancelled")
        #expect(try await server.json("/api/runs/\(run)/cancel", method: "POST", body: "{}").status == 409)
    }
}
