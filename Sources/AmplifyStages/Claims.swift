import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The runner's own record of the items its runs claimed in a tracker, one file per item and
/// run under `<state>/claims/`: written before the claim (write-ahead), removed when the item is
/// closed or released. It is how a run tells its own claim (an interrupted attempt of its own)
/// from another run's or a person's, how a new run finds claims earlier runs left unfinished,
/// and how `release` knows which tracker to give an item back to.
public struct Claims: Sendable {
    /// A claim: which item, by which run, in which tracker.
    public struct Entry: Sendable, Equatable {
        public var item: String
        public var run: String
        /// The tracker's `source:` name (`bd` or `file`), as `Tracker.of` reads it.
        public var source: String
        /// The issues file (absolute), for `source: file`.
        public var path: String?
    }

    public let directory: String

    public init(stateDirectory: String) {
        directory = stateDirectory + "/claims"
    }

    private func file(item: String, run: String) -> String { directory + "/" + item + "@" + run + ".json" }

    /// Written (and synced) before the tracker is asked to claim.
    func announce(_ entry: Entry) throws(StageError) {
        mkdir(directory.dropLastComponent, 0o700)
        mkdir(directory, 0o700)
        try StateDirectory.requireReal(directory)
        var o = OrderedObject()
        o["item"] = .string(entry.item)
        o["run"] = .string(entry.run)
        o["source"] = .string(entry.source)
        if let path = entry.path { o["path"] = .string(path) }
        do { try RunStore.writeAtomically(Array((Value.object(o).json + "\n").utf8), to: file(item: entry.item, run: entry.run)) } catch {
            throw StageError("cannot record the claim of \(entry.item): \(error.message)")
        }
    }

    /// This run's claim of the item, let go (its claim failed: the item is someone else's).
    func withdraw(item: String, run: String) {
        unlink(file(item: item, run: run))
    }

    /// Every run's claim of the item, let go: it was closed or released.
    public func forget(item: String) {
        for e in all() where e.item == item { unlink(file(item: e.item, run: e.run)) }
    }

    /// Every claim on record.
    public func all() -> [Entry] {
        var out: [Entry] = []
        for name in RunStore.names(in: directory) {
            guard name.hasSuffix(".json"),
                  let v = try? SessionFiles.readJSON(directory + "/" + name),
                  case .string(let item)? = v["item"], case .string(let run)? = v["run"], case .string(let source)? = v["source"] else { continue }
            var path: String?
            if case .string(let p)? = v["path"] { path = p }
            out.append(Entry(item: item, run: run, source: source, path: path))
        }
        return out.sorted { ($0.run, $0.item) < ($1.run, $1.item) }
    }

    /// Claims of runs that have finished (or are gone) without closing or releasing the item,
    /// which the tracker still shows in progress: nobody is working on them. A claim whose item
    /// a person has since reopened or closed is forgotten here.
    public func stranded(store: RunStore, repository: String, environment: [String: String]) async -> [Entry] {
        let ended = all().filter { e in
            guard let summary = store.summary(of: e.run) else { return !FileManager.default.fileExists(atPath: store.directory(of: e.run)) }
            return summary.outcome != nil
        }
        // Each tracker asked once (an issues file is read once).
        let asked = ended.prefix(50).compactMap { e in (try? Tracker.of(e).get()).map { (claim: e, tracker: $0) } }
        var answers: [Tracker: [String: String]?] = [:]
        for (_, tracker) in asked where answers[tracker] == nil {
            let items = asked.filter { $0.tracker == tracker }.map(\.claim.item)
            answers.updateValue(await tracker.status(of: items, repository: repository, environment: environment), forKey: tracker)
        }
        var out: [Entry] = []
        for (e, tracker) in asked {
            // A tracker that cannot be asked (bd not on PATH): nobody can say the claim was let go.
            guard let known = answers[tracker] ?? nil else { out.append(e); continue }
            let status = known[e.item]
            if status == "in_progress" || status == nil && tracker.unshownItemsStayClaimed {
                out.append(e)
            } else if status != nil {
                unlink(file(item: e.item, run: e.run))  // reopened or closed by a person: no longer a claim of ours
            }
        }
        return out
    }

    /// The sentence a new run says about stranded claims, with the command that releases them.
    public static func strandedNote(_ entries: [Entry]) -> String? {
        guard !entries.isEmpty else { return nil }
        let items = Array(Set(entries.map(\.item))).sorted()
        let runs = Array(Set(entries.map(\.run))).sorted()
        let shown = items.prefix(10).joined(separator: ", ") + (items.count > 10 ? " and \(items.count - 10) more" : "")
        return "note: \(items.count) item\(items.count == 1 ? "" : "s") claimed by earlier run\(runs.count == 1 ? "" : "s") (\(runs.joined(separator: ", "))) never finished and still show as in progress in the tracker: \(shown); `amplify-run release \(items.prefix(10).joined(separator: " "))` gives \(items.count == 1 ? "it" : "them") back"
    }
}
