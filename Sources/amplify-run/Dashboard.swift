import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
import CAmplifySystem
import FoundationEssentials
import HTTPTypes
import Hummingbird
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The dashboard's HTTP side (SPEC §9): one responder that checks every request (token, origin,
/// method, body), routes it, and answers bad input with a JSON error, never a crash. Reading is
/// the CLI's own reading (`runs --json`, `status --json`, `plan --format json` run in a captured
/// context); writing is `answer`, `approve`, `reject` and `cancel` themselves, so the page and the
/// terminal refuse and decide alike.
struct Dashboard: HTTPResponder {
    typealias Context = BasicRequestContext

    let repository: String
    let context: CommandContext
    let token: String?
    /// The machines of the runs looked at, kept up to date from their journals.
    let runs = RunMachines()

    static let bodyLimit = 64 << 10
    static let logChunk = 1 << 20
    static let diffLimit = 2 << 20
    static let cookie = "amplify_token"

    static var quietLogger: Logger {
        var logger = Logger(label: "amplify-run.serve")
        logger.logLevel = .critical
        return logger
    }

    /// A refusal: its status and what the JSON error says.
    struct Refusal: Error {
        var status: HTTPResponse.Status
        var message: String
        init(_ status: HTTPResponse.Status, _ message: String) { self.status = status; self.message = message }
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        do {
            var setCookie: String?
            try authorize(request, setCookie: &setCookie)
            var response = try await route(request)
            if let setCookie { response.headers[.setCookie] = setCookie }
            response.headers[.cacheControl] = "no-store"
            response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
            return response
        } catch let refusal as Refusal {
            return Dashboard.json(["error": .string(refusal.message)], status: refusal.status)
        } catch {
            return Dashboard.json(["error": .string("internal error: \(error)")], status: .internalServerError)
        }
    }

    // MARK: - Security

    /// The token, when one is set: `Authorization: Bearer …`, the cookie, or `?token=…` (which
    /// sets the cookie, so the address works once and the token leaves the address bar).
    private func authorize(_ request: Request, setCookie: inout String?) throws {
        guard let token else {
            // No token: loopback only. A page of another site whose name was made to point here
            // (DNS rebinding) still names its own host: refused.
            let host = request.head.authority ?? ""
            let name = host.hasPrefix("[") ? String(host.prefix { $0 != "]" }.dropFirst()) : String(host.prefix { $0 != ":" })
            guard ServeCommand.isLoopback(name) else {
                throw Refusal(.forbidden, "this server answers to its loopback address only, not '\(host.prefix(100))'; set a token to serve other names")
            }
            return
        }
        if let auth = request.headers[.authorization], auth.hasPrefix("Bearer "), Dashboard.same(String(auth.dropFirst(7)), token) { return }
        if let cookies = request.headers[.cookie] {
            for part in cookies.split(separator: ";") {
                let kv = String(part).trimming(" ").split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == Dashboard.cookie, Dashboard.same(String(kv[1]), token) { return }
            }
        }
        if let given = request.uri.queryParameters["token"], Dashboard.same(String(given), token) {
            setCookie = "\(Dashboard.cookie)=\(token); HttpOnly; SameSite=Strict; Path=/"
            return
        }
        throw Refusal(.unauthorized, "a token is needed: Authorization: Bearer TOKEN, or open the page once with ?token=TOKEN")
    }

    /// Constant-time comparison: as long whatever the first difference.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }

    /// A POST: JSON only, from this origin only, at most `bodyLimit` bytes. Returns the body.
    private func postBody(_ request: Request) async throws -> OrderedObject {
        if let origin = request.headers[.origin] {
            let host = request.head.authority ?? ""
            guard origin == "http://" + host || origin == "https://" + host else {
                throw Refusal(.forbidden, "a request from another origin (\(origin)) may not change anything here")
            }
        }
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
            throw Refusal(.unsupportedMediaType, "send JSON (Content-Type: application/json)")
        }
        var bytes: [UInt8] = []
        for try await buffer in request.body {
            guard bytes.count + buffer.readableBytes <= Dashboard.bodyLimit else {
                throw Refusal(.contentTooLarge, "the body is over \(Dashboard.bodyLimit / 1024) KiB")
            }
            bytes += buffer.readableBytesView
        }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return OrderedObject() }
        guard case .object(let o)? = try? JSONParser.parse(String(decoding: bytes, as: UTF8.self)) else {
            throw Refusal(.badRequest, "the body must be a JSON object")
        }
        return o
    }

    // MARK: - Routes

    private func route(_ request: Request) async throws -> Response {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let method = request.method
        func only(_ m: HTTPRequest.Method) throws {
            guard method == m else { throw Refusal(.methodNotAllowed, "\(request.uri.path) takes \(m.rawValue), not \(method.rawValue)") }
        }
        switch parts.count > 0 ? parts[0] : "" {
        case "":
            try only(.get)
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        case "api":
            break
        default:
            throw Refusal(.notFound, "no page \(request.uri.path)")
        }
        let rest = Array(parts.dropFirst())
        switch (rest.first, rest.count) {
        case ("runs"?, 1):
            try only(.get)
            return try await cli(RunsCommand.self, ["--json"]).json()
        case ("runs"?, 2):
            try only(.get)
            return try status(rest[1])
        case ("runs"?, 3) where rest[2] == "plan":
            try only(.get)
            return try plan(rest[1], .json)
        case ("runs"?, 3) where rest[2] == "dag.svg":
            try only(.get)
            return try plan(rest[1], .svg)
        case ("runs"?, 3) where rest[2] == "events":
            try only(.get)
            return try events(rest[1], request: request)
        case ("runs"?, 3) where rest[2] == "cancel":
            try only(.post)
            _ = try await postBody(request)
            return try await cancel(rest[1])
        case ("sessions"?, 2):
            try only(.get)
            return try session(rest[1])
        case ("sessions"?, 3):
            let id = rest[1]
            var body = OrderedObject()
            if ["answer", "approve", "reject"].contains(rest[2]) {
                try only(.post)
                body = try await postBody(request)
            }
            // An archived session (its item ended) exists, and takes nothing more.
            func ended() throws {
                let (files, _, directory) = try sessionFiles(id)
                if directory != files.directory { throw Refusal(.conflict, "session \(id) has ended (its item is done); it takes no more answers or decisions") }
            }
            switch rest[2] {
            case "log":
                try only(.get)
                return try log(id, from: request.uri.queryParameters["from"].map(String.init))
            case "diff":
                try only(.get)
                return try await diff(id)
            case "answer":
                guard case .string(let q)? = body["questionId"], case .string(let a)? = body["answer"] else {
                    throw Refusal(.badRequest, "answer takes {\"questionId\": \"…\", \"answer\": \"…\", \"additionalContext\": \"…\"}")
                }
                var args = [id, q, a]
                if case .string(let c)? = body["additionalContext"] { args += ["--context", c] }
                try ended()
                return try await cli(AnswerCommand.self, args).decision()
            case "approve", "reject":
                var args = [id]
                let key = rest[2] == "approve" ? "summary" : "reason"
                if let v = body[key] {
                    guard case .string(let text) = v else { throw Refusal(.badRequest, "`\(key)` must be a string") }
                    args += ["--\(key)", text]
                }
                try ended()
                if rest[2] == "approve" { return try await cli(ApproveCommand.self, args).decision() }
                return try await cli(RejectCommand.self, args).decision()
            default:
                throw Refusal(.notFound, "no API \(request.uri.path)")
            }
        default:
            throw Refusal(.notFound, "no API \(request.uri.path)")
        }
    }

    // MARK: - The CLI, in a captured context

    /// What a command printed, and how it ended.
    struct Ran {
        var code: Int32
        var out: [UInt8]
        var err: String

        /// The error line without its `amplify-run: error: ` prefix.
        var message: String {
            err.split(separator: "\n").map { $0.hasPrefix("amplify-run: error: ") ? String($0.dropFirst(20)) : String($0) }.joined(separator: "; ")
        }

        func json() throws -> Response {
            guard code == 0 else {
                throw Refusal(code == 2 ? .notFound : .internalServerError, message.isEmpty ? "failed (exit \(code))" : message)
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: out)))
        }

        /// An answer or a decision: 200, else 404 (no such session or question) or 409 (decided, finished, archived).
        func decision() throws -> Response {
            guard code == 0 else {
                let m = message
                let missing = m.contains("no live session") && !m.contains("just been archived") || m.contains("has no question") || m.contains("is not a session id")
                throw Refusal(missing ? .notFound : (code == 2 ? .conflict : .internalServerError), m)
            }
            return Dashboard.json(["ok": .bool(true), "message": .string(String(decoding: out, as: UTF8.self).trimming("\n"))])
        }
    }

    /// Runs a subcommand as the CLI would, its output captured.
    func cli<C: ContextualCommand>(_ type: C.Type, _ arguments: [String]) async throws -> Ran {
        let out = Mutex<[UInt8]>([]), err = Mutex<[UInt8]>([])
        let captured = CommandContext(directory: repository, environment: context.environment,
                                      out: OutputWriter { b in out.withLock { $0 += b } }, err: OutputWriter { b in err.withLock { $0 += b } },
                                      liveView: false, now: context.now)
        var code: Int32 = 0
        do {
            let command = try C.parse(arguments)
            try await command.run(captured)
        } catch let exit as ExitCode {
            code = exit.rawValue
        } catch {
            captured.error(C.message(for: error))
            code = 2
        }
        return Ran(code: code, out: out.withLock { $0 }, err: String(decoding: err.withLock { $0 }, as: UTF8.self))
    }

    // MARK: - Runs

    static func checkRunId(_ id: String) throws {
        guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            throw Refusal(.notFound, "'\(id.prefix(64))' is not a run id")
        }
    }

    private func store(_ run: String) throws -> RunStore {
        try Dashboard.checkRunId(run)
        guard let states = StateDirectories.find(from: repository), let store = states.store(holding: run) else {
            throw Refusal(.notFound, "no run '\(run)'")
        }
        return store
    }

    /// What `status RUN --json` prints, from the run's machine kept by `runs` and brought up to
    /// date with the journal's new lines: a run of 10,000 items is not replayed for every look.
    private func status(_ run: String) throws -> Response {
        let store = try store(run)
        let text: String
        do {
            text = try runs.withMachine(store: store, run: run) { machine in
                let report = StatusCommand.report(machine, store: store, now: context.now())
                let sessions = SessionRow.all(machine, stateDirectory: store.root)
                // The same JSON as `status --json`, without its indentation (a third of a large reply).
                return StatusCommand.json(machine, report: report, sessions: sessions, state: RunReader.stateWord(store, run: run, machine: machine)).json + "\n"
            }
        } catch {
            throw Refusal(.internalServerError, "\(error)")
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func plan(_ run: String, _ format: PlanRenderer.Format) throws -> Response {
        let store = try store(run)
        let path = store.summary(of: run)?.workflow ?? store.workflowCopy(of: run)
        guard let bytes = try? WorkflowFile.read(store.workflowCopy(of: run)), let workflow = WorkflowChecker.check(bytes: bytes, file: path).workflow else {
            throw Refusal(.internalServerError, "run \(run) has no readable workflow copy")
        }
        return Response(status: .ok, headers: [.contentType: format == .svg ? "image/svg+xml" : "application/json"],
                        body: .init(byteBuffer: ByteBuffer(string: PlanRenderer(workflow.plan).render(format))))
    }

    /// `cancel` as the CLI does it; the wait for the runner goes on after the reply (202).
    private func cancel(_ run: String) async throws -> Response {
        let store = try store(run)
        guard let summary = store.summary(of: run) else { throw Refusal(.notFound, "no run '\(run)'") }
        if let outcome = summary.outcome { throw Refusal(.conflict, "run \(run) has already finished (\(outcome.rawValue))") }
        // `amplify-run cancel RUN` itself, as a process of its own: with no live runner it
        // settles the run, which is a runner's work, not the server's.
        let (repository, environment) = (repository, context.environment)
        Task.detached {
            _ = await CommandRunner.run([Dashboard.executable, "-C", repository, "cancel", run], in: repository, environment: environment)
        }
        // The request is written before the reply: a status read now shows the cancel coming.
        for _ in 0..<40 where !FileManager.default.fileExists(atPath: store.cancelRequest(of: run)) && store.summary(of: run)?.outcome == nil {
            try await Task.sleep(for: .milliseconds(25))
        }
        return Dashboard.json(["ok": .bool(true), "message": .string("cancelling run \(run)")], status: .accepted)
    }

    // MARK: - The event stream

    /// Each journal event after `after` (or `Last-Event-ID`), then each new one as it is
    /// journaled: the journal file is watched (inotify), so an idle stream costs nothing; a
    /// comment every 15 s keeps proxies from closing it.
    private func events(_ run: String, request: Request) throws -> Response {
        let store = try store(run)
        let path = store.journal(of: run)
        var after = 0
        if let a = request.headers[HTTPField.Name("Last-Event-ID")!].flatMap({ Int($0) }) ?? request.uri.queryParameters["after"].flatMap({ Int($0) }) {
            after = max(0, a)
        } else if request.uri.queryParameters["after"] == "latest" {
            // Only events journaled from now on (the page has just read the status).
            after = JournalFollower.lastSeq(path)
        }
        let start = after
        let body = ResponseBody { writer in
            let watch = amplify_watch_file(path)
            defer { if watch >= 0 { close(watch) } }
            var follower = JournalFollower(path: path, after: start)
            var quiet = 0
            while true {
                let fresh = follower.next()
                if !fresh.isEmpty {
                    var text = ""
                    for (seq, line) in fresh { text += "id: \(seq)\ndata: \(line)\n\n" }
                    try await writer.write(ByteBuffer(string: text))
                    quiet = 0
                } else if quiet >= 15 {
                    // Also how a stream whose reader left is found out: the write fails.
                    try await writer.write(ByteBuffer(string: ": still here\n\n"))
                    quiet = 0
                }
                // Woken by the journal growing (or after 15 s, for the comment); without inotify,
                // a look each second.
                await FileWatch.wait(watch: watch, pidfd: -1, timeout: .seconds(watch >= 0 ? 15 : 1))
                quiet += watch >= 0 ? 15 : 1
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    // MARK: - Sessions

    private func sessionFiles(_ id: String) throws -> (SessionFiles, RunStore, directory: String) {
        guard SessionFiles.isValidId(id), let states = StateDirectories.find(from: repository) else {
            throw Refusal(.notFound, "'\(id.prefix(80))' is not a session id")
        }
        guard let found = SessionLocator.locate(id, in: states, archived: true) else { throw Refusal(.notFound, "no session '\(id)'") }
        return found
    }

    private func session(_ id: String) throws -> Response {
        let (files, _, directory) = try sessionFiles(id)
        // An archived session (its item ended) keeps its state and decision; its questions and
        // output are no longer read.
        let archived = directory != files.directory
        let record = archived ? files.readArchivedRecord() : files.readRecord()
        var o = OrderedObject()
        o["session"] = .string(id)
        o["archived"] = .bool(archived)
        var item: Value = .null
        if case .object(let state)? = try? SessionFiles.readJSON(directory + "/state.json") {
            item = state["item"] ?? .null
            o["status"] = state["status"] ?? .null
        } else {
            o["status"] = .null
        }
        o["item"] = item
        o["run"] = record.map { .string($0.run) } ?? .null
        o["branch"] = record.map { .string($0.branch) } ?? .null
        o["worktree"] = record.map { .string($0.worktree) } ?? .null
        var agent = OrderedObject()
        agent["pid"] = record?.pid.map { .int(Int($0)) } ?? .null
        agent["alive"] = .bool(record.map { Processes.isAlive(pid: $0.pid ?? 0, startTime: $0.startTime ?? 0) && $0.pid != nil } ?? false)
        agent["profile"] = record?.profile.map(Value.string) ?? .null
        o["agent"] = .object(agent)
        let reader = SessionFiles(stateDirectory: files.stateDirectory, id: id)
        var warnings: [String] = []
        let answers = archived ? [:] : reader.answers()
        o["questions"] = .list(archived ? [] : reader.questions(warnings: &warnings).map { q in
            var f = OrderedObject()
            f["id"] = .string(q.id)
            f["question"] = .string(q.question)
            f["options"] = .list(q.options.map(Value.string))
            f["context"] = q.context.map(Value.string) ?? .null
            f["blocking"] = .bool(q.blocking)
            f["answer"] = answers[q.id].map(Value.string) ?? .null
            return .object(f)
        })
        if case .object(let d)? = try? SessionFiles.readJSON(directory + "/decision.json") { o["decision"] = .object(d) } else { o["decision"] = .null }
        let report = archived ? AgentReport() : reader.agentReport()
        o["cost"] = report.cost.map(Value.double) ?? .null
        o["tokens"] = report.tokens.map(Value.int) ?? .null
        o["turns"] = report.turns.map(Value.int) ?? .null
        o["error"] = report.errorMessage.map(Value.string) ?? .null
        o["log-size"] = .int(Dashboard.size(directory + "/output.log"))
        return Dashboard.json(o)
    }

    private func log(_ id: String, from: String?) throws -> Response {
        let (_, _, directory) = try sessionFiles(id)
        let path = directory + "/output.log"
        var offset = 0
        if let from {
            guard let n = Int(from), n >= 0 else { throw Refusal(.badRequest, "`from` must be a byte offset (a whole number ≥ 0)") }
            offset = n
        }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        var bytes: [UInt8] = []
        var size = 0
        if fd >= 0 {
            defer { close(fd) }
            var st = stat()
            if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
                size = Int(st.st_size)
                let n = min(Dashboard.logChunk, max(0, size - offset))
                if n > 0 {
                    bytes = [UInt8](repeating: 0, count: n)
                    let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, n, off_t(offset)) }
                    bytes = got > 0 ? Array(bytes[..<got]) : []
                }
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8", HTTPField.Name("X-Log-Size")!: String(size)],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    private func diff(_ id: String) async throws -> Response {
        let (files, _, directory) = try sessionFiles(id)
        guard let record = directory == files.directory ? files.readRecord() : files.readArchivedRecord() else { throw Refusal(.notFound, "session \(id) has no record of its branch") }
        guard let base = record.baseCommit else { throw Refusal(.notFound, "session \(id) has no record of the commit its branch started from") }
        let r = await CommandRunner.run(["git", "diff", "--no-color", "--no-ext-diff", base, "refs/heads/" + record.branch, "--"], in: repository,
                                        environment: context.environment, stdoutLimit: Dashboard.diffLimit + 1)
        var text = r.stdout
        if !r.succeeded && text.isEmpty {
            if await CommandRunner.run(["git", "rev-parse", "--verify", "--quiet", "refs/heads/" + record.branch], in: repository, environment: context.environment).succeeded {
                throw Refusal(.notFound, "no diff for \(record.branch): \(r.stderr.trimming(" \n"))")
            }
            throw Refusal(.notFound, "the branch \(record.branch) is gone (merged and removed, or deleted); its work is in the base's history")
        }
        if text.utf8.count > Dashboard.diffLimit {
            text = String(decoding: Array(text.utf8.prefix(Dashboard.diffLimit)), as: UTF8.self) + "\n… the diff is cut at 2 MiB\n"
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    // MARK: - Helpers

    /// This program's own path, for the commands it runs as processes.
    static let executable: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }()

    static func json(_ o: OrderedObject, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: Value.object(o).json + "\n")))
    }

    static func json(_ pairs: KeyValuePairs<String, Value>, status: HTTPResponse.Status = .ok) -> Response {
        json(OrderedObject(pairs.map { ($0.key, $0.value) }), status: status)
    }

    static func size(_ path: String) -> Int {
        var st = stat()
        return lstat(path, &st) == 0 ? Int(st.st_size) : 0
    }
}

/// The lines of a journal after a seq, read on from where the last read stopped; a torn last
/// line waits for its end.
struct JournalFollower {
    let path: String
    var after: Int
    private var offset = 0

    init(path: String, after: Int, offset: Int = 0) {
        self.path = path
        self.after = after
        self.offset = offset
    }

    /// The seq of the journal's last whole line (0 for none): read from its end only.
    static func lastSeq(_ path: String) -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return 0 }
        let n = min(Int(st.st_size), 1 << 20)
        var bytes = [UInt8](repeating: 0, count: n)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, n, off_t(Int(st.st_size) - n)) }
        guard got > 0 else { return 0 }
        for line in bytes[..<got].split(separator: UInt8(ascii: "\n")).reversed() {
            if case .int(let seq)? = (try? JSONParser.parse(String(decoding: line, as: UTF8.self)))?["seq"] { return seq }
        }
        return 0
    }

    mutating func next() -> [(seq: Int, line: String)] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) > offset else { return [] }
        let n = Int(st.st_size) - offset
        var bytes = [UInt8](repeating: 0, count: n)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, n, off_t(offset)) }
        guard got > 0 else { return [] }
        var out: [(Int, String)] = []
        var lineStart = 0
        for i in 0..<got where bytes[i] == UInt8(ascii: "\n") {
            let line = String(decoding: bytes[lineStart..<i], as: UTF8.self)
            lineStart = i + 1
            guard case .int(let seq)? = (try? JSONParser.parse(line))?["seq"], seq > after else { continue }
            out.append((seq, line))
            after = seq
        }
        offset += lineStart
        return out
    }
}

/// The state machines of the runs the dashboard has shown, each replayed once and then brought up
/// to date with the lines its journal gained (a torn last line waits for its end).
final class RunMachines: Sendable {
    private struct Kept {
        var machine: RunStateMachine
        var follower: JournalFollower
    }
    private let kept = Mutex<[String: Kept]>([:])

    func withMachine<T>(store: RunStore, run: String, _ body: (RunStateMachine) throws -> T) throws -> T {
        var entry: Kept
        if let k = kept.withLock({ $0[run] }) {
            entry = k
        } else {
            let (machine, read) = try RunReader.replayed(store, run: run)
            // Lines after those replayed are read next, from where the replay stopped.
            entry = Kept(machine: machine, follower: JournalFollower(path: store.journal(of: run), after: read.entries.last?.seq ?? 0, offset: read.validSize))
        }
        for (_, line) in entry.follower.next() {
            guard let value = try? JSONParser.parse(line), let event = RunEvent(value),
                  case .string(let at)? = value["at"], let time = Timestamp.parse(at) else { continue }
            entry.machine.apply(event, at: time)
        }
        let kept = entry
        self.kept.withLock { $0[run] = kept }
        return try body(entry.machine)
    }
}
