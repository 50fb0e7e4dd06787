import AmplifyStages
import AmplifyTestSupport
import Foundation
import Testing

/// A sandbox repository on `main`, with scripts playing bd (over `.beads/db.jsonl`) and the agent.
final class Orchestra: @unchecked Sendable {  // read-only after init
    let box: Sandbox
    let bin: URL
    var db: String { box.path + "/.beads/db.jsonl" }
    var environment: [String: String] {
        // The sandbox hides the checkout, where the scripts are: a sandboxed workflow names them (AGENT_BIN).
        ["PATH": "\(bin.path):/usr/bin:/bin", "BD_DB": db, "AGENT_LOG": box.path + "/agent-starts", "AGENT_BIN": bin.path,
         "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"]
            .merging(slurmConf.map { ["SLURM_CONF": $0] } ?? [:]) { $1 }
    }
    /// The test cluster's slurm.conf, for a box whose workflow submits agents to Slurm.
    let slurmConf: String?

    /// The default workflow's pipeline with the scripts; `merge` is the merge stage's `with:`,
    /// `cleanup: false` leaves the cleanup stage out; `refill: false` asks the tracker once.
    /// `sandbox: true` runs every agent under bubblewrap (the agent log and the scripts' folder shown in it).
    /// `slurm: true` makes every agent a Slurm batch job (`sessions: slurm`) on the test cluster.
    static func workflow(timeout: String = "8s", concurrency: Int = 3, merge: String? = nil, refill: Bool = true, cleanup: Bool = true, sandbox: Bool = false, slurm: Bool = false) -> String {
        """
        version: 1
        settings: {base: main, poll: 200ms, concurrency: \(concurrency)\(sandbox ? ", sandbox: bwrap" : "")\(slurm ? ", sessions: slurm, slurm: {time: 10m}" : "")}
        vars: {agent: fake-agent}
        stages:
          ready: {uses: query-ready, with: {source: bd\(refill ? ", refill: true, refill-interval: 1s" : "")}}
          dispatch:
            uses: dispatch
            for-each: ${{ stages.ready.outputs.items }}
            with:
              agent: ["${{ vars.agent }}", "-p", "${{ prompt }}"]
              prompt: "Item ${{ item.id }}: ${{ item.title }} ${{ item.description }}"
        \(sandbox ? "      sandbox-writable: [\"${{ env.AGENT_LOG }}\", \"${{ env.AGENT_BIN }}\"]" : "")
          approved:
            uses: wait-approved
            timeout: \(timeout)
            with: {resume: ["${{ vars.agent }}", "--resume", "${{ session.agent-session }}", "-p", "${{ answer }}"]}
          merge: {uses: merge\(merge.map { ", with: " + $0 } ?? "")}
          close: {uses: close}
        \(cleanup ? "  cleanup: {uses: cleanup, if: \"${{ always() }}\"}" : "")
        """
    }

    /// Issues as bd prints them: `(id, behaviour, blocked by)`.
    /// `parent`: where the box is made (`/var/tmp` for agents in a bubblewrap sandbox, which hides `/tmp`).
    init(_ issues: [(String, String, String?)], workflow: String = Orchestra.workflow(), under parent: URL = FileManager.default.temporaryDirectory, slurm: Bool = false) throws {
        box = try Sandbox(workflow, under: parent)
        slurmConf = slurm ? SlurmCluster.conf : nil
        _ = FileManager.default.createFile(atPath: box.path + "/agent-starts", contents: nil)
        bin = box.url.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: box.path + "/.beads", withIntermediateDirectories: true)
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        for name in ["fake-bd": "bd", "fake-agent": "fake-agent"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name.key), to: bin.appendingPathComponent(name.value))
        }
        let lines = issues.enumerated().map { i, issue in
            let deps = issue.2.map { #"[{"issue_id":"\#(issue.0)","depends_on_id":"\#($0)","type":"blocks"}]"# } ?? "[]"
            return #"{"id":"\#(issue.0)","title":"Item \#(issue.0)","description":"behave:\#(issue.1)","status":"open","priority":\#(i % 3),"issue_type":"task","created_at":"2026-11-20T09:00:0\#(i % 10)Z","dependencies":\#(deps)}"#
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: db, atomically: true, encoding: .utf8)
        try shell("git checkout -q -b main && git add wf.yaml && git -c user.name=T -c user.email=t@example.com commit -qm init && printf '/.beads/\\n/bin/\\n/agent-starts\\n' >> .git/info/exclude", in: box.url)
    }

    /// `extra`: more environment, for the scripts (`AGENT_BARRIER`, `AGENT_HOLD`, `AGENT_DELAY`).
    func run(_ args: [String] = ["wf.yaml"], extra: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await amplify(args, in: box, environment: environment.merging(extra) { $1 })
    }

    func git(_ command: String) throws -> String { try shell("git " + command, in: box.url).trimmingCharacters(in: .whitespacesAndNewlines) }
    var bdCalls: [String] { box.read(".beads/db.jsonl.calls").split(separator: "\n").map(String.init) }
    func agentStarts(_ id: String) -> Int { box.read("agent-starts").split(separator: "\n").filter { $0.hasPrefix(id + " ") }.count }
    func status(of id: String) -> String? {
        box.read(".beads/db.jsonl").split(separator: "\n").first { $0.contains("\"id\":\"\(id)\"") }
            .flatMap { line in line.range(of: #""status":"[a-z_]*""#, options: .regularExpression).map { String(line[$0].dropFirst(10).dropLast()) } }
    }
    /// Commits on main carrying the item's trailer.
    func landed(_ id: String) throws -> Int {
        try git("log main --format=%B").split(separator: "\n").filter { $0 == "Amplify-Item: \(id)" }.count
    }

    /// A run SIGKILLed once the agent of the session `prefix…` has started and been recorded
    /// (agents take 2 s), then run again to its end: what the second runner did.
    func killedWhileAgentsWork(at prefix: String) async throws -> (status: Int32, stdout: String, stderr: String) {
        var env = environment
        env["AGENT_DELAY"] = "2"
        let runner = try startAmplify(["wf.yaml"], in: box, environment: env)
        // (Killed between the start and its record, the agent is found by its environment only
        // while it lives: SandboxTests and the torture cover that moment.)
        _ = await box.recordedAgentPids(count: 1, prefix: prefix, seconds: 60)
        kill(runner.processIdentifier, SIGKILL)
        while runner.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        return try await amplify(["wf.yaml"], in: box, environment: env)
    }

    /// What a user trusts a resumed run with: it resumed, and each of `ids` landed and closed once,
    /// its agent started once (re-attached, never started again).
    func expectResumedOnce(_ r: (status: Int32, stdout: String, stderr: String), _ ids: [String]) throws {
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("resuming run"))
        for id in ids {
            #expect(try landed(id) == 1, "\(id) landed once")
            #expect(status(of: id) == "closed")
            #expect(agentStarts(id) == 1, "\(id): re-attached, not started again")
        }
    }

    /// Waits (without blocking the pool) until a path under `dir` of the box matches `glob`, or
    /// `seconds` pass; the path.
    func waitFor(_ glob: (String) -> Bool, under dir: String, seconds: Double) async -> String? {
        var found: String?
        await eventually(seconds: seconds) {
            found = ((try? FileManager.default.subpathsOfDirectory(atPath: box.path + "/" + dir)) ?? []).first(where: glob)
            return found != nil
        }
        return found
    }
}

@Suite("Orchestration, end to end with scripts playing bd and the agent", .serialized)
struct OrchestrationTests {
    /// Whether the case with every agent a Slurm job (`sessions: slurm`) can run here: a cluster
    /// is found or started (scripts/slurm/up.sh); where none can be and AMPLIFY_REQUIRE_SLURM is
    /// set (.ci/run), that is a failure.
    static func slurmRuns(_ slurm: Bool) -> Bool {
        guard slurm, SlurmCluster.conf == nil else { return true }
        if ProcessInfo.processInfo.environment["AMPLIFY_REQUIRE_SLURM"] != nil { Issue.record("no Slurm cluster (AMPLIFY_REQUIRE_SLURM is set)") }
        return false
    }

    @Test("items end merged-and-closed, rejected, conflict, failed or timed out; questions, refill, leftovers; nothing twice — agents here, or Slurm jobs",
          arguments: [false, true])
    func mixedRun(slurm: Bool) async throws {
        guard OrchestrationTests.slurmRuns(slurm) else { return }
        let o = try Orchestra([
            ("a-1", "approve", nil), ("a-2", "reject", nil), ("a-3", "conflict", nil), ("a-4", "conflict", nil),
            ("a-5", "crash", nil), ("a-6", "ask-exit", nil), ("a-7", "approve", "a-1"), ("a-8", "leftovers", nil),
            ("a-9", "hang", nil), ("a-10", "garbage", nil), ("bad..id/../../x", "approve", nil),
        ], workflow: Orchestra.workflow(slurm: slurm), slurm: slurm)
        let run = Task { try await o.run() }
        // The question of a-6 is journaled and shown; answer it as a user would.
        let questions = await o.waitFor({ $0.hasPrefix("a-6-") && $0.hasSuffix("/questions.json") }, under: ".amplify/sessions", seconds: 30)
        let sessionId = try #require(questions?.split(separator: "/").first.map(String.init))
        var answered: (status: Int32, stdout: String, stderr: String) = (1, "", "")
        for _ in 0..<50 {
            answered = try await amplify(["answer", sessionId, "q1", "blue"], in: o.box, environment: o.environment)
            if answered.status == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(answered.status == 0, "\(answered.stderr)")
        let r = try await run.value
        #expect(r.status == 1, "rejected, conflict, failed and timed-out items make exit 1\n\(r.stdout)\(r.stderr)")

        // Merged exactly once each, and closed exactly once each.
        for id in ["a-1", "a-6", "a-7", "a-8", "a-10"] {
            #expect(try o.landed(id) == 1, "\(id) landed once")
            #expect(o.status(of: id) == "closed", "\(id) closed")
            #expect(o.bdCalls.filter { $0.hasPrefix("close \(id) ") }.count == 1, "one `bd close \(id)`")
        }
        // Two conflicting items: one lands, the other ends `conflict` naming the path, base untouched by it.
        let conflicted = try ["a-3", "a-4"].filter { try o.landed($0) == 0 }
        #expect(conflicted.count == 1)
        func outcome(_ id: String) -> String? {
            // The row's outcome column: a word or two ("timed out") after the id.
            r.stdout.split(separator: "\n").first { $0.hasPrefix(id + " ") && $0.contains("Item \(id)") }?
                .dropFirst(id.count).drop { $0 == " " }.split(separator: "  ").first.map(String.init)
        }
        #expect(outcome(conflicted.first ?? "?") == "conflict", "\(r.stdout)")
        #expect(r.stdout.contains("conflicting path: shared.txt"))
        #expect(outcome("a-2") == "rejected")
        #expect(outcome("a-5") == "failed")
        #expect(outcome("a-9") == "timed out")
        #expect(r.stdout.contains("without a decision"), "a-5 crashed: \(r.stdout)")
        #expect(r.stdout.contains("agent: something broke"), "the error quotes output.log")
        #expect(r.stdout.contains("timed out"), "a-9 hung: \(r.stdout)")
        #expect(try o.landed("a-2") == 0 && o.landed("a-5") == 0 && o.landed("a-9") == 0)
        for id in ["a-2", "a-5", "a-9"] + conflicted { #expect(o.status(of: id) == "in_progress", "\(id) stays claimed, not closed") }
        // The answer reached the agent, which was started again once for it; everyone else once.
        #expect(try o.git("show main:a-6.txt") == "blue")
        #expect(o.agentStarts("a-6") == 2)
        for id in ["a-1", "a-2", "a-3", "a-4", "a-5", "a-7", "a-8", "a-9", "a-10"] { #expect(o.agentStarts(id) == 1, "\(id) started once") }
        // Leftovers were committed on the item's branch before merging.
        #expect(try o.git("log main --format=%s").contains("a-8: uncommitted work left by the session"))
        // The item whose id would leave the worktree folder was never dispatched.
        #expect(r.stdout.contains("invalid id"), "reported: \(r.stdout)")
        #expect(!o.bdCalls.contains { $0.contains("bad..id") && $0.hasPrefix("update") })
        #expect(o.agentStarts("bad..id/../../x") == 0)
        // Worktrees removed, merged branches deleted, the others kept, sessions archived, checkout clean.
        #expect(try o.git("worktree list").split(separator: "\n").count == 1)
        let branches = try o.git("branch --format='%(refname:short)'").split(separator: "\n").map(String.init).sorted()
        #expect(branches == (["amplify/a-2", "amplify/a-5", "amplify/a-9"] + conflicted.map { "amplify/" + $0 } + ["main"]).sorted())
        #expect(try o.git("status --porcelain").isEmpty)
        let archived = try FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.amplify/archive").filter { !$0.hasSuffix(".json") }
        #expect(archived.count == 10)
        #expect(try FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.amplify/sessions").isEmpty)
        // The malformed questions.json of a-10 was a warning, not a crash.
        #expect(r.stdout.contains("not valid JSON"), "\(r.stdout)")

        // `status` shows the same summary, the sessions and their costs; --instances every instance.
        let status = try await amplify(["status"], in: o.box, environment: o.environment)
        #expect(status.stdout.contains("SESSIONS") && status.stdout.contains("cost $0.25"), "\(status.stdout)")
        #expect(status.stdout.contains("finished — 6 merged · 1 rejected · 1 conflict · 1 failed · 1 timed out · 0 waiting for you; exit 1"), "\(status.stdout)")
        let instances = try await amplify(["status", "--instances"], in: o.box, environment: o.environment)
        #expect(instances.stdout.split(separator: "\n").contains { $0.hasPrefix("merge ") && $0.contains("a-1") && $0.contains("succeeded") }, "\(instances.stdout)")

        // A second run finds nothing new and changes nothing.
        let head = try o.git("rev-parse main")
        let calls = o.bdCalls.count
        let again = try await o.run()
        #expect(again.status == 1, "the tracker still holds the item with the invalid id: \(again.stdout)\(again.stderr)")
        #expect(again.stdout.contains("dispatch: 0 items") && again.stdout.contains("invalid id"), "\(again.stdout)")
        #expect(try o.git("rev-parse main") == head)
        #expect(!o.bdCalls.dropFirst(calls).contains { $0.hasPrefix("close") || $0.hasPrefix("update") })
    }

    @Test("kill -9 while agents work: the resumed runner re-attaches to them; each item lands and closes once — agents here, or Slurm jobs",
          arguments: [false, true])
    func resumeReattaches(slurm: Bool) async throws {
        guard OrchestrationTests.slurmRuns(slurm) else { return }
        let o = try Orchestra([("k-1", "approve", nil), ("k-2", "approve", nil), ("k-3", "approve", "k-1")], workflow: Orchestra.workflow(slurm: slurm), slurm: slurm)
        // Killed once both agents are running.
        let r = try await o.killedWhileAgentsWork(at: "k-2-")
        try o.expectResumedOnce(r, ["k-1", "k-2", "k-3"])
        #expect(try o.git("worktree list").split(separator: "\n").count == 1)
    }

    @Test("approve and reject: the first decision stands; decisions go only to runs not finished")
    func humanDecisions() async throws {
        let o = try Orchestra([("h-1", "human", nil), ("h-2", "human", nil)])
        let run = Task { try await o.run() }
        var ids: [String] = []
        for prefix in ["h-1-", "h-2-"] {
            let found = await o.waitFor({ $0.hasPrefix(prefix) && $0.hasSuffix("/summary.md") == false && $0.hasSuffix("/output.log") }, under: ".amplify/sessions", seconds: 20)
            ids.append(try #require(found?.split(separator: "/").first.map(String.init)))
        }
        // Wait for both agents to report "completed" (a human decides now).
        for id in ids {
            for _ in 0..<100 where !o.box.read(".amplify/sessions/\(id)/state.json").contains("\"completed\"") { try await Task.sleep(for: .milliseconds(100)) }
        }
        let approve = try await amplify(["approve", ids[0], "--summary", "looks good"], in: o.box, environment: o.environment)
        #expect(approve.status == 0, "\(approve.stderr)")
        let reject = try await amplify(["reject", ids[1], "--reason", "not now"], in: o.box, environment: o.environment)
        #expect(reject.status == 0, "\(reject.stderr)")
        let late = try await amplify(["approve", ids[1]], in: o.box, environment: o.environment)
        // Refused: the first decision stands (or, once the runner has seen it, the session is archived).
        #expect(late.status == 2 && (late.stderr.contains("first one stands") || late.stderr.contains("no live session")), "\(late.stderr)")
        let r = try await run.value
        #expect(r.status == 1, "\(r.stdout)")
        #expect(try o.landed("h-1") == 1)
        #expect(try o.landed("h-2") == 0)
        #expect(r.stdout.contains("not now"))
        let finished = try await amplify(["approve", ids[1]], in: o.box, environment: o.environment)
        #expect(finished.status != 0, "the session is archived, its run finished")
    }
}

@Suite("Session files")
struct SessionFileTests {
    @Test("decision.json: of many approve/reject racing, exactly one is written, whole")
    func firstDecisionWins() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("amplify-session-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(atPath: dir.path + "/sessions/s-1", withIntermediateDirectories: true)
        let session = SessionFiles(stateDirectory: dir.path, id: "s-1")
        let wins = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<16 { group.addTask { (try? session.writeDecision(approved: i % 2 == 0, text: "writer \(i)")) ?? false } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(wins == 1)
        var warnings: [String] = []
        #expect(session.decision(warnings: &warnings) != nil && warnings.isEmpty)
    }

    @Test("untrusted session files: too big, not JSON, a symlink, a directory — warnings, never a crash or a read through")
    func untrustedFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("amplify-session-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = dir.path + "/sessions/s-1"
        try FileManager.default.createDirectory(atPath: s, withIntermediateDirectories: true)
        let session = SessionFiles(stateDirectory: dir.path, id: "s-1")
        try String(repeating: " ", count: SessionFiles.fileLimit + 1).write(toFile: s + "/review.json", atomically: true, encoding: .utf8)
        try "{\"decision\": ".write(toFile: s + "/questions.json", atomically: true, encoding: .utf8)
        try #"{"status": "approved"}"#.write(toFile: dir.path + "/secret.json", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: s + "/state.json", withDestinationPath: dir.path + "/secret.json")
        try FileManager.default.createDirectory(atPath: s + "/decision.json", withIntermediateDirectories: true)
        var warnings: [String] = []
        #expect(session.decision(warnings: &warnings) == nil, "the symlinked state.json is not followed")
        #expect(session.questions(warnings: &warnings).isEmpty)
        #expect(warnings.contains { $0.contains("more than") })
        #expect(warnings.contains { $0.contains("symlink") })
        #expect(warnings.contains { $0.contains("not valid JSON") })
        #expect(warnings.contains { $0.contains("not a regular file") })
    }
}
