import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Finding a session by the id a user typed (`status` and the run's output show them).
enum SessionLocator {
    /// The session, and its run's directory store; live sessions first, then archived ones when allowed.
    static func find(_ id: String, archived: Bool) throws -> (SessionFiles, RunStore, directory: String) {
        guard SessionFiles.isValidId(id) else {
            Terminal.err("amplify-run: error: '\(id)' is not a session id (they look like ITEM-20261124T101500Z)")
            throw ExitCode(2)
        }
        guard let (store, _) = RunReader.store() else { throw ExitCode(4) }
        let state = store.root
        let session = SessionFiles(stateDirectory: state, id: id)
        func isDirectory(_ path: String) -> Bool {
            var st = stat()
            return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }
        if isDirectory(session.directory) { return (session, store, session.directory) }
        if archived, isDirectory(session.archived) { return (session, store, session.archived) }
        let known = (try? FileManager.default.contentsOfDirectory(atPath: SessionFiles.sessionsDirectory(state)))?.filter { !$0.hasSuffix(".json") } ?? []
        Terminal.err("amplify-run: error: no \(archived ? "" : "live ")session '\(id)' in \(SessionFiles.sessionsDirectory(state))\(DidYouMean.hint(id, known))")
        throw ExitCode(2)
    }

    /// The session was archived while we wrote to it (its item ended): say so, exit 2.
    static func archivedMeanwhile(_ session: SessionFiles) throws {
        guard FileManager.default.fileExists(atPath: session.archived) else { return }
        Terminal.err("amplify-run: error: no live session '\(session.id)': it has just been archived (its item has ended)")
        throw ExitCode(2)
    }

    /// A session a user may still act on: its run has not finished.
    static func live(_ id: String) throws -> SessionFiles {
        let (session, store, _) = try find(id, archived: false)
        guard let record = session.readRecord() else {
            try archivedMeanwhile(session)
            Terminal.err("amplify-run: error: session \(id) has no record of its run (\(session.recordPath))")
            throw ExitCode(4)
        }
        if let outcome = store.summary(of: record.run)?.outcome {
            Terminal.err("amplify-run: error: the run of session \(id) (\(record.run)) has finished (\(outcome.rawValue)); its sessions take no more answers or decisions")
            throw ExitCode(2)
        }
        return session
    }
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a session's output.log (the agent's stdout and stderr)."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The session id (shown by `status`).", valueName: "SESSION-ID"))
    var sessionId: String

    @Flag(name: [.short, .long], help: "Keep printing what the agent writes until its session is archived (Ctrl-C to stop).")
    var follow = false

    func run() async throws {
        let (session, _, directory) = try SessionLocator.find(sessionId, archived: true)
        let path = directory + "/output.log"
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            Terminal.err("amplify-run: error: cannot read \(path): \(String(cString: strerror(errno)))")
            throw ExitCode(4)
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 {
                _ = buffer.withUnsafeBytes { write(1, $0.baseAddress, n) }
                continue
            }
            guard follow, FileManager.default.fileExists(atPath: session.directory) else { return }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}

struct AnswerCommand: ParsableCommand {
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

    func run() throws {
        let session = try SessionLocator.live(sessionId)
        var warnings: [String] = []
        let questions = session.questions(warnings: &warnings)
        guard questions.contains(where: { $0.id == questionId }) else {
            Terminal.err("amplify-run: error: session \(sessionId) has no question '\(questionId)'\(questions.isEmpty ? " (it asked none)" : " (its questions: \(questions.map(\.id).joined(separator: ", ")))")")
            throw ExitCode(2)
        }
        do { try session.appendAnswer(questionId: questionId, answer: answer, context: context) } catch {
            try SessionLocator.archivedMeanwhile(session)
            Terminal.err("amplify-run: error: \(error)")
            throw ExitCode(4)
        }
        print("answered \(questionId) of session \(sessionId)")
    }
}

/// `approve` and `reject`: `decision.json`, created exclusively, so the first decision stands.
enum DecisionCommand {
    static func decide(_ sessionId: String, approved: Bool, text: String?) throws {
        let session = try SessionLocator.live(sessionId)
        let made: Bool
        do { made = try session.writeDecision(approved: approved, text: text) } catch {
            try SessionLocator.archivedMeanwhile(session)
            Terminal.err("amplify-run: error: \(error)")
            throw ExitCode(4)
        }
        guard made else {
            let existing = (try? SessionFiles.readJSON(session.path("decision.json")))?["decision"]?.renderedText ?? "a decision"
            Terminal.err("amplify-run: error: session \(sessionId) already has a decision (\(existing)); the first one stands")
            throw ExitCode(2)
        }
        print("\(approved ? "approved" : "rejected") session \(sessionId)")
    }
}

struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve a session: its branch goes on to merge.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The session id.", valueName: "SESSION-ID"))
    var sessionId: String

    @Option(help: ArgumentHelp("A summary kept with the decision.", valueName: "TEXT"))
    var summary: String?

    func run() throws { try DecisionCommand.decide(sessionId, approved: true, text: summary) }
}

struct RejectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reject", abstract: "Reject a session: its item ends rejected; its branch is kept.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The session id.", valueName: "SESSION-ID"))
    var sessionId: String

    @Option(help: ArgumentHelp("Why, kept with the decision.", valueName: "TEXT"))
    var reason: String?

    func run() throws { try DecisionCommand.decide(sessionId, approved: false, text: reason) }
}
