import AmplifyWorkflow
import Testing

@Suite("Plans")
struct PlanTests {
    static let workflow: Workflow = {
        check("""
        version: 1
        name: "quote\\"d"
        stages:
          ready: {uses: query-ready}
          dispatch:
            uses: dispatch
            for-each: ${{ stages.ready.outputs.items }}
            with: {prompt: go}
          approved: {uses: wait-approved, timeout: 4h}
          merge: {uses: merge}
          report:
            fan-in: true
            if: ${{ always() }}
            run: echo done
        """).workflow!
    }()

    @Test("text lists stages in dependency order with how they run")
    func text() {
        let out = Plan(Self.workflow).render(.text)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines[1].hasPrefix("STAGE"))
        #expect(lines[2].hasPrefix("ready"))
        #expect(lines.contains { $0.hasPrefix("merge") && $0.contains("per item (from dispatch)") && $0.contains("concurrency 1") })
        #expect(lines.contains { $0.hasPrefix("report") && $0.contains("once, after every item of dispatch") && $0.contains("if always()") })
    }

    @Test("mermaid groups per-item stages and marks the fan-in edge")
    func mermaid() {
        let out = Plan(Self.workflow).render(.mermaid)
        #expect(out.hasPrefix("flowchart TD\n"))
        #expect(out.contains("subgraph per_item_s_dispatch[\"per item of dispatch\"]"))
        #expect(out.contains("s_ready --> s_dispatch"))
        #expect(out.contains("s_merge ==>|all items| s_report"))
        #expect(out.contains("s_report{{"))
    }

    @Test("dot is a digraph with a cluster per item pipeline, names escaped")
    func dot() {
        let out = Plan(Self.workflow).render(.dot)
        #expect(out.hasPrefix("digraph \"quote\\\"d\" {"))
        #expect(out.contains("subgraph cluster_0"))
        #expect(out.contains("\"approved\" -> \"merge\";"))
        #expect(out.hasSuffix("}\n"))
    }

    @Test("json has every stage and edge")
    func json() throws {
        let v = Plan(Self.workflow).json
        guard case .list(let stages)? = v["stages"], case .list(let edges)? = v["edges"] else { Issue.record("no stages/edges"); return }
        #expect(stages.count == 5)
        #expect(edges.count == 4)
        #expect(stages[3]["per-item"] == .bool(true))
        #expect(stages[3]["concurrency"] == .int(1))
        #expect(stages[4]["fan-in"] == .bool(true))
    }
}
