import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Signal handlers as dispatch sources, made outside any actor (a handler made in main-actor
/// code asserted on the wrong queue when the signal came). The default action is ignored
/// while the trap is set; a second signal of the same kind exits at once.
public final class SignalTrap: @unchecked Sendable {  // dispatch sources are thread-safe
    private let sources: [DispatchSourceSignal]

    public nonisolated init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        let queue = DispatchQueue(label: "amplify-run.signals")
        sources = signals.map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            nonisolated(unsafe) var seen = false
            source.setEventHandler {
                if seen && signalNumber != SIGUSR1 { exit(128 + signalNumber) }
                seen = true
                handler(signalNumber)
            }
            source.resume()
            return source
        }
    }

    public func cancel() {
        for s in sources { s.cancel() }
    }
}
