import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// git, run in one repository or worktree, with an environment that cannot point it elsewhere.
///
/// The repository's operations are named here: commits and branches, worktrees (list, add,
/// remove), landing a commit on the base, the common git directory, and the locks runners take
/// in it. Pull requests (`gh`) would be one more way to land, beside `land(_:on:from:reason:)`.
struct Git: Sendable {
    var directory: String
    var environment: [String: String]
    /// A repository lock this git holds: passed to every git it runs, so that a git left running
    /// by a killed runner keeps the lock until it is done, and the next runner waits for it.
    var heldLock: Int32?
    /// What git runs inside: a sandboxed session's walls (`Bubblewrap.prefix`), for git in a
    /// repository the agent controls. nil: git runs as it is.
    var wrapper: [String]?

    init(_ directory: String, environment: [String: String]) {
        self.directory = directory
        var env = environment
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"] { env[name] = nil }
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["LC_ALL"] = "C"
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        self.environment = env
    }

    func at(_ directory: String) -> Git {
        var g = self
        g.directory = directory
        return g
    }

    /// Runs `git <args>`. A git that may run hooks (a commit) reports its process through
    /// `started`, as `verify` commands are reported: a hook that hangs is ended with git's group by
    /// the stage's timeout (and by a resumed runner), instead of holding a lock for ever.
    @discardableResult
    func run(_ args: [String], stdoutLimit: Int = 16 << 20, started: @Sendable (Int32, UInt64) -> Void = { _, _ in }) async -> CommandRunner.Output {
        await CommandRunner.run((wrapper.map { $0 + ["--"] } ?? []) + ["git"] + args, in: directory, environment: environment, stdoutLimit: stdoutLimit, keep: heldLock, started: started)
    }

    /// git's version, major and minor (`git version 2.39.5` → (2, 39)); nil when it cannot be read.
    func version() async -> (Int, Int)? {
        let words = (await run(["version"])).stdout.split(separator: " ")
        guard words.count >= 3 else { return nil }
        let parts = words[2].split(separator: ".").compactMap { Int($0.prefix { $0.isNumber }) }
        return parts.count >= 2 ? (parts[0], parts[1]) : nil
    }

    /// The trimmed output of a command that must succeed.
    func output(_ args: [String]) async throws(StageError) -> String {
        let r = await run(args)
        guard r.succeeded else { throw StageError(r.failure(["git"] + args)) }
        return r.stdout.trimming(" \t\r\n")
    }

    /// The commit a name points at, or nil.
    func commit(_ name: String) async -> String? {
        let r = await run(["rev-parse", "--verify", "--quiet", name + "^{commit}"])
        return r.succeeded ? r.stdout.trimming(" \t\r\n") : nil
    }

    /// Commits need an identity: a machine with none configured gets amplify-run's own.
    func withIdentity() async -> Git {
        var g = self
        if await run(["config", "user.email"]).stdout.trimming(" \t\r\n").isEmpty {
            for (k, v) in [("GIT_AUTHOR_NAME", "amplify-run"), ("GIT_AUTHOR_EMAIL", "amplify-run@localhost"),
                           ("GIT_COMMITTER_NAME", "amplify-run"), ("GIT_COMMITTER_EMAIL", "amplify-run@localhost")] where g.environment[k] == nil {
                g.environment[k] = v
            }
        }
        return g
    }

    /// The repository's shared git directory (the same from every worktree), found without running git.
    func commonDirectory() -> String {
        Git.commonDirectory(containing: directory) ?? directory + "/.git"
    }

    /// Runs `body` holding the repository's worktree lock: git is not safe with two `worktree add`
    /// (or prune, or remove) at once — one reads the other's half-made entry and fails.
    func withWorktreeLock<T>(_ body: (Git) async throws(StageError) -> T) async throws(StageError) -> T {
        try await withLock("amplify-worktrees.lock", body)
    }

    /// Runs `body` holding the repository's landing lock: one landing on a base at a time in this
    /// repository, whichever stage or run.
    func withLandingLock<T>(_ body: (Git) async throws(StageError) -> T) async throws(StageError) -> T {
        try await withLock("amplify-land.lock", body)
    }

    /// Runs `body` holding a lock in the common git directory. Every git `body` runs through the
    /// `Git` it is given holds the lock too (`keep:`): one left running by a killed runner keeps
    /// it until it is done.
    private func withLock<T>(_ name: String, _ body: (Git) async throws(StageError) -> T) async throws(StageError) -> T {
        let lock = try await RepositoryLock.acquire(commonDirectory() + "/" + name)
        defer { lock.release() }
        var locked = self
        locked.heldLock = lock.fd
        return try await body(locked)
    }

    /// Registered worktrees: path and branch (nil when detached). Asked again if git fails (it can
    /// while another git adds a worktree); nil if it keeps failing.
    func worktrees() async -> [(path: String, branch: String?)]? {
        var r = await run(["worktree", "list", "--porcelain"])
        for _ in 0..<20 where !r.succeeded {
            try? await Task.sleep(for: .milliseconds(50))
            r = await run(["worktree", "list", "--porcelain"])
        }
        guard r.succeeded else { return nil }
        var out: [(String, String?)] = []
        var path: String?
        var branch: String?
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) + [""]
        for line in lines {
            if line.hasPrefix("worktree ") {
                path = String(line.dropFirst(9))
            } else if line.hasPrefix("branch refs/heads/") {
                branch = String(line.dropFirst(18))
            } else if line.isEmpty, let p = path {
                out.append((p, branch))
                path = nil
                branch = nil
            }
        }
        return out
    }

    // MARK: - Worktrees and branches

    /// `git worktree add --no-checkout` of `branch` at `path`: the existing branch, or a new one
    /// made at `newFrom` when given. Only git's entry for the worktree is made (milliseconds):
    /// that is the part that must be made under the worktree lock. The files come with
    /// `finishCheckout`, outside it, so worktrees of a large repository are checked out in
    /// parallel.
    func addWorktree(_ path: String, branch: String, newFrom start: String? = nil) async -> (CommandRunner.Output, [String]) {
        let args = start.map { ["worktree", "add", "--quiet", "--no-checkout", "-b", branch, path, $0] } ?? ["worktree", "add", "--quiet", "--no-checkout", path, branch]
        return (await run(args), ["git"] + args)
    }

    /// A sandboxed session's repository of its own at `path`, its git directory beside it at
    /// `path.git`: `git clone --shared` (the repository's objects borrowed, read-only, through
    /// `alternates`; nothing copied), on `branch` — the repository's branch of that name, made
    /// at `base` when it has none, as `worktree add -b` would. It gets the settings of the
    /// repository's own config that a commit needs (`sessionConfig`: identity, signing, hooks
    /// path, line endings) — not the rest, where a token may sit (`http.extraheader`, a remote's
    /// URL) — and the repository's hooks directory unless that config names another. An earlier
    /// attempt's repository on the branch is kept; a half-made one is made again. Only git's
    /// entries are made: the files come with `finishCheckout`. Every ref in it is the session's to move; the repository's are not
    /// (its git directory is read-only in the sandbox), and only the branch comes back
    /// (`collectBranch`).
    func addOwnRepository(_ path: String, branch: String, base: String, worktreesDir: String) async throws(StageError) {
        let gitDir = path + ".git"
        if Git.worktreeGitDirectory(path) == gitDir, Git.smallFile(gitDir + "/HEAD")?.trimming(" \t\r\n") == "ref: refs/heads/" + branch { return }
        // Debris of an attempt killed while making it: nothing of the session is in it yet.
        var st = stat()
        for p in [path, gitDir] where lstat(p, &st) == 0 { try? FileManager.default.removeItem(atPath: p) }
        do {
            try FileManager.default.createDirectory(atPath: worktreesDir, withIntermediateDirectories: true)
        } catch { throw StageError("dispatch: cannot create \(worktreesDir): \(error)") }
        if await commit("refs/heads/" + branch) == nil {
            _ = try await output(["branch", "--no-track", branch, base])
        }
        let tip = try await output(["rev-parse", "--verify", "refs/heads/" + branch + "^{commit}"])
        let common = commonDirectory()
        _ = try await output(["clone", "--quiet", "--shared", "--no-checkout", "--origin", "amplify", "--separate-git-dir", gitDir, "--", common, path])
        let own = at(path)
        _ = try await own.output(["update-ref", "refs/heads/" + branch, tip])
        let local = (await run(["config", "--local", "--null", "--list"])).stdout
        for entry in local.split(separator: "\0") {
            guard let newline = entry.firstIndex(of: "\n") else { continue }
            let key = String(entry[..<newline]), value = String(entry[entry.index(after: newline)...])
            guard Git.sessionConfig.contains(key) else { continue }
            _ = try await own.output(["config", "--add", key, value])
        }
        if (await run(["config", "core.hooksPath"])).stdout.trimming(" \t\r\n").isEmpty {
            _ = try await own.output(["config", "core.hooksPath", common + "/hooks"])
        }
        // Last: a HEAD on the branch marks the repository as complete.
        _ = try await own.output(["symbolic-ref", "HEAD", "refs/heads/" + branch])
    }

    /// The keys of the repository's own config a sandboxed session's repository gets (as git
    /// lists them, lower case).
    static let sessionConfig: Set<String> = ["user.name", "user.email", "user.signingkey", "commit.gpgsign", "tag.gpgsign", "gpg.format",
                                             "gpg.program", "gpg.ssh.program", "core.hookspath", "core.autocrlf", "core.eol", "core.safecrlf",
                                             "core.filemode", "core.symlinks", "core.ignorecase", "core.precomposeunicode", "i18n.commitencoding"]

    /// A sandboxed session's `branch`, fetched from its own repository at `path` into this one
    /// (forced: the session may rewrite its own branch). Only `git upload-pack` reads the
    /// session's repository, and git makes it safe to run in a repository someone else controls
    /// (git-upload-pack(1), "Security"). Under the worktree lock: fetch walks every worktree's HEAD.
    func collectBranch(_ branch: String, from path: String) async -> CommandRunner.Output {
        let args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", path + ".git", "+refs/heads/\(branch):refs/heads/\(branch)"]
        return (try? await withWorktreeLock { (git: Git) async throws(StageError) in await git.run(args) })
            ?? CommandRunner.Output(termination: .exited(1), stdout: "", stderr: "cannot take the worktree lock")
    }

    /// The git directory a `.git` file at the top of `path` names (`gitdir: <dir>`): a linked
    /// worktree's own (`<common>/worktrees/<name>`), or a submodule's. nil where `.git` is a
    /// directory (the main checkout) or missing.
    static func worktreeGitDirectory(_ path: String) -> String? {
        guard let text = smallFile((path == "/" ? "" : path) + "/.git"), text.hasPrefix("gitdir:") else { return nil }
        return resolve(String(text.dropFirst("gitdir:".count)).trimming(" \t\r\n"), against: path)
    }

    private static func resolve(_ path: String, against directory: String) -> String {
        path.hasPrefix("/") ? path : (directory == "/" ? "" : directory) + "/" + path
    }

    private static func smallFile(_ path: String) -> String? {
        guard let bytes = try? WorkflowFile.read(path, limit: 4096) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether the worktree at `path` has its files: git writes its index last, when a checkout
    /// is complete. A worktree added with `--no-checkout`, or whose checkout was interrupted
    /// (a killed runner), has none.
    static func isCheckedOut(_ path: String) -> Bool {
        guard let dir = worktreeGitDirectory(path) else { return false }
        var st = stat()
        return stat(dir + "/index", &st) == 0
    }

    /// Makes the worktree at `path` (added with `--no-checkout`) check out only `sparse`'s
    /// directories (and the files at the top), in git's cone mode. Run it under the worktree
    /// lock: the first time, git writes `extensions.worktreeConfig` into the repository's shared
    /// config, and two at once fail on its lock. Writes no file of the worktree (milliseconds).
    func setSparse(_ path: String, _ sparse: [String]) async throws(StageError) {
        guard !sparse.isEmpty, Git.worktreeGitDirectory(path) != nil, !Git.isCheckedOut(path) else { return }
        let args = ["sparse-checkout", "set", "--cone", "--"] + sparse
        let r = await at(path).run(args)
        guard r.succeeded else { throw StageError("dispatch: settings.sparse: \(r.failure(["git"] + args))") }
    }

    /// Checks out the files of the worktree at `path` (added with `--no-checkout`), in it alone:
    /// nothing of the repository's shared state is written, so it needs no lock and runs beside
    /// other checkouts. A checkout that was interrupted is finished; one that is complete is left
    /// alone (an agent may have worked there), and so is anything but a linked worktree (the
    /// user's own checkout). `started` learns each git's process: one a killed runner left
    /// running is ended before the next runner finishes its work.
    func finishCheckout(_ path: String, started: @Sendable (Int32, UInt64) -> Void) async throws(StageError) {
        guard let dir = Git.worktreeGitDirectory(path), !Git.isCheckedOut(path) else { return }
        let w = at(path)
        // A checkout interrupted by a kill leaves its lock; this worktree is the runner's own,
        // nothing else has run in it (no index: no checkout ever finished), and the git that
        // held the lock was ended with the attempt it belonged to.
        unlink(dir + "/index.lock")
        let r = await w.run(["reset", "--hard", "--quiet", "--no-recurse-submodules"], started: started)
        guard r.succeeded else { throw StageError("dispatch: checking out \(path): \(r.failure(["git", "reset", "--hard"]))") }
        // The hook `git worktree add` would have run once the files were there (a project's
        // post-checkout may fetch large files or install tools); its failure fails the dispatch,
        // as it failed `git worktree add`.
        let head = try await w.output(["rev-parse", "HEAD"])
        let hook = await w.run(["hook", "run", "--ignore-missing", "post-checkout", "--", String(repeating: "0", count: head.count), head, "1"], started: started)
        guard hook.succeeded else { throw StageError("dispatch: the repository's post-checkout hook failed in \(path): \(hook.failure(["git", "hook", "run", "post-checkout"]))") }
    }

    /// The runner's own checkout at `path`, kept from one merge to the next: HEAD at `head`, and
    /// the files and index of `tree` in place (a commit being made there: `git diff --cached`
    /// shows its changes). Reused, only the files that differ are written; untracked files an
    /// earlier verify made are removed, ignored ones (build caches) kept. Plumbing only, so no
    /// hook runs for the runner's own bookkeeping. Made afresh when missing or broken (a killed
    /// git's debris).
    func keptCheckout(_ path: String, head: String, tree: String) async throws(StageError) -> Git {
        let w = at(path)
        if Git.isCheckedOut(path),
           await w.run(["read-tree", "--reset", "-u", "--no-recurse-submodules", tree]).succeeded,
           await w.run(["clean", "-ffdq"]).succeeded,
           await w.run(["update-ref", "--no-deref", "HEAD", head]).succeeded {
            return w
        }
        await removeWorktree(path)
        _ = try await withWorktreeLock { (git: Git) async throws(StageError) in
            await git.run(["worktree", "prune"])
            return try await git.output(["worktree", "add", "--quiet", "--no-checkout", "--detach", path, head])
        }
        _ = try await w.output(["read-tree", "--reset", "-u", "--no-recurse-submodules", tree])
        return w
    }

    /// A worktree at `path` gone, and git's entry for it (entries of worktrees removed by hand
    /// are pruned too). Under the worktree lock it is only renamed aside (one `rename`, however
    /// large the worktree) and its entry pruned; the files are deleted after, outside the lock,
    /// so a removal never holds up a dispatch or a landing. What a killed runner left aside is
    /// deleted by the next removal.
    func removeWorktree(_ path: String) async {
        let parent = path.dropLastComponent
        let aside = parent + "/." + path.lastComponent + ".removing-" + String(getpid())
        var renamed = false
        try? await withWorktreeLock { (git: Git) async throws(StageError) in
            var st = stat()
            if lstat(path, &st) == 0 {
                if lstat(aside, &st) == 0 { _ = await CommandRunner.run(["rm", "-rf", "--", aside], in: "/", environment: git.environment) }
                renamed = rename(path, aside) == 0
                if !renamed {
                    await git.run(["worktree", "remove", "--force", "--force", path])
                    if lstat(path, &st) == 0 { try? FileManager.default.removeItem(atPath: path) }
                }
            }
            await git.run(["worktree", "prune"])
        }
        var leftovers = renamed ? [aside] : []
        // Set aside by a runner that was killed before deleting it.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(".") {
            guard let dash = name.ranges(of: ".removing-").last, let pid = Int32(name[dash.upperBound...]),
                  pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            leftovers.append(parent + "/" + name)
        }
        // At the lowest CPU priority: deleting a large worktree is seconds of the kernel's time,
        // which the merges and checkouts of other items need more.
        for dir in leftovers { _ = await CommandRunner.run(["nice", "-n", "19", "rm", "-rf", "--", dir], in: "/", environment: environment) }
    }

    /// `git branch -D`, under the worktree lock: it reads every worktree's entry, which must not
    /// be half made.
    func deleteBranch(_ branch: String) async -> CommandRunner.Output {
        (try? await withWorktreeLock { (git: Git) async throws(StageError) in await git.run(["branch", "-D", branch]) })
            ?? CommandRunner.Output(termination: .exited(1), stdout: "", stderr: "cannot take the worktree lock")
    }

    /// Whether `commit` is `other` or an ancestor of it.
    func isAncestor(_ commit: String, of other: String) async -> Bool {
        await run(["merge-base", "--is-ancestor", commit, other]).succeeded
    }

    // MARK: - Landing

    /// Moves `base` from `old` to `new`, a fast-forward only: `git merge --ff-only` in the
    /// worktree that has the base checked out (the user's checkout follows), else `git
    /// update-ref` with the old value (nothing lands if the base moved meanwhile). Run it holding
    /// the landing lock.
    func land(_ new: String, on base: String, from old: String, reason: String) async throws(StageError) {
        // Only ever forward: a commit that does not contain the base's old tip (a rebase that
        // dropped every commit and amended the base's own tip) would rewrite someone's history.
        guard new != old, await isAncestor(old, of: new) else {
            throw StageError("merge: the merge built is not a fast-forward of \(base) (\(new.prefix(8)) does not contain \(old.prefix(8))); nothing landed")
        }
        guard let worktrees = await worktrees() else { throw StageError("merge: `git worktree list` keeps failing; nothing landed") }
        if let checkout = worktrees.first(where: { $0.branch == base }) {
            let r = await at(checkout.path).run(["merge", "--ff-only", "--quiet", new])
            guard r.succeeded else {
                throw StageError("merge: \(base) is checked out at \(checkout.path) and git would not fast-forward it (\(CommandRunner.tail(r.stderr, lines: 8))); nothing changed")
            }
        } else {
            let r = await run(["update-ref", "-m", reason, "refs/heads/" + base, new, old])
            guard r.succeeded else { throw StageError("merge: \(base) moved while merging; nothing landed: \(r.failure(["git", "update-ref"]))") }
        }
    }

    // MARK: - The common directory and what lives in it

    /// The worktrees folder and the state directory stay out of the user's `git status`: a line in
    /// the repository's `info/exclude` (in the common git directory, so a linked worktree's too).
    func excludeFromStatus(_ path: String) {
        let repo = directory
        guard path.hasPrefix(repo + "/"), let common = Git.commonDirectory(containing: repo) else { return }
        let rel = "/" + path.dropFirst(repo.count + 1) + "/"
        let exclude = common + "/info/exclude"
        let bytes = (try? WorkflowFile.read(exclude, limit: 1 << 20)) ?? []
        // Lines split on the byte: "\r\n" is one Character, so a String split on "\n" would miss a CRLF file's lines.
        let lines = bytes.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self).trimming("\r") }
        guard !lines.contains(rel) else { return }
        mkdir(common + "/info", 0o755)
        let newline = bytes.contains(UInt8(ascii: "\r")) ? "\r\n" : "\n"
        let text = String(decoding: bytes, as: UTF8.self)
        let separator = bytes.isEmpty || bytes.last == UInt8(ascii: "\n") ? "" : newline
        try? RunStore.writeAtomically(Array((text + separator + rel + newline).utf8), to: exclude, mode: 0o644)
    }

    /// The git common directory of the repository or worktree `directory` is in, found the way
    /// git finds it (without running git): the nearest `.git` going up — a directory, or a file
    /// `gitdir: <dir>` (a linked worktree or a submodule) — and that directory's `commondir`
    /// when it has one. Canonical (symlinks resolved): one spelling per directory.
    static func commonDirectory(containing directory: String) -> String? {
        var candidate = directory
        while true {
            let dotGit = (candidate == "/" ? "" : candidate) + "/.git"
            var st = stat()
            if stat(dotGit, &st) == 0 {
                var gitDir: String?
                if st.st_mode & S_IFMT == S_IFDIR {
                    gitDir = dotGit
                } else if st.st_mode & S_IFMT == S_IFREG {
                    gitDir = worktreeGitDirectory(candidate)
                }
                guard let gitDir else { return nil }
                var common = gitDir
                if let relative = smallFile(gitDir + "/commondir")?.trimming(" \t\r\n"), !relative.isEmpty {
                    common = resolve(relative, against: gitDir)
                }
                // One spelling per directory (`worktrees/w/../..` is the main `.git`).
                guard let real = realpath(common, nil) else { return nil }
                defer { free(real) }
                return String(cString: real)
            }
            guard candidate != "/", !candidate.isEmpty else { return nil }
            candidate = candidate.lastIndex(of: "/").map { String(candidate[..<$0]) } ?? ""
            if candidate.isEmpty { candidate = "/" }
        }
    }
}

/// An exclusive lock on a file (in the common git directory), taken without blocking a pool
/// thread. Its descriptor is handed to the gits run while it is held (`Git.heldLock`).
struct RepositoryLock: Sendable {
    let fd: Int32

    static func acquire(_ path: String) async throws(StageError) -> RepositoryLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StageError("cannot open the repository lock \(path): \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return RepositoryLock(fd: fd)
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
