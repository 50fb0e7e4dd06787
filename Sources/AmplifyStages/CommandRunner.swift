import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// A command made ready to start: argv, environment, working directory.
public struct PreparedCommand: Sendable, Equatable {
    public var argv: [String]
    public var environment: [String: String]
    public var directory: String
}

/// The one way amplify-run runs a command and waits for it: a tool (git, bd, cp) through
/// `run(_:in:environment:…)`, and a workflow's command (a `run` stage, dispatch's `setup`,
/// merge's `verify`, a tracker's query or close) through `run(_:for:…)`, which adds what a
/// stage's command gets (`$AMPLIFY_OUTPUT`, the stage's `env`, its output kept in `logs/` when
/// it fails). Either way the command starts in a process group of its own, its pid and start
/// time are reported at once (a stage's timeout, or a resumed runner, can end it), whatever it
/// left running in its group is ended with it, and what it printed is captured, capped.
///
/// Where a sandbox (bubblewrap) or another place to run (a cluster) slots in, it wraps the
/// prepared argv before `run`; nothing else here changes.
public struct CommandRunner: Sendable {
    /// The `stdout` output of `run` stages keeps at most this much (1 MiB).
    public static let stdoutLimit = 1 << 20

    /// How much of a stage command's stdout is kept.
    var stdoutLimit = CommandRunner.stdoutLimit

    // MARK: - A tool

    /// How a command ended and what it printed.
    public struct Output: Sendable {
        public var termination: ChildProcess.Termination
        public var stdout: String
        public var stderr: String
        /// Why it could not be started at all (then `termination` is `exited(127)`).
        public var spawnError: String?
        /// Its output went to the `spill` files (no file in memory could be made).
        var spilled = false
        /// Ended by `timeout` (then `termination` is SIGKILL).
        public var timedOut = false
        public var succeeded: Bool { termination == .exited(0) }

        public init(termination: ChildProcess.Termination, stdout: String, stderr: String, spawnError: String? = nil) {
            self.termination = termination
            self.stdout = stdout
            self.stderr = stderr
            self.spawnError = spawnError
        }

        /// The command and the end of what it said, for an error message.
        public func failure(_ argv: [String]) -> String {
            let said = CommandRunner.tail(stderr.isEmpty ? stdout : stderr, lines: 6)
            return "`\(argv.joined(separator: " "))` \(termination)\(said.isEmpty ? "" : ": " + said)"
        }
    }

    /// Runs `argv` in `directory` to completion; its group is ended with it so nothing it started
    /// lingers. stdout and stderr go to files in memory (no inode on disk per command); where
    /// those cannot be made they go to the `spill` files when given, else nowhere. `input` is its
    /// stdin (a file in memory; else /dev/null), which keeps what it says off the argv `ps`
    /// shows. Past `timeout` its group is killed. `keep` is a descriptor the child inherits (a
    /// lock it holds while it runs). `started` learns its pid and start time.
    public static func run(_ argv: [String], in directory: String, environment: [String: String],
                           stdoutLimit: Int = 16 << 20, stderrLimit: Int = 1 << 16, keep: Int32? = nil,
                           input: [UInt8]? = nil, timeout: Duration? = nil,
                           spill: (stdout: String, stderr: String)? = nil,
                           started: @Sendable (Int32, UInt64) -> Void = { _, _ in }) async -> Output {
        let out = ChildProcess.memoryFile("stdout")
        let err = ChildProcess.memoryFile("stderr")
        let stdin = input.map { CommandRunner.memoryFile(holding: $0) }
        defer {
            if out >= 0 { close(out) }
            if err >= 0 { close(err) }
            if let stdin, stdin >= 0 { close(stdin) }
        }
        if stdin == -1 {
            return Output(termination: .exited(127), stdout: "", stderr: "cannot make a file in memory for its input", spawnError: "cannot make a file in memory for the input of '\(argv.first ?? "")'")
        }
        func sink(_ fd: Int32, _ file: String?) -> ChildProcess.Output? {
            fd >= 0 ? .descriptor(fd) : file.map { .file($0) }
        }
        let termination: ChildProcess.Termination
        var timedOut = false
        do {
            let pid = try ChildProcess.spawn(argv, environment: environment, directory: directory, stdin: stdin,
                                             stdout: sink(out, spill?.stdout), stderr: sink(err, spill?.stderr), keep: keep)
            started(pid, Processes.startTime(pid) ?? 0)
            // Past its time, the group goes; the wait below then returns.
            let watchdog = timeout.map { limit in
                Task { () -> Bool in
                    try? await Task.sleep(for: limit)
                    guard !Task.isCancelled else { return false }
                    Processes.signalGroup(pid, SIGKILL)
                    return true
                }
            }
            termination = await ChildProcess.wait(pid)
            watchdog?.cancel()
            timedOut = await watchdog?.value ?? false
            // Whatever the command left running in its group goes with it.
            if Processes.groupExists(pid) { Processes.signalGroup(pid, SIGKILL) }
        } catch {
            return Output(termination: .exited(127), stdout: "", stderr: error.description, spawnError: error.description)
        }
        func read(_ fd: Int32, _ file: String?, _ limit: Int) -> String {
            if fd >= 0 { return readCapped(fd: fd, limit: limit) }
            return file.map { readCapped($0, limit: limit) } ?? ""
        }
        var output = Output(termination: termination, stdout: read(out, spill?.stdout, stdoutLimit), stderr: read(err, spill?.stderr, stderrLimit))
        output.spilled = spill != nil && (out < 0 || err < 0)
        output.timedOut = timedOut
        return output
    }

    /// A file in memory holding `bytes`, read from its start (a command's stdin); -1 if none can be made.
    static func memoryFile(holding bytes: [UInt8]) -> Int32 {
        let fd = ChildProcess.memoryFile("stdin")
        guard fd >= 0 else { return -1 }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { close(fd); return -1 }
            written += n
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    // MARK: - A stage's command

    /// Runs a workflow command for `job` the way a `run` stage does: rendered (`prepare`), in
    /// `workingDirectory` (default the stage's), with `$AMPLIFY_OUTPUT`. Succeeds with
    /// `exit-code`, `stdout` (trimmed) and the written outputs (`outputs` names those kept; nil
    /// keeps all); fails with the command, how it ended and the end of its stderr, its output kept
    /// in `logs/`. `stageEnvironment: false` leaves the stage's `env` out (a tool like bd).
    public func run(_ command: Command, for job: StageJob, workingDirectory: Template? = nil, stageEnvironment: Bool = true,
                    outputs declared: [String]?, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        let prepared: PreparedCommand
        do {
            prepared = try CommandRunner.prepare(command, job: job, evaluator: evaluator, workingDirectory: workingDirectory ?? job.stage.workingDirectory,
                                                 env: stageEnvironment ? job.stage.env : [])
        } catch {
            return .failed(error.description)
        }
        let logs = job.runDirectory + "/logs/" + job.fileStem
        let outputFile = job.runDirectory + "/outputs/" + job.fileStem + ".env"
        var environment = prepared.environment
        environment["AMPLIFY_OUTPUT"] = outputFile
        let r = await CommandRunner.run(prepared.argv, in: prepared.directory, environment: environment, stdoutLimit: stdoutLimit,
                                        stderrLimit: CommandRunner.stdoutLimit, spill: (logs + ".out", logs + ".err"), started: processStarted)
        if let why = r.spawnError { return .failed(why) }
        var outputs = OrderedObject()
        let code: Int
        switch r.termination {
        case .exited(let c): code = Int(c)
        case .signalled(let s): code = 128 + Int(s)
        }
        outputs["exit-code"] = .int(code)
        outputs["stdout"] = .string(r.stdout.trimming(" \t\r\n"))
        let written = OutputFile.parse(CommandRunner.readCapped(outputFile, limit: CommandRunner.stdoutLimit))
        if let declared {
            for name in declared { outputs[name] = written[name].map(Value.string) ?? .null }
        } else {
            for (k, v) in written.sorted(by: { $0.key < $1.key }) where outputs[k] == nil { outputs[k] = .string(v) }
        }
        guard r.succeeded else {
            // A failed command's output is kept in logs/ for reading later (unless it went there already).
            if !r.spilled {
                try? RunStore.writeAtomically(Array(("--- stdout\n" + r.stdout + "\n--- stderr\n" + r.stderr).utf8), to: logs + ".log")
            }
            let tail = CommandRunner.tail(String(decoding: Array(r.stderr.utf8.prefix(1 << 16)), as: UTF8.self), lines: 5)
            return .failed("\(prepared.argv.first ?? "command") \(r.termination)\(tail.isEmpty ? "" : ": " + tail)")
        }
        return .succeeded(outputs)
    }

    /// A command with its expressions rendered, in the stage's environment (the runner's, less
    /// git's redirections, with `AMPLIFY_RUN_ID`, `AMPLIFY_STAGE`, `AMPLIFY_ITEM_ID` and `env`).
    /// In a shell string each `${{ }}` becomes a reference to an environment variable holding
    /// the value, so no value is parsed by the shell.
    public static func prepare(_ command: Command, job: StageJob, evaluator: ExpressionEvaluator) throws(EvaluationError) -> PreparedCommand {
        try prepare(command, job: job, evaluator: evaluator, workingDirectory: job.stage.workingDirectory, env: job.stage.env)
    }

    static func prepare(_ command: Command, job: StageJob, evaluator: ExpressionEvaluator, workingDirectory: Template?,
                        env: [TemplateEntry]) throws(EvaluationError) -> PreparedCommand {
        var environment = job.environment
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] { environment[name] = nil }
        environment["AMPLIFY_RUN_ID"] = job.runId
        environment["AMPLIFY_STAGE"] = job.key.stage
        if let name = job.itemName { environment["AMPLIFY_ITEM_ID"] = name }
        for entry in env {
            environment[entry.key] = try entry.value.render(evaluator).renderedText
        }
        var directory = job.repository
        if let wd = workingDirectory {
            let d = try evaluator.render(wd).renderedText
            directory = d.hasPrefix("/") ? d : job.repository + "/" + d
        }
        let argv: [String]
        switch command {
        case .argv(let parts):
            argv = try parts.map { (t: Template) throws(EvaluationError) -> String in try evaluator.render(t).renderedText }
        case .shell(let template):
            var script = ""
            var n = 0
            var scanner = ShellQuoting()
            for part in template.parts {
                switch part {
                case .text(let t):
                    script += t
                    scanner.scan(t)
                case .expression(let e, _, let open):
                    n += 1
                    let value: Value
                    do { value = try evaluator.evaluate(e) } catch {
                        throw EvaluationError(offset: open + 3 + error.offset, message: error.message)
                    }
                    environment["AMPLIFY_EXPR_\(n)"] = value.renderedText
                    script += scanner.inDoubleQuotes ? "${AMPLIFY_EXPR_\(n)}" : "\"${AMPLIFY_EXPR_\(n)}\""
                }
            }
            argv = ["/bin/sh", "-c", script]
        }
        return PreparedCommand(argv: argv, environment: environment, directory: directory)
    }

    // MARK: - Reading what it printed

    /// At most `limit` bytes of a file (never following a symlink), sized by the file, not the limit.
    public static func readCapped(_ path: String, limit: Int) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        return readCapped(fd: fd, limit: limit)
    }

    /// At most `limit` bytes of an open file, from its start.
    static func readCapped(fd: Int32, limit: Int) -> String {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return "" }
        let size = min(Int(st.st_size), limit)
        var buffer = [UInt8](repeating: 0, count: size)
        var total = 0
        while total < size {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + total, size - total, off_t(total)) }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: buffer[..<total], as: UTF8.self)
    }

    /// The last `lines` lines of `text`, joined with " | ".
    static func tail(_ text: String, lines: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: " | ")
    }
}

/// Runs a tool to completion: `CommandRunner.run`, under the name callers outside this module use.
public enum Exec {
    public typealias Result = CommandRunner.Output

    public static func run(_ argv: [String], in directory: String, environment: [String: String], limit: Int = 16 << 20, keep: Int32? = nil,
                           started: @Sendable (Int32, UInt64) -> Void = { _, _ in }) async -> Result {
        await CommandRunner.run(argv, in: directory, environment: environment, stdoutLimit: limit, keep: keep, started: started)
    }
}

