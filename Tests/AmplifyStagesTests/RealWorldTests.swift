import AmplifyTestSupport
import Foundation
import Testing

/// What a new user meets on a real machine: a Claude CLI that is not logged in, a repository
/// whose branch is `master`, an item reopened after a conflict, claims an earlier run left, two
/// runners started together. Each end to end, through the binary, on a real git repository with
/// a Beads issues file (`source: file`).
final class RealRepo: @unchecked Sendable {  // read-only after init
    let box: Sandbox
    var issues: String { box.path + "/.beads/issues.jsonl" }
    var environment: [String: String] {
        ["PATH": "\(box.path)/bin:/usr/bin:/bin", "AGENT_LOG": box.path + "/agent-starts",
         "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"]
    }

    /// The default workflow's shape, reading the issues file, with `agent` as the agent's script.
    static func workflow(base: String = "main", agentArgs: String = #", "--session-id", "${{ session.agent-session }}""#, onExit: String = "fail") -> String {
        """
        version: 1
        settings: {base: \(base), poll: 200ms}
        stages:
          ready: {uses: query-ready, with: {source: file, path: .beads/issues.jsonl}}
          dispatch:
            uses: dispatch
            for-each: ${{ stages.ready.outputs.items }}
            with:
              agent: ["agent", "-p", "${{ prompt }}"\(agentArgs)]
              prompt: "Item ${{ item.id }}: ${{ item.title }}"
          approved:
            uses: wait-approved
            timeout: 60s
            with:
              on-exit: \(onExit)
              resume: ["agent", "--resume", "${{ session.agent-session }}", "-p", "${{ answer }}"]
          merge: {uses: merge}
          close: {uses: close}
          cleanup: {uses: cleanup, if: "${{ always() }}"}
        """
    }

    /// A repository on `branch` with the workflow committed, the issues file (ignored, as a
    /// tracker's file that changes under the runner), and `agent` on PATH.
    init(items: [String], agent: String, workflow: String = RealRepo.workflow(), branch: String = "main") throws {
        box = try Sandbox(workflow)
        try FileManager.default.createDirectory(atPath: box.path + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: box.path + "/.beads", withIntermediateDirectories: true)
        try ("#!/bin/sh\necho \"$AMPLIFY_ITEM_ID $*\" >> \"$AGENT_LOG\"\n" + agent).write(toFile: box.path + "/bin/agent", atomically: true, encoding: .utf8)
        chmod(box.path + "/bin/agent", 0o755)
        try writeIssues(items.map { ($0, "open") })
        try shell("git checkout -q -b \(branch) && git add wf.yaml && git -c user.name=T -c user.email=t@example.com commit -qm init && printf '/.beads/\\n/bin/\\n/agent-starts*\\n' >> .git/info/exclude", in: box.url)
    }

    func writeIssues(_ items: [(String, String)]) throws {
        let lines = items.enumerated().map { i, item in
            #"{"id":"\#(item.0)","title":"Item \#(item.0)","status":"\#(item.1)","priority":\#(i),"issue_type":"task","created_at":"2026-11-20T09:00:00Z"}"#
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: issues, atomically: true, encoding: .utf8)
    }

    func run(_ args: [String] = ["wf.yaml"]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await amplify(args, in: box, environment: environment)
    }

    func git(_ command: String) throws -> String { try shell("git " + command, in: box.url).trimmingCharacters(in: .whitespacesAndNewlines) }

    func status(of id: String) -> String? {
        for line in box.read(".beads/issues.jsonl").split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["id"] as? String == id else { continue }
            return o["status"] as? String
        }
        return nil
    }

    func agentStarts() -> [String] { box.read("agent-starts").split(separator: "\n").map(String.init) }

    /// Waits (up to 20 s) until `status` names a question to answer, and answers `questionId` of
    /// that session with `answer`. Returns whether it did.
    func answerWhenAsked(_ questionId: String, _ answer: String) async throws -> Bool {
        for _ in 0..<200 {
            try await Task.sleep(for: .milliseconds(100))
            let st = try await run(["status"])
            guard let line = st.stdout.split(separator: "\n").first(where: { $0.contains("amplify-run answer") }) else { continue }
            let words = line.split(separator: " ")
            guard let i = words.lastIndex(of: "answer"), i + 1 < words.count else { continue }
            let a = try await run(["answer", String(words[i + 1]), questionId, answer])
            return a.status == 0
        }
        return false
    }
}

/// An agent that commits its item's file and approves (the honest one).
let approvingAgent = """
    [ "${1:-}" = "--resume" ] || { echo "$AMPLIFY_ITEM_ID ${CONTENT:-work}" > "$AMPLIFY_ITEM_ID.txt"; git add . && git commit -qm "$AMPLIFY_ITEM_ID: work"; }
    sed 's/"status": *"running"/"status": "approved"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"
    """

@Suite struct RealWorldTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Claude not logged in: what the real CLI prints (Fixtures/claude-not-logged-in.jsonl, a
    /// copy of ../shared/fixtures/, recorded from Claude Code 2.1.x) and its exit status 1.
    @Test func notLoggedInSaysSoPlainly() async throws {
        let transcript = Self.fixtures.appendingPathComponent("claude-not-logged-in.jsonl").path
        let repo = try RealRepo(items: ["n-1"], agent: "cat '\(transcript)'\nexit 1\n")
        let r = try await repo.run()
        #expect(r.status == 1)
        // The item's row, and its reason whole on the line below it.
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let row = lines.lastIndex { $0.hasPrefix("n-1 ") } ?? lines.count
        let summary = lines[min(row, lines.count)..<min(row + 2, lines.count)].joined(separator: "\n")
        #expect(summary.contains("Not logged in · Please run /login"), "summary row: \(summary)\n\(r.stdout)")
        #expect(summary.contains("$0.00"), "a cost of 0 is a cost: \(summary)")
        #expect(!r.stdout.contains(#"{"type""#), "no raw JSON in the view:\n\(r.stdout)")
        #expect(r.stdout.contains("output.log"), "the log's path is given")
        let status = try await repo.run(["status"])
        #expect(status.stdout.contains("Not logged in · Please run /login"), "\(status.stdout)")
        let json = try await repo.run(["status", "--json"])
        #expect(json.stdout.contains("Not logged in · Please run /login"))
    }

    /// As root, Claude refuses --dangerously-skip-permissions without IS_SANDBOX=1: the reason says what to set.
    @Test func rootWithoutSandboxVariableIsExplained() async throws {
        // The real CLI's words (claude 2.1.x as root, NOTES.md); nothing on stdout, exit 1.
        let repo = try RealRepo(items: ["r-1"], agent: "echo '--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons' >&2\nexit 1\n")
        let r = try await repo.run()
        #expect(r.status == 1)
        #expect(r.stdout.contains("IS_SANDBOX=1"), "\(r.stdout)")
    }

    /// The agent's session id is chosen at dispatch and given back at resume: an agent that
    /// prints no session id of its own is still resumed with its id, never `--resume ""`.
    @Test func resumeUsesTheSessionIdChosenAtDispatch() async throws {
        let asker = """
            dir="$AMPLIFY_SESSION_DIR"
            if [ "${1:-}" != "--resume" ]; then
              echo '[{"id":"q1","question":"Which colour?","blocking":true}]' > "$dir/q.tmp" && mv "$dir/q.tmp" "$dir/questions.json"; exit 0
            fi
            echo "$4" > "$AMPLIFY_ITEM_ID.txt"; git add . && git commit -qm work
            sed 's/"status": *"running"/"status": "approved"/' "$dir/state.json" > "$dir/s.tmp" && mv "$dir/s.tmp" "$dir/state.json"
            """
        let repo = try RealRepo(items: ["q-1"], agent: asker)
        let runner = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        // Answer once the question is on record.
        #expect(try await repo.answerWhenAsked("q1", "red"))
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 0)
        let starts = repo.agentStarts()
        #expect(starts.count == 2, "\(starts)")
        let chosen = starts.first?.split(separator: " ").drop { $0 != "--session-id" }.dropFirst().first.map(String.init) ?? ""
        #expect(chosen.count == 36, "a UUID chosen at dispatch: \(starts)")
        #expect(starts.last?.contains("--resume \(chosen) -p red") == true, "\(starts)")
    }

    /// Without `--session-id` in the argv and no id in the output, resume is an error that says
    /// so, never `agent --resume "" …`.
    @Test func unknownAgentSessionIsAnErrorNotAnEmptyResume() async throws {
        let asker = """
            echo '[{"id":"q1","question":"Which colour?","blocking":true}]' > "$AMPLIFY_SESSION_DIR/q.tmp" && mv "$AMPLIFY_SESSION_DIR/q.tmp" "$AMPLIFY_SESSION_DIR/questions.json"
            """
        let repo = try RealRepo(items: ["u-1"], agent: asker, workflow: RealRepo.workflow(agentArgs: ""))
        let runner = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        #expect(try await repo.answerWhenAsked("q1", "red"))
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 1)
        let st = try await repo.run(["status"])
        #expect(st.stdout.contains("cannot resume the agent"), "\(st.stdout)")
        #expect(repo.agentStarts().count == 1, "never started with --resume \"\": \(repo.agentStarts())")
    }

    /// `settings.base: main` in a repository that has only `master`: refused before anything is
    /// claimed, naming the branch it has; the state directory never shows in `git status`.
    @Test func missingBaseIsRefusedBeforeClaiming() async throws {
        let repo = try RealRepo(items: ["m-1", "m-2"], agent: approvingAgent, branch: "master")
        let r = try await repo.run()
        #expect(r.status == 2)
        #expect(r.stderr.contains("'main' does not exist"), "\(r.stderr)")
        #expect(r.stderr.contains("base: master"), "\(r.stderr)")
        #expect(repo.status(of: "m-1") == "open" && repo.status(of: "m-2") == "open", "nothing claimed")
        #expect(try repo.git("status --porcelain").isEmpty, "the user's git status stays clean")
        #expect(repo.agentStarts().isEmpty)
    }

    /// An item a run claimed and never finished (rejected) is named by the next run, with the
    /// command that releases it; `release` sets it open again, and the next run takes it.
    @Test func strandedClaimsAreNamedAndReleased() async throws {
        let rejecting = #"sed 's/"status": *"running"/"status": "rejected"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json""#
        let repo = try RealRepo(items: ["s-1"], agent: rejecting)
        let first = try await repo.run()
        #expect(first.status == 1)
        #expect(repo.status(of: "s-1") == "in_progress")
        let second = try await repo.run()
        #expect(second.status == 0)
        #expect(second.stdout.contains("never finished"), "\(second.stdout)")
        #expect(second.stdout.contains("amplify-run release s-1"), "\(second.stdout)")
        let release = try await repo.run(["release", "s-1"])
        #expect(release.status == 0, "\(release.stderr)")
        #expect(repo.status(of: "s-1") == "open")
        let unknown = try await repo.run(["release", "nope-1"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no run"), "\(unknown.stderr)")
        let third = try await repo.run()
        #expect(!third.stdout.contains("never finished"), "released: no longer named\n\(third.stdout)")
        #expect(repo.agentStarts().count == 2, "the released item is dispatched again")
    }

    /// A reopened item after a conflict: the new run starts its branch from the current base and
    /// keeps the old one under another name, saying so.
    @Test func reopenedItemStartsAfreshAndKeepsTheOldBranch() async throws {
        // The first time, while the agent works, someone lands the same file on the base: a conflict.
        let agent = """
            echo "work" > c-1.txt; git add c-1.txt; git commit -qm "c-1: work"
            if [ ! -e "$MARK" ]; then touch "$MARK"; (cd "$ROOT" && echo base > c-1.txt && git add c-1.txt && git commit -qm 'base has it too'); fi
            sed 's/"status": *"running"/"status": "approved"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"
            """
        let repo = try RealRepo(items: ["c-1"], agent: "exit 1\n")
        // The script needs the sandbox's own path: written now that it is known.
        let script = "#!/bin/sh\necho \"$AMPLIFY_ITEM_ID $*\" >> \"$AGENT_LOG\"\nROOT='\(repo.box.path)'; MARK=\"$ROOT/bin/conflicted\"\n" + agent
        try script.write(toFile: repo.box.path + "/bin/agent", atomically: true, encoding: .utf8)
        chmod(repo.box.path + "/bin/agent", 0o755)
        let first = try await repo.run()
        #expect(first.status == 1, "\(first.stdout)")
        #expect(first.stdout.contains("conflict"), "\(first.stdout)")
        let oldTip = try repo.git("rev-parse amplify/c-1")
        // A person makes room on the base and reopens the item.
        try shell("git rm -q c-1.txt && git -c user.name=T -c user.email=t@example.com commit -qm 'make room'", in: repo.box.url)
        try repo.writeIssues([("c-1", "open")])
        let base = try repo.git("rev-parse main")
        let second = try await repo.run()
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        #expect(second.stdout.contains("kept as amplify/c-1-old-"), "\(second.stdout)")
        #expect(!second.stdout.contains("never finished"), "a reopened item is not a stranded claim: \(second.stdout)")
        let kept = try repo.git("for-each-ref --format='%(refname:short)' 'refs/heads/amplify/c-1-old-*'")
        let keptTip = kept.isEmpty ? "" : try repo.git("rev-parse \(kept)")
        #expect(keptTip == oldTip, "the old work is kept: \(kept)")
        #expect(try repo.git("merge-base --is-ancestor \(oldTip) main; echo $?") == "1", "the old branch's work did not land")
        #expect(try repo.git("merge-base --is-ancestor \(base) main; echo $?") == "0")
    }

    /// With bd, two runners of one user (one bd actor, so `--claim` of an item the same actor
    /// holds is a no-op success in bd) still never dispatch an item twice: each run claims as
    /// itself (`--actor amplify-run/<run>`), as Fixtures/fake-bd plays bd's claim rules.
    @Test func runnersAlongsideWithBdNeverShareAnItem() async throws {
        let ids = (1...6).map { "b-\($0)" }
        let o = try Orchestra(ids.map { ($0, "ok", nil) })
        async let one = o.run(["--new", "wf.yaml"])
        async let two = o.run(["--new", "wf.yaml"])
        let (r1, r2) = try await (one, two)
        #expect(r1.status != 4 && r2.status != 4, "\(r1.stderr)\(r2.stderr)")
        for id in ids {
            #expect(o.agentStarts(id) == 1, "\(id)'s agent started once\n\(r1.stdout)\n\(r2.stdout)")
            #expect(try o.landed(id) == 1, "\(id) merged once")
        }
    }

    /// `release` never gives back the claim of a run that was interrupted: resumed, it would go on
    /// with the item while another run took it too.
    @Test func releaseRefusesAnInterruptedRunsClaim() async throws {
        let held = "i=0; while [ ! -e \"$AGENT_LOG.go\" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\n" + approvingAgent
        let repo = try RealRepo(items: ["i-1"], agent: held)
        let runner = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        for _ in 0..<200 where repo.agentStarts().isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        // Its pid recorded: the resumed run finds the agent by it, even once the agent has exited.
        #expect(await repo.box.recordedAgentPids(count: 1).count == 1)
        runner.interrupt()
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 130)
        let release = try await repo.run(["release", "i-1"])
        #expect(release.status == 1)
        #expect(release.stderr.contains("interrupted"), "\(release.stderr)")
        #expect(repo.status(of: "i-1") == "in_progress")
        _ = FileManager.default.createFile(atPath: repo.box.path + "/agent-starts.go", contents: nil)
        let resumed = try await repo.run()
        #expect(resumed.status == 0, "\(resumed.stdout)")
        #expect(repo.agentStarts().count == 1, "the resumed run went on with its own agent")
    }

    /// A reopened item whose old branch a kept worktree still has (a cancelled run keeps them):
    /// never pulled from under it; the dispatch fails saying what to do.
    @Test func reopenedItemWithAKeptWorktreeIsNotTakenFromIt() async throws {
        let held = "i=0; while [ ! -e \"$AGENT_LOG.go\" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\n" + approvingAgent
        let repo = try RealRepo(items: ["k-1"], agent: held)
        let runner = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        for _ in 0..<200 where repo.agentStarts().isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        let cancel = try await repo.run(["cancel"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 3)
        try repo.writeIssues([("k-1", "open")])
        _ = FileManager.default.createFile(atPath: repo.box.path + "/agent-starts.go", contents: nil)
        let again = try await repo.run()
        #expect(again.status == 1)
        #expect(again.stdout.contains("is checked out in"), "\(again.stdout)")
        #expect(again.stdout.contains("git worktree remove"), "says what to type")
        #expect(repo.agentStarts().count == 1, "no second agent in the kept worktree")
    }

    /// A wait that timed out is over: a question answered after it never starts the agent again
    /// (the runner lives on here for a stage of its own).
    @Test func aTimedOutWaitNeverResumesItsAgent() async throws {
        let workflow = """
            version: 1
            settings: {base: main, poll: 200ms}
            stages:
              slow: {run: "sleep 8", needs: []}
              ready: {uses: query-ready, needs: [], with: {source: file, path: .beads/issues.jsonl}}
              dispatch:
                uses: dispatch
                for-each: ${{ stages.ready.outputs.items }}
                with: {agent: ["agent", "-p", "${{ prompt }}"], prompt: "Item ${{ item.id }}"}
              approved:
                uses: wait-approved
                timeout: 2s
                with: {resume: ["agent", "--resume", "x", "-p", "${{ answer }}"]}
            """
        let asker = """
            [ "${1:-}" = "--resume" ] && exit 0
            echo '[{"id":"q1","question":"Which colour?","blocking":true}]' > "$AMPLIFY_SESSION_DIR/q.tmp" && mv "$AMPLIFY_SESSION_DIR/q.tmp" "$AMPLIFY_SESSION_DIR/questions.json"
            """
        let repo = try RealRepo(items: ["w-1"], agent: asker, workflow: workflow)
        let runner = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        // Once the wait has timed out, answer the question.
        var session: String?
        for _ in 0..<100 where session == nil {
            try await Task.sleep(for: .milliseconds(100))
            let st = try await repo.run(["status"])
            if st.stdout.contains("timed out"), let line = try await repo.run(["status", "--json"]).stdout.split(separator: "\"").first(where: { $0.hasPrefix("w-1-") }) {
                session = String(line)
            }
        }
        let id = try #require(session, "the wait timed out")
        _ = try await repo.run(["answer", id, "q1", "red"])
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 1)
        #expect(repo.agentStarts().count == 1, "no agent started after the timeout: \(repo.agentStarts())")
    }

    /// The workflow file must live in the repository: one outside it is refused with what to do.
    @Test func workflowOutsideTheRepositoryIsRefused() async throws {
        let repo = try RealRepo(items: ["o-1"], agent: approvingAgent)
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID().uuidString).yaml").path
        try RealRepo.workflow().write(toFile: outside, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let r = try await repo.run([outside])
        #expect(r.status == 2)
        #expect(r.stderr.contains("outside the repository"), "\(r.stderr)")
        #expect(r.stderr.contains("workflows/"), "says where to put it: \(r.stderr)")
        #expect(repo.status(of: "o-1") == "open", "nothing claimed")
    }

    /// Two runners of one workflow at once: the second refuses plainly, naming the first.
    @Test func secondRunnerOfAWorkflowRefuses() async throws {
        // The agents wait (at most 20 s) until the test lets them go: the first runner is surely alive.
        let held = "i=0; while [ ! -e \"$AGENT_LOG.go\" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\n" + approvingAgent
        let repo = try RealRepo(items: ["t-1", "t-2", "t-3"], agent: held)
        let first = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        for _ in 0..<200 where repo.agentStarts().isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        let second = try await repo.run()
        _ = FileManager.default.createFile(atPath: repo.box.path + "/agent-starts.go", contents: nil)
        #expect(second.status == 4)
        #expect(second.stderr.contains("another runner (pid \(first.processIdentifier))"), "\(second.stderr)")
        #expect(second.stderr.contains("--new"), "says how to run alongside on purpose")
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        #expect(repo.agentStarts().count == 3)
    }

    /// Started together on purpose (`--new`): every item's agent starts once, in one worktree.
    @Test func runnersAlongsideNeverShareAnItem() async throws {
        let slow = "sleep 1\n" + approvingAgent
        let repo = try RealRepo(items: ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"], agent: slow)
        async let one = repo.run(["--new", "wf.yaml"])
        async let two = repo.run(["--new", "wf.yaml"])
        let (r1, r2) = try await (one, two)
        #expect(r1.status != 4 && r2.status != 4, "\(r1.stderr)\(r2.stderr)")
        let starts = repo.agentStarts().map { $0.split(separator: " ")[0] }
        #expect(starts.sorted() == ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"], "each item's agent started once: \(starts)")
        for id in ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"] {
            #expect(try repo.git("log --oneline --grep=Amplify-Item:\\ \(id)$ main").split(separator: "\n").count == 1, "\(id) merged once")
        }
        let runs = try repo.box.journals().map { $0.split(separator: "/").dropLast().last.map { String($0.prefix(15)) } ?? "" }
        #expect(Set(runs).count == runs.count, "no two runs share a start second (which names sessions): \(runs)")
    }
}
