import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// Paths of the repository, found from this file's location.
enum Repository {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let malformed = root.appendingPathComponent("Tests/AmplifyWorkflowTests/Malformed")

    static func files(in folder: String, extension ext: String = "yaml") -> [String] {
        let dir = root.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix("." + ext) }.sorted().map { "\(folder)/\($0)" }
    }

    static func read(_ relative: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }

    /// The `amplify-run` executable built beside the test bundle.
    static var executable: URL { amplifyExecutable(repositoryRoot: root) }
}

/// A ready → dispatch workflow with more `settings` and dispatch `with` keys (`", sandbox: bwrap"`):
/// settings are on line 2, the dispatch's `with` on line 5.
func dispatchWorkflow(settings: String = "", with: String = "") -> String {
    """
    version: 1
    settings: {base: main\(settings)}
    stages:
      ready: {uses: query-ready, with: {source: file, path: issues.jsonl}}
      dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {prompt: p\(with)}}
    """
}

/// Each case `(settings, with, line, expected)`: `dispatchWorkflow(settings:with:)` has an error
/// at `line` ("2:" for settings, "5:" for the dispatch's `with`) saying `expected`.
func expectRefused(_ cases: [(settings: String, with: String, line: String, expected: String)], sourceLocation: SourceLocation = #_sourceLocation) {
    for (settings, with, line, expected) in cases {
        let found = errors(dispatchWorkflow(settings: settings, with: with))
        #expect(found.contains { $0.contains(expected) && $0.hasPrefix(line) }, "\(settings)\(with): \(found)", sourceLocation: sourceLocation)
    }
}

/// Checks workflow text given inline.
func check(_ yaml: String, file: String = "test.yaml") -> WorkflowChecker.Result {
    WorkflowChecker.check(yaml, file: file)
}

/// The errors of a check as "LINE:COL: message" strings, for readable failures.
func errors(_ yaml: String) -> [String] {
    check(yaml).diagnostics.filter(\.isError).map { "\($0.location): \($0.message)" }
}

/// Runs the amplify-run executable and returns its exit status and output.
func runCLI(_ arguments: [String], in directory: URL? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await runProcess(Repository.executable, arguments, in: directory)
}
