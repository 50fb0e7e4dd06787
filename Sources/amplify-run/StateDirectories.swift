import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Every state directory a repository's workflows name, where `status`, `runs`, `logs`,
/// `answer`, `approve`, `reject`, `cancel` and `release` look for runs, sessions and claims.
///
/// A run keeps its state where its own workflow's `settings.state` says, so no one workflow file
/// tells where all runs are: the directories are those named by every workflow in `workflows/`
/// (at any depth) and by each `*.yaml` at the top level that checks as a workflow, and `.amplify`,
/// the default. Only those that exist are searched; when none does, the default workflow's (as a
/// first run would make it).
struct StateDirectories {
    /// The repository's top level.
    let repository: String
    /// The stores, the default workflow's first; never empty.
    let stores: [RunStore]

    /// The state directories of the repository holding `directory`; nil outside one and when
    /// the directory cannot be resolved.
    static func find(from directory: String) -> StateDirectories? {
        guard let repository = RepositoryLocator.topLevel(from: directory) ?? RepositoryLocator.realPath(directory) else { return nil }
        var named: [String] = []
        for file in workflowFiles(in: repository) {
            guard let bytes = try? WorkflowFile.read(repository + "/" + file),
                  let workflow = WorkflowChecker.check(bytes: bytes, file: file).workflow else { continue }
            // The default workflow's comes first, as it did when it was the only one read.
            if file == "workflows/default.yaml" { named.insert(workflow.settings.state, at: 0) } else { named.append(workflow.settings.state) }
        }
        named.append(Settings().state)
        var seen: Set<String> = []
        var roots: [String] = []
        for state in named {
            let root = repository + "/" + state
            let key = RepositoryLocator.realPath(root) ?? root
            if seen.insert(key).inserted { roots.append(root) }
        }
        let existing = roots.filter { isDirectory($0) }
        return StateDirectories(repository: repository, stores: (existing.isEmpty ? [roots[0]] : existing).map { RunStore(root: $0) })
    }

    /// Where a message says it looked: `A` or `A or B`.
    var description: String { stores.map(\.root).joined(separator: " or ") }

    /// Every run, oldest first (run ids sort by their start), with the store that holds it.
    var runs: [(store: RunStore, id: String)] {
        stores.flatMap { store in store.runIds().map { (store: store, id: $0) } }.sorted { $0.id < $1.id }
    }

    /// The store holding `run`.
    func store(holding run: String) -> RunStore? {
        stores.first { access($0.journal(of: run), F_OK) == 0 }
    }

    /// The newest run that has not finished, in any store.
    func newestUnfinished() -> (store: RunStore, summary: RunStore.Summary)? {
        stores.compactMap { store in store.newestUnfinished().map { (store: store, summary: $0) } }.max { $0.summary.id < $1.summary.id }
    }

    /// The workflow files whose `settings.state` count: `workflows/**/*.yaml` and top-level `*.yaml`
    /// (`.yml` too), relative to the repository.
    static func workflowFiles(in repository: String) -> [String] {
        let isYAML = { (name: String) in name.hasSuffix(".yaml") || name.hasSuffix(".yml") }
        var files = ((try? FileManager.default.subpathsOfDirectory(atPath: repository + "/workflows")) ?? []).filter(isYAML).sorted().map { "workflows/" + $0 }
        files += ((try? FileManager.default.contentsOfDirectory(atPath: repository)) ?? []).filter(isYAML).sorted()
        return files
    }

    /// Whether `path` is a directory; with `following: false`, not a symbolic link to one.
    static func isDirectory(_ path: String, following: Bool = true) -> Bool {
        var st = stat()
        return (following ? stat(path, &st) : lstat(path, &st)) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}
