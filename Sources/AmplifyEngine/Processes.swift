import CAmplifySystem
#if canImport(Glibc)
import Glibc
#endif

/// Facts about processes from /proc, and signalling process groups.
public enum Processes {
    /// Field 22 of /proc/<pid>/stat, the start time in clock ticks since boot, with the state
    /// (field 3). `(comm)` may hold spaces and ')': fields are counted from the last ')'.
    public static func stat(_ pid: Int32) -> (startTime: UInt64, state: Character)? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let close = buffer[..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 1)..<n].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, let state = fields.first.flatMap({ String(decoding: $0, as: UTF8.self).first }),
              let start = UInt64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        return (start, state)
    }

    /// The start time of a live process, or nil.
    public static func startTime(_ pid: Int32) -> UInt64? { stat(pid)?.startTime }

    /// Whether `pid` is still the process that started at `startTime` and is not a zombie.
    public static func isAlive(pid: Int32, startTime: UInt64) -> Bool {
        guard pid > 0, let s = stat(pid) else { return false }
        return s.startTime == startTime && s.state != "Z" && s.state != "X"
    }

    /// Sends a signal to a whole process group (the group id is the leader's pid).
    /// Process-group leaders (not zombies) whose environment holds every one of `entries`
    /// (`NAME=value`): how a runner finds an agent it started but died before recording.
    public static func groupLeaders(withEnvironment entries: [String]) -> [(pid: Int32, startTime: UInt64)] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        let wanted = entries.map { Array($0.utf8) }
        var found: [(Int32, UInt64)] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name), pid != getpid(), getpgid(pid) == pid, let s = stat(pid), s.state != "Z" else { continue }
            let fd = open("/proc/\(pid)/environ", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 || bytes.count > 1 << 20 { break }
                bytes += buffer[..<n]
            }
            close(fd)
            let vars = bytes.split(separator: 0)
            if wanted.allSatisfy({ w in vars.contains { $0.elementsEqual(w) } }) { found.append((pid, s.startTime)) }
        }
        return found
    }

    /// Whether a process with this pid exists and is not a zombie.
    public static func isRunning(_ pid: Int32) -> Bool {
        guard let s = stat(pid) else { return false }
        return s.state != "Z" && s.state != "X"
    }

    public static func signalGroup(_ pgid: Int32, _ signal: Int32) {
        guard pgid > 1 else { return }
        _ = kill(-pgid, signal)
    }

    /// Whether any process of the group is still there.
    public static func groupExists(_ pgid: Int32) -> Bool {
        pgid > 1 && kill(-pgid, 0) == 0
    }

    /// Makes stdout line-buffered, so a runner killed mid-run has shown every line it printed.
    public static func lineBufferStandardOutput() {
        amplify_line_buffer_stdout()
    }

    /// Unblocks the signals the runner handles (call on the main thread, before other threads start).
    public static func unblockRunnerSignals() {
        amplify_unblock_signals()
    }

    /// Milliseconds since 1970.
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A detached thread of its own (for blocking waits that must not hold a concurrency-pool
/// thread), without Foundation's `Thread`.
public func detachThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {  // handed to exactly one thread
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attributes, 256 << 10)
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    pthread_attr_destroy(&attributes)
    if rc != 0 {
        // No thread to be had: run it here rather than lose it.
        Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body()
    }
}

/// Runs `body(0..<count)` on `count` threads (the caller's among them) and returns when all are
/// done. Plain threads: Dispatch's `concurrentPerform`, called from a Swift concurrency job, ran
/// every piece on one core.
public func parallelFor(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    guard count > 1 else { if count == 1 { body(0) }; return }
    final class Box: @unchecked Sendable {  // each read by exactly one thread
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }
    var threads: [pthread_t] = []
    for k in 1..<count {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body, k)).toOpaque()
        if pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body(box.index)
            return nil
        }, box) == 0 {
            threads.append(thread)
        } else {
            Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body(k)
        }
    }
    body(0)
    for t in threads { pthread_join(t, nil) }
}
