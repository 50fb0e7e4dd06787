import Foundation
import Synchronization
import Testing
@testable import amplify_run

@Suite("The amplify-run command")
struct CommandLineTests {
    @Test("validate: valid files print one OK line each and exit 0")
    func validateOK() async throws {
        let r = try await runCLI(["validate", "workflows/default.yaml", "workflows/examples/generic.yaml"], in: Repository.root)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == 2)
        #expect(r.stdout.hasPrefix("ok: workflows/default.yaml"))
        #expect(r.stderr.isEmpty)
    }

    @Test("validate: a malformed file prints FILE:LINE:COL: error: and exits 2")
    func validateMalformed() async throws {
        let r = try await runCLI(["validate", "Tests/AmplifyWorkflowTests/Malformed/stage-key-misspelt.yaml"], in: Repository.root)
        #expect(r.status == 2)
        #expect(r.stderr.contains("Tests/AmplifyWorkflowTests/Malformed/stage-key-misspelt.yaml:9:5: error: unknown key 'neds' in stage 'b'; did you mean 'needs'?"))
        #expect(r.stdout.isEmpty)
    }

    @Test("a missing file is a located error with exit 2")
    func missingFile() async throws {
        let r = try await runCLI(["validate", "nope.yaml"], in: Repository.root)
        #expect(r.status == 2)
        #expect(r.stderr.contains("nope.yaml:1:1: error: cannot read 'nope.yaml'"))
    }

    @Test("-C DIR works before and after the subcommand")
    func directoryOption() async throws {
        let before = try await runCLI(["-C", Repository.root.path, "validate", "workflows/default.yaml"])
        #expect(before.status == 0, "\(before.stderr)")
        let after = try await runCLI(["validate", "-C", Repository.root.path, "workflows/default.yaml"])
        #expect(after.status == 0, "\(after.stderr)")
    }

    @Test("-C takes its value joined (-CDIR) and spelt long (--directory DIR)")
    func directoryOptionSpellings() async throws {
        let joined = try await runCLI(["-C" + Repository.root.path, "validate", "workflows/default.yaml"])
        #expect(joined.status == 0, "\(joined.stderr)")
        let long = try await runCLI(["plan", "--directory", Repository.root.path, "workflows/default.yaml"])
        #expect(long.status == 0, "\(long.stderr)")
        let missing = try await runCLI(["-C", "/nonexistent-amplify-dir", "status"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("amplify-run: error: -C /nonexistent-amplify-dir: No such file or directory"))
    }

    @Test("a command runs in the context it is given: its directory, its output captured, no chdir")
    func substitutedContext() async throws {
        let repository = FileManager.default.temporaryDirectory.appendingPathComponent("amplify-context-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: repository.appendingPathComponent(".git"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: repository) }
        let out = Mutex<[UInt8]>([])
        let err = Mutex<[UInt8]>([])
        let context = CommandContext(directory: repository.path, environment: [:], out: OutputWriter { b in out.withLock { $0 += b } },
                                     err: OutputWriter { b in err.withLock { $0 += b } }, liveView: false, now: { 0 })
        do {
            try await StatusCommand.parse([]).run(context)
            Issue.record("status of a repository without runs succeeded")
        } catch {
            // ArgumentParser's ExitCode, which this target does not import by name.
            #expect((error as? any RawRepresentable).map { "\($0.rawValue)" } == "4", "\(error)")
        }
        let said = err.withLock { String(decoding: $0, as: UTF8.self) }
        #expect(said.hasPrefix("amplify-run: no runs in ") && said.hasSuffix("/.amplify\n"), "\(said)")
        try await SchemaCommand.parse([]).run(context)
        #expect(out.withLock { String(decoding: $0, as: UTF8.self) } == (try Repository.read("schemas/orchestrate.schema.json")))
    }

    @Test("usage errors exit 2, not 64")
    func usageErrors() async throws {
        #expect(try await runCLI(["plan", "workflows/default.yaml", "--format", "png"], in: Repository.root).status == 2)
        #expect(try await runCLI(["validate"], in: Repository.root).status == 2)
        #expect(try await runCLI(["--no-such-flag", "x.yaml"], in: Repository.root).status == 2)
    }

    @Test("a misspelt subcommand gets a suggestion")
    func misspeltSubcommand() async throws {
        let r = try await runCLI(["validat", "workflows/default.yaml"], in: Repository.root)
        #expect(r.status == 2)
        #expect(r.stderr.contains("did you mean 'validate'?"))
    }

    @Test("plan prints every format")
    func plan() async throws {
        for format in ["text", "mermaid", "dot", "json"] {
            let r = try await runCLI(["plan", "workflows/default.yaml", "--format", format], in: Repository.root)
            #expect(r.status == 0)
            #expect(r.stdout.contains("merge"))
        }
    }

    @Test("schema prints the committed schema file")
    func schema() async throws {
        let r = try await runCLI(["schema"])
        #expect(r.status == 0)
        #expect(r.stdout == (try Repository.read("schemas/orchestrate.schema.json")))
    }

    @Test("help exits 0")
    func help() async throws {
        let r = try await runCLI(["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("validate"))
    }
}
