import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser

struct ReleaseCommand: AsyncParsableCommand {
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

    func run() async throws {
        guard let (store, repository) = RunReader.store() else { throw ExitCode(4) }
        let claims = Claims(stateDirectory: store.root)
        let all = claims.all()
        var failed = false
        for id in items {
            let mine = all.filter { $0.item == id }
            guard let claim = mine.last else {
                Terminal.err("amplify-run: error: no run in \(store.root) claimed \(id)\(DidYouMean.hint(id, Array(Set(all.map(\.item))).sorted()))")
                failed = true
                continue
            }
            if let live = mine.first(where: { RunLock.isHeld(path: store.lock(of: $0.run)) }) {
                Terminal.err("amplify-run: error: \(id) is claimed by run \(live.run), which is still running; `amplify-run cancel \(live.run)` first")
                failed = true
                continue
            }
            switch await Tracker.release(id, claim: claim, repository: repository, environment: RunCommand.environment()) {
            case .success(let said):
                claims.forget(item: id)
                print("released \(id): \(said)")
            case .failure(let error):
                Terminal.err("amplify-run: error: cannot release \(id): \(error.message)")
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}
