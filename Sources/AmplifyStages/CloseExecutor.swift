import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `close`: closes the item in the tracker its `query-ready` stage read. `source: bd` runs
/// `bd close <id> --reason <reason>` after `bd show <id> --json` says it is not closed yet;
/// `source: file` rewrites the item in the issues file atomically; `source: command` runs
/// `with.command`. Already closed is success, so an instance in flight at a crash is simply
/// run again: it closes exactly once.
public struct CloseExecutor: StageExecutor {
    var grace: Duration

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        guard case .object(let item)? = job.context.roots["item"], case .string(let id)? = item["id"], QueryReadyExecutor.isValidId(id) else {
            return .failed("close: the item has no valid id")
        }
        do {
            let reason = try job.stage.parameter("reason")?.render(evaluator).renderedText ?? "Merged"
            guard let query = job.upstreamQuery else { return .failed("close: no query-ready stage upstream tells which tracker the item came from") }
            let source = try query.parameter("source")?.render(evaluator).renderedText ?? "bd"
            switch source {
            case "file":
                let path = try query.parameter("path")?.render(evaluator).renderedText ?? ""
                return await IssuesFile.closeIssue(id: id, reason: reason, path: path.hasPrefix("/") ? path : job.repository + "/" + path)
            case "bd":
                return await closeWithBd(id: id, reason: reason, job: job, processStarted: processStarted)
            default:
                guard let command = job.stage.with["command"].flatMap(Command.init) else { return .failed("close: `source: \(source)` needs `with.command`, the command that closes an item") }
                var runJob = job
                runJob.stage.command = command
                return await CommandStageExecutor(grace: grace).execute(runJob, processStarted: processStarted)
            }
        } catch {
            return .failed("close: \(error.message)")
        }
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        // Closing checks first whether the item is closed already: running it again is safe.
        if let process, Processes.isAlive(pid: process.pid, startTime: process.startTime) {
            await ChildProcess.terminateGroup(process.pid, startTime: process.startTime, grace: grace)
        }
        return .rerun
    }

    private func closeWithBd(id: String, reason: String, job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        guard ChildProcess.find("bd", path: job.environment["PATH"] ?? "/usr/bin:/bin") != nil else {
            return .failed("close: `bd` is not on PATH")
        }
        func run(_ argv: [String]) async -> StageResult {
            var runJob = job
            runJob.stage.command = .argv(argv.map { Template(parts: [.text($0)]) })
            runJob.stage.outputs = []
            runJob.stage.env = []
            return await CommandStageExecutor(grace: grace).execute(runJob, processStarted: processStarted)
        }
        if case .succeeded(let shown) = await run(["bd", "show", id, "--json"]), case .string(let text)? = shown["stdout"],
           let value = try? JSONParser.parse(text) {
            // bd prints the issue, or a list holding it.
            let issue: Value? = if case .list(let l) = value { l.first } else { value }
            if issue?["status"] == .string("closed") { return .succeeded(OrderedObject([("closed", .bool(false))])) }
        }
        switch await run(["bd", "close", id, "--reason", reason]) {
        case .succeeded: return .succeeded(OrderedObject([("closed", .bool(true))]))
        case .failed(let why), .failedAs(_, let why): return .failed("bd close \(id): \(why)")
        }
    }
}

/// A Beads issues file (JSONL, or a JSON array) changed in place: atomically (temp file and
/// rename), one writer at a time (a lock file beside it), other lines kept byte for byte.
public enum IssuesFile {
    public static func closeIssue(id: String, reason: String, path: String) async -> StageResult {
        let now = Value.string(String(Timestamp.iso8601(milliseconds: Processes.now()).prefix(19)) + "Z")
        let result = await update(id: id, path: path, what: "close") { o in
            guard o["status"] != .string("closed") else { return nil }
            var o = o
            o["status"] = .string("closed")
            o["closed_at"] = now
            o["close_reason"] = .string(reason)
            o["updated_at"] = now
            return o
        }
        return result.map { $0.stageResult { .succeeded(OrderedObject([("closed", .bool($0))])) } } ?? .failed("close: no issue \(id) in \(path)")
    }

    /// Claims an item: `in_progress`, as `bd update --claim` does. Claimed already is fine.
    public static func claimIssue(id: String, path: String) async -> StageResult {
        let now = Value.string(String(Timestamp.iso8601(milliseconds: Processes.now()).prefix(19)) + "Z")
        let result = await update(id: id, path: path, what: "claim") { o in
            guard o["status"] == .string("open") else { return nil }
            var o = o
            o["status"] = .string("in_progress")
            o["updated_at"] = now
            return o
        }
        return result.map { $0.stageResult { .succeeded(OrderedObject([("claimed", .bool($0))])) } } ?? .failed("claim: no issue \(id) in \(path)")
    }

    /// Rewrites one issue of the file; `change` returns nil to leave it as it is. Returns whether
    /// it changed, or nil when no such issue (errors come back as a failure message in `.some`).
    static func update(id: String, path: String, what: String, _ change: (OrderedObject) -> OrderedObject?) async -> Result<Bool, StageError>? {
        let lockPath = path + ".amplify-lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return .failure(StageError("\(what): cannot open \(lockPath): \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        // Never block a pool thread in flock: try, and sleep between tries.
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try? await Task.sleep(for: .milliseconds(5))
        }
        defer { flock(fd, LOCK_UN) }
        let bytes: [UInt8]
        do { bytes = try WorkflowFile.read(path, limit: QueryReadyExecutor.inputLimit) } catch {
            return .failure(StageError("\(what): \(error.description)"))
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var found = false
        var changed = false
        var output: String
        if text.trimming(" \t\r\n").hasPrefix("[") {
            guard case .list(let items)? = try? JSONParser.parse(text) else { return .failure(StageError("\(what): \(path) is not a JSON array of issues")) }
            let updated = items.map { v -> Value in
                guard case .object(let o) = v, o["id"] == .string(id) else { return v }
                found = true
                guard let new = change(o) else { return v }
                changed = true
                return .object(new)
            }
            output = Value.list(updated).prettyJSON + "\n"
        } else {
            var lines: [String] = []
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                guard !found, line.contains("\"\(id)\""), case .object(let o)? = try? JSONParser.parse(String(line)), o["id"] == .string(id) else {
                    lines.append(String(line))
                    continue
                }
                found = true
                if let new = change(o) { changed = true; lines.append(Value.object(new).json) } else { lines.append(String(line)) }
            }
            output = lines.joined(separator: "\n")
        }
        guard found else { return nil }
        guard changed else { return .success(false) }
        do { try RunStore.writeAtomically(Array(output.utf8), to: path, mode: 0o644) } catch {
            return .failure(StageError("\(what): \(error.message)"))
        }
        return .success(true)
    }
}

extension Result where Failure == StageError {
    func stageResult(_ f: (Success) -> StageResult) -> StageResult {
        switch self {
        case .success(let v): return f(v)
        case .failure(let e): return e.result
        }
    }
}
