import AmplifyWorkflow
import ArgumentParser

extension PlanRenderer.Format: ExpressibleByArgument {}

/// `plan FILE`: the DAG a workflow compiles to, drawn in a format.
struct PlanCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show the DAG a workflow compiles to: stages, edges, per-item and fan-in stages, limits."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The workflow file.", valueName: "workflow.yaml"))
    var file: String

    @Option(help: "Output format: text, mermaid (renders on GitHub), dot (Graphviz) or json.")
    var format: PlanRenderer.Format = .text

    func run(_ context: CommandContext) async throws {
        guard let workflow = LoadedWorkflow.load(file, in: context).workflow else { throw ExitCode(2) }
        context.out.text(PlanRenderer(workflow.plan).render(format))
    }
}
