import ArgumentParser
import AmplifyEngine
#if canImport(Glibc)
import Glibc
#endif

/// What a command needs from the world it runs in, passed in rather than reached for (swiftly's
/// `SwiftlyCoreContext`): the directory it acts in, the environment its commands inherit, where
/// its output goes, whether it may redraw a terminal, and the clock. `main` makes the standard one;
/// tests make their own.
struct CommandContext: Sendable {
    /// The directory the command acts in (`-C DIR`, else where it was started): the repository is
    /// found from here.
    var directory: String
    /// The environment the runner and the commands it starts inherit.
    var environment: [String: String]
    /// Standard output.
    var out: OutputWriter
    /// Standard error: errors and notes, never data.
    var err: OutputWriter
    /// Whether the run may be shown as a live view redrawn in place (a terminal that takes it).
    var liveView: Bool
    /// Milliseconds since the epoch, as the journal counts them.
    var now: @Sendable () -> Int64

    /// The process's own: its current directory, environment, stdout and stderr, and clock.
    static func standard() -> CommandContext {
        CommandContext(directory: RepositoryLocator.currentDirectory(), environment: processEnvironment(),
                       out: .standardOutput, err: .standardError, liveView: Terminal.liveView, now: { Processes.now() })
    }

    /// The process's environment, as `environ` holds it.
    static func processEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        var e = environ
        while let p = e.pointee {
            let s = String(cString: p)
            if let eq = s.firstIndex(of: "=") { environment[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            e += 1
        }
        return environment
    }

    /// `amplify-run: error: MESSAGE` on standard error, as every command says what went wrong.
    func error(_ message: String) {
        err.line("amplify-run: error: \(message)")
    }
}

/// Where a command's output goes: bytes written in order, whole.
struct OutputWriter: Sendable {
    let write: @Sendable ([UInt8]) -> Void

    /// A line of text (the newline added).
    func line(_ text: String) {
        write(Array((text + "\n").utf8))
    }

    /// Text as it is.
    func text(_ text: String) {
        write(Array(text.utf8))
    }

    /// File descriptor 1, after whatever `print` still buffers (so the two never cross).
    static let standardOutput = OutputWriter { bytes in
        fflush(nil)
        writeWhole(bytes, to: 1)
    }

    /// File descriptor 2, unbuffered.
    static let standardError = OutputWriter { bytes in writeWhole(bytes, to: 2) }

    private static func writeWhole(_ bytes: [UInt8], to fd: Int32) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            rest = rest.dropFirst(n)
        }
    }
}

/// A subcommand that runs in a `CommandContext`: `main` parses it, makes the context from its
/// `-C`, and calls `run(_:)`; a test calls `run(_:)` with a context of its own.
protocol ContextualCommand: AsyncParsableCommand {
    var global: GlobalOptions { get }
    func run(_ context: CommandContext) async throws
}

extension ContextualCommand {
    mutating func run() async throws {
        try await run(CommandContext.standard())
    }
}
