import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser

/// `release ITEM…`: items that runs claimed and did not finish, open again in their tracker.
struct ReleaseCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Give back items that runs claimed and did not finish: set them open again in the tracker that claimed them.",
        discussion: "The tracker (bd, or the issues file) is the one the claiming run used, from the runner's record of its claims. An item whose claiming run is still running is refused: cancel that run first. `cancel` never releases claims: a person decides."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The items to release.", valueName: "ITEM-ID"))
    var items: [String]

    func validate() throws {
        guard !items.isEmpty else { throw ValidationError("name at least one item id") }
        for id in items where !QueryReadyExecutor.isValidId(id) {
            throw ValidationError("'\(id)' is not an item id (letters, digits, '.', '_', '-')")
        }
    }

    func run(_ context: CommandContext) async throws {
        guard let states = StateDirectories.find(from: context.directory) else { throw ExitCode(4) }
        // The claims of every state directory, each with the store of the runs that made them.
        let stores = states.stores.map { (store: $0, claims: Claims(stateDirectory: $0.root)) }
        let all = stores.flatMap { s in s.claims.all().map { (store: s.store, claim: $0) } }
        var failed = false
        for id in items {
            let mine = all.filter { $0.claim.item == id }
            guard let claim = mine.last?.claim else {
                context.error("no run in \(states.description) claimed \(id)\(DidYouMean.hint(id, Array(Set(all.map(\.claim.item))).sorted()))")
                failed = true
                continue
            }
            // A run that has not finished — running, or interrupted and resumable — still has the
            // item's pipeline ahead of it: giving its claim back would let another run take it too.
            if let unfinished = mine.first(where: { $0.store.summary(of: $0.claim.run).map { $0.outcome == nil } ?? false }) {
                let running = RunLock.isHeld(path: unfinished.store.lock(of: unfinished.claim.run))
                context.error("\(id) is claimed by run \(unfinished.claim.run), which \(running ? "is still running" : "was interrupted and would go on with it when resumed"); `amplify-run cancel \(unfinished.claim.run)` first")
                failed = true
                continue
            }
            switch await Tracker.release(id, claim: claim, repository: states.repository, environment: context.environment) {
            case .success(let said):
                for s in stores { s.claims.forget(item: id) }
                context.out.line("released \(id): \(said)")
            case .failure(let error):
                context.error("cannot release \(id): \(error.message)")
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}
