import AmplifyEngine
import AmplifyWorkflow
import CAmplifySystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Runs a tool (git, bd, cp) to completion and captures what it printed.
public enum Exec {
    public struct Result: Sendable {
        public var termination: ChildProcess.Termination
        public var stdout: String
        public var stderr: String
        public var succeeded: Bool { termination == .exited(0) }

        /// The command and the end of what it said, for an error message.
        public func failure(_ argv: [String]) -> String {
            let said = CommandStageExecutor.tail(stderr.isEmpty ? stdout : stderr, lines: 6)
            return "`\(argv.joined(separator: " "))` \(termination)\(said.isEmpty ? "" : ": " + said)"
        }
    }

    /// Runs `argv` in `directory`; its group is ended with it so nothing it started lingers.
    /// `started` learns its pid and start time (so a stage's timeout can end it).
    public static func run(_ argv: [String], in directory: String, environment: [String: String], limit: Int = 16 << 20, keep: Int32? = nil,
                           started: @Sendable (Int32, UInt64) -> Void = { _, _ in }) async -> Result {
        let out = ChildProcess.memoryFile("stdout")
        let err = ChildProcess.memoryFile("stderr")
        defer {
            if out >= 0 { close(out) }
            if err >= 0 { close(err) }
        }
        do {
            let pid = try ChildProcess.spawn(argv, environment: environment, directory: directory,
                                             stdout: out >= 0 ? .descriptor(out) : nil, stderr: err >= 0 ? .descriptor(err) : nil, keep: keep)
            started(pid, Processes.startTime(pid) ?? 0)
            let termination = await ChildProcess.wait(pid)
            if Processes.groupExists(pid) { Processes.signalGroup(pid, SIGKILL) }
            return Result(termination: termination,
                          stdout: out >= 0 ? CommandStageExecutor.readCapped(fd: out, limit: limit) : "",
                          stderr: err >= 0 ? CommandStageExecutor.readCapped(fd: err, limit: 1 << 16) : "")
        } catch {
            return Result(termination: .exited(127), stdout: "", stderr: error.description)
        }
    }
}

/// git, run in one repository or worktree, with an environment that cannot point it elsewhere.
struct Git: Sendable {
    var directory: String
    var environment: [String: String]
    /// A repository lock this git holds: passed to every git it runs, so that a git left running
    /// by a killed runner keeps the lock until it is done, and the next runner waits for it.
    var heldLock: Int32?

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

    @discardableResult
    func run(_ args: [String]) async -> Exec.Result {
        await Exec.run(["git"] + args, in: directory, environment: environment, keep: heldLock)
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

    /// The repository's shared git directory (the same from every worktree).
    func commonDirectory() async -> String {
        (try? await output(["rev-parse", "--path-format=absolute", "--git-common-dir"])) ?? directory + "/.git"
    }

    /// Runs `body` holding the repository's worktree lock: git is not safe with two `worktree add`
    /// (or prune, or remove) at once — one reads the other's half-made entry and fails.
    func withWorktreeLock<T>(_ body: (Git) async throws(StageError) -> T) async throws(StageError) -> T {
        let lock = try await RepositoryLock.acquire(await commonDirectory() + "/amplify-worktrees.lock")
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
}

/// A stage's failure with its message.
struct StageError: Error, Sendable {
    var message: String
    var kind: FailureKind = .failed
    init(_ message: String, kind: FailureKind = .failed) {
        self.message = message
        self.kind = kind
    }

    var result: StageResult { kind == .failed ? .failed(message) : .failedAs(kind, message) }
}

/// Waiting for a file in a directory to change or a process to end, on a thread of its own
/// (never on the concurrency pool's few threads): inotify where it works, else a poll.
enum FileWatch {
    /// Returns when the directory watched by `watch` changes, `pidfd` becomes readable (the process
    /// ended), or `timeout` passes.
    static func wait(watch: Int32, pidfd: Int32, timeout: Duration) async {
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            detachThread {
                var fds: [Int32] = []
                if watch >= 0 { fds.append(watch) }
                if pidfd >= 0 { fds.append(pidfd) }
                _ = amplify_wait_readable(fds, Int32(fds.count), ms, watch)
                c.resume()
            }
        }
    }
}
