import CAmplifySystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Starting child processes in their own session and process group, and waiting for them.
///
/// Exits are noticed by one thread that polls a pidfd per child (no `waitpid(-1)`, which would
/// steal other code's children, and no blocking call on the concurrency pool's two threads).
public enum ChildProcess {
    /// How a process ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        init(waitStatus s: Int32) {
            if s & 0x7F == 0 { self = .exited((s >> 8) & 0xFF) } else { self = .signalled(s & 0x7F) }
        }

        public var description: String {
            switch self {
            case .exited(let c): return "exited with status \(c)"
            case .signalled(let s): return "killed by signal \(s)\(s == SIGKILL ? " (SIGKILL)" : s == SIGTERM ? " (SIGTERM)" : "")"
            }
        }
    }

    public struct SpawnError: Error, Sendable, CustomStringConvertible {
        public var program: String
        public var reason: String
        public var description: String { "cannot start '\(program)': \(reason)" }
    }

    /// Where a child's stdout or stderr goes.
    public enum Output: Sendable {
        /// Appended to a file.
        case file(String)
        /// A descriptor the caller owns (a memory file, say); it stays open.
        case descriptor(Int32)
    }

    /// A file in memory (no inode on disk), for capturing output; the caller closes it.
    public static func memoryFile(_ name: String) -> Int32 {
        amplify_memfd(name)
    }

    /// Starts `argv` with the environment and working directory given, stdin from /dev/null (or
    /// the descriptor `stdin`). Returns the pid, which is also the process group id. `keep` (a
    /// lock's descriptor) is passed on as descriptor 3, so the lock stays held until the child is
    /// done even if the runner dies.
    public static func spawn(_ argv: [String], environment: [String: String], directory: String?, stdin: Int32? = nil, stdout: Output?, stderr: Output?, keep: Int32? = nil) throws(SpawnError) -> Int32 {
        guard let program = argv.first, !program.isEmpty else { throw SpawnError(program: "", reason: "empty command") }
        // The program is looked up in the PATH of the environment it gets, not the runner's.
        var argv = argv
        if !program.contains("/") {
            guard let found = ChildProcess.find(program, path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin") else {
                throw SpawnError(program: program, reason: "not found in PATH (\(environment["PATH"] ?? "unset"))")
            }
            argv[0] = found
        }
        let devnull = stdin == nil ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1
        defer { if devnull >= 0 { close(devnull) } }
        let input = stdin ?? devnull
        var opened: [Int32] = []
        func descriptor(_ output: Output?) -> Int32 {
            switch output {
            case .file(let path)?:
                let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
                if fd >= 0 { opened.append(fd) }
                return fd
            case .descriptor(let fd)?: return fd
            case nil: return -1
            }
        }
        let out = descriptor(stdout)
        let err = descriptor(stderr)
        defer { opened.forEach { close($0) } }
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnv: [UnsafeMutablePointer<CChar>?] = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = cArgs.withUnsafeMutableBufferPointer { a in
            cEnv.withUnsafeMutableBufferPointer { e in
                if let directory {
                    return directory.withCString { amplify_spawn(a.baseAddress, e.baseAddress, $0, input, out, err, keep ?? -1, &pid) }
                }
                return amplify_spawn(a.baseAddress, e.baseAddress, nil, input, out, err, keep ?? -1, &pid)
            }
        }
        guard rc == 0 else { throw SpawnError(program: program, reason: String(cString: strerror(rc))) }
        return pid
    }

    /// The first executable `program` in the directories of `path`.
    public static func find(_ program: String, path: String) -> String? {
        for dir in path.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = "\(dir)/\(program)"
            var st = stat()
            if access(candidate, X_OK) == 0, stat(candidate, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR { return candidate }
        }
        return nil
    }

    /// Waits for a child of this process to end, without blocking a pool thread.
    public static func wait(_ pid: Int32) async -> Termination {
        await Watcher.shared.wait(pid)
    }

    /// Ends a process group whose leader started at `startTime`: SIGTERM, up to `grace` for the
    /// leader to go, then SIGKILL for whatever of the group is left. The leader is watched rather
    /// than the group: orphans that PID 1 never reaps stay zombies, and a zombie still counts as
    /// a member of its group.
    public static func terminateGroup(_ pgid: Int32, startTime: UInt64, grace: Duration) async {
        Processes.signalGroup(pgid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while Processes.isAlive(pid: pgid, startTime: startTime), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        Processes.signalGroup(pgid, SIGKILL)
    }
}

/// The thread that notices children's exits.
private final class Watcher: Sendable {
    static let shared = Watcher()

    private struct Entry {
        var pid: Int32
        var continuation: CheckedContinuation<ChildProcess.Termination, Never>
    }

    private struct State {
        var entries: [Int32: Entry] = [:]
        var started = false
    }

    private let state = Mutex(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private init() {
        var fds: [Int32] = [0, 0]
        amplify_pipe_cloexec_nonblock(&fds)
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    func wait(_ pid: Int32) async -> ChildProcess.Termination {
        let pidfd = amplify_pidfd_open(pid)
        if pidfd < 0 {
            // No pidfd (an old kernel): a thread of its own blocks in waitpid.
            return await withCheckedContinuation { c in
                detachThread {
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    c.resume(returning: ChildProcess.Termination(waitStatus: status))
                }
            }
        }
        return await withCheckedContinuation { c in
            let start = state.withLock { s -> Bool in
                s.entries[pidfd] = Entry(pid: pid, continuation: c)
                defer { s.started = true }
                return !s.started
            }
            if start { detachThread { [self] in loop() } }
            var b: UInt8 = 1
            _ = write(wakeWrite, &b, 1)
        }
    }

    private func loop() {
        while true {
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            fds += state.withLock { s in s.entries.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) } }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 { continue }
            if fds[0].revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &buffer, buffer.count) > 0 {}
            }
            for f in fds.dropFirst() where f.revents != 0 {
                guard let entry = state.withLock({ $0.entries[f.fd] }) else { continue }
                var status: Int32 = 0
                let r = waitpid(entry.pid, &status, WNOHANG)
                guard r == entry.pid || (r < 0 && errno == ECHILD) else { continue }
                state.withLock { _ = $0.entries.removeValue(forKey: f.fd) }
                close(f.fd)
                entry.continuation.resume(returning: r < 0 ? .exited(255) : ChildProcess.Termination(waitStatus: status))
            }
        }
    }
}
