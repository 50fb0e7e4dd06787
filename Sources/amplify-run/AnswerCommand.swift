import AmplifyEngine
import AmplifyStages
import ArgumentParser

/// `answer SESSION-ID QUESTION-ID ANSWER`: appends to the session's answers.json.
struct AnswerCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "answer",
        abstract: "Answer a session's question (appends to its answers.json; an agent that stopped for it is resumed)."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The session id.", valueName: "SESSION-ID"))
    var sessionId: String

    @Argument(help: ArgumentHelp("The question's id (from questions.json, shown by `status`).", valueName: "QUESTION-ID"))
    var questionId: String

    @Argument(help: ArgumentHelp("The answer.", valueName: "ANSWER"))
    var answer: String

    @Option(help: ArgumentHelp("More context for the agent.", valueName: "TEXT"))
    var context: String?

    func run(_ context: CommandContext) async throws {
        let session = try SessionLocator.live(sessionId, in: context)
        var warnings: [String] = []
        let questions = session.questions(warnings: &warnings)
        guard questions.contains(where: { $0.id == questionId }) else {
            context.error("session \(sessionId) has no question '\(questionId)'\(questions.isEmpty ? " (it asked none)" : " (its questions: \(questions.map(\.id).joined(separator: ", ")))")")
            throw ExitCode(2)
        }
        do { try session.appendAnswer(questionId: questionId, answer: answer, context: self.context) } catch {
            try SessionLocator.archivedMeanwhile(session, in: context)
            context.error("\(error)")
            throw ExitCode(4)
        }
        context.out.line("answered \(questionId) of session \(sessionId)")
    }
}
