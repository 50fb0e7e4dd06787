import AmplifyWorkflow

/// Reads and checks a workflow file for a command, printing its diagnostics.
enum LoadedWorkflow {
    /// The checked workflow, or nil after printing why not (the caller exits 2).
    static func load(_ path: String) -> (workflow: Workflow?, diagnostics: [Diagnostic]) {
        let source = try? WorkflowFile.read(path)
        let result = WorkflowFile.check(path)
        Terminal.printDiagnostics(result.diagnostics, source: source)
        return (result.workflow, result.diagnostics)
    }
}
