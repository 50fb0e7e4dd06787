/// Where a run's progress is shown: the terminal view, a line per event, or JSON.
public protocol RunObserver: Sendable {
    /// The first thing said: a new run, or which run is resumed (and from what).
    func begin(run: String, resumed: Bool, notes: [String])
    /// Each event once it is in the journal, with the state after it.
    func record(_ entry: JournalEntry, line: String, state: RunStateMachine)
    /// The run stopped: finished, or interrupted by a signal.
    func end(state: RunStateMachine, exitCode: Int32)
}
