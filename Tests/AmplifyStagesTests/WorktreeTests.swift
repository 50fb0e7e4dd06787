import AmplifyEngine
@testable import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// Item worktrees at the speed of the disk: git's entry made under the lock, the files checked
/// out outside it (sparse where asked), and removals that only rename under the lock.
@Suite("worktrees")
struct WorktreeTests {
    /// A repository with folders `app/`, `lib/` and a file at the top, on `main`.
    static func repository() throws -> (Sandbox, Git) {
        let box = try Sandbox("version: 1\nstages:\n  x: {run: 'true'}\n")
        try shell("""
            git checkout -q -b main && mkdir -p app lib/deep && echo a > app/a.txt && echo b > lib/deep/b.txt && echo top > top.txt &&
            git add -A && git -c user.name=T -c user.email=t@e commit -qm base
            """, in: box.url)
        return (box, Git(box.path, environment: ["PATH": "/usr/bin:/bin"]))
    }

    @Test("a worktree added without its files is finished: an interrupted checkout (its lock left behind) gets every file")
    func interruptedCheckout() async throws {
        let (box, git) = try Self.repository()
        let path = box.path + "/.worktrees/w-1"
        let (added, argv) = await git.addWorktree(path, branch: "amplify/w-1", newFrom: "main")
        #expect(added.succeeded, "\(added.failure(argv))")
        #expect(!Git.isCheckedOut(path) && !FileManager.default.fileExists(atPath: path + "/top.txt"), "git's entry only")
        // A checkout killed half way: its lock stays, the index was never written.
        let gitDir = try #require(Git.worktreeGitDirectory(path))
        _ = FileManager.default.createFile(atPath: gitDir + "/index.lock", contents: Data())
        try await git.finishCheckout(path) { _, _ in }
        #expect(Git.isCheckedOut(path))
        #expect(box.read(".worktrees/w-1/lib/deep/b.txt") == "b\n" && box.read(".worktrees/w-1/top.txt") == "top\n")
        #expect(try shell("git status --porcelain", in: URL(fileURLWithPath: path)).isEmpty, "a clean checkout of the branch")
        #expect(try shell("git branch --show-current", in: URL(fileURLWithPath: path)).trimmingCharacters(in: .whitespacesAndNewlines) == "amplify/w-1")
        // Complete: an agent may have worked there since; finishing again changes nothing.
        try "mine\n".write(toFile: path + "/top.txt", atomically: true, encoding: .utf8)
        try await git.finishCheckout(path) { _, _ in }
        #expect(box.read(".worktrees/w-1/top.txt") == "mine\n")
    }

    @Test("the repository's post-checkout hook runs once the files are there, as `git worktree add` runs it; its failure fails the checkout")
    func postCheckout() async throws {
        let (box, git) = try Self.repository()
        try MergeHookTests.hook("post-checkout", #"echo "$(pwd) $1 $2 $3 $(cat top.txt)" >> "$(git rev-parse --git-common-dir)/post-checkout"; test "$(basename "$(pwd)")" != w-2"#, in: box)
        let path = box.path + "/.worktrees/w-1"
        _ = await git.addWorktree(path, branch: "amplify/w-1", newFrom: "main")
        try await git.finishCheckout(path) { _, _ in }
        let head = try shell("git rev-parse main", in: box.url).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(box.read(".git/post-checkout") == "\(path) \(String(repeating: "0", count: 40)) \(head) 1 top\n", "\(box.read(".git/post-checkout"))")
        let failing = box.path + "/.worktrees/w-2"
        _ = await git.addWorktree(failing, branch: "amplify/w-2", newFrom: "main")
        await #expect(throws: StageError.self) { try await git.finishCheckout(failing) { _, _ in } }
    }

    @Test("settings.sparse: the worktree holds those directories and the files at the top, nothing else")
    func sparse() async throws {
        let (box, git) = try Self.repository()
        let path = box.path + "/.worktrees/w-1"
        _ = await git.addWorktree(path, branch: "amplify/w-1", newFrom: "main")
        try await git.setSparse(path, ["lib/deep"])
        try await git.finishCheckout(path) { _, _ in }
        #expect(box.read(".worktrees/w-1/lib/deep/b.txt") == "b\n" && box.read(".worktrees/w-1/top.txt") == "top\n")
        #expect(!FileManager.default.fileExists(atPath: path + "/app"), "app/ is not checked out")
        #expect(try shell("git status --porcelain", in: URL(fileURLWithPath: path)).isEmpty)
        // The user's own checkout is not made sparse.
        #expect(FileManager.default.fileExists(atPath: box.path + "/app/a.txt"))
        #expect(try shell("git sparse-checkout list 2>&1 || true", in: box.url).contains("lib/deep") == false)
    }

    @Test("removal: the worktree and git's entry go; what a killed runner set aside is deleted, what a live one set aside is left to it")
    func removal() async throws {
        let (box, git) = try Self.repository()
        let path = box.path + "/.worktrees/w-1"
        _ = await git.addWorktree(path, branch: "amplify/w-1", newFrom: "main")
        try await git.finishCheckout(path) { _, _ in }
        // Set aside by a runner that died before deleting it, and by one still at work.
        var dead: Int32 = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        for pid in [dead, getppid()] {
            try FileManager.default.createDirectory(atPath: box.path + "/.worktrees/.w-0.removing-\(pid)/src", withIntermediateDirectories: true)
        }
        await git.removeWorktree(path)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try shell("git worktree list", in: box.url).split(separator: "\n").count == 1, "git's entry is pruned")
        let left = try FileManager.default.contentsOfDirectory(atPath: box.path + "/.worktrees").sorted()
        #expect(left == [".w-0.removing-\(getppid())"], "\(left)")
        // The branch is free again: a new worktree can check it out.
        let (again, argv) = await git.addWorktree(box.path + "/.worktrees/w-2", branch: "amplify/w-1")
        #expect(again.succeeded, "\(again.failure(argv))")
    }
}

@Suite("worktrees and merges, end to end", .serialized)
struct SparseRunTests {
    @Test("a git older than 2.38 (no merge-tree --write-tree) is said before anything is claimed, exit 2")
    func oldGit() async throws {
        let o = try Orchestra([("g-1", "approve", nil)])
        // git as Ubuntu 22.04 ships it, as far as `git version` tells.
        try "#!/bin/sh\nif [ \"$1\" = version ]; then echo 'git version 2.34.1'; exit 0; fi\nexec /usr/bin/git \"$@\"\n"
            .write(toFile: o.bin.path + "/git", atomically: true, encoding: .utf8)
        chmod(o.bin.path + "/git", 0o755)
        let r = try await o.run()
        #expect(r.status == 2, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("needs git 2.38 or later") && r.stderr.contains("this git is 2.34; nothing was claimed"), "\(r.stderr)")
        #expect(!o.bdCalls.contains { $0.hasPrefix("update") }, "nothing claimed: \(o.bdCalls)")
        #expect(o.agentStarts("g-1") == 0)
    }

    @Test("settings.sparse naming a directory the base does not have is said before anything is claimed, exit 2")
    func sparseMissing() async throws {
        let o = try Orchestra([("g-1", "approve", nil)], workflow: Orchestra.workflow().replacing("settings: {base: main,", with: "settings: {sparse: [lib, nope], base: main,"))
        _ = try shell("mkdir lib && echo b > lib/b.txt && git add lib && git -c user.name=T -c user.email=t@e commit -qm lib", in: o.box.url)
        let r = try await o.run()
        #expect(r.status == 2, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("settings.sparse: 'nope' is not a directory on main; nothing was claimed"), "\(r.stderr)")
        #expect(!o.bdCalls.contains { $0.hasPrefix("update") })
    }

    @Test("a run with settings.sparse: agents work in sparse worktrees, and the merge lands the whole tree")
    func sparseRun() async throws {
        let o = try Orchestra([("s-1", "approve", nil), ("s-2", "approve", nil)],
                              workflow: Orchestra.workflow()
                                .replacing("settings: {base: main,", with: "settings: {sparse: [lib], base: main,")
                                .replacing("  cleanup: {uses: cleanup, if: \"${{ always() }}\"}", with: ""))
        // A tracked hooks folder at the top, which cone mode would leave out.
        _ = try shell("""
            mkdir -p app lib .githooks && echo a > app/a.txt && echo b > lib/b.txt && printf '#!/bin/sh\\nexit 0\\n' > .githooks/commit-msg && chmod +x .githooks/commit-msg &&
            git add app lib .githooks && git -c user.name=T -c user.email=t@e commit -qm tree && git config core.hooksPath .githooks
            """, in: o.box.url)
        let r = try await o.run()
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        for id in ["s-1", "s-2"] {
            #expect(try o.landed(id) == 1)
            let worktree = try #require(try FileManager.default.contentsOfDirectory(atPath: o.box.path + "/.worktrees").first { $0.hasPrefix(id + "-") })
            #expect(FileManager.default.fileExists(atPath: o.box.path + "/.worktrees/\(worktree)/lib/b.txt"))
            #expect(!FileManager.default.fileExists(atPath: o.box.path + "/.worktrees/\(worktree)/app"), "app/ is not in \(id)'s worktree")
            #expect(FileManager.default.fileExists(atPath: o.box.path + "/.worktrees/\(worktree)/.githooks/commit-msg"), "the hooks folder is")
            #expect(try o.git("show main:\(id).txt").isEmpty == false, "\(id)'s work landed")
        }
        #expect(try o.git("show main:app/a.txt") == "a", "the rest of the tree is untouched on the base")
        #expect(try o.git("status --porcelain --untracked-files=no").isEmpty)
    }
}
