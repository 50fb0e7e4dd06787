import AmplifyEngine
import CAmplifySystem
#if canImport(Glibc)
import Glibc
#endif

/// Waiting for a file in a directory to change or a process to end, on a thread of its own
/// (never on the concurrency pool's few threads): inotify where it works, else a poll.
public enum FileWatch {
    /// Returns when the directory watched by `watch` changes, `pidfd` becomes readable (the process
    /// ended), or `timeout` passes.
    public static func wait(watch: Int32, pidfd: Int32, timeout: Duration) async {
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
