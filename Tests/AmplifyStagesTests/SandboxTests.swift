import AmplifyTestSupport
@testable import AmplifyStages
import Foundation
import Testing

/// Agents under bubblewrap (`sandbox: bwrap`), with the real bwrap: a hostile agent's attacks
/// fail while an honest agent's work merges, and the sandbox is the agent's process for
/// re-attaching, timeouts and cancel.
@Suite("Sandboxed agents (real bubblewrap)", .serialized)
struct SandboxTests {
    /// Boxes go under /var/tmp: the sandbox gives each agent a private /tmp, which would hide
    /// the scripts that play bd and the agent.
    static let parent = URL(fileURLWithPath: "/var/tmp")

    /// The attacks of a hostile agent, each printed as `ATTACK <name>: succeeded|failed`.
    /// It waits (up to 5 s) to see the honest session's directory, then tries to write the
    /// user's checkout, move the base branch (in its own checkout and in the repository), rewrite
    /// the honest session's state and decision, read `~/.ssh`, and write through a symlink out
    /// of its session directory. It ends rejected, its summary a symlink to the private key: the
    /// runner, which reads the summary, must not follow it.
    static let hostile = #"""
        #!/bin/sh
        set -u
        try() { name=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "ATTACK $name: succeeded"; else echo "ATTACK $name: failed"; fi; }
        sessions=$(dirname "$AMPLIFY_SESSION_DIR"); other=""
        for i in $(seq 50); do
          other=$(ls -d "$sessions"/o-1-* 2>/dev/null | grep -v '\.run\.json$' | head -n 1)
          [ -n "$other" ] && break; sleep 0.1
        done
        echo "saw the honest session: ${other:-no}"
        evil=$(git commit-tree -m evil "HEAD^{tree}"); echo "EVIL $evil"
        try checkout sh -c 'echo pwned > "$REPO/PWNED"'
        try read-checkout grep -q DOTENV "$REPO/.env"
        try base-here git update-ref refs/heads/main "$evil"
        try base-repository git -C "$REPO" update-ref refs/heads/main "$evil"
        try other-state sh -c '[ -n "$1" ] && echo "{\"status\": \"rejected\"}" > "$1/state.json"' - "$other"
        try other-decision sh -c '[ -n "$1" ] && echo "{\"decision\": \"rejected\", \"reason\": \"pwned\"}" > "$1/decision.json"' - "$other"
        try ssh sh -c 'cat "$HOME"/.ssh/id_* | grep -q SECRET'
        try git-config-token sh -c 'grep -q FAKE-CI-TOKEN "$REPO/.git/config" || git config --get-regexp "^http\." | grep -q FAKE-CI-TOKEN'
        try cli-settings sh -c 'echo "{\"hooks\": \"planted\"}" > "$HOME/.claude/settings.json"'
        cat "$HOME"/.ssh/id_* 2>&1 | head -c 200
        try symlink sh -c 'ln -sfn "$REPO" "$AMPLIFY_SESSION_DIR/escape" && echo pwned > "$AMPLIFY_SESSION_DIR/escape/PWNED-VIA-LINK"'
        rm -f "$AMPLIFY_SESSION_DIR/summary.md"; ln -s "$HOME/.ssh/id_ed25519" "$AMPLIFY_SESSION_DIR/summary.md"
        sed 's/"status": *"running"/"status": "rejected"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"
        """#

    static let honest = #"""
        #!/bin/sh
        set -eu
        echo honest > honest.txt && git add honest.txt && git commit -qm "honest work"
        sleep 3
        sed 's/"status": *"running"/"status": "approved"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"
        """#

    static let attacks = ["checkout", "read-checkout", "base-repository", "other-state", "other-decision", "ssh", "git-config-token", "cli-settings", "symlink"]

    /// A repository whose items are a hostile agent (h-1) and an honest one (o-1), each a
    /// committed script; `HOME` holds a private key.
    final class Scene {
        let o: Orchestra
        let home: String

        init(sandbox: String) throws {
            let workflow = """
                version: 1
                settings: {base: main, poll: 200ms, concurrency: 2, sandbox: \(sandbox)}
                stages:
                  ready: {uses: query-ready, with: {source: bd}}
                  dispatch:
                    uses: dispatch
                    for-each: ${{ stages.ready.outputs.items }}
                    with:
                      agent: ["sh", "agents/${{ item.description }}.sh"]
                      prompt: "Item ${{ item.id }}"
                      sandbox-writable: ["~/.claude/"]
                  approved: {uses: wait-approved, timeout: 60s, with: {resume: ["true"]}}
                  merge: {uses: merge}
                  close: {uses: close}
                """
            o = try Orchestra([("h-1", "hostile", nil), ("o-1", "honest", nil)], workflow: workflow, under: SandboxTests.parent)
            // Outside the checkout (a home inside it would keep the checkout in sight).
            home = SandboxTests.parent.path + "/amplify-home-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
            try "SECRET-KEY-42\n".write(toFile: home + "/.ssh/id_ed25519", atomically: true, encoding: .utf8)
            // A CLI's settings, which its next start (outside any sandbox) would obey.
            try FileManager.default.createDirectory(atPath: home + "/.claude", withIntermediateDirectories: true)
            try "{}\n".write(toFile: home + "/.claude/settings.json", atomically: true, encoding: .utf8)
            // An uncommitted secret in the user's checkout.
            try "TOKEN=DOTENV-SECRET\n".write(toFile: o.box.path + "/.env", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: o.box.path + "/agents", withIntermediateDirectories: true)
            try SandboxTests.hostile.write(toFile: o.box.path + "/agents/hostile.sh", atomically: true, encoding: .utf8)
            try SandboxTests.honest.write(toFile: o.box.path + "/agents/honest.sh", atomically: true, encoding: .utf8)
            // Descriptions name the script: bd's `description` field, as the prompt's item text.
            let db = o.box.read(".beads/db.jsonl").replacingOccurrences(of: "behave:", with: "")
            try db.write(toFile: o.db, atomically: true, encoding: .utf8)
            try shell("printf '/.env\\n' >> .git/info/exclude && git config http.https://example.com/.extraheader 'AUTHORIZATION: bearer FAKE-CI-TOKEN' && git add agents && git -c user.name=T -c user.email=t@example.com commit -qm agents", in: o.box.url)
        }

        deinit { try? FileManager.default.removeItem(atPath: home) }

        var environment: [String: String] {
            var env = o.environment
            env["HOME"] = home
            env["REPO"] = o.box.path
            return env
        }

        func run() async throws -> (status: Int32, stdout: String, stderr: String) {
            try await amplify(["wf.yaml"], in: o.box, environment: environment)
        }

        /// What the hostile agent printed.
        var hostileLog: String {
            let sessions = o.box.path + "/.amplify/archive"
            let alive = o.box.path + "/.amplify/sessions"
            for dir in [alive, sessions] {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix("h-1-") && !name.hasSuffix(".json") {
                    return (try? String(contentsOfFile: dir + "/" + name + "/output.log", encoding: .utf8)) ?? ""
                }
            }
            return ""
        }

        var evil: String? {
            hostileLog.split(separator: "\n").first { $0.hasPrefix("EVIL ") }.map { String($0.dropFirst(5)) }
        }

        /// Every commit `main` ever pointed at, from its reflog.
        func mainHistory() throws -> String { try o.git("reflog show --format=%H main") + "\n" + (try o.git("log --format=%H main")) }
    }

    @Test("sandbox: bwrap — every attack of a hostile agent fails, visibly in its log; the honest agent's work merges")
    func hostileAgentIsFenced() async throws {
        let scene = try Scene(sandbox: "bwrap")
        let r = try await scene.run()
        let log = scene.hostileLog
        #expect(r.status != 0, "the hostile item was rejected")
        #expect(!log.isEmpty, "\(r.stdout)\(r.stderr)")
        for attack in SandboxTests.attacks {
            #expect(log.contains("ATTACK \(attack): failed"), "\(attack)\n\(log)")
        }
        #expect(log.contains("saw the honest session: no"), "another session's directory is out of sight\n\(log)")
        // The effects, looked for where they would be.
        #expect(!FileManager.default.fileExists(atPath: scene.o.box.path + "/PWNED"))
        #expect(!FileManager.default.fileExists(atPath: scene.o.box.path + "/PWNED-VIA-LINK"))
        let evil = try #require(scene.evil, "the hostile agent made its commit\n\(log)")
        #expect(!(try scene.mainHistory()).contains(evil), "main never pointed at the hostile commit")
        #expect(!log.contains("SECRET-KEY-42"))
        #expect((try? String(contentsOfFile: scene.home + "/.claude/settings.json", encoding: .utf8)) == "{}\n", "the CLI's settings are as they were")
        // The honest item merged and closed; the hostile one was rejected, its summary not followed.
        #expect(try scene.o.landed("o-1") == 1, "\(r.stdout)\(r.stderr)")
        #expect(try scene.o.git("show main:honest.txt") == "honest")
        #expect(scene.o.status(of: "o-1") == "closed")
        #expect(try scene.o.landed("h-1") == 0)
        let status = try await amplify(["status", "--json"], in: scene.o.box, environment: scene.environment)
        let journal = try scene.o.box.journals().map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }.joined()
        #expect(!(r.stdout + r.stderr + status.stdout + journal).contains("SECRET-KEY-42"), "a symlinked summary is never read through")
        #expect(try scene.o.git("worktree list").split(separator: "\n").count == 1, "sandboxed sessions are repositories of their own, not worktrees")
    }

    @Test("sandbox: none — the same hostile agent's attacks succeed (so the test above can fail)")
    func hostileAgentUnfenced() async throws {
        let scene = try Scene(sandbox: "none")
        _ = try await scene.run()
        let log = scene.hostileLog
        for attack in SandboxTests.attacks {
            #expect(log.contains("ATTACK \(attack): succeeded"), "\(attack)\n\(log)")
        }
        #expect(FileManager.default.fileExists(atPath: scene.o.box.path + "/PWNED"))
        #expect(FileManager.default.fileExists(atPath: scene.o.box.path + "/PWNED-VIA-LINK"))
        let evil = try #require(scene.evil)
        #expect(try scene.mainHistory().contains(evil), "the hostile agent moved main")
        #expect(log.contains("SECRET-KEY-42"))
    }

    @Test("kill -9 while sandboxed agents work: the resumed runner re-attaches to the sandboxes; each item lands and closes once")
    func reattaches() async throws {
        let o = try Orchestra([("k-1", "approve", nil), ("k-2", "approve", nil), ("k-3", "leftovers", "k-1")],
                              workflow: Orchestra.workflow(sandbox: true), under: SandboxTests.parent)
        let r = try await o.killedWhileAgentsWork(at: "k-2-")
        try o.expectResumedOnce(r, ["k-1", "k-2", "k-3"])
        // k-3's uncommitted file was committed in its own repository, within its walls, and landed.
        #expect(try o.git("show main:k-3-left.txt") == "left")
        let worktrees = (try? FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.worktrees")) ?? []
        #expect(worktrees.filter { !$0.hasPrefix(".") }.isEmpty, "cleanup removed each session's repository and git directory: \(worktrees)")
    }

    /// The record a runner killed between starting the agent and recording its pid leaves: the
    /// walls, no pid (the walls go in before the start; the torture found them missing once).
    @Test("a sandboxed agent whose pid was never recorded: found again by its environment, within the same walls; its work lands")
    func foundAgainBeforeItsRecord() async throws {
        let o = try Orchestra([("sbx-f-1", "leftovers", nil)], workflow: Orchestra.workflow(timeout: "60s", sandbox: true), under: SandboxTests.parent)
        var env = o.environment
        // Held until the second runner has found it (the scripts' folder is visible in the sandbox).
        env["AGENT_HOLD"] = o.bin.path + "/go"
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: env)
        for _ in 0..<600 where o.agentStarts("sbx-f-1") == 0 { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(300))
        kill(runner.processIdentifier, SIGKILL)
        while runner.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        // The record as it was before the agent started: no pid, no start time.
        let sessions = o.box.path + "/.amplify/sessions/"
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: sessions).first { $0.hasSuffix(".run.json") })
        let record = try String(contentsOfFile: sessions + name, encoding: .utf8)
            .replacingOccurrences(of: #","pid":[0-9]+"#, with: "", options: .regularExpression)
            .replacingOccurrences(of: #","start-time":[0-9]+"#, with: "", options: .regularExpression)
        #expect(!record.contains("\"pid\"") && record.contains("\"sandbox\""), "\(record)")
        try record.write(toFile: sessions + name, atomically: true, encoding: .utf8)
        let resumed = Task { try await amplify(["wf.yaml"], in: o.box, environment: env) }
        // The record has a pid again once the second runner found the agent (or started another).
        #expect(await o.box.recordedAgentPids(count: 1).count == 1)
        _ = FileManager.default.createFile(atPath: o.bin.path + "/go", contents: nil)
        let r = try await resumed.value
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(o.agentStarts("sbx-f-1") == 1, "found again, not started twice")
        #expect(try o.landed("sbx-f-1") == 1)
        // Its leftovers were committed in its repository and fetched back.
        #expect(try o.git("show main:sbx-f-1-left.txt") == "left")
    }

    @Test("a sandboxed session waiting for a person: its work is on the item's branch to decide on; approved, it lands")
    func waitingShowsTheWork() async throws {
        let o = try Orchestra([("sbx-w-1", "human", nil)], workflow: Orchestra.workflow(timeout: "60s", sandbox: true), under: SandboxTests.parent)
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: o.environment)
        var ahead = ""
        for _ in 0..<600 {
            ahead = (try? o.git("rev-list --count main..amplify/sbx-w-1")) ?? ""
            if ahead == "1" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(ahead == "1", "the agent's commit, fetched from its own repository while it waits")
        let session = try #require(try FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.amplify/sessions").first { $0.hasPrefix("sbx-w-1-") && !$0.hasSuffix(".json") })
        let approve = try await o.run(["approve", session])
        #expect(approve.status == 0, "\(approve.stderr)")
        while runner.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(runner.terminationStatus == 0)
        #expect(try o.landed("sbx-w-1") == 1)
    }

    @Test("a timeout ends the sandbox and everything inside it; the item fails timed out")
    func timeoutEndsTheSandbox() async throws {
        let o = try Orchestra([("sbx-t-1", "hang", nil)], workflow: Orchestra.workflow(timeout: "2s", sandbox: true), under: SandboxTests.parent)
        let r = try await o.run()
        #expect(r.status != 0)
        #expect((r.stdout + r.stderr).contains("timed out"), "\(r.stdout)\(r.stderr)")
        // Nothing that carries the session's environment is left: not the sandbox, not the agent's sleep.
        #expect(await eventually(seconds: 10) { livingProcesses(withEnvironment: "AMPLIFY_ITEM_ID=sbx-t-1").isEmpty })
    }

    @Test("cancel ends each sandbox and everything inside it; the repository and session are kept")
    func cancelEndsTheSandbox() async throws {
        let o = try Orchestra([("sbx-c-1", "hang", nil)], workflow: Orchestra.workflow(timeout: "5m", sandbox: true), under: SandboxTests.parent)
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: o.environment)
        for _ in 0..<600 where o.agentStarts("sbx-c-1") == 0 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!livingProcesses(withEnvironment: "AMPLIFY_ITEM_ID=sbx-c-1").isEmpty, "the sandbox and its agent run")
        let cancel = try await o.run(["cancel"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        while runner.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(await eventually(seconds: 10) { livingProcesses(withEnvironment: "AMPLIFY_ITEM_ID=sbx-c-1").isEmpty })
        let kept = (try? FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.worktrees")) ?? []
        #expect(kept.contains { $0.hasPrefix("sbx-c-1-") && !$0.hasSuffix(".git") }, "a cancelled run keeps the session's repository: \(kept)")
    }

    @Test("bubblewrap that cannot make namespaces: the run stops before anything is claimed, naming `sandbox: none`")
    func namespacesUnavailable() async throws {
        let o = try Orchestra([("n-1", "approve", nil)], workflow: Orchestra.workflow(sandbox: true))
        // What bwrap prints where user namespaces are refused (bubblewrap.c, `die` after unshare fails), exit 1.
        try """
            #!/bin/sh
            echo "bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces. On e.g. debian this can be enabled with 'sysctl kernel.unprivileged_userns_clone=1'." >&2
            exit 1
            """.write(toFile: o.bin.path + "/bwrap", atomically: true, encoding: .utf8)
        chmod(o.bin.path + "/bwrap", 0o755)
        let r = try await o.run()
        #expect(r.status != 0)
        #expect(r.stderr.contains("sandbox: none"), "\(r.stderr)")
        #expect(r.stderr.contains("No permissions to create new namespace"), "\(r.stderr)")
        #expect(!o.bdCalls.contains { $0.hasPrefix("update") }, "nothing was claimed: \(o.bdCalls)")
        #expect(o.agentStarts("n-1") == 0)
    }

}

/// The walls, as bwrap is given them.
@Suite("Sandbox: bubblewrap's mounts")
struct BubblewrapMountTests {
    @Test("a mount comes after those of the folders above it; hidden folders stay read-only; the CLI's settings read-only; capabilities dropped; no --die-with-parent")
    func order() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("amplify-walls-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = root + "/r", h = root + "/h"
        for dir in [r + "/.git/objects", r + "/.git/hooks", r + "/.worktrees/s", r + "/.worktrees/s.git", r + "/.amplify/sessions/s", h + "/.ssh", h + "/.claude"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        try "{}".write(toFile: h + "/.claude/settings.json", atomically: true, encoding: .utf8)
        let walls = Bubblewrap.session(repository: r + "/.worktrees/s", gitDirectory: r + "/.worktrees/s.git", sessionDirectory: r + "/.amplify/sessions/s",
                                       checkout: r, stateDirectory: r + "/.amplify", worktreesDirectory: r + "/.worktrees",
                                       commonGitDirectory: r + "/.git", home: h, writable: ["~/.claude/", "~/.claude.json", "~/.cache/new/"])
        let argv = walls.wrap(["agent"])
        func position(_ option: String, _ path: String) throws -> Int {
            try #require(argv.indices.first { argv[$0] == option && argv[$0 + 1] == path } ?? argv.indices.first { argv[$0] == option && argv[$0 + 2] == path }, "\(option) \(path) in \(argv)")
        }
        #expect(try position("--tmpfs", "/tmp") < position("--tmpfs", r))
        #expect(try position("--tmpfs", r) < position("--ro-bind", r + "/.git/objects"))
        #expect(try position("--tmpfs", r) < position("--ro-bind", r + "/.git/hooks"))
        #expect(!argv.contains(r + "/.git"), "of the git directory only objects and hooks show (its config may hold a token)")
        #expect(try position("--tmpfs", r + "/.worktrees") < position("--bind", r + "/.worktrees/s"))
        #expect(try position("--tmpfs", r + "/.amplify") < position("--bind", r + "/.amplify/sessions/s"))
        // A home under /tmp is shown again, read-only, before anything of it is; its secrets hidden after.
        #expect(try position("--tmpfs", "/tmp") < position("--ro-bind", h))
        #expect(try position("--ro-bind", h) < position("--tmpfs", h + "/.ssh"))
        // The CLI's config directory writable, its settings read-only inside it.
        #expect(try position("--bind", h + "/.claude") < position("--ro-bind", h + "/.claude/settings.json"))
        // A missing file is left out, never made (as a directory); a missing directory (`/`) is made.
        #expect(!argv.contains(h + "/.claude.json") && !FileManager.default.fileExists(atPath: h + "/.claude.json"))
        #expect(try position("--bind", h + "/.cache/new") > 0)
        #expect(try position("--bind", r + "/.worktrees/s") < position("--remount-ro", r))
        #expect(argv.contains("--cap-drop") && argv.contains("--unshare-pid"))
        #expect(!argv.contains("--die-with-parent") && !argv.contains("--new-session"))
        #expect(Array(argv.suffix(2)) == ["--", "agent"])
        #expect(Bubblewrap(walls.value) == walls, "the record reads back the same walls")
    }
}
