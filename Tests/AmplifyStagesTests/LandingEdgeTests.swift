import AmplifyEngine
import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// Landing edge cases found in an independent review of the merge queue and pull requests, each
/// a reproduction that failed before its fix.
@Suite("Landing: cancel, earlier runs, kill -9 while speculating, branches already in", .serialized)
struct LandingEdgeTests {
    /// `amplify-run cancel` while an item waits for GitHub to merge its pull request: the cancel
    /// skips merge instances ("a landing merge is let finish"), so the wait goes on and the runner
    /// (and `cancel`, which waits for it) never ends.
    @Test("cancel while a pull request is waited for ends the run")
    func cancelWhileWaitingForPullRequest() async throws {
        let (o, env) = try PullRequestRunTests.orchestra()
        func views() -> Int { o.box.read(".gh/calls.log").split(separator: "\n").filter { $0.hasPrefix(#"["pr", "view""#) }.count }
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: env)
        defer { if runner.isRunning { kill(runner.processIdentifier, SIGKILL) } }
        await eventually(seconds: 120) { views() >= 2 || !runner.isRunning }
        #expect(views() >= 2)
        let cancel = try startAmplify(["cancel"], in: o.box, environment: env)
        defer { if cancel.isRunning { kill(cancel.processIdentifier, SIGKILL) } }
        await eventually(seconds: 120) { !runner.isRunning && !cancel.isRunning }
        #expect(!runner.isRunning, "the runner still runs 120 s after `cancel`; gh pr view calls: \(views())")
        #expect(!cancel.isRunning, "`amplify-run cancel` still waits")
    }

    /// A pull request of the same branch from an earlier run (merged) is taken as this item's:
    /// the new work is never pushed, and the item "lands" with the old merge commit.
    @Test("a merged pull request of an earlier run does not stand for new work on the same branch")
    func earlierRunsMergedPullRequest() async throws {
        let repo = try PullRequestRepo()
        let first = try await repo.merge("{via: pull-request, wait: opened}", notes: Notes(), run: "20261124T120000000Z-abcd")
        guard case .succeeded = first else { Issue.record("\(first)"); return }
        try await repo.github("merge", "1", "--squash")
        let oldMerge = try repo.remote("rev-parse main")
        // A later run does the item again (reopened in the tracker): the branch made afresh from main, new work on it.
        try shell("""
        git fetch -q origin main && git merge -q --ff-only origin/main && git branch -D -q amplify/p-1 &&
        git checkout -q -b amplify/p-1 && echo again > again.txt && git add again.txt && git -c user.name=T -c user.email=t@e commit -qm 'p-1: more work' && git checkout -q main
        """, in: repo.box.url)
        let second = try await repo.merge("{via: pull-request}", notes: Notes(), run: "20261201T120000000Z-beef")
        // The old pull request is not taken for the new work: the new branch is pushed — and,
        // as GitHub still has the first run's branch of that name, refused (never forced), with
        // what to do; it never "lands" with the first run's merge commit.
        if case .succeeded(let out) = second { Issue.record("landed with an earlier run's pull request: \(out) (first run's merge: \(oldMerge))") }
        guard case .failed(let why) = second else { return }
        #expect(why.contains("never force-pushes") && why.contains("amplify/p-1"), "\(why)")
    }

    /// Speculation takes the next batch from the queue without looking for the items' trailers on
    /// the base: after a kill -9 (with `push`, `prepare` leaves that check to the queue), an item
    /// that had landed is built and pushed a second time.
    @Test("kill -9 while a speculating batch runs, push, resume: every item on the remote once")
    func speculationAfterKillLandsTwice() async throws {
        // x-1 and x-2 are approved by hand (later); x-3 … x-6 approve themselves at once.
        let ids = (1...6).map { "x-\($0)" }
        let behave: [String: String] = ["x-1": "human", "x-2": "human"]
        let verify = #"["ls *.txt | tr '\\n' ' ' >> ../../../verifications; echo >> ../../../verifications; sleep 4"]"#
        let workflow = Orchestra.workflow(timeout: "120s", concurrency: 6, merge: "{batch: 2, batch-wait: 1s, speculate: true, verify-concurrency: 2, push: origin, verify: \(verify)}", refill: false)
        let o = try Orchestra(ids.map { ($0, behave[$0] ?? "approve", nil) }, workflow: workflow)
        try shell("git init -q --bare -b main remote.git && git remote add origin \"$PWD/remote.git\" && git push -q origin main && printf '/remote.git/\\n/verifications\\n' >> .git/info/exclude", in: o.box.url)
        func onRemote(_ id: String) -> Int {
            ((try? o.git("--git-dir=remote.git log main --format=%B")) ?? "").split(separator: "\n").filter { $0 == "Amplify-Item: \(id)" }.count
        }
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: o.environment)
        defer { if runner.isRunning { kill(runner.processIdentifier, SIGKILL) } }
        // x-3 … x-6 verifying (two batches at once): now x-1 and x-2 are approved, so they are the batch after.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, o.box.read("verifications").split(separator: "\n").count < 2 { try await Task.sleep(for: .milliseconds(50)) }
        for prefix in ["x-1-", "x-2-"] {
            let sid = try #require(await o.waitFor({ $0.hasPrefix(prefix) && $0.hasSuffix("/output.log") }, under: ".amplify/sessions", seconds: 120)?.split(separator: "/").first.map(String.init))
            for _ in 0..<100 where !o.box.read(".amplify/sessions/\(sid)/state.json").contains("\"completed\"") { try await Task.sleep(for: .milliseconds(100)) }
            let a = try await amplify(["approve", sid], in: o.box, environment: o.environment)
            #expect(a.status == 0, "\(a.stderr)")
        }
        // Killed while x-1, x-2 verify: x-3 … x-6 are on the remote, their merges not journaled as ended.
        while Date() < deadline, !(ids.dropFirst(2).allSatisfy { onRemote($0) == 1 } && o.box.read("verifications").contains("x-1.txt")) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let journal = try String(contentsOfFile: try #require(try o.box.journals().first), encoding: .utf8)
        let mergesEnded = journal.split(separator: "\n").filter { $0.contains(#""type":"instance-succeeded""#) && $0.contains(#""stage":"merge""#) }.count
        print("before the kill: verifications \(o.box.read("verifications")) merges ended in the journal: \(mergesEnded)")
        kill(runner.processIdentifier, SIGKILL)
        runner.waitUntilExit()
        let r = try await o.run()
        print(r.stdout)
        for id in ids {
            #expect(onRemote(id) == 1, "\(id) on the remote \(onRemote(id)) times")
            let local = try o.landed(id)
            #expect(local == 1, "\(id) on main \(local) times")
        }
    }

    /// With `push`, `prepare` no longer treats a branch already in the base as landed (SPEC §5: "the
    /// branch tip is an ancestor of the base: success, no new commit"), and the queue only looks
    /// for trailers: an empty merge commit is made and pushed.
    @Test("push, the branch already in the base (merged by a person): success, no new commit")
    func pushBranchAlreadyInBase() async throws {
        let workflow = Orchestra.workflow(timeout: "60s", concurrency: 1, merge: "{push: origin}", refill: false, cleanup: false)
        let o = try Orchestra([("m-1", "human", nil)], workflow: workflow)
        try shell("git init -q --bare -b main remote.git && git remote add origin \"$PWD/remote.git\" && git push -q origin main && printf '/remote.git/\\n' >> .git/info/exclude", in: o.box.url)
        let run = Task { try await o.run() }
        guard let sid = await o.waitFor({ $0.hasPrefix("m-1-") && $0.hasSuffix("/output.log") }, under: ".amplify/sessions", seconds: 120)?.split(separator: "/").first.map(String.init) else {
            Issue.record("no session: \(try await run.value)"); return
        }
        for _ in 0..<100 where !o.box.read(".amplify/sessions/\(sid)/state.json").contains("\"completed\"") { try await Task.sleep(for: .milliseconds(100)) }
        // A person lands the branch themselves (a fast-forward), and pushes.
        try shell("git merge -q --ff-only amplify/m-1 && git push -q origin main", in: o.box.url)
        let before = try o.git("rev-parse main")
        let a = try await amplify(["approve", sid], in: o.box, environment: o.environment)
        #expect(a.status == 0, "\(a.stderr)")
        let r = try await run.value
        #expect(r.status == 0, "\(r.stdout)")
        let log = try o.git("log --oneline -3 main")
        #expect(try o.git("rev-parse main") == before, "a new commit on main: \(log)")
        #expect(try o.git("--git-dir=remote.git rev-parse main") == before, "a new commit pushed")
    }

    /// `cancel` while an item waits in the merge queue (batch-wait): the machine's cancel skips
    /// merge instances, so the queue's "ended by the runner while in the merge queue" never
    /// happens for a cancel: the item is verified and lands after the cancel, and cancel waits.
    @Test("cancel while an item waits in the merge queue (batch-wait): nothing lands after the cancel")
    func cancelWhileQueued() async throws {
        let ids = ["c-1"]
        let o = try MergeQueueTests.orchestra(ids, merge: "{batch: 4, batch-wait: 15s, verify: \(MergeQueueTests.verify(failingWith: []))}")
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: o.environment)
        defer { if runner.isRunning { kill(runner.processIdentifier, SIGKILL) } }
        func queued() -> Bool { o.box.journalContains(#""kind":"queued""#) }
        await eventually(seconds: 120) { queued() }
        #expect(queued())
        let started = Date()
        let cancel = try await amplify(["cancel"], in: o.box, environment: o.environment)
        let took = Date().timeIntervalSince(started)
        print("cancel took \(took) s: \(cancel.stdout) \(cancel.stderr)")
        #expect(took < 10, "cancel waited \(took) s for the queue's batch-wait (15 s)")
        #expect(try o.landed("c-1") == 0, "c-1 landed after the run was cancelled")
    }
}
