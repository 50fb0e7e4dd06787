import AmplifyEngine
import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// merge, driven directly: a repository with `main` and an item branch `amplify/m-1`.
@Suite("merge")
struct MergeTests {
    final class Repo: @unchecked Sendable {  // read-only after init
        let box: Sandbox
        init(branchChange: String = "echo work > work.txt") throws {
            box = try Sandbox("version: 1\nstages:\n  x: {run: 'true'}\n")
            try shell("""
            git checkout -q -b main && echo base > base.txt && git add base.txt wf.yaml && git commit -qm base &&
            git checkout -q -b amplify/m-1 && \(branchChange) && git add -A && git commit -qm 'm-1: work' && git checkout -q main
            """, in: box.url)
        }

        func git(_ c: String) throws -> String { try shell("git " + c, in: box.url).trimmingCharacters(in: .whitespacesAndNewlines) }

        func merge(_ with: String = "{}", run: String = "20261124T120000000Z-abcd", worktree: String = ".worktrees/none", item: String = "m-1") async throws -> StageResult {
            let workflow = try #require(WorkflowChecker.check("""
            version: 1
            stages:
              ready: {uses: query-ready, with: {source: file, path: issues.jsonl}}
              dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {prompt: p}}
              merge: {uses: merge, with: \(with)}
            """, file: "wf.yaml").workflow)
            let runDir = box.path + "/.amplify/runs/" + run
            for d in [box.path + "/.amplify", box.path + "/.amplify/runs", runDir, runDir + "/logs", runDir + "/outputs"] { mkdir(d, 0o700) }
            var job = StageJob(key: InstanceKey("merge", item: 0), attempt: 1, stage: try #require(workflow.stage("merge")),
                               context: ExpressionContext(roots: ["item": .object(OrderedObject([("id", .string(item)), ("title", .string("Work"))]))]),
                               runId: run, runDirectory: runDir, repository: box.path, itemName: item,
                               environment: ["PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@e"])
            job.session = OrderedObject([("branch", .string("amplify/" + item)), ("worktree", .string(box.path + "/" + worktree)),
                                         ("base-commit", .string(try git("merge-base main amplify/" + item)))])
            return await StageExecutors(grace: .seconds(1)).executor(for: .merge).execute(job) { _, _ in }
        }

        func trailers() throws -> Int { try git("log main --format=%B").split(separator: "\n").filter { $0 == "Amplify-Item: m-1" }.count }
    }

    /// The branch's work was cherry-picked onto the base already: a rebase drops every commit and
    /// leaves the base's own tip; nothing lands, and the base's history is never rewritten.
    @Test("rebase of a branch whose every commit is in the base already: nothing lands, the base is not rewritten")
    func rebaseOfWorkAlreadyInTheBase() async throws {
        let repo = try Repo()
        try shell("git -c user.name=T -c user.email=t@e cherry-pick amplify/m-1 > /dev/null", in: repo.box.url)
        #expect(try repo.git("show main:work.txt") == "work", "the work is on the base already")
        let before = try repo.git("rev-parse main")
        let result = try await repo.merge("{strategy: rebase}")
        guard case .succeeded(let out) = result else { Issue.record("\(result)"); return }
        #expect(out["landed-before"] == .bool(true))
        #expect(try repo.git("rev-parse main") == before, "the base's tip is the same commit")
    }

    @Test("each strategy lands one commit with trailers; merged again (a resumed runner) = already landed, no second commit", arguments: ["no-ff", "squash", "rebase"])
    func landsOnce(strategy: String) async throws {
        let repo = try Repo()
        // Debris of a killed runner in its own worktree is thrown away.
        try FileManager.default.createDirectory(atPath: repo.box.path + "/.amplify/merging/m-1-20261124T120000Z/junk", withIntermediateDirectories: true)
        let first = try await repo.merge("{strategy: \(strategy)}")
        guard case .succeeded(let out) = first else { Issue.record("\(first)"); return }
        #expect(out["commit"] == .string(try repo.git("rev-parse main")))
        #expect(try repo.git("show main:work.txt") == "work")
        #expect(try repo.trailers() == 1)
        #expect(try repo.git("log -1 --format=%B main").contains("Amplify-Run: 20261124T120000000Z-abcd"))
        if strategy == "no-ff" { #expect(try repo.git("log -1 --format=%p main").split(separator: " ").count == 2) }
        let again = try await repo.merge("{strategy: \(strategy)}")
        guard case .succeeded(let out2) = again else { Issue.record("\(again)"); return }
        #expect(out2["landed-before"] == .bool(true))
        #expect(try repo.trailers() == 1)
        #expect(try repo.git("status --porcelain").isEmpty)
        #expect(try repo.git("worktree list").split(separator: "\n").count == 1, "the runner's merge worktree is gone")
    }

    @Test("a failing verify leaves the base exactly as it was and says why")
    func verifyFails() async throws {
        let repo = try Repo()
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge(#"{verify: ["test -f base.txt", "echo tests failed >&2; exit 1"]}"#)
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("verify failed") && why.contains("tests failed"), "\(why)")
        #expect(try repo.git("rev-parse main") == before)
        // verify ran in the runner's one kept checkout, detached: no branch of anyone's is held.
        let worktrees = try repo.git("worktree list --porcelain")
        #expect(worktrees.components(separatedBy: "\nworktree ").count == 2 && worktrees.contains(".amplify/merging/checkout") && worktrees.contains("detached"), "\(worktrees)")
    }

    @Test("the base checked out with local changes git would overwrite: the item fails naming them, nothing changes")
    func dirtyCheckout() async throws {
        let repo = try Repo(branchChange: "echo theirs > base.txt")
        try "mine\n".write(toFile: repo.box.path + "/base.txt", atomically: true, encoding: .utf8)
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge()
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("base.txt"), "\(why)")
        #expect(try repo.git("rev-parse main") == before)
        #expect(repo.box.read("base.txt") == "mine\n", "the user's change is untouched")
    }

    @Test("the base checked out nowhere: it moves by update-ref")
    func notCheckedOut() async throws {
        let repo = try Repo()
        _ = try repo.git("checkout -q --detach")
        let r = try await repo.merge()
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        #expect(try repo.trailers() == 1)
        #expect(try repo.git("reflog -1 --format=%gs main").contains("amplify-run: merge m-1"))
    }

    @Test("a branch with no commits beyond the base fails, or is skipped with `empty: skip`")
    func emptyBranch() async throws {
        let repo = try Repo(branchChange: "true")
        let r = try await repo.merge()
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("no commits beyond main"))
        let skipped = try await repo.merge("{empty: skip}")
        #expect(skipped == .succeeded(OrderedObject([("commit", .null), ("empty", .bool(true))])))
    }
}
