/// What a person may be told about (`settings.notify`'s `on:`), each from what the journal
/// records (README, "Notifications").
public enum NotifyEvent: String, CaseIterable, Sendable, Hashable {
    /// A session asked a question.
    case question
    /// A session waits for a person: its agent exited with a question unanswered, or leaving the
    /// decision to a person.
    case waiting
    /// A session was approved or rejected, by anyone.
    case decision
    /// An instance failed, conflicted, timed out or went over its budget.
    case failed
    /// The run's budget is used up: nothing new is dispatched.
    case budget
    /// An agent met its provider's usage limit and is paused until it resets.
    case paused
    /// The run finished (or was cancelled).
    case runEnd = "run-end"
}

/// One target of `settings.notify`: the events it wants and where they go.
public struct NotifyTarget: Sendable, Hashable {
    /// Where a notification goes.
    public enum Destination: Sendable, Hashable {
        /// An HTTP POST of the event's JSON to this URL (it may hold `${{ env.X }}`: a secret).
        case webhook(Template)
        /// This argv, with the event's JSON on its stdin.
        case command([Template])
    }

    public var events: Set<NotifyEvent>
    public var destination: Destination
    /// How long one attempt may take.
    public var timeout: WorkflowDuration

    public static let defaultTimeout = WorkflowDuration.seconds(10)

    public init(events: Set<NotifyEvent>, destination: Destination, timeout: WorkflowDuration = NotifyTarget.defaultTimeout) {
        self.events = events
        self.destination = destination
        self.timeout = timeout
    }

    /// How messages, the journal and `status` name target `number` (1-based): `webhook #1`,
    /// `command #2` — never by its URL, which may hold a secret.
    public func name(_ number: Int) -> String {
        switch destination {
        case .webhook: return "webhook #\(number)"
        case .command: return "command #\(number)"
        }
    }

    /// The target as expressions see it (`settings.notify`): templates as written, never rendered.
    public var value: Value {
        var o = OrderedObject()
        o["on"] = .list(NotifyEvent.allCases.filter(events.contains).map { .string($0.rawValue) })
        switch destination {
        case .webhook(let url): o["webhook"] = .string(url.sourceText)
        case .command(let argv): o["command"] = .list(argv.map { .string($0.sourceText) })
        }
        o["timeout"] = .string(timeout.description)
        return .object(o)
    }
}
