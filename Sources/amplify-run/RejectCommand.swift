import ArgumentParser

/// `reject SESSION-ID`: the session's item ends rejected; its branch is kept.
struct RejectCommand: ContextualCommand {
    static let configuration = CommandConfiguration(commandName: "reject", abstract: "Reject a session: its item ends rejected; its branch is kept.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The session id.", valueName: "SESSION-ID"))
    var sessionId: String

    @Option(help: ArgumentHelp("Why, kept with the decision.", valueName: "TEXT"))
    var reason: String?

    func run(_ context: CommandContext) async throws {
        try SessionDecision.record(sessionId, approved: false, text: reason, in: context)
    }
}
