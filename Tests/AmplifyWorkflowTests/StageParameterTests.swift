import AmplifyWorkflow
import Testing

@Suite("Stage parameters")
struct StageParameterTests {
    static let workflow: Workflow = {
        check("""
        version: 1
        stages:
          ready: {uses: query-ready, with: {label: api, limit: 2}}
          dispatch:
            uses: dispatch
            for-each: ${{ stages.ready.outputs.items }}
            with: {prompt: go, setup: "make deps"}
          merge: {uses: merge, with: {strategy: squash, verify: ["make test", [swift, test]]}}
          close: {uses: close}
        """).workflow!
    }()

    let evaluator = ExpressionEvaluator(context: ExpressionContext())

    @Test("a parameter's default comes from the catalogue")
    func defaults() throws {
        let w = Self.workflow
        #expect(try w.stage("close")!.value(CloseParameters.reason, evaluator) == "Merged")
        #expect(try w.stage("merge")!.value(MergeParameters.strategy, evaluator) == "squash")
        #expect(try w.stage("merge")!.value(MergeParameters.commitLeftovers, evaluator) == true)
        #expect(try w.stage("ready")!.value(QueryReadyParameters.source, evaluator) == "bd")
        #expect(w.stage("ready")!.literal(QueryReadyParameters.refillInterval) == .seconds(30))
        #expect(w.stage("ready")!.literal(QueryReadyParameters.refill) == false)
    }

    @Test("parameters without a default are nil unless given")
    func given() throws {
        let ready = Self.workflow.stage("ready")!
        #expect(try ready.value(QueryReadyParameters.label, evaluator) == ["api"])
        #expect(try ready.value(QueryReadyParameters.limit, evaluator) == 2)
        #expect(try ready.value(QueryReadyParameters.maxItems, evaluator) == nil)
        #expect(ready.command(QueryReadyParameters.command) == nil)
    }

    @Test("commands are read unrendered")
    func commands() {
        #expect(Self.workflow.stage("dispatch")!.commands(DispatchParameters.setup) == [.shell(Template(parts: [.text("make deps")]))])
        let verify = Self.workflow.stage("merge")!.commands(MergeParameters.verify)
        #expect(verify == [.shell(Template(parts: [.text("make test")])), .argv([Template(parts: [.text("swift")]), Template(parts: [.text("test")])])])
    }

    @Test("every catalogue parameter is declared WithDefault exactly when it has a default, and defaults read as declared")
    func catalogue() {
        // Building each kind's list builds every parameter, whose init checks its presence.
        #expect(StageKind.allCases.allSatisfy { !$0.parameters.isEmpty })
        #expect(QueryReadyParameters.refillInterval.spec.defaultValue.flatMap { WorkflowDuration.read($0, as: .duration) } == .seconds(30))
        #expect(MergeParameters.commitLeftovers.spec.defaultValue.flatMap { Bool.read($0, as: .boolean) } == true)
    }
}

@Suite("Shell quoting")
struct ShellQuotingTests {
    @Test("expressions inside single quotes are found; double quotes and escapes are not single quotes",
          arguments: [
            ("echo '${{ a }}'", [6]),
            ("echo \"${{ a }}\"", []),
            ("echo \\'${{ a }}", []),
            ("echo \"'\"${{ a }}", []),
            ("echo '\\'${{ a }}", []),
          ] as [(String, [Int])])
    func singleQuotes(text: String, offsets: [Int]) {
        #expect(ShellQuoting.expressionsInSingleQuotes(text) == offsets)
    }

    @Test("quoting carries over from one piece of text to the next")
    func carries() {
        var q = ShellQuoting()
        q.scan("echo \"a ")
        #expect(q.inDoubleQuotes)
        q.scan("b\" '")
        #expect(!q.inDoubleQuotes && q.inSingleQuotes)
    }
}
