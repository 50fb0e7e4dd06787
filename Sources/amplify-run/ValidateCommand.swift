import AmplifyWorkflow
import ArgumentParser

/// `validate FILE…`: every problem of each workflow file, located.
struct ValidateCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check workflow files and report every problem with its location.",
        discussion: "Prints FILE:LINE:COLUMN: error: MESSAGE for each problem and exits 2 when there is one; a valid file prints one short OK line."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("Workflow files to check.", valueName: "workflow.yaml"))
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("Give at least one workflow file to validate.") }
    }

    func run(_ context: CommandContext) async throws {
        var failed = false
        for file in files {
            let (workflow, diagnostics, _) = LoadedWorkflow.load(file, in: context)
            if let workflow {
                let warnings = diagnostics.filter { !$0.isError }.count
                context.out.line("ok: \(file): workflow '\(workflow.name)', \(workflow.stages.count) stage\(workflow.stages.count == 1 ? "" : "s")\(warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : "")")
            } else {
                failed = true
            }
        }
        if failed { throw ExitCode(2) }
    }
}
