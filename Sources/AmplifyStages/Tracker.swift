import AmplifyEngine
import AmplifyWorkflow

/// The issue tracker a run takes its items from: named by the `query-ready` stage (`source:`,
/// `path:`) and built from that stage once (`Tracker(query:…)`) by each stage that deals with it —
/// query-ready asks it for the `ready` items, dispatch `claim`s one, close `close`s it — or from a
/// claim on record (`Tracker.of(_:)`) when a later run or `amplify-run release` gives an item back.
///
/// To add a tracker:
/// 1. a case here, holding what it needs to be reached (a path, a URL);
/// 2. its branch in each operation below — `ready`, `claim`, `release`, `close`, `status` (the
///    compiler lists every switch that lacks it);
/// 3. its `source:` name in `init(query:…)`, in `of(_:)` (the name its claims are recorded
///    under), and in the language catalogue (`source` of `query-ready` in WorkflowLanguage.swift).
///
/// A claim names the run as the claimant in the tracker itself (`assignee`; bd's `--actor`): that
/// is how a resumed run tells its own interrupted claim from another run's or a person's. It is
/// also announced in the runner's own record (`Claims`) before the tracker is asked — for
/// `release` and for the next run to find — and withdrawn when the item proves someone else's.
/// Every operation is safe to repeat after a crash.
public enum Tracker: Sendable, Hashable {
    /// Beads, through `bd` in the repository.
    case bd
    /// A Beads issues file changed in place (`IssuesFile`): `path` absolute, `given` as written.
    case file(path: String, given: String)
    /// Any command printing the ready items (the query's `with.command`); the close stage's
    /// `with.command` closes an item; nothing is claimed or released. `source` is the name as
    /// written: `command`, or a name amplify-run does not know.
    case command(source: String)

    /// Why a tracker operation did not happen, in words.
    public struct Failure: Error, Sendable {
        public var message: String
    }

    /// The tracker a `query-ready` stage names, its parameters rendered with `evaluator`.
    public init(query: Stage, evaluator: ExpressionEvaluator, repository: String) throws(EvaluationError) {
        let source = try query.value(QueryReadyParameters.source, evaluator)
        switch source {
        case "bd":
            self = .bd
        case "file":
            let given = try query.value(QueryReadyParameters.path, evaluator) ?? ""
            self = .file(path: given.hasPrefix("/") ? given : repository + "/" + given, given: given)
        default:
            self = .command(source: source)
        }
    }

    /// The tracker a claim on record was made in, or why amplify-run cannot change it.
    public static func of(_ claim: Claims.Entry) -> Result<Tracker, Failure> {
        switch claim.source {
        case "file":
            guard let path = claim.path else { return .failure(Failure(message: "the claim of run \(claim.run) names no issues file")) }
            return .success(.file(path: path, given: path))
        case "bd":
            return .success(.bd)
        default:
            return .failure(Failure(message: "run \(claim.run) claimed it in a `\(claim.source)` tracker, which amplify-run cannot change"))
        }
    }

    // MARK: - ready

    /// The items the tracker says are ready, unfiltered, for the `query-ready` stage `job` runs
    /// (its `limit`, `label` and `args` go to `bd ready`). A query has no side effects.
    func ready(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> Result<[Value], Failure> {
        let evaluator = ExpressionEvaluator(context: job.context)
        switch self {
        case .file(let path, let given):
            let bytes: [UInt8]
            do { bytes = try WorkflowFile.read(path, limit: QueryReadyExecutor.inputLimit) } catch {
                return .failure(Failure(message: "`source: file`: \(error.description)"))
            }
            do {
                return .success(BeadsReadiness.ready(try BeadsReadiness.parseIssues(bytes: bytes), now: Processes.now()))
            } catch {
                return .failure(Failure(message: "`source: file`: \(given) is not a JSON array or JSONL of issues: \(error)"))
            }
        case .bd:
            guard ChildProcess.find("bd", path: job.environment["PATH"] ?? "/usr/bin:/bin") != nil else {
                return .failure(Failure(message: "`bd` is not on PATH: install Beads, or read its issues file with `source: file` and `path: .beads/issues.jsonl`"))
            }
            var argv = ["bd", "ready", "--json"]
            do {
                if let n = try job.stage.value(QueryReadyParameters.limit, evaluator) { argv += ["--limit", String(n)] }
                for label in try job.stage.value(QueryReadyParameters.label, evaluator) ?? [] { argv += ["--label", label] }
                argv += try job.stage.value(QueryReadyParameters.args, evaluator) ?? []
            } catch {
                return .failure(Failure(message: error.message))
            }
            return await Tracker.runJSON(.argv(argv.map { Template(parts: [.text($0)]) }), job: job, processStarted: processStarted)
                .mapError { Failure(message: "bd ready: \($0.message)") }
        case .command(let source):
            guard source == "command" else { return .failure(Failure(message: "unknown `source: \(source)`")) }
            guard let command = job.stage.command(QueryReadyParameters.command) else {
                return .failure(Failure(message: "`source: command` needs `command:`, a string or a list"))
            }
            return await Tracker.runJSON(command, job: job, processStarted: processStarted)
        }
    }

    /// Runs a command and parses what it printed as a JSON array.
    private static func runJSON(_ command: Command, job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> Result<[Value], Failure> {
        let result = await CommandRunner(stdoutLimit: QueryReadyExecutor.inputLimit).run(command, for: job, outputs: [], processStarted: processStarted)
        guard case .succeeded(let outputs) = result else {
            if case .failed(let reason) = result { return .failure(Failure(message: reason)) }
            return .failure(Failure(message: "failed"))
        }
        guard case .string(let stdout)? = outputs["stdout"], !stdout.isEmpty else { return .failure(Failure(message: "printed nothing; expected a JSON array of items")) }
        do {
            guard case .list(let items) = try JSONParser.parse(stdout) else { return .failure(Failure(message: "printed JSON that is not an array of items")) }
            return .success(items)
        } catch {
            return .failure(Failure(message: "printed something that is not JSON (\(error))"))
        }
    }

    // MARK: - claim

    /// Who a run's claims are by, in the tracker: bd's actor (so its `assignee`), the file's `assignee`.
    static func claimant(run: String) -> String { "amplify-run/" + run }

    /// Claims the item for `run`, atomically against other runs and people: the tracker records
    /// the run as the claimant (`assignee`), and an item already in progress is this run's only
    /// when the run is its claimant (an interrupted attempt of its own). Anyone else's is left to
    /// them (the item fails saying so). The claim is announced in `claims` first, for `release`
    /// and for the next run to find.
    func claim(_ id: String, run: String, claims: Claims, repository: String, environment: [String: String]) async throws(StageError) {
        let claimant = Tracker.claimant(run: run)
        switch self {
        case .file(let path, let given):
            try claims.announce(Claims.Entry(item: id, run: run, source: "file", path: path))
            switch await IssuesFile.claimIssue(id: id, path: path, claimant: claimant) {
            case .succeeded(let o):
                if o["claimed"] == .bool(true) { return }
                claims.withdraw(item: id, run: run)
                let status = o["status"]?.renderedText ?? "not open"
                let by = o["assignee"].map { $0 == .null || $0.renderedText.isEmpty ? "" : " (assignee \($0.renderedText))" } ?? ""
                throw StageError("dispatch: \(id) is \(status)\(by) in \(given) — claimed by another run or a person since it was found ready; it is left to them")
            case .failed(let why), .failedAs(_, let why):
                throw StageError("dispatch: \(why)")
            }
        case .bd:
            try claims.announce(Claims.Entry(item: id, run: run, source: "bd", path: nil))
            let env = Git(repository, environment: environment).environment
            // `--actor`: bd's global flag (default $BD_ACTOR or $USER), which `--claim` makes the
            // assignee; claiming again as the same actor is a no-op success in bd, anyone else's claim fails.
            let r = await CommandRunner.run(["bd", "update", id, "--claim", "--actor", claimant, "--json"], in: repository, environment: env)
            guard !r.succeeded else { return }
            let shown = await Tracker.bdShow(id, repository: repository, environment: env)
            if shown?.status == "in_progress" && shown?.assignee == claimant { return }
            claims.withdraw(item: id, run: run)
            if shown?.status == "in_progress" {
                throw StageError("dispatch: \(id) is in progress\(shown?.assignee.map { $0.isEmpty ? "" : " (assignee \($0))" } ?? "") — claimed by another run or a person since it was found ready; it is left to them")
            }
            throw StageError("dispatch: cannot claim \(id): \(r.failure(["bd", "update", id, "--claim"]))")
        case .command:
            return
        }
    }

    // MARK: - release

    /// Sets an item a run claimed back to open. Returns what was done, in words; an item that is
    /// no longer in progress (closed by a person, say) is left as it is.
    func release(_ id: String, claimedBy run: String, repository: String, environment: [String: String]) async -> Result<String, Failure> {
        switch self {
        case .file(let path, _):
            switch await IssuesFile.releaseIssue(id: id, path: path) {
            case .succeeded(let o):
                return .success(o["released"] == .bool(true) ? "open again in \(path)" : "not in progress in \(path) (left as it is)")
            case .failed(let why), .failedAs(_, let why):
                return .failure(Failure(message: why))
            }
        case .bd:
            let env = Git(repository, environment: environment).environment
            guard ChildProcess.find("bd", path: env["PATH"] ?? "/usr/bin:/bin") != nil else {
                return .failure(Failure(message: "run \(run) claimed it with bd, which is not on PATH"))
            }
            if let status = await Tracker.bdShow(id, repository: repository, environment: env)?.status, status != "in_progress" {
                return .success("\(status) in bd, not in progress (left as it is)")
            }
            let argv = ["bd", "update", id, "--status", "open", "--assignee", ""]
            let r = await CommandRunner.run(argv, in: repository, environment: env)
            guard r.succeeded else { return .failure(Failure(message: r.failure(argv))) }
            return .success("open again in bd")
        case .command(let source):
            return .failure(Failure(message: "run \(run) claimed it in a `\(source)` tracker, which amplify-run cannot change"))
        }
    }

    /// Sets an item a run claimed back to open in the tracker of its claim (see `release`).
    public static func release(_ id: String, claim: Claims.Entry, repository: String, environment: [String: String]) async -> Result<String, Failure> {
        switch of(claim) {
        case .success(let tracker): return await tracker.release(id, claimedBy: claim.run, repository: repository, environment: environment)
        case .failure(let why): return .failure(why)
        }
    }

    // MARK: - close

    /// Closes the item for the close stage `job` runs. Already closed is success (`closed:
    /// false`), so closing again after a crash closes exactly once.
    func close(_ id: String, reason: String, job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        switch self {
        case .file(let path, _):
            return await IssuesFile.closeIssue(id: id, reason: reason, path: path)
        case .bd:
            guard ChildProcess.find("bd", path: job.environment["PATH"] ?? "/usr/bin:/bin") != nil else {
                return .failed("close: `bd` is not on PATH")
            }
            // bd runs as the stage's command would (its process reported, its output in logs/), without the stage's `env`.
            func run(_ argv: [String]) async -> StageResult {
                await CommandRunner().run(.argv(argv.map { Template(parts: [.text($0)]) }), for: job, stageEnvironment: false, outputs: [], processStarted: processStarted)
            }
            if case .succeeded(let shown) = await run(["bd", "show", id, "--json"]), case .string(let text)? = shown["stdout"],
               Tracker.issue(in: text)?["status"] == .string("closed") {
                return .succeeded(OrderedObject([("closed", .bool(false))]))
            }
            switch await run(["bd", "close", id, "--reason", reason]) {
            case .succeeded: return .succeeded(OrderedObject([("closed", .bool(true))]))
            case .failed(let why), .failedAs(_, let why): return .failed("bd close \(id): \(why)")
            }
        case .command(let source):
            guard let command = job.stage.command(CloseParameters.command) else {
                return .failed("close: `source: \(source)` needs `with.command`, the command that closes an item")
            }
            return await CommandRunner().run(command, for: job, outputs: job.stage.outputs, processStarted: processStarted)
        }
    }

    // MARK: - status

    /// Where items stand in the tracker (`open`, `in_progress`, `closed`, …), by id; an id the
    /// tracker does not show is absent. Nil when the tracker cannot be asked at all.
    func status(of ids: [String], repository: String, environment: [String: String]) async -> [String: String]? {
        switch self {
        case .file(let path, _):
            var statuses: [String: String] = [:]
            if let bytes = try? WorkflowFile.read(path, limit: QueryReadyExecutor.inputLimit),
               let issues = try? BeadsReadiness.parseIssues(String(decoding: bytes, as: UTF8.self)) {
                for case .object(let o) in issues { if case .string(let id)? = o["id"] { statuses[id] = o["status"]?.renderedText ?? "" } }
            }
            return statuses.filter { ids.contains($0.key) }
        case .bd:
            let env = Git(repository, environment: environment).environment
            guard ChildProcess.find("bd", path: env["PATH"] ?? "/usr/bin:/bin") != nil else { return nil }
            var statuses: [String: String] = [:]
            for id in ids { statuses[id] = await Tracker.bdShow(id, repository: repository, environment: env)?.status }
            return statuses
        case .command:
            return [:]
        }
    }

    /// Whether an item the tracker does not show (`status` has no answer for it) still counts as
    /// claimed: yes for bd (whose `show` can fail for a moment), no for a file that lacks it.
    var unshownItemsStayClaimed: Bool {
        switch self {
        case .bd: return true
        case .file, .command: return false
        }
    }

    /// `bd show <id> --json`: the item's status and assignee, when bd printed them.
    private static func bdShow(_ id: String, repository: String, environment: [String: String]) async -> (status: String?, assignee: String?)? {
        let shown = await CommandRunner.run(["bd", "show", id, "--json"], in: repository, environment: environment)
        guard let issue = issue(in: shown.stdout) else { return nil }
        return (issue["status"]?.renderedText, issue["assignee"]?.renderedText)
    }

    /// The issue `bd show --json` printed: bd prints the issue, or a list holding it.
    private static func issue(in text: String) -> Value? {
        guard let value = try? JSONParser.parse(text) else { return nil }
        return if case .list(let l) = value { l.first } else { value }
    }
}
