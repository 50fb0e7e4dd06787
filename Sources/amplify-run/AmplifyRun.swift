import ArgumentParser

/// The root command: `run` is the default, so `amplify-run FILE` runs FILE.
struct AmplifyRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amplify-run",
        abstract: "Run orchestration workflows of AI coding agents: a DAG of stages, checkpointed to disk, resumable after any interruption.",
        version: "0.1.0",
        subcommands: [RunCommand.self, ValidateCommand.self, PlanCommand.self, StatusCommand.self, RunsCommand.self, LogsCommand.self, AnswerCommand.self, ApproveCommand.self, RejectCommand.self, CancelCommand.self, ReleaseCommand.self, SchemaCommand.self, DemoCommand.self],
        defaultSubcommand: RunCommand.self
    )

    @OptionGroup var global: GlobalOptions

    static var subcommandNames: [String] {
        configuration.subcommands.compactMap { $0.configuration.commandName }
    }
}
