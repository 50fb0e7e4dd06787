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

/// `run` stages: a shell string or an argv, in the repository or `working-directory`, with
/// `$AMPLIFY_OUTPUT`, stdout captured (trimmed, at most 1 MiB), outputs per `outputs:`.
/// At-least-once: an attempt in flight when the runner died is started again (what was left
/// of its process group is ended first).
public struct CommandStageExecutor: StageExecutor {
    public static let stdoutLimit = 1 << 20
    var grace: Duration
    /// How much of stdout is kept (the `stdout` output of `run` stages: 1 MiB).
    var stdoutLimit = CommandStageExecutor.stdoutLimit

    public func execute(_ job: StageJob, processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        guard let command = job.stage.command else { return .failed("the stage has no command") }
        let prepared: PreparedCommand
        do {
            prepared = try CommandStageExecutor.prepare(command, job: job, evaluator: evaluator)
        } catch {
            return .failed(error.description)
        }
        // stdout and stderr go to files in memory: no inode on disk per command, which was most
        // of the runner's cost. A failed command's output is kept in logs/ for reading later.
        let out = ChildProcess.memoryFile("stdout")
        let err = ChildProcess.memoryFile("stderr")
        defer {
            if out >= 0 { close(out) }
            if err >= 0 { close(err) }
        }
        let outputFile = job.runDirectory + "/outputs/" + job.fileStem + ".env"
        var environment = prepared.environment
        environment["AMPLIFY_OUTPUT"] = outputFile
        let termination: ChildProcess.Termination
        do {
            let pid = try ChildProcess.spawn(prepared.argv, environment: environment, directory: prepared.directory,
                                             stdout: out >= 0 ? .descriptor(out) : .file(job.runDirectory + "/logs/" + job.fileStem + ".out"),
                                             stderr: err >= 0 ? .descriptor(err) : .file(job.runDirectory + "/logs/" + job.fileStem + ".err"))
            processStarted(pid, Processes.startTime(pid) ?? 0)
            termination = await ChildProcess.wait(pid)
            // Whatever the command left running in its group goes with it.
            if Processes.groupExists(pid) { Processes.signalGroup(pid, SIGKILL) }
        } catch {
            return .failed(error.description)
        }
        let stdout = out >= 0 ? CommandStageExecutor.readCapped(fd: out, limit: stdoutLimit) : CommandStageExecutor.readCapped(job.runDirectory + "/logs/" + job.fileStem + ".out", limit: stdoutLimit)
        var outputs = OrderedObject()
        let code: Int
        switch termination {
        case .exited(let c): code = Int(c)
        case .signalled(let s): code = 128 + Int(s)
        }
        outputs["exit-code"] = .int(code)
        outputs["stdout"] = .string(stdout.trimming(" \t\r\n"))
        let written = OutputFile.parse(CommandStageExecutor.readCapped(outputFile, limit: CommandStageExecutor.stdoutLimit))
        if let declared = job.stage.outputs {
            for name in declared { outputs[name] = written[name].map(Value.string) ?? .null }
        } else {
            for (k, v) in written.sorted(by: { $0.key < $1.key }) where outputs[k] == nil { outputs[k] = .string(v) }
        }
        if termination != .exited(0), out >= 0, err >= 0 {
            let stderr = CommandStageExecutor.readCapped(fd: err, limit: CommandStageExecutor.stdoutLimit)
            let log = job.runDirectory + "/logs/" + job.fileStem + ".log"
            try? RunStore.writeAtomically(Array(("--- stdout\n" + stdout + "\n--- stderr\n" + stderr).utf8), to: log)
        }
        guard termination == .exited(0) else {
            let stderr = err >= 0 ? CommandStageExecutor.readCapped(fd: err, limit: 1 << 16) : CommandStageExecutor.readCapped(job.runDirectory + "/logs/" + job.fileStem + ".err", limit: 1 << 16)
            let tail = CommandStageExecutor.tail(stderr, lines: 5)
            return .failed("\(prepared.argv.first ?? "command") \(termination)\(tail.isEmpty ? "" : ": " + tail)")
        }
        return .succeeded(outputs)
    }

    public func reconcile(_ job: StageJob, process: (pid: Int32, startTime: UInt64)?) async -> Reconciliation {
        if let process, Processes.isAlive(pid: process.pid, startTime: process.startTime) {
            await ChildProcess.terminateGroup(process.pid, startTime: process.startTime, grace: grace)
        }
        return .rerun
    }

    /// A command with its expressions rendered. In a shell string each `${{ }}` becomes a
    /// reference to an environment variable holding the value, so no value is parsed by the shell.
    public static func prepare(_ command: Command, job: StageJob, evaluator: ExpressionEvaluator) throws(EvaluationError) -> PreparedCommand {
        var environment = job.environment
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] { environment[name] = nil }
        environment["AMPLIFY_RUN_ID"] = job.runId
        environment["AMPLIFY_STAGE"] = job.key.stage
        if let name = job.itemName { environment["AMPLIFY_ITEM_ID"] = name }
        for entry in job.stage.env {
            environment[entry.key] = try entry.value.render(evaluator).renderedText
        }
        var directory = job.repository
        if let wd = job.stage.workingDirectory {
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
            var scanner = ShellQuoteScanner()
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

    /// At most `limit` bytes of a file (never following a symlink), sized by the file, not the limit.
    static func readCapped(_ path: String, limit: Int) -> String {
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

    static func tail(_ text: String, lines: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: " | ")
    }
}

/// Tracks quoting through shell text, to know whether an inserted reference is inside "…".
struct ShellQuoteScanner {
    private(set) var inDoubleQuotes = false
    private var inSingleQuotes = false
    private var escaped = false

    mutating func scan(_ text: String) {
        for c in text.unicodeScalars {
            if escaped { escaped = false; continue }
            if inSingleQuotes { if c == "'" { inSingleQuotes = false }; continue }
            switch c {
            case "\\": escaped = true
            case "'": if !inDoubleQuotes { inSingleQuotes = true }
            case "\"": inDoubleQuotes.toggle()
            default: break
            }
        }
    }
}

/// `$AMPLIFY_OUTPUT`: `key=value` lines, and `key<<DELIM` … `DELIM` for multi-line values.
public enum OutputFile {
    /// Lines end in "\n" or "\r\n" (a script written on Windows, or `printf '…\r\n'`): split on
    /// scalars, since "\r\n" is one Character that a split on "\n" would never cut.
    public static func parse(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            Substring(String(String.UnicodeScalarView(line.last == "\r" ? line.dropLast() : line)))
        }[...]
        while let line = lines.popFirst() {
            if let r = line.firstRange(of: "<<"), !line[..<r.lowerBound].contains("=") {
                let key = String(line[..<r.lowerBound])
                let delimiter = line[r.upperBound...]
                var value: [Substring] = []
                while let l = lines.popFirst(), l != delimiter { value.append(l) }
                out[key] = value.joined(separator: "\n")
            } else if let eq = line.firstIndex(of: "=") {
                out[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
        }
        return out
    }
}
