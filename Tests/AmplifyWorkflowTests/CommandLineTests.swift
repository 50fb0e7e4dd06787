import Foundation
import Testing

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
