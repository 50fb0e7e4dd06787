import AmplifyWorkflow
import ArgumentParser

struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema (draft-07) of workflow files, for editors."
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        print(WorkflowSchema.text, terminator: "")
    }
}
