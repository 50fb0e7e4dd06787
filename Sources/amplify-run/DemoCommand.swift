import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `demo`: the default workflow run in a sandbox repository, with a scripted agent and user.
struct DemoCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the embedded default workflow in a sandbox repository (no bd or agent needed)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Make the sandbox in DIR (kept afterwards) instead of a temporary directory.", valueName: "DIR"))
    var keep: String?

    @Flag(help: "Then serve the dashboard over the sandbox (the run in a browser) until Ctrl-C.")
    var serve = false

    func run(_ context: CommandContext) async throws {
        let root: String
        if let keep {
            let dir = keep.hasPrefix("/") ? keep : context.directory + "/" + keep
            if let entries = try? FileManager.default.contentsOfDirectory(atPath: dir), !entries.isEmpty {
                context.error("--keep \(keep): the directory is not empty")
                throw ExitCode(2)
            }
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            root = RepositoryLocator.realPath(dir) ?? dir
        } else {
            let tmp = context.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            var template = Array((tmp + "/amplify-demo-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else {
                context.error("cannot make a temporary directory")
                throw ExitCode(4)
            }
            root = RepositoryLocator.realPath(String(cString: made)) ?? String(cString: made)
        }
        let repo = root + "/repo"
        // The demo agent plays Claude Code: the default workflow's `claude` profile finds it first on PATH.
        let agent = root + "/bin/claude"
        // An almost empty environment is enough: the sandbox sets its own git identity.
        var env = ["PATH": root + "/bin:/usr/bin:/bin", "HOME": root, "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"]
        if let term = context.environment["TERM"] { env["TERM"] = term }
        if let noColor = context.environment["NO_COLOR"] { env["NO_COLOR"] = noColor }

        context.out.line("amplify-run demo: a sandbox repository in \(repo)")
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
            context.error("cannot write the sandbox: \(error)")
            throw ExitCode(4)
        }
        for args in [["init", "-q", "-b", "main"], ["config", "user.name", "Demo User"], ["config", "user.email", "demo@example.com"],
                     ["add", "README.md", "workflows"], ["commit", "-q", "-m", "Initial commit"]] {
            guard await git(args, in: repo, env: env, context: context) != nil else { throw ExitCode(4) }
        }
        // The tracker's file is the tracker's, not the project's.
        try? "/.beads/\n".write(toFile: repo + "/.git/info/exclude", atomically: true, encoding: .utf8)
        context.out.line("amplify-run demo: 5 items in .beads/issues.jsonl (demo-2 waits for demo-1; demo-3 will be rejected; demo-4 asks a question); the agent is \(agent), a script that plays Claude Code\n")

        let request = RunRequest(repository: repo, workflowPath: "workflows/default.yaml", workflowBytes: Array(DemoSandbox.workflow.utf8),
                                 varOverrides: [:], environment: env)
        let inner = RunnerLauncher.observer(workflowPath: "workflows/default.yaml", in: context)
        let observer = DemoObserver(inner: inner, state: repo + "/.amplify", context: context)
        let code = try await RunnerLauncher.run(request, observer: observer, grace: .seconds(5), in: context)
        context.out.line("\n$ git log --graph --oneline main")
        context.out.line(await git(["log", "--graph", "--oneline", "main"], in: repo, env: env, context: context) ?? "")
        // One rejection is part of the script, so the run's own exit code is 1; the demo succeeded
        // when every item ended as the script intends, and failed (exit 1) otherwise.
        let surprises = code == 0 || code == 1 ? DemoCommand.surprises(observer.outcomes) : []
        if code == 1 && surprises.isEmpty {
            context.out.line("The run's exit code is 1 because demo-3 was rejected, as the demo intends; `amplify-run demo` itself succeeded.")
        }
        for s in surprises { context.err.line("amplify-run demo: \(s)") }
        if serve {
            context.out.line("\nThe dashboard shows the run (Ctrl-C stops it); the sandbox stays in \(root).")
            var directory = context
            directory.directory = repo
            try await ServeCommand.parse(["--listen", "127.0.0.1:0"]).run(directory)
            return
        }
        if keep != nil {
            context.out.line("The sandbox stays in \(root): try `amplify-run -C \(repo) status`, or `amplify-run -C \(repo) serve` to see it in a browser.")
        } else {
            context.out.line("To see the run in a browser: `amplify-run demo --serve`.")
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

    private func git(_ args: [String], in dir: String, env: [String: String], context: CommandContext) async -> String? {
        let r = await Exec.run(["git"] + args, in: dir, environment: env)
        guard r.succeeded else {
            context.error(r.failure(["git"] + args))
            return nil
        }
        return r.stdout.trimming(" \n")
    }
}
