import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `run FILE` (the default subcommand): a new run of a workflow, or its unfinished one continued.
struct RunCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a workflow, or continue its newest unfinished run (the default subcommand)."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The workflow file.", valueName: "workflow.yaml"))
    var file: String

    @Flag(help: "Start a new run even if an unfinished run of this workflow exists.")
    var new = false

    @Option(name: .customLong("var"), help: ArgumentHelp("Set a workflow variable (repeatable).", valueName: "KEY=VALUE"))
    var vars: [String] = []

    @Flag(help: "Resolve the ready items and print what would be dispatched; change nothing.")
    var dryRun = false

    @Flag(help: "Print one JSON object per event on stdout (the journal's events), nothing else.")
    var json = false

    func validate() throws {
        for v in vars where !v.contains("=") || v.hasPrefix("=") {
            throw ValidationError("--var takes KEY=VALUE, not '\(v)'")
        }
    }

    func run(_ context: CommandContext) async throws {
        // `amplify-run validat` would otherwise be taken as a run of the file `validat`.
        if let meant = AmplifyRun.misspeltSubcommand(file, in: context.directory) {
            context.error("unknown command '\(file)'; did you mean '\(meant)'? (and no file named '\(file)' exists)")
            throw ExitCode(2)
        }
        let (checked, _, source) = LoadedWorkflow.load(file, in: context)
        guard let workflow = checked, let bytes = source else { throw ExitCode(2) }
        guard let repository = RepositoryLocator.topLevel(from: context.directory) ?? RepositoryLocator.realPath(context.directory) else {
            context.error("cannot resolve the current directory")
            throw ExitCode(4)
        }
        guard let relative = RepositoryLocator.relative(file, to: repository) else {
            context.error("\(file) is outside the repository \(repository); a workflow is identified by its path in the repository, so it must live there: copy it in (e.g. to workflows/), commit it, and run `amplify-run workflows/<name>.yaml` (or -C the repository it belongs to)")
            throw ExitCode(2)
        }
        var overrides: [String: String] = [:]
        for v in vars {
            let key = String(v.prefix { $0 != "=" })
            overrides[key] = String(v.dropFirst(key.count + 1))
        }
        if dryRun {
            var vars = workflow.vars
            for (k, v) in overrides {
                guard vars[k] != nil else {
                    context.error("--var \(k): the workflow declares no variable '\(k)'\(DidYouMean.hint(k, vars.keys))")
                    throw ExitCode(2)
                }
                vars[k] = .string(v)
            }
            let report = await DryRun.run(workflow, repository: repository, vars: vars, environment: context.environment)
            context.out.line("dry run of \(relative): only the queries ran; nothing was changed")
            for f in report.failures { context.out.line("\(f.stage) failed: \(f.reason)") }
            for e in report.expansions {
                context.out.line("\(e.stage) would run for \(e.items.count) item\(e.items.count == 1 ? "" : "s")\(e.items.isEmpty ? "" : ":")")
                for (i, item) in e.items.enumerated() {
                    let title = item["title"].map { "  " + $0.renderedText } ?? ""
                    context.out.line("  \(RunStateMachine.itemName(item, index: i))\(title)")
                }
            }
            for r in report.refused {
                for item in r.items { context.out.line("\(r.stage) refused an item whose id is not allowed: \(item["id"]?.json ?? item.json)") }
            }
            throw ExitCode(report.failures.isEmpty ? 0 : 1)
        }
        // Checked before anything is claimed: a base branch that is not there would fail every item.
        let problems = Preflight.agentProblems(workflow, overrides: overrides)
            + Preflight.notifyProblems(workflow, overrides: overrides, environment: context.environment, repository: repository)
            + (await Preflight.check(workflow, repository: repository, environment: context.environment))
        for p in problems { context.error("\(p)") }
        guard problems.isEmpty else { throw ExitCode(2) }
        var request = RunRequest(repository: repository, workflowPath: relative, workflowBytes: bytes, varOverrides: overrides, forceNew: new, environment: context.environment)
        request.checked = workflow  // checked once, above
        let store = RunStore(root: repository + "/" + workflow.settings.state)
        if let note = Claims.strandedNote(await Claims(stateDirectory: store.root).stranded(store: store, repository: repository, environment: context.environment)) { request.notes.append(note) }
        let observer = RunnerLauncher.observer(workflowPath: relative, json: json, in: context)
        throw ExitCode(try await RunnerLauncher.run(request, observer: observer, in: context))
    }
}
