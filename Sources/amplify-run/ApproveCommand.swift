import ArgumentParser

/// `approve SESSION-ID`: the session's branch goes on to merge.
struct ApproveCommand: ContextualCommand {
    static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve a session: its branch goes on to merge.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The session id.", valueName: "SESSION-ID"))
    var sessionId: String

    @Option(help: ArgumentHelp("A summary kept with the decision.", valueName: "TEXT"))
    var summary: String?

    func run(_ context: CommandContext) async throws {
        try SessionDecision.record(sessionId, approved: true, text: summary, in: context)
    }
}
