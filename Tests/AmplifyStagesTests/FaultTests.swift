import AmplifyEngine
import AmplifyStages
import AmplifyTestSupport
import Foundation
import Testing

@Suite("Faults and hostile input", .serialized)
struct FaultTests {
    @Test("bd failing once is retried and the item closes; failing always fails the item with bd's error, and the others go on")
    func bdFailures() async throws {
        let retrying = Orchestra.workflow().replacingOccurrences(of: "close: {uses: close}", with: "close: {uses: close, retry: {attempts: 3, backoff: 1s}}")
        let once = try Orchestra([("f-1", "approve", nil)], workflow: retrying)
        var env = once.environment
        env["BD_FAIL_ONCE"] = "close"
        let r1 = try await amplify(["wf.yaml"], in: once.box, environment: env)
        #expect(r1.status == 0, "\(r1.stdout)\(r1.stderr)")
        #expect(r1.stdout.contains("database is locked; retrying"), "\(r1.stdout)")
        #expect(once.status(of: "f-1") == "closed")

        let always = try Orchestra([("g-1", "approve", nil), ("g-2", "approve", nil)])
        env = always.environment
        env["BD_FAIL"] = "update"
        let r2 = try await amplify(["wf.yaml"], in: always.box, environment: env)
        #expect(r2.status == 1)
        #expect(r2.stdout.contains("cannot claim g-1") && r2.stdout.contains("database is locked"), "\(r2.stdout)")
        #expect(r2.stdout.contains("cannot claim g-2"), "the other item was tried too")
        #expect(always.agentStarts("g-1") == 0 && always.agentStarts("g-2") == 0, "nothing is dispatched unclaimed")
    }

    @Test("session files that vanish or are huge: a warning or a failed item with its reason, never a crash; the other items go on")
    func vanishingAndHugeFiles() async throws {
        let o = try Orchestra([("v-1", "vanish", nil), ("v-2", "huge", nil), ("v-3", "approve", nil)])
        let r = try await o.run()
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("without a decision"), "v-1's session directory vanished with its agent: \(r.stdout)")
        #expect(r.stdout.contains("more than the 1048576 read"), "v-2's 3 MB review.json is a warning: \(r.stdout)")
        #expect(try o.landed("v-2") == 1 && o.landed("v-3") == 1)
        #expect(try o.landed("v-1") == 0)
    }

    @Test("cancel: agents' process groups end, worktrees and branches are kept, the run ends cancelled (exit 3)")
    func cancelEndsAgents() async throws {
        let o = try Orchestra([("c-1", "hang", nil), ("c-2", "hang", nil)])
        let run = Task { try await o.run() }
        for _ in 0..<200 where o.agentStarts("c-1") + o.agentStarts("c-2") < 2 { try await Task.sleep(for: .milliseconds(50)) }
        let pids = await o.box.recordedAgentPids(count: 2)
        #expect(pids.count == 2)
        let cancel = try await amplify(["cancel"], in: o.box, environment: o.environment)
        #expect(cancel.status == 0, "\(cancel.stderr)")
        let r = try await run.value
        #expect(r.status == 3, "\(r.stdout)\(r.stderr)")
        for pid in pids { #expect(kill(pid, 0) != 0 || Processes.stat(pid)?.state == "Z", "agent \(pid) ended") }
        #expect(try o.git("worktree list").split(separator: "\n").count == 3, "worktrees kept")
        #expect(try o.git("branch --list 'amplify/*'").split(separator: "\n").count == 2, "branches kept")
        #expect(o.status(of: "c-1") == "in_progress", "not closed")
    }

    @Test("Ctrl-C leaves agents working (exit 130); cancel on the dead runner's run then ends them")
    func interruptLeavesAgents() async throws {
        let o = try Orchestra([("i-1", "hang", nil)])
        let runner = Process()
        runner.executableURL = executable
        runner.arguments = ["wf.yaml"]
        runner.currentDirectoryURL = o.box.url
        runner.environment = ProcessInfo.processInfo.environment.merging(o.environment) { $1 }
        runner.standardOutput = FileHandle.nullDevice
        runner.standardError = FileHandle.nullDevice
        try runner.run()
        for _ in 0..<200 where o.agentStarts("i-1") < 1 { try await Task.sleep(for: .milliseconds(50)) }
        let pid = try #require(await o.box.recordedAgentPids(count: 1).first)
        try await Task.sleep(for: .milliseconds(300))
        kill(runner.processIdentifier, SIGINT)
        while runner.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(runner.terminationStatus == 130)
        #expect(kill(pid, 0) == 0 && Processes.stat(pid)?.state != "Z", "the agent goes on working")
        let cancel = try await amplify(["cancel"], in: o.box, environment: o.environment)
        #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
        #expect(await eventually(seconds: 20) { kill(pid, 0) != 0 || Processes.stat(pid)?.state == "Z" }, "cancel ended it")
    }

    @Test("the disk filling up while journaling: a clear error, exit 4, no torn journal; the next run resumes and finishes")
    func diskFull() async throws {
        let box = try Sandbox("""
        version: 1
        stages:
          list: {uses: query-ready, with: {source: command, command: "seq 1 40 | sed 's/.*/{\\"id\\":\\"i-&\\"}/' | paste -sd, | sed 's/.*/[&]/'"}}
          each: {run: "echo $AMPLIFY_ITEM_ID >> done.txt", for-each: "${{ stages.list.outputs.items }}"}
        """)
        // A file-size limit (and SIGXFSZ ignored) makes writes past 4 KiB fail with EFBIG, as a full disk fails them.
        let sh = URL(fileURLWithPath: "/bin/sh")
        let full = try await runProcess(sh, ["-c", "trap '' XFSZ; ulimit -f 8; exec \"$0\" wf.yaml", executable.path], in: box.url)
        #expect(full.status == 4, "\(full.stdout)\(full.stderr)")
        #expect(full.stderr.contains("cannot write the journal") && full.stderr.contains("File too large"), "\(full.stderr)")
        let journal = try #require(try box.journals().first)
        let text = try String(contentsOfFile: journal, encoding: .utf8)
        #expect(text.hasSuffix("}\n"), "the journal ends with a whole line")
        let resumed = try await amplify(["wf.yaml"], in: box)
        #expect(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming run"))
        #expect(Set(box.read("done.txt").split(separator: "\n")).count == 40)
    }

    @Test("item text never runs as shell code and never leaves its folder; session directories 0700, files 0600")
    func hostileItem() async throws {
        let o = try Orchestra([("s-1", "approve", nil)])
        let title = #"$(touch pwned1) `touch pwned2` ' \" ; touch pwned3 \n & | > x"#
        try (#"{"id":"s-1","title":"\#(title)","description":"behave:approve $(touch pwned4)","status":"open","priority":1,"issue_type":"task","created_at":"2026-11-20T09:00:00Z","dependencies":[]}"# + "\n")
            .write(toFile: o.db, atomically: true, encoding: .utf8)
        let r = try await o.run()
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let everything = FileManager.default.enumerator(atPath: o.box.path)?.allObjects as? [String] ?? []
        #expect(!everything.contains { $0.contains("pwned") }, "nothing ran the item's text")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned1"))
        // The title reached git as one argument, verbatim.
        #expect(try o.git("log -1 --format=%s main").contains("$(touch pwned1) `touch pwned2`"))
        let archive = o.box.path + "/.amplify/archive"
        let session = try #require(try FileManager.default.contentsOfDirectory(atPath: archive).first { !$0.hasSuffix(".json") })
        func mode(_ path: String) throws -> Int { (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1 }
        #expect(try mode(archive + "/" + session) == 0o700)
        // (state.json is the agent's to rewrite, with its own umask; these the runner writes.)
        for file in ["prompt.md", "output.log"] { #expect(try mode(archive + "/" + session + "/" + file) == 0o600, "\(file)") }
        #expect(try mode(archive + "/" + session + ".run.json") == 0o600)
        #expect(try String(contentsOfFile: archive + "/" + session + "/prompt.md", encoding: .utf8).contains("$(touch pwned4)"))
    }

    @Test("a symlink planted for the state directory's sessions/ is refused: nothing is written outside")
    func symlinkedSessions() async throws {
        let o = try Orchestra([("y-1", "approve", nil)])
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("amplify-outside-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: outside) }
        try FileManager.default.createDirectory(atPath: o.box.path + "/.amplify", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: o.box.path + "/.amplify/sessions", withDestinationPath: outside.path)
        let r = try await o.run()
        #expect(r.status == 1)
        #expect(r.stdout.contains("is not a directory (a symlink?)"), "\(r.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
        #expect(o.agentStarts("y-1") == 0)
    }

    @Test("symlinks planted in a session directory are never followed out of it")
    func plantedSymlinks() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("amplify-planted-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = dir.path + "/sessions/s-1"
        try FileManager.default.createDirectory(atPath: s, withIntermediateDirectories: true)
        let outside = dir.path + "/outside.json"
        try "[]\n".write(toFile: outside, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: s + "/answers.json", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: s + "/decision.json", withDestinationPath: dir.path + "/elsewhere.json")
        let session = SessionFiles(stateDirectory: dir.path, id: "s-1")
        #expect(throws: SessionFiles.Malformed.self) { try session.appendAnswer(questionId: "q1", answer: "a", context: nil) }
        #expect(try String(contentsOfFile: outside, encoding: .utf8) == "[]\n", "the file outside is untouched")
        // An existing decision.json, even a dangling symlink, means a decision was made: none is written through it.
        #expect(try session.writeDecision(approved: true, text: nil) == false)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/elsewhere.json"))
    }
}
