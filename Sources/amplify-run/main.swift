import AmplifyEngine
import AmplifyWorkflow
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// Entry point: applies `-C DIR` (anywhere before `--`), catches misspelt subcommands, and maps
/// swift-argument-parser's usage errors (64) to exit code 2.
// A line at a time even in a pipe: a runner killed mid-run must not lose what it printed.
Processes.lineBufferStandardOutput()
// A parent may have blocked them (test harnesses do); Ctrl-C and `cancel` must still reach us.
Processes.unblockRunnerSignals()

var arguments = Array(CommandLine.arguments.dropFirst())
var directory: String?
var index = 0
while index < arguments.count, arguments[index] != "--" {
    let a = arguments[index]
    if a == "-C" || a == "--directory" {
        guard index + 1 < arguments.count else {
            Terminal.err("amplify-run: error: -C needs a directory")
            exit(2)
        }
        directory = arguments[index + 1]
        arguments.removeSubrange(index...(index + 1))
    } else if a.hasPrefix("-C"), a.count > 2 {
        directory = String(a.dropFirst(2))
        arguments.remove(at: index)
    } else {
        index += 1
    }
}
if let directory, chdir(directory) != 0 {
    Terminal.err("amplify-run: error: -C \(directory): \(String(cString: strerror(errno)))")
    exit(2)
}

// `amplify-run validat a.yaml` would otherwise be taken as `run` with two files.
if let first = arguments.first, !first.hasPrefix("-"), !AmplifyRun.subcommandNames.contains(first), access(first, F_OK) != 0,
   let meant = DidYouMean.closest(to: first, in: AmplifyRun.subcommandNames), !first.contains("."), !first.contains("/") {
    Terminal.err("amplify-run: error: unknown command '\(first)'; did you mean '\(meant)'? (and no file named '\(first)' exists)")
    exit(2)
}

/// Runs the parsed command, awaiting it when it is asynchronous (`run`).
func execute(_ command: ParsableCommand) async throws {
    if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        var command = command
        try command.run()
    }
}

do {
    try await execute(try AmplifyRun.parseAsRoot(arguments))
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
    if !message.isEmpty { Terminal.err(message) }
    exit(status == .validationFailure ? 2 : status.rawValue)
}
