import AmplifyEngine
import AmplifyTestSupport
import Foundation
import Testing

/// Agent profiles through the whole pipeline, through the binary, on a real git repository: the
/// scripts below print what each CLI prints (shapes from docs/research/agent-clis.md, which cites
/// each CLI's source and holds output captured from claude 2.1.332 and codex 0.147.0).
@Suite(.serialized) struct AgentProfileRunTests {
    /// The default workflow's shape (`agent: ${{ vars.agent }}`, no `resume:`), reading the issues file.
    static func workflow(settings: String = "", with: String = "", agents: String = "", dispatch: String = "", approved: String = "timeout: 60s") -> String {
        """
        version: 1
        settings: {base: main, poll: 200ms\(settings)}
        vars: {agent: claude}
        \(agents)
        stages:
          ready: {uses: query-ready, with: {source: file, path: .beads/issues.jsonl}}
          dispatch:
            uses: dispatch
            for-each: ${{ stages.ready.outputs.items }}
            with: {agent: "${{ vars.agent }}", prompt: "Item ${{ item.id }}: ${{ item.title }}"\(with)}
            \(dispatch)
          approved: {uses: wait-approved, \(approved)}
          merge: {uses: merge}
          close: {uses: close}
          cleanup: {uses: cleanup, if: "${{ always() }}"}
        """
    }

    /// A script on the repository's PATH, called `name`, that logs its argv (`ITEM ARGS…`) first.
    static func script(_ repo: RealRepo, _ name: String, _ body: String) throws {
        let path = repo.box.path + "/bin/" + name
        try ("#!/bin/sh\necho \"$AMPLIFY_ITEM_ID $*\" >> \"$AGENT_LOG\"\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }

    /// Commits the item's file and sets state.json's status to approved.
    static let work = """
        echo "$AMPLIFY_ITEM_ID work" > "$AMPLIFY_ITEM_ID.txt"; git add . && git commit -qm "$AMPLIFY_ITEM_ID: work"
        sed 's/"status": *"running"/"status": "approved"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"

        """

    static func statusJSON(_ repo: RealRepo) async throws -> [String: Any] {
        let st = try await repo.run(["status", "--json"])
        return try #require(try JSONSerialization.jsonObject(with: Data(st.stdout.utf8)) as? [String: Any], "\(st.stdout) \(st.stderr)")
    }

    static func items(_ json: [String: Any]) -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for i in json["items"] as? [[String: Any]] ?? [] { out[i["item"] as? String ?? ""] = i }
        return out
    }

    @Test("--var agent=codex: codex exec --json is started with its own flags, its tokens are in the summary and status, and nothing claims a cost")
    func codexEndToEnd() async throws {
        let repo = try RealRepo(items: ["c-1"], agent: "exit 9\n", workflow: Self.workflow())
        // codex exec --json's events, as openai/codex's docs/exec.md shows them (docs/research §2.6).
        try Self.script(repo, "codex", """
            echo '{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}'
            echo '{"type":"turn.started"}'
            \(Self.work)
            echo '{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Done."}}'
            echo '{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":1234}}'
            """)
        let r = try await repo.run(["wf.yaml", "--var", "agent=codex"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("1,234 tokens"), "\(r.stdout)")
        let argv = try #require(repo.agentStarts().first)
        #expect(argv == "c-1 exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox Item c-1: Item c-1", "\(argv)")
        let item = try #require(Self.items(try await Self.statusJSON(repo))["c-1"])
        #expect(item["outcome"] as? String == "merged")
        #expect(item["tokens"] as? Int == 1234 && item["cost"] is NSNull && item["agent-profile"] as? String == "codex", "\(item)")
    }

    @Test("a profile the workflow declares: its cost and turns shown for a merged item and for a failed one, with the failed agent's own words")
    func customProfile() async throws {
        let agents = """
            agents:
              my-agent:
                command: [my-agent, --json, "${{ prompt }}"]
                cost: {type: done, field: spent}
                turns: {type: done, field: steps}
                error: {type: done, when: {ok: false}, field: message}
            """
        let repo = try RealRepo(items: ["m-1", "m-2"], agent: "exit 9\n", workflow: Self.workflow(agents: agents))
        try Self.script(repo, "my-agent", """
            if [ "$AMPLIFY_ITEM_ID" = m-2 ]; then
              echo 'my-agent: giving up' >&2
              echo '{"type":"done","ok":false,"message":"the tool quota is exhausted","spent":0.2,"steps":1}'
              exit 1
            fi
            \(Self.work)
            echo '{"type":"done","ok":true,"spent":0.5,"steps":3}'
            """)
        let r = try await repo.run(["wf.yaml", "--var", "agent=my-agent"])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("$0.50 · 3 turns") && r.stdout.contains("$0.20 · 1 turn"), "\(r.stdout)")
        let items = Self.items(try await Self.statusJSON(repo))
        #expect(items["m-1"]?["outcome"] as? String == "merged")
        #expect(items["m-2"]?["outcome"] as? String == "failed")
        let detail = items["m-2"]?["detail"] as? String ?? ""
        #expect(detail.contains("the tool quota is exhausted") && detail.contains("output.log") && !detail.contains("{\""), "\(detail)")
    }

    @Test("an unknown profile is refused before anything is claimed, with the nearest name")
    func unknownProfile() async throws {
        let repo = try RealRepo(items: ["u-1"], agent: "exit 9\n", workflow: Self.workflow())
        let r = try await repo.run(["wf.yaml", "--var", "agent=codx"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("unknown agent profile 'codx'") && r.stderr.contains("did you mean 'codex'"), "\(r.stderr)")
        #expect(repo.status(of: "u-1") == "open" && repo.agentStarts().isEmpty)
    }

    @Test("claude's budget is passed as its own flags before `--`; the item ends over budget in Claude's words")
    func claudeNativeBudget() async throws {
        let repo = try RealRepo(items: ["b-1"], agent: "exit 9\n", workflow: Self.workflow(with: ", budget: {cost: 2, turns: 5}"))
        // The result Claude Code 2.1.332 prints at --max-turns (docs/research §1.3: its template, errors text).
        try Self.script(repo, "claude", """
            echo '{"type":"system","subtype":"init","session_id":"5b1e0c9a-2f4e-4d7a-9d36-0a1c2b3d4e5f"}'
            echo '{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":6,"session_id":"5b1e0c9a-2f4e-4d7a-9d36-0a1c2b3d4e5f","total_cost_usd":0.41,"usage":{"input_tokens":900,"output_tokens":120},"errors":["Reached maximum number of turns (5)"]}'
            exit 1
            """)
        let r = try await repo.run()
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        let argv = try #require(repo.agentStarts().first)
        #expect(argv.contains("--max-budget-usd 2 --max-turns 5 -- Item b-1"), "\(argv)")
        let item = try #require(Self.items(try await Self.statusJSON(repo))["b-1"])
        #expect(item["outcome"] as? String == "over budget", "\(item)")
        #expect((item["detail"] as? String ?? "").contains("Reached maximum number of turns (5)"), "\(item)")
        #expect(item["cost"] as? Double == 0.41 && item["turns"] as? Int == 6)
    }

    @Test("a profile without a native limit: the runner ends the agent once its reported cost passes the item's budget")
    func runnerEndsOverBudgetAgent() async throws {
        let agents = """
            agents:
              spender:
                command: [spender, "${{ prompt }}"]
                cost: {type: step, field: cost, sum: true}
            """
        let repo = try RealRepo(items: ["s-1"], agent: "exit 9\n", workflow: Self.workflow(with: ", budget: {cost: 1}", agents: agents))
        try Self.script(repo, "spender", """
            i=0
            while [ $i -lt 40 ]; do echo '{"type":"step","cost":0.4}'; sleep 0.25; i=$((i+1)); done
            touch "$AMPLIFY_SESSION_DIR/../spent-it-all"
            """)
        let r = try await repo.run(["wf.yaml", "--var", "agent=spender"])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        let item = try #require(Self.items(try await Self.statusJSON(repo))["s-1"])
        #expect(item["outcome"] as? String == "over budget", "\(item)")
        #expect((item["detail"] as? String ?? "").contains("the runner ended the agent"), "\(item)")
        let cost = try #require(item["cost"] as? Double)
        // $1.60 a second: within about 3 s of passing $1 (a loaded machine is slow to read).
        #expect(cost > 1 && cost < 6, "ended soon after passing $1: \(cost)")
        #expect(!FileManager.default.fileExists(atPath: repo.box.path + "/.amplify/sessions/spent-it-all"), "the agent (10 s of work) was ended, not waited for")
    }

    @Test("the run's budget: once the known cost reaches it nothing new is dispatched, the rest are skipped (reason budget), exit 1")
    func runBudget() async throws {
        let repo = try RealRepo(items: ["r-1", "r-2", "r-3"], agent: "exit 9\n",
                                workflow: Self.workflow(settings: ", concurrency: 1, budget: {cost: 1}"))
        try Self.script(repo, "claude", """
            \(Self.work)
            echo '{"type":"result","subtype":"success","is_error":false,"num_turns":2,"total_cost_usd":0.6,"result":"done","session_id":"s"}'
            """)
        let r = try await repo.run()
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        let items = Self.items(try await Self.statusJSON(repo))
        #expect(items["r-1"]?["outcome"] as? String == "merged" && items["r-2"]?["outcome"] as? String == "merged", "\(items)")
        #expect(items["r-3"]?["outcome"] as? String == "skipped", "\(items)")
        let skippedWhy = (items["r-3"]?["detail"] as? String) ?? ""
        #expect(skippedWhy.hasPrefix("budget"), "\(items)")
        #expect(repo.agentStarts().count == 2)
        #expect(r.stdout.contains("budget: $1.20 known spent of $1.00"), "\(r.stdout)")
    }

    @Test("a usage limit pauses the item and later resumes its agent with \"continue\", across a kill -9 of the runner during the pause; the pause does not count against the stage's timeout")
    func usageLimitPausesAndResumes() async throws {
        // A 5 s timeout, and a pause of about 8 s (long enough to be seen and killed in).
        let repo = try RealRepo(items: ["l-1"], agent: "exit 9\n", workflow: Self.workflow(approved: "timeout: 5s"))
        // First start: Claude Code's rejected rate_limit_event (resetsAt in Unix seconds; PR
        // paperclipai/paperclip#5776), then its error result; the second start works.
        try Self.script(repo, "claude", """
            if [ "$(grep -c "^$AMPLIFY_ITEM_ID " "$AGENT_LOG")" = 1 ]; then
              printf '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":%s,"rateLimitType":"five_hour"}}\\n' $(( $(date +%s) + 6 ))
              echo '{"type":"result","subtype":"success","is_error":true,"num_turns":1,"total_cost_usd":0.05,"result":"Claude AI usage limit reached","session_id":"s"}'
              exit 1
            fi
            \(Self.work)
            echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"total_cost_usd":0.1,"result":"done","session_id":"s"}'
            """)
        var env = ProcessInfo.processInfo.environment.merging(repo.environment) { $1 }
        env["AMPLIFY_USAGE_LIMIT_MARGIN_MS"] = "2000"
        func runner() throws -> Process {
            let p = Process()
            p.executableURL = amplifyExecutable(repositoryRoot: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent())
            p.arguments = ["wf.yaml"]
            p.currentDirectoryURL = repo.box.url
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        let first = try runner()
        #expect(await eventually { repo.box.journalContains("\"paused\"") }, "the pause is journaled")
        let paused = try await repo.run(["status"]).stdout
        #expect(paused.contains("paused until") && paused.contains("usage limit"), "status shows the pause: \(paused)")
        kill(first.processIdentifier, SIGKILL)
        while first.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(repo.agentStarts().count == 1, "nothing started during the pause")
        let second = try runner()
        while second.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(second.terminationStatus == 0)
        let starts = repo.agentStarts()
        #expect(starts.count == 2, "\(starts)")
        #expect(starts.last?.contains("--resume") == true && starts.last?.contains("-- Continue where you left off") == true, "\(starts)")
        let item = try #require(Self.items(try await Self.statusJSON(repo))["l-1"])
        #expect(item["outcome"] as? String == "merged", "\(item)")
        #expect(abs((item["cost"] as? Double ?? 0) - 0.15) < 1e-9, "both starts' cost: \(item)")
        let runs = repo.box.path + "/.amplify/runs"
        let journalPath = try #require(FileManager.default.enumerator(atPath: runs)?.compactMap { $0 as? String }.first { $0.hasSuffix("journal.jsonl") })
        let journal = try String(contentsOfFile: runs + "/" + journalPath, encoding: .utf8)
        #expect(journal.components(separatedBy: "\"paused\"").count - 1 == 1, "one pause journaled, the restarted runner kept its deadline")
    }

    @Test("the claude profile, not logged in (Claude Code 2.1.332's real output): the item fails in Claude's words, with what it reported")
    func claudeNotLoggedIn() async throws {
        let transcript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/agents/claude-2.1.332-not-logged-in.jsonl").path
        let repo = try RealRepo(items: ["n-1"], agent: "exit 9\n", workflow: Self.workflow())
        try Self.script(repo, "claude", "cat '\(transcript)'\nexit 1\n")
        let r = try await repo.run()
        #expect(r.status == 1)
        let item = try #require(Self.items(try await Self.statusJSON(repo))["n-1"])
        let detail = item["detail"] as? String ?? ""
        #expect(detail.contains("Not logged in · Please run /login") && detail.contains("output.log") && !detail.contains("{\""), "\(detail)")
        #expect(item["turns"] as? Int == 1 && item["agent-profile"] as? String == "claude", "\(item)")
    }

    @Test("codex asks, is answered, and is resumed as `codex exec … resume THREAD ANSWER`; one that never printed its thread id is an error at the resume, never an empty id")
    func codexResume() async throws {
        for printsThread in [true, false] {
            let repo = try RealRepo(items: ["q-1"], agent: "exit 9\n", workflow: Self.workflow())
            try Self.script(repo, "codex", """
                \(printsThread ? "echo '{\"type\":\"thread.started\",\"thread_id\":\"0199a213-81c0-7800-8aa1-bbab2a035a53\"}'" : ":")
                if [ "$(grep -c "^$AMPLIFY_ITEM_ID " "$AGENT_LOG")" = 1 ]; then
                  echo '[{"id":"q1","question":"Which colour?","blocking":true}]' > "$AMPLIFY_SESSION_DIR/q.tmp" && mv "$AMPLIFY_SESSION_DIR/q.tmp" "$AMPLIFY_SESSION_DIR/questions.json"
                  echo '{"type":"turn.completed","usage":{"output_tokens":10}}'
                  exit 0
                fi
                \(Self.work)
                echo '{"type":"turn.completed","usage":{"output_tokens":25}}'
                """)
            let runner = try startAmplify(["wf.yaml", "--var", "agent=codex"], in: repo.box, environment: repo.environment)
            #expect(try await repo.answerWhenAsked("q1", "red"))
            runner.waitUntilExit()
            let starts = repo.agentStarts()
            if printsThread {
                #expect(runner.terminationStatus == 0)
                #expect(starts.count == 2 && starts.last?.hasSuffix("--dangerously-bypass-approvals-and-sandbox resume 0199a213-81c0-7800-8aa1-bbab2a035a53 red") == true, "\(starts)")
                // A running total: the session's tokens are the last start's.
                #expect(Self.items(try await Self.statusJSON(repo))["q-1"]?["tokens"] as? Int == 25)
            } else {
                #expect(runner.terminationStatus == 1)
                #expect(starts.count == 1, "never `resume \"\"`: \(starts)")
                let st = try await repo.run(["status"])
                #expect(st.stdout.contains("cannot resume the agent"), "\(st.stdout)")
            }
        }
    }

    @Test("a dispatch waiting out its profile's usage limit claims nothing and starts nothing; a cancel meanwhile ends it so")
    func cancelDuringDispatchPause() async throws {
        let repo = try RealRepo(items: ["p-1"], agent: "exit 9\n", workflow: Self.workflow())
        try Self.script(repo, "claude", Self.work)
        // Another session met claude's usage limit: paused for a minute.
        try FileManager.default.createDirectory(atPath: repo.box.path + "/.amplify/paused", withIntermediateDirectories: true)
        try "\(Int64(Date().timeIntervalSince1970 * 1000) + 60_000)\n".write(toFile: repo.box.path + "/.amplify/paused/claude", atomically: true, encoding: .utf8)
        let runner = try startAmplify(["wf.yaml"], in: repo.box, environment: repo.environment)
        var paused = ""
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(100))
            let st = try await repo.run(["status"])
            if st.stdout.contains("paused until") { paused = st.stdout; break }
        }
        #expect(paused.contains("usage limit (claude)"), "\(paused)")
        #expect(try await repo.run(["cancel"]).status == 0)
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 3)
        #expect(repo.agentStarts().isEmpty)
        #expect(repo.status(of: "p-1") == "open", "never claimed")
    }
}
