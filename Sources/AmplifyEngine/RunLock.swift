#if canImport(Glibc)
import Glibc
#endif

/// One live runner per run: an advisory `flock` on `<run>/lock`, which the kernel releases when
/// the holder dies (even by SIGKILL). The file holds the holder's pid so a second runner can
/// name it. Opened with O_CLOEXEC so no child process keeps the run locked after the runner dies.
public final class RunLock {
    public let path: String
    private let fd: Int32

    /// The lock is held by another process.
    public struct Held: Error, Sendable, CustomStringConvertible {
        public var pid: Int32?
        public var path: String
        public var description: String {
            "another runner (pid \(pid.map(String.init) ?? "unknown")) holds this run (\(path))"
        }
    }

    /// Takes the lock without waiting, or throws `Held` naming the holder.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError("cannot open the lock \(path): \(String(cString: strerror(errno)))") }
        // A runner killed while it was starting a child leaves the lock, for a moment, with that
        // child (between its clone and its exec, it has a copy of every descriptor). When the
        // pid in the file is gone, wait a little for the lock to be let go.
        var tries = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = RunLock.holder(path: path)
            if tries < 150, let holder, holder != getpid(), !Processes.isRunning(holder) {
                tries += 1
                usleep(20_000)
                continue
            }
            close(fd)
            throw Held(pid: holder, path: path)
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// The pid written in a lock file.
    public static func holder(path: String) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[..<n], as: UTF8.self).filter(\.isNumber))
    }

    /// A stable file name part for the lock of `s` (a path): FNV-1a, 16 hex digits, so that two
    /// paths never share a lock by accident of their spelling.
    public static func hashedName(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Whether some live process holds the lock now (for `status`), without taking it for long.
    public static func isHeld(path: String) -> Bool {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return true
    }
}
