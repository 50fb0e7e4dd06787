import AmplifyWorkflow
import ArgumentParser

extension Plan.Format: ExpressibleByArgument {}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show the DAG a workflow compiles to: stages, edges, per-item and fan-in stages, limits."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The workflow file.", valueName: "workflow.yaml"))
    var file: String

    @Option(help: "Output format: text, mermaid (renders on GitHub), dot (Graphviz) or json.")
    var format: Plan.Format = .text

    func run() throws {
        guard let workflow = LoadedWorkflow.load(file).workflow else { throw ExitCode(2) }
        print(Plan(workflow).render(format), terminator: "")
    }
}
