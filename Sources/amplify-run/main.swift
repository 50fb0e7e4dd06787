import AmplifyEngine
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// Entry point: parses the command line, acts in `-C DIR` (the parser's value), makes the
/// command's context and runs it; maps swift-argument-parser's usage errors (64) to exit code 2.
// A line at a time even in a pipe: a runner killed mid-run must not lose what it printed.
Processes.lineBufferStandardOutput()
// A parent may have blocked them (test harnesses do); Ctrl-C and `cancel` must still reach us.
Processes.unblockRunnerSignals()

let arguments = Array(CommandLine.arguments.dropFirst())
let standardError = OutputWriter.standardError

/// The command line parsed. On a usage error, a word close to a subcommand's name is named as
/// a misspelt subcommand when the parser takes the command line with it corrected and no file by
/// that name exists (`validat a.yaml` fails as `run` with two files).
func parse(_ arguments: [String]) throws -> ParsableCommand {
    do {
        return try AmplifyRun.parseAsRoot(arguments)
    } catch {
        for (i, word) in arguments.prefix(while: { $0 != "--" }).enumerated() {
            guard let meant = AmplifyRun.subcommandClose(to: word) else { continue }
            var corrected = arguments
            corrected[i] = meant
            guard let command = try? AmplifyRun.parseAsRoot(corrected) as? any ContextualCommand,
                  type(of: command).configuration.commandName == meant,
                  AmplifyRun.misspeltSubcommand(word, in: command.global.directory ?? ".") != nil else { continue }
            standardError.line("amplify-run: error: unknown command '\(word)'; did you mean '\(meant)'? (and no file named '\(word)' exists)")
            exit(2)
        }
        throw error
    }
}

do {
    let parsed = try parse(arguments)
    guard let command = parsed as? any ContextualCommand else {
        // The parser's own `help` (also what `--help` parses to) prints and exits.
        var own = parsed
        try own.run()
        exit(0)
    }
    if let directory = command.global.directory, chdir(directory) != 0 {
        standardError.line("amplify-run: error: -C \(directory): \(String(cString: strerror(errno)))")
        exit(2)
    }
    try await command.run(CommandContext.standard())
    exit(0)
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    let status = AmplifyRun.exitCode(for: error)
    let message = AmplifyRun.fullMessage(for: error)
    if status == .success {
        print(message)
        exit(0)
    }
    if !message.isEmpty { standardError.line(message) }
    exit(status == .validationFailure ? 2 : status.rawValue)
}
