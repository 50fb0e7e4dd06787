import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the embedded default workflow in a sandbox repository (no bd or agent needed)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Make the sandbox in DIR (kept afterwards) instead of a temporary directory.", valueName: "DIR"))
    var keep: String?

    func run() async throws {
        let root: String
        if let keep {
            let dir = keep.hasPrefix("/") ? keep : RepositoryLocator.currentDirectory() + "/" + keep
            if let entries = try? FileManager.default.contentsOfDirectory(atPath: dir), !entries.isEmpty {
                Terminal.err("amplify-run: error: --keep \(keep): the directory is not empty")
                throw ExitCode(2)
            }
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            root = RepositoryLocator.realPath(dir) ?? dir
        } else {
            let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            var template = Array((tmp + "/amplify-demo-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else {
                Terminal.err("amplify-run: error: cannot make a temporary directory")
                throw ExitCode(4)
            }
            root = RepositoryLocator.realPath(String(cString: made)) ?? String(cString: made)
        }
        let repo = root + "/repo"
        let agent = root + "/bin/demo-agent"
        // An almost empty environment is enough: the sandbox sets its own git identity.
        var env = ["PATH": "/usr/bin:/bin", "HOME": root, "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"]
        if let term = ProcessInfo.processInfo.environment["TERM"] { env["TERM"] = term }
        if let noColor = ProcessInfo.processInfo.environment["NO_COLOR"] { env["NO_COLOR"] = noColor }

        print("amplify-run demo: a sandbox repository in \(repo)")
        do {
            try FileManager.default.createDirectory(atPath: repo + "/.beads", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: repo + "/workflows", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
            try DemoSandbox.agentScript.write(toFile: agent, atomically: true, encoding: .utf8)
            chmod(agent, 0o755)
            try DemoSandbox.issues.write(toFile: repo + "/.beads/issues.jsonl", atomically: true, encoding: .utf8)
            try DemoSandbox.workflow.write(toFile: repo + "/workflows/default.yaml", atomically: true, encoding: .utf8)
            try "# Demo project\n\nA sandbox made by `amplify-run demo`.\n".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
        } catch {
            Terminal.err("amplify-run: error: cannot write the sandbox: \(error)")
            throw ExitCode(4)
        }
        for args in [["init", "-q", "-b", "main"], ["config", "user.name", "Demo User"], ["config", "user.email", "demo@example.com"],
                     ["add", "README.md", "workflows"], ["commit", "-q", "-m", "Initial commit"]] {
            guard await git(args, in: repo, env: env) != nil else { throw ExitCode(4) }
        }
        // The tracker's file is the tracker's, not the project's.
        try? "/.beads/\n".write(toFile: repo + "/.git/info/exclude", atomically: true, encoding: .utf8)
        print("amplify-run demo: 5 items in .beads/issues.jsonl (demo-2 waits for demo-1; demo-3 will be rejected; demo-4 asks a question); the agent is \(agent)\n")

        let request = RunRequest(repository: repo, workflowPath: "workflows/default.yaml", workflowBytes: Array(DemoSandbox.workflow.utf8),
                                 varOverrides: ["agent": agent], environment: env)
        let inner: RunObserver = Terminal.liveView ? TerminalObserver(workflowPath: "workflows/default.yaml") : LineObserver(workflowPath: "workflows/default.yaml")
        let code: Int32
        let observer = DemoObserver(inner: inner, state: repo + "/.amplify")
        do {
            code = try await Runner(request: request, executors: StageExecutors(grace: .seconds(5)), observer: observer).run()
        } catch {
            Terminal.err("amplify-run: error: \(error.message)")
            throw ExitCode(error.exitCode)
        }
        print("\n$ git log --graph --oneline main")
        print(await git(["log", "--graph", "--oneline", "main"], in: repo, env: env) ?? "")
        // One rejection is part of the script, so the run's own exit code is 1; the demo succeeded
        // when every item ended as the script intends, and failed (exit 1) otherwise.
        let surprises = code == 0 || code == 1 ? DemoCommand.surprises(observer.outcomes) : []
        if code == 1 && surprises.isEmpty {
            print("The run's exit code is 1 because demo-3 was rejected, as the demo intends; `amplify-run demo` itself succeeded.")
        }
        for s in surprises { Terminal.err("amplify-run demo: \(s)") }
        if keep != nil {
            print("The sandbox stays in \(root): try `amplify-run -C \(repo) status`.")
        } else {
            try? FileManager.default.removeItem(atPath: root)
        }
        if code != 0 && code != 1 { throw ExitCode(code) }
        if !surprises.isEmpty { throw ExitCode(1) }
    }

    /// What the demo intends: demo-3 rejected, the four others merged.
    static let intended = ["demo-1": ItemOutcome.merged, "demo-2": ItemOutcome.merged, "demo-3": "rejected",
                           "demo-4": ItemOutcome.merged, "demo-5": ItemOutcome.merged]

    /// Each item that did not end as the demo intends, said plainly; empty when all did.
    static func surprises(_ outcomes: [String: String]) -> [String] {
        intended.keys.sorted().compactMap { id in
            let got = outcomes[id] ?? "not dispatched"
            return got == intended[id] ? nil : "\(id) should have ended \(intended[id]!), but ended \(got.visible)"
        }
    }

    private func git(_ args: [String], in dir: String, env: [String: String]) async -> String? {
        let r = await Exec.run(["git"] + args, in: dir, environment: env)
        guard r.succeeded else {
            Terminal.err("amplify-run: error: \(r.failure(["git"] + args))")
            return nil
        }
        return r.stdout.trimming(" \n")
    }
}

/// Shows the run as usual, and answers the sessions' questions the way a user would with
/// `amplify-run answer`; keeps how each item ended, for the demo's own verdict.
final class DemoObserver: RunObserver {
    let inner: RunObserver
    let state: String
    private let ended = Mutex<[String: String]>([:])

    init(inner: RunObserver, state: String) {
        self.inner = inner
        self.state = state
    }

    /// Each item's outcome (`merged`, `rejected`…) once the run ended.
    var outcomes: [String: String] { ended.withLock { $0 } }

    func begin(run: String, resumed: Bool, notes: [String]) { inner.begin(run: run, resumed: resumed, notes: notes) }

    func record(_ entry: JournalEntry, line: String, state machine: RunStateMachine) {
        inner.record(entry, line: line, state: machine)
        guard case .note(_, "question", let fields) = entry.event, case .string(let session)? = fields["session"],
              case .string(let qid)? = fields["id"] else { return }
        let answer: String = if case .list(let options)? = fields["options"], let first = options.first { first.renderedText } else { "yes" }
        let files = SessionFiles(stateDirectory: state, id: session)
        Task.detached {
            try? await Task.sleep(for: .seconds(1))
            print("amplify-run demo: answering as a user would: amplify-run answer \(session) \(qid) '\(answer)'")
            try? files.appendAnswer(questionId: qid, answer: answer, context: nil)
        }
    }

    func end(state machine: RunStateMachine, exitCode: Int32) {
        inner.end(state: machine, exitCode: exitCode)
        let items = RunReport(machine, now: Processes.now()).items
        ended.withLock { o in for r in items { o[r.item] = r.outcome } }
    }
}
