import AmplifyWorkflow
import Foundation

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
    static var executable: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("amplify-run")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return root.appendingPathComponent(".build/debug/amplify-run")
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

/// Runs the amplify-run executable and returns its exit status and output, without holding a
/// thread of the concurrency pool while it runs.
func runCLI(_ arguments: [String], in directory: URL? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
    let tmp = FileManager.default.temporaryDirectory
    let outURL = tmp.appendingPathComponent("out-\(UUID().uuidString)")
    let errURL = tmp.appendingPathComponent("err-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    let process = Process()
    process.executableURL = Repository.executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    let status: Int32 = try await withCheckedThrowingContinuation { c in
        process.terminationHandler = { c.resume(returning: $0.terminationStatus) }
        do { try process.run() } catch { process.terminationHandler = nil; c.resume(throwing: error) }
    }
    return (status, (try? String(contentsOf: outURL, encoding: .utf8)) ?? "", (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}
