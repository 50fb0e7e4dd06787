import AmplifyEngine
import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// A repository on `main` whose `origin` is a local bare repository, GitHub's CLI played over it
/// by `Fixtures/fake-gh` (as `bin/gh`), and an item branch `amplify/p-1` with one commit.
final class PullRequestRepo: @unchecked Sendable {  // read-only after init
    let box: Sandbox
    var bin: String { box.path + "/bin" }
    var origin: String { box.path + "/origin.git" }
    var ghLog: String { box.path + "/.gh/calls.log" }
    var ghState: String { box.path + "/.gh/state.json" }
    static let fakeGH = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fake-gh")

    init() throws {
        box = try Sandbox("version: 1\nstages:\n  x: {run: 'true'}\n")
        try shell("""
        git checkout -q -b main && echo base > base.txt && git add base.txt wf.yaml && git -c user.name=T -c user.email=t@e commit -qm base &&
        git init -q --bare origin.git && git remote add origin "$(pwd)/origin.git" && git push -q origin main &&
        git checkout -q -b amplify/p-1 && echo work > work.txt && git add work.txt && git -c user.name=T -c user.email=t@e commit -qm 'p-1: work' &&
        git checkout -q main && mkdir -p bin .gh && printf '/origin.git/\\n/bin/\\n/.gh/\\n' >> .git/info/exclude
        """, in: box.url)
        try FileManager.default.copyItem(at: PullRequestRepo.fakeGH, to: URL(fileURLWithPath: bin + "/gh"))
    }

    var environment: [String: String] {
        ["PATH": bin + ":/usr/bin:/bin", "FAKE_GH_STATE": ghState, "FAKE_GH_LOG": ghLog,
         "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@e"]
    }

    func git(_ c: String) throws -> String { try shell("git " + c, in: box.url).trimmingCharacters(in: .whitespacesAndNewlines) }
    /// git in the bare repository: what GitHub holds.
    func remote(_ c: String) throws -> String { try git("--git-dir=origin.git " + c) }
    func remoteHas(_ branch: String) throws -> Bool { !(try remote("rev-parse --verify --quiet refs/heads/\(branch)")).isEmpty }

    /// The calls gh got, each its arguments.
    var ghCalls: [[String]] {
        box.read(".gh/calls.log").split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String] }
    }
    func calls(_ subcommand: String...) -> [[String]] { ghCalls.filter { Array($0.prefix(subcommand.count)) == subcommand } }
    /// The pull requests fake-gh keeps, as GitHub would hold them.
    var pullRequests: [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: ghState),
              let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [] }
        return o["prs"] as? [[String: Any]] ?? []
    }

    /// A person on GitHub's web pages: `merge N`, `close N`, `checks N pass`.
    func github(_ args: String..., environment extra: [String: String] = [:]) async throws {
        let r = try await runProcess(URL(fileURLWithPath: bin + "/gh"), ["admin"] + args, in: box.url, environment: environment.merging(extra) { $1 })
        #expect(r.status == 0, "gh admin \(args): \(r.stderr)")
    }

    /// Runs the merge stage of item p-1 once, as the runner would; its notes go to `notes`.
    func merge(_ with: String, environment extra: [String: String] = [:], notes: Notes = Notes(), run: String = "20261124T120000000Z-abcd") async throws -> StageResult {
        let workflow = try #require(WorkflowChecker.check("""
        version: 1
        stages:
          ready: {uses: query-ready, with: {source: file, path: issues.jsonl}}
          dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {prompt: p}}
          approved: {uses: wait-approved}
          merge: {uses: merge, with: \(with)}
        """, file: "wf.yaml").workflow)
        let runDir = box.path + "/.amplify/runs/" + run
        let sessionDir = box.path + "/.amplify/sessions/p-1-20261124T120000Z"
        for d in [box.path + "/.amplify", box.path + "/.amplify/runs", runDir, runDir + "/logs", runDir + "/outputs", box.path + "/.amplify/sessions", sessionDir] { mkdir(d, 0o700) }
        try "Added the widget, with tests.\n".write(toFile: sessionDir + "/summary.md", atomically: true, encoding: .utf8)
        let item = OrderedObject([("id", .string("p-1")), ("title", .string("Add the widget")), ("description", .string("The widget goes on the front page."))])
        let approved = OrderedObject([("outputs", .object(OrderedObject([("decision", .string("approved")), ("summary", .string("the decision's summary"))])))])
        var job = StageJob(key: InstanceKey("merge", item: 0), attempt: 1, stage: try #require(workflow.stage("merge")),
                           context: ExpressionContext(roots: ["item": .object(item), "stages": .object(OrderedObject([("approved", .object(approved))]))]),
                           runId: run, runDirectory: runDir, repository: box.path, itemName: "p-1",
                           environment: environment.merging(extra) { $1 })
        job.settings.poll = WorkflowDuration(milliseconds: 100)
        job.session = OrderedObject([("branch", .string("amplify/p-1")), ("worktree", .string(box.path + "/.worktrees/none")),
                                     ("dir", .string(sessionDir)), ("base-commit", .string(try git("merge-base main amplify/p-1")))])
        job.notes = notes.all
        job.note = { kind, fields in notes.add(kind, fields) }
        return await StageExecutors(grace: .seconds(1)).executor(for: .merge).execute(job) { _, _ in }
    }
}

/// The notes an instance journals, kept across its attempts as the journal keeps them.
final class Notes: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var items: [(kind: String, fields: OrderedObject)] = []
    func add(_ kind: String, _ fields: OrderedObject) { lock.withLock { items.append((kind, fields)) } }
    var all: [(kind: String, fields: OrderedObject)] { lock.withLock { items } }
    func of(_ kind: String) -> [OrderedObject] { all.filter { $0.kind == kind }.map(\.fields) }
}

/// merge with `via: pull-request`, driven directly, against fake-gh and a real `git push` to a bare repository.
@Suite("merge via: pull-request")
struct PullRequestTests {
    static let url = "https://github.com/example/project/pull/1"

    @Test("wait: merged with auto-merge: the branch pushed, one pull request opened, auto-merge asked with the strategy, GitHub's merge commit out",
          arguments: [("no-ff", "--merge"), ("squash", "--squash"), ("rebase", "--rebase")])
    func autoMerged(strategy: String, flag: String) async throws {
        let repo = try PullRequestRepo()
        let notes = Notes()
        // Required checks pending at first: GitHub merges it at a later look, as auto-merge does.
        let result = try await repo.merge("{via: pull-request, auto-merge: true, strategy: \(strategy)}", environment: ["FAKE_GH_PENDING": "2"], notes: notes)
        guard case .succeeded(let out) = result else { Issue.record("\(result)"); return }
        let merged = try repo.remote("rev-parse main")
        #expect(out == OrderedObject([("pr", .int(1)), ("pr-url", .string(PullRequestTests.url)), ("commit", .string(merged))]))
        #expect(try repo.remote("rev-parse amplify/p-1") == (try repo.git("rev-parse amplify/p-1")), "the branch as it is locally")
        #expect(try repo.remote("show main:work.txt") == "work", "the work is on GitHub's main")
        let creates = repo.calls("pr", "create")
        #expect(creates.count == 1)
        let create = try #require(creates.first)
        func value(_ flag: String) -> String? { create.firstIndex(of: flag).map { create[$0 + 1] } }
        #expect(value("--base") == "main" && value("--head") == "amplify/p-1" && value("--title") == "p-1: Add the widget", "\(create)")
        let body = try #require(repo.pullRequests.first?["body"] as? String)
        #expect(body.contains("Added the widget, with tests.") && body.contains("The widget goes on the front page."), "\(body)")
        #expect(!body.contains("the decision's summary"), "summary.md first")
        #expect(repo.calls("pr", "merge") == [["pr", "merge", "1", "--auto", flag]])
        #expect(repo.calls("pr", "view").count >= 2, "waited for it")
        #expect(repo.calls("pr", "view").allSatisfy { $0 == ["pr", "view", "1", "--json", "state,mergedAt,mergeCommit"] })
        #expect(notes.of("pull-request").map { [$0["pr"], $0["url"]] } == [[.int(1), .string(PullRequestTests.url)]])
        #expect(notes.of("auto-merge").count == 1)
        // The description was written under the state directory, not in the repository, and is gone.
        let untracked = try repo.git("status --porcelain --untracked-files=all").split(separator: "\n")
        #expect(untracked.allSatisfy { $0.hasPrefix("?? .amplify/") }, "\(untracked)")
        let kept = (try? FileManager.default.contentsOfDirectory(atPath: repo.box.path + "/.amplify/pull-requests")) ?? []
        #expect(kept.isEmpty)
    }

    @Test("wait: opened ends once the pull request exists: pr and pr-url, no merge asked, nothing waited for")
    func waitOpened() async throws {
        let repo = try PullRequestRepo()
        let result = try await repo.merge("{via: pull-request, wait: opened}")
        #expect(result == .succeeded(OrderedObject([("pr", .int(1)), ("pr-url", .string(PullRequestTests.url))])))
        #expect(repo.calls("pr", "create").count == 1)
        #expect(repo.calls("pr", "merge").isEmpty && repo.calls("pr", "view").isEmpty)
        #expect(repo.pullRequests.first?["state"] as? String == "OPEN")
        #expect(try repo.remoteHas("amplify/p-1"))
    }

    @Test("a pull request already there for the branch (a retry, a resumed run) is found, never opened twice; new commits are pushed to it")
    func foundNotOpenedTwice() async throws {
        let repo = try PullRequestRepo()
        let notes = Notes()
        _ = try await repo.merge("{via: pull-request, wait: opened}", notes: notes)
        // The branch gains a commit (leftovers committed by the next attempt).
        try shell("git checkout -q amplify/p-1 && echo more > more.txt && git add more.txt && git -c user.name=T -c user.email=t@e commit -qm more && git checkout -q main", in: repo.box.url)
        let again = try await repo.merge("{via: pull-request, wait: opened}", notes: notes)
        #expect(again == .succeeded(OrderedObject([("pr", .int(1)), ("pr-url", .string(PullRequestTests.url))])))
        #expect(try repo.remote("rev-parse amplify/p-1") == (try repo.git("rev-parse amplify/p-1")), "pushed again, a fast-forward")
        // Merged on GitHub meanwhile: the next attempt finds it merged and takes its merge commit.
        try await repo.github("merge", "1", "--squash")
        let third = try await repo.merge("{via: pull-request}", notes: notes)
        #expect(third == .succeeded(OrderedObject([("pr", .int(1)), ("pr-url", .string(PullRequestTests.url)), ("commit", .string(try repo.remote("rev-parse main")))])))
        #expect(try repo.remote("show main:more.txt") == "more")
        #expect(repo.calls("pr", "create").count == 1, "one pull request, ever")
        #expect(repo.calls("pr", "list").count == 3)
        #expect(notes.of("pull-request").count == 1, "journaled once")
    }

    @Test("a pull request closed without being merged fails the item as pr-closed")
    func closedUnmerged() async throws {
        let repo = try PullRequestRepo()
        let merging = Task { try await repo.merge("{via: pull-request, auto-merge: true}", environment: ["FAKE_GH_PENDING": "hold"]) }
        #expect(await eventually(seconds: 120) { repo.calls("pr", "view").count >= 2 }, "waiting for the merge")
        try await repo.github("close", "1")
        let result = try await merging.value
        #expect(result == .failedAs(.prClosed, "pull request #1 was closed without being merged: \(PullRequestTests.url)"))
        #expect(FailureKind.prClosed.rawValue == "pr-closed")
    }

    @Test("gh not logged in: the item fails naming `gh auth login`, before anything is pushed")
    func notLoggedIn() async throws {
        let repo = try PullRequestRepo()
        let result = try await repo.merge("{via: pull-request}", environment: ["FAKE_GH_LOGGED_OUT": "1"])
        guard case .failed(let why) = result else { Issue.record("\(result)"); return }
        #expect(why.contains("gh auth login") && why.contains("You are not logged into any GitHub hosts") && why.contains("nothing was pushed"), "\(why)")
        #expect(try !repo.remoteHas("amplify/p-1"), "nothing pushed")
        #expect(repo.ghCalls == [["auth", "status"]])
    }

    @Test("gh missing from PATH: the item fails saying GitHub's CLI is needed and naming `gh auth login`; nothing pushed")
    func ghMissing() async throws {
        let repo = try PullRequestRepo()
        // A PATH with git and nothing else (on this machine /bin is /usr/bin, where the real gh is).
        let tools = repo.box.path + "/.gh/tools"
        try FileManager.default.createDirectory(atPath: tools, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: tools + "/git", withDestinationPath: "/usr/bin/git")
        let result = try await repo.merge("{via: pull-request}", environment: ["PATH": tools])
        guard case .failed(let why) = result else { Issue.record("\(result)"); return }
        #expect(why.contains("GitHub's CLI") && why.contains("apt install gh") && why.contains("gh auth login"), "\(why)")
        #expect(try !repo.remoteHas("amplify/p-1"))
    }

    @Test("gh failing while the merge is waited for (GitHub or the network down) is waited out, said once")
    func transientFailures() async throws {
        let repo = try PullRequestRepo()
        let notes = Notes()
        let result = try await repo.merge("{via: pull-request, auto-merge: true, strategy: squash}", environment: ["FAKE_GH_FAIL_VIEWS": "3"], notes: notes)
        guard case .succeeded(let out) = result else { Issue.record("\(result)"); return }
        #expect(out["commit"] == .string(try repo.remote("rev-parse main")))
        #expect(repo.calls("pr", "view").count == 4)
        let warnings = notes.of("warning")
        #expect(warnings.count == 1)
        #expect(warnings.first?["message"]?.renderedText.contains("error connecting to api.github.com") == true, "\(warnings)")
    }

    @Test("a pull request gh says does not exist (deleted from under the runner) fails the item")
    func vanished() async throws {
        let repo = try PullRequestRepo()
        let merging = Task { try await repo.merge("{via: pull-request}", environment: ["FAKE_GH_PENDING": "hold"]) }
        #expect(await eventually(seconds: 120) { !repo.calls("pr", "view").isEmpty })
        // Put in place under fake-gh's own lock: a `gh pr view` in flight would write its read of the old state back.
        try #"{"next": 2, "prs": [], "views": 0}"#.write(toFile: repo.ghState + ".new", atomically: true, encoding: .utf8)
        try shell("flock '\(repo.ghState).lock' mv '\(repo.ghState).new' '\(repo.ghState)'", in: repo.box.url)
        let result = try await merging.value
        guard case .failed(let why) = result else { Issue.record("\(result)"); return }
        #expect(why.contains("pull request #1 does not exist") && why.contains("Could not resolve to a PullRequest"), "\(why)")
    }

    @Test("the remote's branch has commits the local one lacks: refused, never forced, no pull request opened")
    func neverForced() async throws {
        let repo = try PullRequestRepo()
        // Someone pushed another commit as amplify/p-1.
        try shell("""
        git checkout -q -b theirs main && echo theirs > theirs.txt && git add theirs.txt && git -c user.name=T -c user.email=t@e commit -qm theirs &&
        git push -q origin theirs:amplify/p-1 && git checkout -q main
        """, in: repo.box.url)
        let theirs = try repo.remote("rev-parse amplify/p-1")
        let result = try await repo.merge("{via: pull-request}")
        guard case .failed(let why) = result else { Issue.record("\(result)"); return }
        #expect(why.contains("never force-pushes") && why.contains("origin"), "\(why)")
        #expect(try repo.remote("rev-parse amplify/p-1") == theirs, "their commit is still there")
        #expect(repo.calls("pr", "create").isEmpty)
    }

    @Test("what gh prints is untrusted: not JSON, or JSON of another shape, is a clear error, never a crash",
          arguments: ["{not json", #"{"number": 1}"#, #"[{"number": "one", "url": 3, "state": "OPEN"}]"#, #"[{"number": 1, "url": "u", "state": "DRAFT"}]"#])
    func malformedOutput(printed: String) async throws {
        let repo = try PullRequestRepo()
        let script = "#!/bin/sh\n[ \"$1 $2\" = 'auth status' ] && exit 0\ncat <<'EOF'\n\(printed)\nEOF\n"
        try script.write(toFile: repo.bin + "/gh", atomically: true, encoding: .utf8)
        chmod(repo.bin + "/gh", 0o755)
        let result = try await repo.merge("{via: pull-request}")
        guard case .failed(let why) = result else { Issue.record("\(result)"); return }
        #expect(why.contains("gh pr list") && why.contains("printed"), "\(why)")
    }

    @Test("cleanup deletes the branch of a pull request GitHub merged (the local base does not have it), and keeps one only opened")
    func cleanupAfterPullRequest() async throws {
        let repo = try PullRequestRepo()
        let workflow = try #require(WorkflowChecker.check("""
        version: 1
        stages:
          ready: {uses: query-ready, with: {source: file, path: issues.jsonl}}
          dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {prompt: p}}
          merge: {uses: merge, with: {via: pull-request}}
          cleanup: {uses: cleanup}
        """, file: "wf.yaml").workflow)
        func cleanup(_ mergeOutputs: OrderedObject) async throws -> StageResult {
            let run = "20261124T120000000Z-abcd"
            let runDir = repo.box.path + "/.amplify/runs/" + run
            for d in [repo.box.path + "/.amplify", repo.box.path + "/.amplify/runs", runDir] { mkdir(d, 0o700) }
            let item = OrderedObject([("id", .string("p-1")), ("title", .string("Add the widget"))])
            let stages = OrderedObject([("merge", .object(OrderedObject([("outputs", .object(mergeOutputs))])))])
            var job = StageJob(key: InstanceKey("cleanup", item: 0), attempt: 1, stage: try #require(workflow.stage("cleanup")),
                               context: ExpressionContext(roots: ["item": .object(item), "stages": .object(stages)]),
                               runId: run, runDirectory: runDir, repository: repo.box.path, itemName: "p-1", environment: repo.environment)
            job.session = OrderedObject([("branch", .string("amplify/p-1")), ("worktree", .string(repo.box.path + "/.worktrees/none")),
                                         ("base-commit", .string(try repo.git("merge-base main amplify/p-1")))])
            return await StageExecutors(grace: .seconds(1)).executor(for: .cleanup).execute(job) { _, _ in }
        }
        let opened = try await cleanup(OrderedObject([("pr", .int(1)), ("pr-url", .string(PullRequestTests.url))]))
        guard case .succeeded(let kept) = opened else { Issue.record("\(opened)"); return }
        #expect(kept["branch-kept"] == .string("amplify/p-1"), "only opened: not merged yet")
        let merged = try await cleanup(OrderedObject([("pr", .int(1)), ("pr-url", .string(PullRequestTests.url)), ("commit", .string(String(repeating: "a", count: 40)))]))
        guard case .succeeded(let deleted) = merged else { Issue.record("\(merged)"); return }
        #expect(deleted["branch-deleted"] == .string("amplify/p-1"), "\(deleted)")
        #expect(try repo.git("branch --list amplify/p-1").isEmpty)
    }
}

/// A whole run through the CLI binary, its merge landing through a pull request.
@Suite("Pull requests, a whole run", .serialized)
struct PullRequestRunTests {
    static let workflow = Orchestra.workflow(timeout: "60s", concurrency: 2, merge: "{via: pull-request, auto-merge: true, strategy: squash}", refill: false)

    /// One item `g-1` landing through a pull request: a bare `origin`, fake-gh as `gh` keeping its
    /// state and call log under `.gh/`, checks held pending until the test says they passed.
    static func orchestra() throws -> (Orchestra, environment: [String: String]) {
        let o = try Orchestra([("g-1", "approve", nil)], workflow: PullRequestRunTests.workflow)
        try shell("""
        git init -q --bare origin.git && git remote add origin "$(pwd)/origin.git" && git push -q origin main &&
        mkdir -p .gh && printf '/origin.git/\\n/.gh/\\n' >> .git/info/exclude
        """, in: o.box.url)
        try FileManager.default.copyItem(at: PullRequestRepo.fakeGH, to: o.bin.appendingPathComponent("gh"))
        var env = o.environment
        env["FAKE_GH_STATE"] = o.box.path + "/.gh/state.json"
        env["FAKE_GH_LOG"] = o.box.path + "/.gh/calls.log"
        env["FAKE_GH_PENDING"] = "hold"
        return (o, env)
    }

    @Test("kill -9 while waiting for GitHub to merge, then resume: still one pull request, the item ends merged, closed, its branch deleted")
    func killedWhileWaiting() async throws {
        // The pull request's checks stay pending until a person (the test) says they passed.
        let (o, env) = try PullRequestRunTests.orchestra()
        func calls(_ prefix: String) -> Int {
            o.box.read(".gh/calls.log").split(separator: "\n").filter { $0.hasPrefix(prefix) }.count
        }

        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: env)
        await eventually(seconds: 120) { calls(#"["pr", "view""#) >= 2 || !runner.isRunning }
        #expect(calls(#"["pr", "view""#) >= 2, "the runner waits for GitHub: \(o.box.read(".gh/calls.log"))")
        kill(runner.processIdentifier, SIGKILL)
        while runner.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try o.remoteHas("amplify/g-1"))

        // GitHub's checks pass while no runner is there; auto-merge merges it at the next look.
        let checks = try await runProcess(o.bin.appendingPathComponent("gh"), ["admin", "checks", "1", "pass"], in: o.box.url, environment: env)
        #expect(checks.status == 0, "\(checks.stderr)")
        let r = try await amplify(["wf.yaml"], in: o.box, environment: env)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("resuming run"))
        #expect(calls(#"["pr", "create""#) == 1, "one pull request: \(o.box.read(".gh/calls.log"))")
        #expect(try o.git("--git-dir=origin.git show main:g-1.txt") == "g-1", "landed on GitHub's main")
        // The local main followed GitHub's (a fast-forward), so later items start from the work that landed.
        #expect(try o.git("rev-parse main") == o.git("--git-dir=origin.git rev-parse main"), "the local main follows the remote's once GitHub merged")
        // Resumed, the runner found the pull request and did not ask for auto-merge again (journaled).
        #expect(calls(#"["pr", "list""#) == 2 && calls(#"["pr", "merge""#) == 1, "\(o.box.read(".gh/calls.log"))")
        #expect(o.status(of: "g-1") == "closed")
        #expect(o.bdCalls.filter { $0.hasPrefix("close g-1 ") }.count == 1)
        #expect(try o.git("branch --list amplify/g-1").isEmpty, "cleanup deleted the merged branch")
        #expect(try o.git("worktree list").split(separator: "\n").count == 1)
        let journal = try o.box.journals().map { try String(contentsOfFile: $0, encoding: .utf8) }.joined()
        #expect(journal.contains(#""pr-url":"https://github.com/example/project/pull/1""#), "the outputs are journaled")
        #expect(journal.contains(#""type":"note""#) && journal.contains("pull-request"))
    }
}

extension Orchestra {
    func remoteHas(_ branch: String) throws -> Bool { !(try git("--git-dir=origin.git rev-parse --verify --quiet refs/heads/\(branch)")).isEmpty }
}
