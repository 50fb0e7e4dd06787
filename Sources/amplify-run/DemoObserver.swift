import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import Synchronization

/// Shows the run as usual, and answers the sessions' questions the way a user would with
/// `amplify-run answer`; keeps how each item ended, for the demo's own verdict.
final class DemoObserver: RunObserver {
    let inner: RunObserver
    let state: String
    let context: CommandContext
    private let ended = Mutex<[String: String]>([:])

    init(inner: RunObserver, state: String, context: CommandContext) {
        self.inner = inner
        self.state = state
        self.context = context
    }

    /// Each item's outcome (`merged`, `rejected`…) once the run ended.
    var outcomes: [String: String] { ended.withLock { $0 } }

    func begin(run: String, resumed: Bool, notes: [String]) { inner.begin(run: run, resumed: resumed, notes: notes) }

    func record(_ entry: JournalEntry, line: String, state machine: RunStateMachine) {
        inner.record(entry, line: line, state: machine)
        guard case .note(_, "question", let fields) = entry.event, case .string(let session)? = fields["session"],
              case .string(let qid)? = fields["id"] else { return }
        let answer: String = if case .list(let options)? = fields["options"], let first = options.first { first.renderedText } else { "yes" }
        let files = SessionFiles(stateDirectory: state, id: session)
        Task.detached { [context] in
            try? await Task.sleep(for: .seconds(1))
            context.out.line("amplify-run demo: answering as a user would: amplify-run answer \(session) \(qid) '\(answer)'")
            try? files.appendAnswer(questionId: qid, answer: answer, context: nil)
        }
    }

    func end(state machine: RunStateMachine, exitCode: Int32) {
        inner.end(state: machine, exitCode: exitCode)
        let items = RunReport(machine, now: context.now()).items
        ended.withLock { o in for r in items { o[r.item] = r.outcome } }
    }
}
