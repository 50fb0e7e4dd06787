import AmplifyWorkflow
import ArgumentParser

struct RunCommand: ParsableCommand {
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

    @Flag(help: "Print one JSON object per event on stdout.")
    var json = false

    func validate() throws {
        for v in vars where !v.contains("=") || v.hasPrefix("=") {
            throw ValidationError("--var takes KEY=VALUE, not '\(v)'")
        }
    }

    func run() throws {
        guard let workflow = LoadedWorkflow.load(file).workflow else { throw ExitCode(2) }
        for v in vars {
            let key = String(v.prefix { $0 != "=" })
            if workflow.vars[key] == nil {
                Terminal.err("amplify-run: error: --var \(key): the workflow declares no variable '\(key)'\(DidYouMean.hint(key, workflow.vars.keys))")
                throw ExitCode(2)
            }
        }
        Terminal.err("amplify-run: \(file) is a valid workflow (\(workflow.stages.count) stages), but this build has no engine yet: nothing was run. `amplify-run plan \(file)` shows what it would run.")
        throw ExitCode(4)
    }
}
