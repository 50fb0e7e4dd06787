import AmplifyWorkflow
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// The root command: `run` is the default, so `amplify-run FILE` runs FILE.
struct AmplifyRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amplify-run",
        abstract: "Run orchestration workflows of AI coding agents: a DAG of stages, checkpointed to disk, resumable after any interruption.",
        version: "0.1.0",
        subcommands: [RunCommand.self, ValidateCommand.self, PlanCommand.self, StatusCommand.self, RunsCommand.self, LogsCommand.self, AnswerCommand.self, ApproveCommand.self, RejectCommand.self, CancelCommand.self, ReleaseCommand.self, SchemaCommand.self, DemoCommand.self, ServeCommand.self],
        defaultSubcommand: RunCommand.self
    )

    /// Declared on the root as well as on each subcommand, so that `-C DIR` parses before the
    /// subcommand's name too (the parser gives the value to the subcommand's own `global`).
    @OptionGroup var global: GlobalOptions

    static var subcommandNames: [String] {
        configuration.subcommands.compactMap { $0.configuration.commandName }
    }

    /// The subcommand `word` was probably meant to be, when it is not one, names no file in
    /// `directory` and looks like no file name: `amplify-run validat a.yaml` would otherwise be
    /// taken as `run` of the file `validat`.
    static func misspeltSubcommand(_ word: String, in directory: String) -> String? {
        guard let meant = subcommandClose(to: word) else { return nil }
        return access(directory + "/" + word, F_OK) == 0 ? nil : meant
    }

    /// The subcommand name closest to `word`, when `word` is none and looks like no file name.
    static func subcommandClose(to word: String) -> String? {
        guard !word.hasPrefix("-"), !word.contains("."), !word.contains("/"), !subcommandNames.contains(word) else { return nil }
        return DidYouMean.closest(to: word, in: subcommandNames)
    }
}
