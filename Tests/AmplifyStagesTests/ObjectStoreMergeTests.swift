import AmplifyEngine
import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// merge builds its commit in the object store (`git merge-tree`, `git commit-tree`) and checks
/// out files only where something needs them: a hook that reads files, or `verify` — then in
/// one checkout the runner keeps and reuses.
@Suite("merge without a checkout")
struct ObjectStoreMergeTests {
    typealias Repo = MergeTests.Repo

    @Test("no verify, no hook that needs files: no worktree is made, and the commit is the one `git merge --no-ff` makes")
    func noCheckout() async throws {
        let repo = try Repo()
        _ = try repo.git("commit -q --allow-empty -m 'the base moves on'")
        let old = try repo.git("rev-parse main")
        let tip = try repo.git("rev-parse amplify/m-1")
        // git runs post-checkout whenever it checks files out (a worktree added, a checkout).
        try MergeHookTests.hook("post-checkout", #"pwd >> "$(git rev-parse --git-common-dir)/checkouts""#, in: repo.box)
        let r = try await repo.merge()
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        #expect(repo.box.read(".git/checkouts").isEmpty, "nothing was checked out: \(repo.box.read(".git/checkouts"))")
        #expect(try repo.git("rev-parse main^1") == old && repo.git("rev-parse main^2") == tip, "a merge commit of the base and the branch")
        #expect(try repo.git("worktree list").split(separator: "\n").count == 1, "no worktree was added")
        #expect(!FileManager.default.fileExists(atPath: repo.box.path + "/.amplify/merging/checkout"))
        // The same merge made by git itself, in a worktree of its own.
        _ = try repo.git("worktree add -q --detach \(repo.box.path)/by-hand \(old)")
        _ = try shell("git merge -q --no-ff -m x \(tip)", in: URL(fileURLWithPath: repo.box.path + "/by-hand"))
        #expect(try repo.git("rev-parse main^{tree}") == shell("git rev-parse HEAD^{tree}", in: URL(fileURLWithPath: repo.box.path + "/by-hand")).trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try repo.git("status --porcelain --untracked-files=no").isEmpty, "the user's checkout followed the base")
        #expect(try repo.git("log -1 --format=%s main") == "Merge m-1: Work")
    }

    @Test("rebase replays each commit in order, keeping its author; one whose change the base has is dropped; the tip alone carries the trailers")
    func rebaseReplays() async throws {
        let repo = try Repo(branchChange: """
            echo one > one.txt && git add one.txt && GIT_AUTHOR_NAME=Ada GIT_AUTHOR_EMAIL=ada@example.com GIT_AUTHOR_DATE='@1700000000 +0100' git commit -qm 'first: one' &&
            echo two > two.txt && git add two.txt && git commit -qm 'second: two' && echo work > work.txt
            """)
        // The base takes "second" on its own (a cherry-pick) and moves on.
        let second = try repo.git("rev-parse amplify/m-1~1")
        _ = try repo.git("-c user.name=T -c user.email=t@e cherry-pick \(second)")
        let old = try repo.git("rev-parse main")
        let r = try await repo.merge("{strategy: rebase}")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        let log = try repo.git("log '--format=%an|%ae|%ad|%s' --date=raw \(old)..main").split(separator: "\n").map(String.init)
        #expect(log.count == 2, "second was dropped: \(log)")
        #expect(log.last == "Ada|ada@example.com|1700000000 +0100|first: one", "the author is kept: \(log)")
        #expect(log.first?.hasSuffix("|m-1: work") == true, "\(log)")
        #expect(try repo.git("log -1 --format=%B main~1").contains("Amplify-") == false)
        #expect(try repo.trailers() == 1)
        #expect(try repo.git("rev-list --merges \(old)..main").isEmpty, "a straight line on the base")
        #expect(try repo.git("rev-parse main~2") == old)
        #expect(try repo.git("show main:one.txt") == "one" && repo.git("show main:work.txt") == "work")
    }

    @Test("a rebase that conflicts on a commit in the middle lists the paths; nothing lands", arguments: ["rebase", "no-ff", "squash"])
    func conflictInTheMiddle(strategy: String) async throws {
        let repo = try Repo(branchChange: "echo theirs > base.txt && git add base.txt && git commit -qm 'm-1: base' && echo work > work.txt")
        _ = try shell("echo ours > base.txt && git commit -qam 'the base changes base.txt'", in: repo.box.url)
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge("{strategy: \(strategy)}")
        guard case .failedAs(.conflict, let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("1 conflicting path: base.txt") && why.contains("main is unchanged"), "\(why)")
        #expect(try repo.git("rev-parse main") == before)
        #expect(try repo.git("status --porcelain --untracked-files=no").isEmpty)
    }

    @Test("verify runs in one kept checkout: HEAD is the commit that lands; the next merge reuses it, without the last one's untracked files but with its ignored ones")
    func keptCheckout() async throws {
        let repo = try Repo()
        _ = try shell("""
            git checkout -q -b amplify/m-2 main~0 && echo two > two.txt && git add two.txt && git commit -qm two && git checkout -q main &&
            echo /build/ >> .git/info/exclude
            """, in: repo.box.url)
        let log = repo.box.path + "/.git/verify.log"
        let verify = #"{verify: ["echo \"$(pwd) $(git rev-parse HEAD) $(ls build 2>/dev/null) $(ls untracked.txt 2>/dev/null)\" >> '\#(log)'; mkdir -p build && touch build/cache untracked.txt"]}"#
        let first = try await repo.merge(verify)
        guard case .succeeded(let o1) = first else { Issue.record("\(first)"); return }
        let second = try await repo.merge(verify, item: "m-2")
        guard case .succeeded(let o2) = second else { Issue.record("\(second)"); return }
        let lines = repo.box.read(".git/verify.log").split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
        try #require(lines.count == 2, "\(lines)")
        #expect(lines[0][0] == lines[1][0] && lines[0][0].hasSuffix("/.amplify/merging/checkout"), "one checkout: \(lines)")
        #expect(lines[0][1] == o1["commit"]?.renderedText && lines[1][1] == o2["commit"]?.renderedText, "verify sees the commit that lands")
        #expect(lines[1][2] == "cache", "the ignored build cache is kept")
        #expect(lines[1][3] == "", "the untracked file is gone")
        #expect(try repo.git("rev-parse main") == o2["commit"]?.renderedText)
    }

    @Test("a kept checkout a killed git left broken (its index.lock) is made afresh")
    func brokenCheckout() async throws {
        let repo = try Repo()
        _ = try shell("git checkout -q -b amplify/m-2 main && echo two > two.txt && git add two.txt && git commit -qm two && git checkout -q main", in: repo.box.url)
        guard case .succeeded = try await repo.merge(#"{verify: ["true"]}"#) else { Issue.record("first merge"); return }
        let gitDir = try repo.git("-C .amplify/merging/checkout rev-parse --absolute-git-dir")
        _ = FileManager.default.createFile(atPath: gitDir + "/index.lock", contents: Data())
        let r = try await repo.merge(#"{verify: ["test -f two.txt && test -f work.txt"]}"#, item: "m-2")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        #expect(try repo.trailers() == 1 && repo.git("show main:two.txt") == "two")
    }

    @Test("a pre-commit hook sees the merge's changes staged in the kept checkout, and what it stages is committed")
    func preCommitSeesTheChanges() async throws {
        let repo = try Repo()
        try MergeHookTests.hook("pre-commit", #"git diff --cached --name-only > "$(git rev-parse --git-common-dir)/staged"; echo formatted > fmt.txt; git add fmt.txt"#, in: repo.box)
        let r = try await repo.merge("{strategy: squash}")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        #expect(repo.box.read(".git/staged").split(separator: "\n") == ["work.txt"], "the hook saw the squashed change staged: \(repo.box.read(".git/staged"))")
        #expect(try repo.git("show main:fmt.txt") == "formatted", "what the hook staged is in the commit")
        #expect(try repo.git("rev-list --count main") == "2" && repo.git("show main:work.txt") == "work")
    }

    @Test("the commit's message is cleaned up as `git commit -m` does: trailing spaces and extra blank lines go")
    func messageCleanup() async throws {
        let repo = try Repo()
        try MergeHookTests.hook("commit-msg", #"printf '\n\n\nSigned-off-by: Hook   \n\n\n' >> "$1""#, in: repo.box)
        let r = try await repo.merge()
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        let raw = try shell("git cat-file commit main", in: repo.box.url)
        let message = String(raw[raw.range(of: "\n\n")!.upperBound...])
        #expect(message == "Merge m-1: Work\n\nAmplify-Item: m-1\nAmplify-Run: 20261124T120000000Z-abcd\n\nSigned-off-by: Hook\n", "\(message.debugDescription)")
    }

    @Test("with commit.gpgsign the runner's commits are signed, as `git commit` signs them", arguments: ["no-ff", "squash", "rebase"])
    func signed(strategy: String) async throws {
        let repo = try Repo()
        // A gpg that signs anything: git hands it the commit on stdin and reads the signature
        // from stdout and "[GNUPG:] SIG_CREATED" from the status descriptor (2).
        let gpg = repo.box.path + "/.git/fake-gpg"
        try "#!/bin/sh\ncat > /dev/null\necho '[GNUPG:] SIG_CREATED D 1 8 00 1700000000 0' >&2\nprintf -- '-----BEGIN PGP SIGNATURE-----\\nfake\\n-----END PGP SIGNATURE-----\\n'\n"
            .write(toFile: gpg, atomically: true, encoding: .utf8)
        chmod(gpg, 0o755)
        _ = try repo.git("config commit.gpgsign true")
        _ = try repo.git("config gpg.program \(gpg)")
        let r = try await repo.merge("{strategy: \(strategy)}")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        #expect(try shell("git cat-file commit main", in: repo.box.url).contains("gpgsig -----BEGIN PGP SIGNATURE-----"), "signed")
    }

    @Test("merge drivers come from the base's .gitattributes (at the top or in a folder), whatever the user's checkout holds", arguments: ["", "logs/"])
    func attributesOfTheBase(folder: String) async throws {
        let repo = try Repo()
        // The base says log.txt merges by union; the branch and the base both append to it; the
        // user's checkout is elsewhere, without the attributes file (the base checked out nowhere).
        _ = try shell("""
            export GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@e &&
            git checkout -q main && mkdir -p ./\(folder) && echo 'log.txt merge=union' > ./\(folder).gitattributes && echo start > ./\(folder)log.txt &&
            git add . && git commit -qm attrs &&
            git checkout -q -b amplify/m-2 && echo theirs >> ./\(folder)log.txt && git commit -qam theirs &&
            git checkout -q main && echo ours >> ./\(folder)log.txt && git commit -qam ours &&
            git checkout -q --detach main~2
            """, in: repo.box.url)
        #expect(!FileManager.default.fileExists(atPath: repo.box.path + "/\(folder).gitattributes"))
        let r = try await repo.merge(item: "m-2")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        let log = try repo.git("show main:\(folder)log.txt")
        #expect(log.split(separator: "\n") == ["start", "ours", "theirs"], "\(log)")
    }

    @Test("a squash that changes nothing on the base fails, or is skipped with `empty: skip`")
    func squashChangesNothing() async throws {
        let repo = try Repo()
        _ = try shell("git checkout -q main && echo work > work.txt && git add work.txt && git commit -qm 'the base has it already'", in: repo.box.url)
        let before = try repo.git("rev-parse main")
        let r = try await repo.merge("{strategy: squash}")
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("changes nothing on main"), "\(why)")
        let skipped = try await repo.merge("{strategy: squash, empty: skip}")
        guard case .succeeded(let o) = skipped else { Issue.record("\(skipped)"); return }
        #expect(o["empty"] == .bool(true))
        #expect(try repo.git("rev-parse main") == before)
    }

    @Test("rebase keeps the commits that sit on the base already, as `git rebase` keeps them: only the tip is made again, with the trailers")
    func rebaseUpToDate() async throws {
        let repo = try Repo(branchChange: "echo one > one.txt && git add one.txt && git commit -qm one && echo work > work.txt")
        let first = try repo.git("rev-parse amplify/m-1~1")
        let r = try await repo.merge("{strategy: rebase}")
        guard case .succeeded = r else { Issue.record("\(r)"); return }
        #expect(try repo.git("rev-parse main~1") == first, "the first commit is the branch's own")
        #expect(try repo.git("log -1 --format=%s main") == "m-1: work")
        #expect(try repo.trailers() == 1)
    }
}
