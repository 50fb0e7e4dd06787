import AmplifyWorkflow
import ArgumentParser

/// `schema`: the JSON Schema of workflow files.
struct SchemaCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema (draft-07) of workflow files, for editors."
    )

    @OptionGroup var global: GlobalOptions

    func run(_ context: CommandContext) async throws {
        context.out.text(WorkflowSchema.text)
    }
}
