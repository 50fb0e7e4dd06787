import AmplifyEngine
import AmplifyStages
import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `logs SESSION-ID [-f]`: a session's output.log, live or archived.
struct LogsCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a session's output.log (the agent's stdout and stderr)."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The session id (shown by `status`).", valueName: "SESSION-ID"))
    var sessionId: String

    @Flag(name: [.short, .long], help: "Keep printing what the agent writes until its session is archived (Ctrl-C to stop).")
    var follow = false

    func run(_ context: CommandContext) async throws {
        let (session, _, directory) = try SessionLocator.find(sessionId, archived: true, in: context)
        let path = directory + "/output.log"
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            context.error("cannot read \(path): \(String(cString: strerror(errno)))")
            throw ExitCode(4)
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 {
                context.out.write(Array(buffer[..<n]))
                continue
            }
            guard follow, FileManager.default.fileExists(atPath: session.directory) else { return }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
