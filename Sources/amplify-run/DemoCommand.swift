import AmplifyWorkflow
import ArgumentParser

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the embedded default workflow in a sandbox repository (no bd or agent needed)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Keep the sandbox in DIR instead of a temporary directory.", valueName: "DIR"))
    var keep: String?

    func run() throws {
        let result = WorkflowChecker.check(EmbeddedWorkflows.defaultWorkflow, file: "<embedded>/workflows/default.yaml")
        Terminal.printDiagnostics(result.diagnostics, source: Array(EmbeddedWorkflows.defaultWorkflow.utf8))
        guard let workflow = result.workflow else { throw ExitCode(2) }
        print("The embedded default workflow checks clean. The DAG it compiles to:\n")
        print(Plan(workflow).render(.text))
        print("This build has the workflow language and the engine, but not yet the orchestration stages (dispatch, wait-approved, merge, close, cleanup) that this DAG needs; the demo will run it on a sandbox repository once they land. `amplify-run workflows/examples/generic.yaml` in any git repository runs a workflow of generic stages today.")
    }
}
