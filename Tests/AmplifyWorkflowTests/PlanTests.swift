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
        let out = PlanRenderer(Self.workflow.plan).render(.text)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines[1].hasPrefix("STAGE"))
        #expect(lines[2].hasPrefix("ready"))
        #expect(lines.contains { $0.hasPrefix("merge") && $0.contains("per item (from dispatch)") && $0.contains("concurrency 1") })
        #expect(lines.contains { $0.hasPrefix("report") && $0.contains("once, after every item of dispatch") && $0.contains("if always()") })
    }

    @Test("mermaid groups per-item stages and marks the fan-in edge")
    func mermaid() {
        let out = PlanRenderer(Self.workflow.plan).render(.mermaid)
        #expect(out.hasPrefix("flowchart TD\n"))
        #expect(out.contains("subgraph per_item_s_dispatch[\"per item of dispatch\"]"))
        #expect(out.contains("s_ready --> s_dispatch"))
        #expect(out.contains("s_merge ==>|all items| s_report"))
        #expect(out.contains("s_report{{"))
    }

    @Test("dot is a digraph with a cluster per item pipeline, names escaped")
    func dot() {
        let out = PlanRenderer(Self.workflow.plan).render(.dot)
        #expect(out.hasPrefix("digraph \"quote\\\"d\" {"))
        #expect(out.contains("subgraph cluster_0"))
        #expect(out.contains("\"approved\" -> \"merge\";"))
        #expect(out.hasSuffix("}\n"))
    }

    @Test("json has every stage and edge")
    func json() throws {
        let v = PlanRenderer(Self.workflow.plan).json
        guard case .list(let stages)? = v["stages"], case .list(let edges)? = v["edges"] else { Issue.record("no stages/edges"); return }
        #expect(stages.count == 5)
        #expect(edges.count == 4)
        #expect(stages[3]["per-item"] == .bool(true))
        #expect(stages[3]["concurrency"] == .int(1))
        #expect(stages[4]["fan-in"] == .bool(true))
    }
}

@Suite("The compiled DAG")
struct PlanGraphTests {
    static let plan: Plan = {
        check("""
        version: 1
        stages:
          ready: {uses: query-ready, with: {refill: true, refill-interval: 50ms, max-items: 3}}
          dispatch:
            uses: dispatch
            for-each: ${{ stages.ready.outputs.items }}
            with: {prompt: go}
          approved: {uses: wait-approved}
          merge: {uses: merge}
          report:
            fan-in: true
            if: ${{ always() }}
            run: echo done
          after: {run: echo after}
        """).plan!
    }()

    func node(_ id: String) -> StageGraph.Node { Self.plan.node(id)! }
    func number(_ id: String) -> Int { Self.plan.index[id]! }

    @Test("needs are resolved, the stage above included, with dependants and ancestors")
    func edges() {
        #expect(node("approved").needs == [number("dispatch")])
        #expect(node("dispatch").dependants == [number("approved")])
        #expect(node("report").ancestors == ["ready", "dispatch", "approved", "merge"].map(number))
        #expect(node("after").needs == [number("report")])
        #expect(Self.plan.order == ["ready", "dispatch", "approved", "merge", "report", "after"])
        #expect(Self.plan.workflow.topologicalOrder == Self.plan.order)
    }

    @Test("how each stage runs: once, per item of its for-each stage, or fan-in")
    func runs() {
        #expect(node("ready").runs == .once)
        #expect(node("dispatch").runs == .perItem(source: number("dispatch")))
        #expect(node("merge").runs == .perItem(source: number("dispatch")))
        #expect(node("report").runs == .fanIn(sources: [number("dispatch")]))
        #expect(node("after").runs == .once)
        #expect(Self.plan.workflow.stage("merge")?.itemSource == "dispatch")
    }

    @Test("what the run needs: status conditions, each item's dispatch, refills")
    func runFacts() {
        #expect(node("report").conditionUsesStatus)
        #expect(!node("merge").conditionUsesStatus)
        #expect(node("dispatch").dispatch == number("dispatch"))
        let refill = node("ready").refill
        #expect(refill?.interval == 100)
        #expect(refill?.maxItems == 3)
        #expect(refill?.fed == [number("dispatch")])
        #expect(node("dispatch").refill == nil)
    }

    @Test("a workflow with errors has no plan")
    func noPlan() {
        #expect(check("version: 1\nstages: {a: {run: x, needs: b}, b: {run: y, needs: a}}").plan == nil)
    }
}
