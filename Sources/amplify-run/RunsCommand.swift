import AmplifyEngine
import AmplifyWorkflow
import ArgumentParser

/// `runs`: every run of every state directory the repository's workflows name, newest last.
struct RunsCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the runs in the state directory, newest last."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the list as JSON.")
    var json = false

    func run(_ context: CommandContext) async throws {
        guard let states = StateDirectories.find(from: context.directory) else { throw ExitCode(4) }
        var rows: [Value] = []
        for (store, id) in states.runs {
            guard let s = store.summary(of: id) else { continue }
            let state: String
            if let o = s.outcome { state = o == .cancelled ? "cancelled" : "finished (\(o.rawValue))" }
            else if RunLock.isHeld(path: store.lock(of: id)) { state = "running" }
            else { state = "interrupted" }
            var o = OrderedObject()
            o["run"] = .string(id)
            o["workflow"] = .string(s.workflow)
            o["started"] = .string(Timestamp.iso8601(milliseconds: s.startedAt))
            o["state"] = .string(state)
            rows.append(.object(o))
            if !json { context.out.line("\(id)  \(s.workflow.visible)  \(state)") }
        }
        if json { context.out.line(Value.list(rows).prettyJSON) }
    }
}
