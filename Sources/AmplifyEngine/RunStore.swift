import AmplifyWorkflow
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The state directory: `<state>/runs/<run-id>/` with `workflow.yaml` (the copy the run
/// started with), `journal.jsonl`, `lock`, and `logs/` and `outputs/` of its instances.
public struct RunStore: Sendable {
    public let root: String
    /// Numbers the temp files of `writeAtomically` within this process.
    private static let temporaries = Atomic<Int>(0)

    public init(root: String) {
        self.root = root
    }

    public var runsDirectory: String { root + "/runs" }
    /// Locks that span runs: a workflow's runner, the making of a new run.
    public var locksDirectory: String { root + "/locks" }

    public func directory(of run: String) -> String { runsDirectory + "/" + run }
    public func journal(of run: String) -> String { directory(of: run) + "/journal.jsonl" }
    public func lock(of run: String) -> String { directory(of: run) + "/lock" }
    public func workflowCopy(of run: String) -> String { directory(of: run) + "/workflow.yaml" }
    /// Written by `amplify-run cancel` (its reason) before it signals the runner.
    public func cancelRequest(of run: String) -> String { directory(of: run) + "/cancel-requested" }

    /// Held by the runner of a workflow for as long as it runs (named by a hash of the workflow's path).
    public func workflowLock(_ workflowPath: String) -> String {
        locksDirectory + "/workflow-" + RunLock.hashedName(workflowPath) + ".lock"
    }

    /// A new run id: sortable by start time, unique.
    public static func newRunId(now: Int64) -> String {
        let random = UInt32.random(in: 0...UInt32.max)
        let ms = String(now % 1000)
        let suffix = String(random % 0x10000, radix: 16)
        return Timestamp.compact(milliseconds: now).dropLast() + String(repeating: "0", count: 3 - ms.count) + ms + "Z-" + String(repeating: "0", count: 4 - suffix.count) + suffix
    }

    /// Creates a new run and returns its id. No two runs of one state directory share their
    /// start second, which names their sessions and worktrees (`<item>-<YYYYMMDDTHHMMSSZ>`): two
    /// runners started in the same second must never share an item's worktree. One creator at
    /// a time (a lock in `locks/`); a second already taken moves the new run to the next free one.
    public func createNewRun(now: Int64) throws(JournalError) -> String {
        for dir in [root, runsDirectory, locksDirectory] where mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw JournalError("cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        let lockPath = locksDirectory + "/new-run.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw JournalError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        defer { flock(fd, LOCK_UN) }
        let taken = Set(entries().map { $0.prefix(15) })
        var at = now
        while taken.contains(RunStore.newRunId(now: at).prefix(15)) { at += 1000 }
        let id = RunStore.newRunId(now: at)
        try create(run: id)
        return id
    }

    /// Every name in `runs/` but dot files: runs, including one whose journal is not written yet.
    private func entries() -> [String] { RunStore.names(in: runsDirectory) }

    /// The names in a directory of the state directory, dot files left out; none if it is not there.
    public static func names(in directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names
    }

    /// Creates the directories of a new run (mode 0700).
    public func create(run: String) throws(JournalError) {
        for dir in [root, runsDirectory, directory(of: run), directory(of: run) + "/logs", directory(of: run) + "/outputs"] {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST {
                throw JournalError("cannot create \(dir): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Run ids, oldest first.
    public func runIds() -> [String] {
        entries().filter { access(journal(of: $0), F_OK) == 0 }.sorted()
    }

    /// What `runs` and resume need to know of a run without replaying it all.
    public struct Summary: Sendable {
        public var id: String
        public var workflow: String
        public var name: String
        public var vars: OrderedObject
        public var startedAt: Int64
        public var outcome: RunOutcome?
    }

    /// The first and last events of a run's journal.
    public func summary(of run: String) -> Summary? {
        let path = journal(of: run)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 65536)
        let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0, let newline = head[..<n].firstIndex(of: 0x0A),
              let first = try? JSONParser.parse(bytes: Array(head[..<newline])),
              case .runStarted(_, let workflow, let name, let vars)? = RunEvent(first),
              case .string(let at)? = first["at"], let startedAt = Timestamp.parse(at) else { return nil }
        return Summary(id: run, workflow: workflow, name: name, vars: vars, startedAt: startedAt, outcome: RunStore.outcome(fd: fd))
    }

    /// How the run ended: its last event is `run-finished`, or followed only by the `notified`
    /// events of deliveries its runner finished before it left. Read from the end, a window that
    /// grows while it holds only `notified` lines.
    static func outcome(fd: Int32) -> RunOutcome? {
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        var window = 4096
        while true {
            let start = max(0, size - window)
            var tail = [UInt8](repeating: 0, count: size - start)
            let m = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
            guard m > 0 else { return nil }
            var lines = tail[..<m].split(separator: 0x0A)
            // A torn last line, and a first one the window cut, are not whole.
            if tail[m - 1] != 0x0A { lines.removeLast() }
            if start > 0, !lines.isEmpty { lines.removeFirst() }
            for line in lines.reversed() {
                guard let event = (try? JSONParser.parse(bytes: Array(line))).flatMap(RunEvent.init) else { return nil }
                switch event {
                case .notified: continue
                case .runFinished(let o): return o
                default: return nil
                }
            }
            guard start > 0 else { return nil }
            window *= 4
        }
    }

    /// The newest run that has not finished, of any workflow.
    public func newestUnfinished() -> Summary? {
        for id in runIds().reversed() {
            if let s = summary(of: id), s.outcome == nil { return s }
        }
        return nil
    }

    /// The newest run of a workflow that has not finished.
    public func newestUnfinished(workflow: String) -> Summary? {
        for id in runIds().reversed() {
            guard let s = summary(of: id), s.workflow == workflow else { continue }
            return s.outcome == nil ? s : nil
        }
        return nil
    }

    /// Writes a file atomically: temp file, fsync, rename, fsync the directory. Writers of one
    /// file at once each have a temp file of their own (`.tmp-<pid>-<n>`): with the pid alone, two
    /// dispatches writing the Slurm job script renamed one temp file, and the second failed.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(JournalError) {
        let tmp = path + ".tmp-\(getpid())-\(temporaries.wrappingAdd(1, ordering: .relaxed).newValue)"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw JournalError("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        var rest = bytes[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let reason = String(cString: strerror(errno))
                close(fd); unlink(tmp)
                throw JournalError("cannot write \(tmp): \(reason)")
            }
            rest = rest.dropFirst(n)
        }
        guard fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd); unlink(tmp)
            throw JournalError("cannot sync \(tmp): \(reason)")
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw JournalError("cannot rename \(tmp): \(reason)")
        }
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
