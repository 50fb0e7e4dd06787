import AmplifyWorkflow
import Testing

/// `sandbox` and `sandbox-writable` (SPEC §12): where they go and what they take.
@Suite("sandbox: the keys")
struct SandboxKeysTests {
    @Test("settings.sandbox and the dispatch's sandbox take none or bwrap; writable paths are absolute or ~/")
    func accepted() throws {
        let w = try #require(check(dispatchWorkflow(settings: ", sandbox: bwrap, sandbox-writable: [~/.cache/pip, /opt/shared]",
                                                              with: ", sandbox: none, sandbox-writable: [\"${{ env.HOME }}/.npm\"]")).workflow)
        #expect(w.settings.sandbox == "bwrap")
        #expect(w.settings.sandboxWritable == ["~/.cache/pip", "/opt/shared"])
        #expect(w.stage("dispatch")?.literal(DispatchParameters.sandbox) == "none")
        #expect(AgentProfile.builtIn["claude"]?.sandboxWritable == ["~/.claude/", "~/.claude.json"])
    }

    @Test("a wrong value is an error at its line, with what it takes")
    func refusals() {
        expectRefused([
            (", sandbox: bwarp", "", "2:", "settings.sandbox must be `none` or `bwrap`, not 'bwarp'; did you mean 'bwrap'?"),
            (", sandbox-writable: [relative/dir]", "", "2:", "takes absolute paths or `~/…`"),
            (", sandbox-writable: [/opt/../etc]", "", "2:", "without '..'"),
            ("", ", sandbox: docker", "5:", "sandbox"),
            ("", ", sandbox-writable: [.cache]", "5:", "`with.sandbox-writable` takes absolute paths or `~/…`"),
        ])
    }
}
