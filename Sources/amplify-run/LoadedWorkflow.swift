import AmplifyWorkflow

/// Reads and checks a workflow file for a command, printing its diagnostics.
enum LoadedWorkflow {
    /// The checked workflow (nil after printing why not: the caller exits 2), its diagnostics,
    /// and the file's bytes as read.
    static func load(_ path: String, in context: CommandContext) -> (workflow: Workflow?, diagnostics: [Diagnostic], bytes: [UInt8]?) {
        let (result, bytes) = WorkflowFile.load(path)
        Terminal.printDiagnostics(result.diagnostics, source: bytes, to: context.err)
        return (result.workflow, result.diagnostics, bytes)
    }
}
