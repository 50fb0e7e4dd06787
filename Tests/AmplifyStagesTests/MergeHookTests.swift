import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// merge and the repository's hooks: they run for every commit the runner makes, and a refusal
/// fails the item with what the hook said, the base untouched.
@Suite("merge runs the repository's hooks")
struct MergeHookTests {
    typealias Repo = MergeTests.Repo

    /// Installs `body` as hook `name` in `folder` (relative to the sandbox repository), executable or not.
    static func hook(_ name: String, _ body: String, in box: Sandbox, folder: String = ".git/hooks", executable: Bool = true) throws {
        let dir = box.path + "/" + folder
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ("#!/bin/sh\n" + body + "\n").write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: executable ? 0o755 : 0o644], ofItemAtPath: dir + "/" + name)
    }

    static let ticketRequired = #"grep -q '^PROJ-[0-9]' "$1" || { echo "commit-msg: the subject must start with a ticket (PROJ-123)"; exit 1; }"#

    @Test("a pre-commit hook refusing a file the session left uncommitted fails the item with the hook's output; the base is unchanged")
    func preCommitRefusesLeftovers() async throws {
        let repo = try Repo()
        try Self.hook("pre-commit", #"if git diff --cached --name-only | grep -q '^secret.txt$'; then echo "secret-scan: secret.txt holds a private key" >&2; exit 1; fi"#, in: repo.box)
        _ = try repo.git("worktree add -q .worktrees/m-1 amplify/m-1")
        try "-----BEGIN PRIVATE KEY-----\n".write(toFile: repo.box.path + "/.worktrees/m-1/secret.txt", atomically: true, encoding: .utf8)
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge(worktree: ".worktrees/m-1")
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("secret-scan: secret.txt holds a private key"), "\(why)")
        #expect(why.contains("uncommitted work") && why.contains("pre-commit"), "which commit, which hook: \(why)")
        #expect(try repo.git("rev-parse main") == before)
        #expect(try repo.git("log --format=%s amplify/m-1") == "m-1: work\nbase", "nothing committed on the branch")
        #expect(try repo.git("status --porcelain --untracked-files=no").isEmpty, "the user's checkout is untouched")
    }

    @Test("a commit-msg hook requiring a ticket refuses the runner's commit, wherever core.hooksPath points; the base is unchanged",
          arguments: [("no-ff", "default"), ("squash", "relative"), ("rebase", "absolute"), ("no-ff", "relative")])
    func commitMsgRefuses(strategy: String, hooksPath: String) async throws {
        let repo = try Repo()
        // An untracked hooks folder: a relative core.hooksPath resolved in the runner's scratch worktree finds nothing there.
        let folder = hooksPath == "default" ? ".git/hooks" : ".githooks"
        try Self.hook("commit-msg", Self.ticketRequired, in: repo.box, folder: folder)
        if hooksPath == "relative" { _ = try repo.git("config core.hooksPath .githooks") }
        if hooksPath == "absolute" { _ = try repo.git("config core.hooksPath \(repo.box.path)/.githooks") }
        _ = try shell("echo /.githooks/ >> .git/info/exclude", in: repo.box.url)
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge("{strategy: \(strategy)}")
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("the subject must start with a ticket (PROJ-123)") && why.contains("commit-msg"), "\(why)")
        #expect(why.contains("main is unchanged"), "\(why)")
        #expect(try repo.git("rev-parse main") == before)
        #expect(try repo.git("status --porcelain").isEmpty, "the user's checkout is untouched")
        #expect(try repo.git("worktree list").split(separator: "\n").count == 1, "the runner's merge worktree is gone")
    }

    @Test("a pre-merge-commit hook refusing the merge fails the item (a plain failure, not a conflict)")
    func preMergeCommitRefuses() async throws {
        let repo = try Repo()
        try Self.hook("pre-merge-commit", "echo 'pre-merge: work.txt is not allowed' >&2; exit 1", in: repo.box)
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge()
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("pre-merge: work.txt is not allowed") && why.contains("pre-merge-commit") && why.contains("the merge commit"), "\(why)")
        #expect(try repo.git("rev-parse main") == before)
    }

    @Test("`hooks: skip` runs none of them: the item merges past refusing hooks")
    func skip() async throws {
        let repo = try Repo()
        for name in ["pre-commit", "pre-merge-commit", "commit-msg", "prepare-commit-msg"] {
            try Self.hook(name, "echo \(name) ran >> \"$(git rev-parse --git-common-dir)/ran\"; exit 1", in: repo.box)
        }
        _ = try repo.git("worktree add -q .worktrees/m-1 amplify/m-1")
        try "left over\n".write(toFile: repo.box.path + "/.worktrees/m-1/left.txt", atomically: true, encoding: .utf8)
        let r = try await repo.merge("{hooks: skip}", worktree: ".worktrees/m-1")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        #expect(try repo.trailers() == 1)
        #expect(try repo.git("show main:left.txt") == "left over")
        #expect(repo.box.read(".git/ran").isEmpty, "no hook ran")
    }

    @Test("the checker knows `hooks`: run or skip, and suggests the value")
    func checked() throws {
        func diagnostics(_ value: String) -> String {
            WorkflowChecker.check("""
            version: 1
            stages:
              ready: {uses: query-ready, with: {source: file, path: issues.jsonl}}
              dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {prompt: p}}
              merge: {uses: merge, with: {hooks: \(value)}}
            """, file: "wf.yaml").diagnostics.map(\.description).joined(separator: "\n")
        }
        #expect(diagnostics("run").isEmpty)
        #expect(diagnostics("skip").isEmpty)
        #expect(diagnostics("skp").contains("skip"), "\(diagnostics("skp"))")
    }

    @Test("a commit-msg hook that rewrites the message lands once, trailers intact; a non-executable hook is ignored", arguments: ["no-ff", "squash", "rebase"])
    func rewritingHookLandsOnce(strategy: String) async throws {
        let repo = try Repo()
        try Self.hook("commit-msg", #"sed -i '1s/^/PROJ-1 /' "$1" && printf '\nReviewed-by: the hook\n' >> "$1""#, in: repo.box)
        try Self.hook("pre-commit", "exit 1", in: repo.box, executable: false)
        try Self.hook("pre-merge-commit", "exit 1", in: repo.box, executable: false)
        let r = try await repo.merge("{strategy: \(strategy)}")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        let message = try repo.git("log -1 --format=%B main")
        #expect(message.hasPrefix("PROJ-1 ") && message.contains("Reviewed-by: the hook"), "the hook ran: \(message)")
        #expect(try repo.trailers() == 1)
        let again = try await repo.merge("{strategy: \(strategy)}")
        guard case .succeeded(let out) = again else { Issue.record("\(again)"); return }
        #expect(out["landed-before"] == .bool(true))
        #expect(try repo.trailers() == 1)
    }

    @Test("a hook that strips the trailers fails the item: nothing lands that could land twice")
    func strippedTrailers() async throws {
        let repo = try Repo()
        try Self.hook("commit-msg", #"sed -i '/^Amplify-/d' "$1""#, in: repo.box)
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge()
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("trailers") && why.contains("main is unchanged"), "\(why)")
        #expect(try repo.git("rev-parse main") == before)
    }
}

@Suite("merge and a hook that hangs, end to end", .serialized)
struct MergeHookTimeoutTests {
    @Test("the stage's timeout ends a hook that hangs (it would hold the landing lock for ever): the item times out, the base is unchanged")
    func hangingHook() async throws {
        let o = try Orchestra([("h-1", "approve", nil)],
                              workflow: Orchestra.workflow().replacing("merge: {uses: merge}", with: "merge: {uses: merge, timeout: 2s}"))
        let pidFile = o.box.path + "/.git/hook.pid"
        try MergeHookTests.hook("pre-merge-commit", "echo $$ > '\(pidFile)'; sleep 300", in: o.box)
        let before = try o.git("rev-parse main")
        let started = Date()
        let r = try await o.run()
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("timed out"), "\(r.stdout)")
        #expect(Date().timeIntervalSince(started) < 120, "not the hook's 300 s")
        #expect(try o.git("rev-parse main") == before)
        let pid = try #require(Int32(o.box.read(".git/hook.pid").trimmingCharacters(in: .whitespacesAndNewlines)), "the hook ran")
        var alive = true
        for _ in 0..<50 where alive {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            alive = kill(pid, 0) == 0 && !stat.contains(") Z ")  // a zombie PID 1 does not reap is gone
            if alive { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(!alive, "the hook's process group was ended")
    }
}
