import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `--dry-run`: runs only the side-effect-free part of a workflow — its `query-ready` stages,
/// in a scratch directory, with no journal — and reports the items each `for-each` stage would
/// get. Nothing in the repository or its state directory changes.
public enum DryRun {
    public struct Expansion: Sendable {
        public var stage: String
        public var items: [Value]
    }

    public struct Report: Sendable {
        public var expansions: [Expansion]
        /// Items refused for their id, per query stage.
        public var refused: [(stage: String, items: [Value])]
        /// Queries that failed, with why.
        public var failures: [(stage: String, reason: String)]
    }

    public static func run(_ workflow: Workflow, repository: String, vars: OrderedObject, environment: [String: String]) async -> Report {
        var template = "/tmp/amplify-dry-run-XXXXXX".utf8CString
        let scratch = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, let made = mkdtemp(base) else { return nil }
            return String(cString: made)
        } ?? "/tmp"
        defer { removeTree(scratch) }
        _ = mkdir(scratch + "/logs", 0o700)
        _ = mkdir(scratch + "/outputs", 0o700)

        var machine = RunStateMachine(workflow: workflow, runId: "dry-run", vars: vars, environment: environment)
        let executor = QueryReadyExecutor(grace: .seconds(2))
        var refused: [(String, [Value])] = []
        var failures: [(String, String)] = []
        var now = Processes.now()
        // The machine decides; the queries it starts run here (nothing else does), and their
        // ends go back to it, until no query is left to run.
        var actions = machine.tick(now: now)
        for _ in 0..<10_000 {
            let started = actions.compactMap { a -> (InstanceKey, Int)? in
                if case .start(let k, let attempt) = a, machine.stage(of: k)?.kind == .queryReady { return (k, attempt) }
                return nil
            }
            guard !started.isEmpty else { break }
            actions = []
            for (key, attempt) in started {
                guard let stage = machine.stage(of: key) else { continue }
                let job = StageJob(key: key, attempt: attempt, stage: stage, context: machine.expressionContext(for: key), runId: "dry-run",
                                   runDirectory: scratch, repository: repository, itemName: nil, environment: environment)
                now = Processes.now()
                let result = await executor.execute(job) { _, _ in }
                switch result {
                case .succeeded(let outputs):
                    if case .list(let bad)? = outputs["invalid"], !bad.isEmpty { refused.append((key.stage, bad)) }
                case .failed(let reason), .failedAs(_, let reason):
                    failures.append((key.stage, reason))
                }
                actions += machine.attemptEnded(key, attempt: attempt, result, now: now)
            }
        }
        let expansions = workflow.stages.compactMap { stage -> Expansion? in
            guard stage.forEach != nil, let s = machine.sources.first(where: { workflow.stages[$0.key].id == stage.id })?.value, s.state == .expanded else { return nil }
            return Expansion(stage: stage.id, items: s.items)
        }
        return Report(expansions: expansions, refused: refused, failures: failures)
    }

    private static func removeTree(_ path: String) {
        guard let dir = opendir(path) else { unlink(path); return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if entry.pointee.d_type == UInt8(DT_DIR) { removeTree(child) } else { unlink(child) }
        }
        closedir(dir)
        rmdir(path)
    }
}
