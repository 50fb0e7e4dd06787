import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An agent fenced in by bubblewrap (`sandbox: bwrap`): the machine read-only, a private `/tmp`,
/// and only the session's own repository, its session directory and its profile's config
/// directories writable. The user's checkout (its uncommitted files, a `.env`), the runner's
/// state (journals, other sessions, their records), the other sessions' repositories and the
/// secrets under `$HOME` are hidden behind empty, read-only tmpfs.
///
/// The sandbox runs in pid, IPC and UTS namespaces of its own with every capability dropped (as
/// root, bwrap would keep them, and with them the power to unmount its walls). The network is
/// kept: agents call their model. There is no `--die-with-parent` and no `--new-session`: the
/// sandbox outlives a runner that dies, and stays in the process group the runner started, so
/// ending the group ends the namespace's init and with it everything inside.
///
/// The mounts are recorded with the session (`SessionFiles.Record.sandbox`): a resumed agent,
/// and the runner's own git in the session's repository, get the same walls.
struct Bubblewrap: Sendable, Equatable {
    /// Behind an empty tmpfs, read-only: the user's checkout, the state directory, the worktrees
    /// folder, `/run` (its sockets — docker's, dbus's — accept a connection from a read-only
    /// mount), secrets under `$HOME`.
    var hidden: [String]
    /// Secret files, bound to `/dev/null`.
    var hiddenFiles: [String]
    /// Read-only again inside something hidden: the repository's objects (the session's
    /// repository borrows them) and hooks, `$HOME` when it is under `/tmp`; read-only inside
    /// something writable: the CLIs' own settings and hooks (`protectedFiles`).
    var readable: [String]
    /// Writable: the session's repository and git directory, its session directory, the
    /// profile's config directories and `sandbox-writable`.
    var writable: [String]
    /// Where the agent starts.
    var directory: String

    /// The secrets under `$HOME` an agent never sees unless named in `sandbox-writable`.
    /// (`.cache/git/credential` holds git's credential-cache socket, which answers through a
    /// read-only mount.)
    static let secretDirectories = [".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".config/gh", ".config/gcloud",
                                    ".password-store", ".local/share/keyrings", ".cache/git/credential"]
    static let secretFiles = [".netrc", ".git-credentials", ".pypirc", ".npmrc", ".config/git/credentials"]

    /// What the CLIs read as settings, hooks and commands, inside their writable config
    /// directories: kept read-only, so an agent cannot leave behind a hook that the user's next
    /// CLI (outside any sandbox) would run. Only those that exist can be: a missing one can
    /// still be created (the README says so).
    static let protectedFiles = [".claude/settings.json", ".claude/settings.local.json", ".claude/CLAUDE.md", ".claude/hooks", ".claude/commands",
                                 ".claude/agents", ".claude/plugins", ".claude/skills", ".codex/config.toml", ".codex/AGENTS.md", ".codex/prompts",
                                 ".gemini/settings.json", ".gemini/GEMINI.md", ".gemini/extensions", ".gemini/commands"]

    /// The walls of one session. `writable` holds absolute paths (a leading `~/` is `home`'s); one
    /// that ends in `/` is a directory, made when missing (a CLI's config directory on a fresh
    /// machine); any other missing path is left out. Paths are taken as given: the worktrees
    /// folder and the state directory are the runner's own (never a symlink), and the rest are
    /// the user's. `checkout` is the user's (the runner's `-C`), and the checkout of the
    /// repository's git directory when that is another (a runner in a linked worktree): hidden
    /// unless the home directory is in one. Of the git directory only `objects` and `hooks` show.
    /// The secrets are hidden under `home` (the agent's `$HOME`) and under the home directory
    /// the system gives the user, when that is another.
    static func session(repository worktree: String, gitDirectory: String, sessionDirectory: String, checkout: String, stateDirectory: String,
                        worktreesDirectory: String, commonGitDirectory: String, home: String?, writable extra: [String]) -> Bubblewrap {
        var hidden = [stateDirectory, worktreesDirectory]
        if isDirectory("/run") { hidden.append("/run") }
        var checkouts = [checkout]
        if commonGitDirectory.hasSuffix("/.git") { checkouts.append(String(commonGitDirectory.dropLast(5))) }
        for (i, c) in checkouts.enumerated() where !checkouts[..<i].contains(c) && c != "/" && !c.isEmpty && !(home.map { $0 == c || $0.hasPrefix(c + "/") } ?? false) { hidden.append(c) }
        var hiddenFiles: [String] = []
        var readable = ["objects", "hooks"].map { commonGitDirectory + "/" + $0 }.filter(isDirectory)
        var writable = [worktree, gitDirectory, sessionDirectory]
        let named = extra.compactMap { entry in expand(entry, home: home).map { (path: $0.hasSuffix("/") ? String($0.dropLast()) : $0, directory: $0.hasSuffix("/")) } }
        // A home under /tmp shows again, read-only; /tmp itself stays private.
        if let home, home.hasPrefix("/tmp/") { readable.append(home) }
        var homes = [home].compactMap { $0 }
        if let entry = getpwuid(getuid()), let dir = entry.pointee.pw_dir.map({ String(cString: $0) }), !homes.contains(dir) { homes.append(dir) }
        for home in homes where home.hasPrefix("/") && home != "/" {
            for name in secretDirectories where isDirectory(home + "/" + name) && !named.contains(where: { $0.path == home + "/" + name }) { hidden.append(home + "/" + name) }
            for name in secretFiles where exists(home + "/" + name) && !named.contains(where: { $0.path == home + "/" + name }) { hiddenFiles.append(home + "/" + name) }
        }
        // DNS may live under /run (systemd-resolved's stub): shown again, read-only.
        if isDirectory("/run/systemd/resolve") { readable.append("/run/systemd/resolve") }
        for entry in named where !entry.path.isEmpty {
            if entry.directory && !exists(entry.path) { try? FileManager.default.createDirectory(atPath: entry.path, withIntermediateDirectories: true) }
            if exists(entry.path) { writable.append(entry.path) }
        }
        if let home, home.hasPrefix("/") {
            for name in protectedFiles where exists(home + "/" + name) && writable.contains(where: { (home + "/" + name).hasPrefix($0 + "/") }) {
                readable.append(home + "/" + name)
            }
        }
        return Bubblewrap(hidden: hidden, hiddenFiles: hiddenFiles, readable: readable, writable: writable, directory: worktree)
    }

    /// `~/x` under `home`; absolute paths as they are; anything else nil.
    static func expand(_ path: String, home: String?) -> String? {
        if path.hasPrefix("~/"), let home, home.hasPrefix("/") { return (home == "/" ? "" : home) + path.dropFirst(1) }
        return path.hasPrefix("/") ? path : nil
    }

    private static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    private static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// `argv` inside the sandbox.
    func wrap(_ argv: [String]) -> [String] {
        prefix + ["--"] + argv
    }

    /// bwrap and its options. A mount on a path comes after the mounts on the directories above
    /// it (fewer components first); on one path, hiding before showing, showing read-only
    /// before writable.
    var prefix: [String] {
        var argv = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL",
                    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        var mounts: [(path: String, rank: Int, args: [String])] = []
        for p in hidden where p != "/tmp" { mounts.append((p, 0, ["--tmpfs", p])) }
        for p in hiddenFiles { mounts.append((p, 0, ["--ro-bind", "/dev/null", p])) }
        for p in readable { mounts.append((p, 1, ["--ro-bind", p, p])) }
        for p in writable { mounts.append((p, 2, ["--bind", p, p])) }
        func depth(_ p: String) -> Int { p.split(separator: "/").count }
        for m in mounts.enumerated().sorted(by: { (depth($0.element.path), $0.element.rank, $0.offset) < (depth($1.element.path), $1.element.rank, $1.offset) }) {
            argv += m.element.args
        }
        // What hides is empty and stays empty: written, it would look to the agent as if it had written the real thing.
        for p in hidden where p != "/tmp" { argv += ["--remount-ro", p] }
        return argv + ["--unsetenv", "TMPDIR", "--chdir", directory]
    }

    // MARK: - The record

    var value: Value {
        var o = OrderedObject()
        o["kind"] = .string("bwrap")
        o["hidden"] = .list(hidden.map(Value.string))
        o["hidden-files"] = .list(hiddenFiles.map(Value.string))
        o["readable"] = .list(readable.map(Value.string))
        o["writable"] = .list(writable.map(Value.string))
        o["directory"] = .string(directory)
        return .object(o)
    }

    init(hidden: [String], hiddenFiles: [String], readable: [String], writable: [String], directory: String) {
        self.hidden = hidden; self.hiddenFiles = hiddenFiles; self.readable = readable; self.writable = writable; self.directory = directory
    }

    init?(_ v: Value) {
        func strings(_ key: String) -> [String]? {
            guard case .list(let l)? = v[key] else { return nil }
            let s = l.compactMap { if case .string(let s) = $0, s.hasPrefix("/") { s } else { nil } }
            return s.count == l.count ? s : nil
        }
        guard v["kind"] == .string("bwrap"), let hidden = strings("hidden"), let hiddenFiles = strings("hidden-files"),
              let readable = strings("readable"), let writable = strings("writable"), case .string(let directory)? = v["directory"] else { return nil }
        self.init(hidden: hidden, hiddenFiles: hiddenFiles, readable: readable, writable: writable, directory: directory)
    }

    // MARK: - Whether it can run here

    private static let probed = Mutex<String??>(nil)

    /// Why no sandbox can be made on this machine (bubblewrap missing, or namespaces refused, as
    /// in some containers), in words that name the way out; nil when it can. Tried once per
    /// process: a sandbox that starts `true` (milliseconds).
    static func problem(environment: [String: String]) async -> String? {
        if let known = probed.withLock({ $0 }) { return known }
        let found: String?
        if ChildProcess.find("bwrap", path: environment["PATH"] ?? "/usr/bin:/bin") == nil {
            found = "`sandbox: bwrap` needs bubblewrap, which is not installed (Debian: `apt install bubblewrap`); or set `sandbox: none` to run agents without a sandbox"
        } else {
            let probe = Bubblewrap(hidden: [], hiddenFiles: [], readable: [], writable: [], directory: "/").wrap(["true"])
            let r = await CommandRunner.run(probe, in: "/", environment: environment)
            found = r.succeeded ? nil : "`sandbox: bwrap`: bubblewrap cannot make a sandbox on this machine (\(r.failure(["bwrap"]))) — user or pid namespaces are not available here (some containers refuse them); set `sandbox: none` to run agents without a sandbox"
        }
        probed.withLock { $0 = .some(found) }
        return found
    }
}
