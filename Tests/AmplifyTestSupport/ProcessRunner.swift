import Foundation

/// Runs a program to the end without holding a thread of the concurrency pool while it runs
/// (the pool has two threads on these machines; blocked, they starve tests that time kills).
/// Output goes to temporary files, read once the program has exited.
public func runProcess(_ program: URL, _ arguments: [String], in directory: URL?, environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
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
    process.executableURL = program
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    let status: Int32 = try await withCheckedThrowingContinuation { c in
        process.terminationHandler = { c.resume(returning: $0.terminationStatus) }
        do { try process.run() } catch { process.terminationHandler = nil; c.resume(throwing: error) }
    }
    return (status, (try? String(contentsOf: outURL, encoding: .utf8)) ?? "", (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

/// The `amplify-run` executable built beside the test bundle (or in `.build/debug`).
public func amplifyExecutable(repositoryRoot: URL) -> URL {
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("amplify-run")
    if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
    return repositoryRoot.appendingPathComponent(".build/debug/amplify-run")
}

/// Processes (not zombies) whose environment holds `entry` (`AMPLIFY_ITEM_ID=x-1`): a test's own
/// agents, not those of the tests running beside it.
public func livingProcesses(withEnvironment entry: String) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
        guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/environ"),
              let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8), !stat.contains(") Z ") else { return nil }
        return data.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == entry } ? pid : nil
    }
}
