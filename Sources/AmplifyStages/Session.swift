import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Where a session lives, and the files in it. Every file an agent writes is untrusted: read
/// capped in size, never through a symlink, and malformed content is a warning, never a crash.
public struct SessionFiles: Sendable {
    /// The biggest session file read (state.json, questions.json, review.json, …).
    public static let fileLimit = 1 << 20

    public var stateDirectory: String
    public var id: String

    public init(stateDirectory: String, id: String) {
        self.stateDirectory = stateDirectory
        self.id = id
    }

    /// `<item-id>-<YYYYMMDDTHHMMSSZ>` of the run's start: the same for every attempt of one
    /// item in one run, so an interrupted dispatch finds its own worktree and session again.
    public static func id(item: String, runId: String) -> String {
        item + "-" + String(runId.prefix(15)) + "Z"
    }

    /// The session of `item` in `job`'s run.
    init(_ job: StageJob, item: String) {
        self.init(stateDirectory: job.stateDirectory, id: SessionFiles.id(item: item, runId: job.runId))
    }

    public static func sessionsDirectory(_ stateDirectory: String) -> String { stateDirectory + "/sessions" }
    public var directory: String { SessionFiles.sessionsDirectory(stateDirectory) + "/" + id }
    /// The runner's own record of the session (its run, item, agent), beside the session directory
    /// where the agent cannot write.
    public var recordPath: String { SessionFiles.sessionsDirectory(stateDirectory) + "/" + id + ".run.json" }
    public var archived: String { stateDirectory + "/archive/" + id }

    public func path(_ name: String) -> String { directory + "/" + name }

    /// A session id as typed by a user: only names the runner could have made.
    public static func isValidId(_ id: String) -> Bool { QueryReadyExecutor.isValidId(id) && id.count <= 160 }

    /// The session directory, mode 0700, never a symlink.
    func makeDirectory() throws(StageError) {
        for dir in [stateDirectory, SessionFiles.sessionsDirectory(stateDirectory)] {
            mkdir(dir, 0o700)
            try StateDirectory.requireReal(dir)
        }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw StageError("dispatch: cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        try StateDirectory.requireReal(directory)
        chmod(directory, 0o700)
    }

    // MARK: - The runner's record

    public struct Record: Sendable, Equatable {
        public var run: String
        public var item: String
        public var worktree: String
        public var branch: String
        /// The base's commit when the worktree was made: a branch still there has no work of its own.
        public var baseCommit: String?
        public var pid: Int32?
        public var startTime: UInt64?
        /// The agent's own session id, chosen by the runner at dispatch (`${{ session.agent-session }}`,
        /// e.g. `claude --session-id`), so a resume never depends on scraping the agent's output.
        public var agentSession: String?
        /// The agent's profile (`dispatch`'s `agent` by name); nil for an argv agent.
        public var profile: String?
        /// The item's budget (`dispatch`'s `budget`).
        public var budget: Budget?
        /// Where each start of the agent (dispatch, then each resume) began in output.log.
        public var starts: [Int] = []
        /// The walls of a sandboxed session (`sandbox: bwrap`): every start of its agent, and the
        /// runner's own git in its repository, run within them. nil: no sandbox.
        var sandbox: Bubblewrap?
        /// A session whose agent runs as a Slurm batch job (`sessions: slurm`): the job's options,
        /// and the current start's token and job id. `pid` is then its watcher's on this machine.
        var slurm: SlurmJob?

        var value: Value {
            var o = OrderedObject()
            o["run"] = .string(run); o["item"] = .string(item); o["worktree"] = .string(worktree); o["branch"] = .string(branch)
            if let baseCommit { o["base-commit"] = .string(baseCommit) }
            if let agentSession { o["agent-session"] = .string(agentSession) }
            if let profile { o["profile"] = .string(profile) }
            if let budget { o["budget"] = budget.value }
            if !starts.isEmpty { o["starts"] = .list(starts.map(Value.int)) }
            if let sandbox { o["sandbox"] = sandbox.value }
            if let slurm { o["slurm"] = slurm.value }
            if let pid { o["pid"] = .int(Int(pid)) }
            if let startTime { o["start-time"] = .int(Int(startTime)) }
            return .object(o)
        }

        init(run: String, item: String, worktree: String, branch: String, pid: Int32? = nil, startTime: UInt64? = nil) {
            self.run = run; self.item = item; self.worktree = worktree; self.branch = branch; self.pid = pid; self.startTime = startTime
        }

        init?(_ v: Value) {
            guard case .string(let run)? = v["run"], case .string(let item)? = v["item"], case .string(let worktree)? = v["worktree"],
                  case .string(let branch)? = v["branch"] else { return nil }
            self.init(run: run, item: item, worktree: worktree, branch: branch)
            if case .string(let c)? = v["base-commit"] { baseCommit = c }
            if case .string(let a)? = v["agent-session"] { agentSession = a }
            if case .string(let p)? = v["profile"] { profile = p }
            if let b = v["budget"] { budget = Budget.read(b, as: .budget) }
            if case .list(let l)? = v["starts"] { starts = l.compactMap { if case .int(let i) = $0 { i } else { nil } } }
            // A sandbox that cannot be read is never dropped: that would start the agent unfenced.
            if let s = v["sandbox"] {
                guard let walls = Bubblewrap(s) else { return nil }
                sandbox = walls
            }
            // Nor a Slurm job: its agent would be started again on this machine.
            if let s = v["slurm"] {
                guard let job = SlurmJob(s) else { return nil }
                slurm = job
            }
            if case .int(let p)? = v["pid"] { pid = Int32(truncatingIfNeeded: p) }
            if case .int(let t)? = v["start-time"] { startTime = UInt64(max(0, t)) }
        }
    }

    public func readRecord() -> Record? {
        (try? SessionFiles.readJSON(recordPath)).flatMap(Record.init)
    }

    /// The record of a session whose item has ended: archived beside its files.
    public func readArchivedRecord() -> Record? {
        (try? SessionFiles.readJSON(archived + ".run.json")).flatMap(Record.init)
    }

    func writeRecord(_ r: Record) throws {
        try RunStore.writeAtomically(Array((r.value.json + "\n").utf8), to: recordPath)
    }

    // MARK: - Reading untrusted files

    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// A JSON file of the session: nil when absent; `Malformed` when too big, not a regular file,
    /// or not JSON.
    public static func readJSON(_ path: String) throws(Malformed) -> Value? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw Malformed(description: "\(path) is a symlink; not followed") }
            throw Malformed(description: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw Malformed(description: "\(path) is not a regular file") }
        guard Int(st.st_size) <= fileLimit else { throw Malformed(description: "\(path) is \(st.st_size) bytes, more than the \(fileLimit) read") }
        let text = CommandRunner.readCapped(fd: fd, limit: fileLimit)
        if text.trimming(" \t\r\n").isEmpty { return nil }
        do { return try JSONParser.parse(text) } catch {
            throw Malformed(description: "\(path) is not valid JSON (\(error))")
        }
    }

    /// A decision found in the session's files.
    public struct Decision: Sendable, Equatable {
        public var approved: Bool
        public var summary: String
        /// Which file said so.
        public var source: String
    }

    /// The first decision in the session's files: `decision.json` (approve/reject), `review.json`,
    /// then `state.json`'s status. Unreadable files come back as warnings.
    public func decision(warnings: inout [String]) -> Decision? {
        func read(_ name: String) -> Value? {
            do { return try SessionFiles.readJSON(path(name)) } catch {
                warnings.append(error.description)
                return nil
            }
        }
        func summaryText(_ v: Value?) -> String {
            if case .string(let s)? = v { return String(s.prefix(4000)) }
            return ""
        }
        for name in ["decision.json", "review.json"] {
            guard let v = read(name) else { continue }
            switch v["decision"] {
            case .string("approved")?: return Decision(approved: true, summary: summaryText(v["summary"] ?? v["reason"]), source: name)
            case .string("rejected")?: return Decision(approved: false, summary: summaryText(v["reason"] ?? v["summary"]), source: name)
            default: warnings.append("\(path(name)): \"decision\" is neither \"approved\" nor \"rejected\"")
            }
        }
        if let state = read("state.json") {
            switch state["status"] {
            case .string("approved")?: return Decision(approved: true, summary: summaryMarkdown(), source: "state.json")
            case .string("rejected")?: return Decision(approved: false, summary: summaryMarkdown(), source: "state.json")
            default: break
            }
        }
        return nil
    }

    /// `state.json`'s status ("running", "completed", …), if readable.
    public func status() -> String? {
        if case .string(let s)? = (try? SessionFiles.readJSON(path("state.json")))?["status"] { return s }
        return nil
    }

    /// The start of `summary.md`.
    public func summaryMarkdown() -> String {
        CommandRunner.readCapped(path("summary.md"), limit: 4000).trimming(" \t\r\n")
    }

    /// A question the session asked.
    public struct Question: Sendable, Equatable {
        public var id: String
        public var question: String
        public var options: [String]
        public var context: String?
        public var blocking: Bool

        var fields: OrderedObject {
            var o = OrderedObject()
            o["id"] = .string(id)
            o["question"] = .string(question)
            if !options.isEmpty { o["options"] = .list(options.map(Value.string)) }
            if let context { o["context"] = .string(context) }
            o["blocking"] = .bool(blocking)
            return o
        }
    }

    /// `questions.json`: one object or a list of them; entries without an id and a question are skipped.
    public func questions(warnings: inout [String]) -> [Question] {
        let v: Value?
        do { v = try SessionFiles.readJSON(path("questions.json")) } catch {
            warnings.append(error.description)
            return []
        }
        let list: [Value]
        switch v {
        case .list(let l)?: list = l
        case .object?: list = [v!]
        case nil: return []
        default:
            warnings.append("\(path("questions.json")): expected a question object or a list of them")
            return []
        }
        var out: [Question] = []
        for q in list.prefix(100) {
            guard case .string(let qid)? = q["id"], !qid.isEmpty, qid.count <= 128, case .string(let text)? = q["question"] else {
                warnings.append("\(path("questions.json")): a question without a string `id` and `question` was left out")
                continue
            }
            var options: [String] = []
            if case .list(let l)? = q["options"] { options = l.prefix(20).map { String($0.renderedText.prefix(500)) } }
            var context: String?
            if case .string(let c)? = q["context"] { context = String(c.prefix(4000)) }
            var blocking = true
            if case .bool(let b)? = q["blocking"] { blocking = b }
            out.append(Question(id: qid, question: String(text.prefix(4000)), options: options, context: context, blocking: blocking))
        }
        return out
    }

    /// `answers.json`: question id → answer.
    public func answers() -> [String: String] {
        guard case .list(let l)? = try? SessionFiles.readJSON(path("answers.json")) else { return [:] }
        var out: [String: String] = [:]
        for a in l {
            if case .string(let q)? = a["questionId"], case .string(let text)? = a["answer"] { out[q] = text }
        }
        return out
    }

    /// Appends an answer to `answers.json`: under a lock, written to a temp file and renamed.
    public func appendAnswer(questionId: String, answer: String, context: String?) throws(Malformed) {
        let lockFd = open(path("answers.json.lock"), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lockFd >= 0 else { throw Malformed(description: "cannot lock \(path("answers.json")): \(String(cString: strerror(errno)))") }
        defer { close(lockFd) }
        flock(lockFd, LOCK_EX)
        var list: [Value] = []
        if case .list(let l)? = try SessionFiles.readJSON(path("answers.json")) { list = l }
        var o = OrderedObject()
        o["questionId"] = .string(questionId)
        o["answer"] = .string(answer)
        o["additionalContext"] = context.map(Value.string) ?? .null
        list.append(.object(o))
        do { try RunStore.writeAtomically(Array((Value.list(list).json + "\n").utf8), to: path("answers.json")) } catch {
            throw Malformed(description: "cannot write \(path("answers.json")): \(error)")
        }
    }

    /// `decision.json`, created exclusively: the first of `approve` and `reject` wins. Returns
    /// false when a decision was there already.
    public func writeDecision(approved: Bool, text: String?) throws(Malformed) -> Bool {
        var o = OrderedObject()
        o["decision"] = .string(approved ? "approved" : "rejected")
        o[approved ? "summary" : "reason"] = text.map(Value.string) ?? .null
        o["at"] = .string(Timestamp.iso8601(milliseconds: Processes.now()))
        let tmp = path(".decision.\(getpid()).tmp")
        let bytes = Array((Value.object(o).json + "\n").utf8)
        do { try RunStore.writeAtomically(bytes, to: tmp) } catch { throw Malformed(description: "cannot write a decision in \(directory): \(error)") }
        // link(2) fails if decision.json exists: exclusive, and never a half-written file.
        let made = link(tmp, path("decision.json")) == 0
        let why = errno
        unlink(tmp)
        if !made && why != EEXIST { throw Malformed(description: "cannot write \(path("decision.json")): \(String(cString: strerror(why)))") }
        return made
    }

    /// The last `limit` bytes of `output.log` (a regular file, never through a symlink).
    func outputLogEnd(_ limit: Int) -> ArraySlice<UInt8> {
        outputLogTail(limit).bytes
    }

    /// The last `limit` bytes of `output.log`, and where in the file they begin.
    func outputLogTail(_ limit: Int) -> (bytes: ArraySlice<UInt8>, offset: Int) {
        let fd = open(path("output.log"), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return ([], 0) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return ([], 0) }
        let size = Int(st.st_size), window = min(size, limit)
        var buffer = [UInt8](repeating: 0, count: window)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, window, off_t(size - window)) }
        return (n > 0 ? buffer[..<n] : [], size - window)
    }
}
