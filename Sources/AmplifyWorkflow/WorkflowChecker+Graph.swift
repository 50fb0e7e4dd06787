// The graph pass: it compiles the checked stages into the DAG (`StageGraph`, read through `Plan`)
// and checks it on the way: `needs` cycles, which stages run per item and which fan in, kinds that
// need an item or a session.

extension WorkflowChecker {
    /// Compiles `workflow.stages` into `workflow.graph`, setting each stage's `itemSource`.
    /// Returns the stages on or after a cycle: which of them run per item cannot be known.
    mutating func checkGraph(_ workflow: inout Workflow, marks: [String: StageMarks]) -> Set<String> {
        let ids = workflow.stages.map(\.id)
        var graph = StageGraph()
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        graph.index = index
        graph.nodes = workflow.stages.map { stage in
            StageGraph.Node(id: stage.id, needs: stage.needs.compactMap { index[$0] }, conditionUsesStatus: Self.callsStatusFunction(stage.condition))
        }
        for (i, node) in graph.nodes.enumerated() { for n in node.needs { graph.nodes[n].dependants.append(i) } }

        let cyclic = reportCycles(graph, stages: workflow.stages, marks: marks)
        graph.order = Self.topologicalOrder(graph.nodes)
        for i in graph.nodes.indices { graph.nodes[i].ancestors = Self.ancestors(of: i, in: graph.nodes) }
        let unresolved = cyclic ? Set(ids).subtracting(graph.order.map { ids[$0] }) : []

        // Per-item resolution, in dependency order; stages on or after a cycle stay unresolved.
        // (Item sources are kept in an array of their own and read in plain loops: closures over
        // `graph` while it changes crashed Swift 6.3's optimizer in a release build.)
        var itemSources = [Int?](repeating: nil, count: graph.nodes.count)
        for i in graph.order {
            var stage = workflow.stages[i]
            let id = stage.id
            var perItemNeeds: [Int] = []
            var sources = Set<Int>()
            for n in graph.nodes[i].needs {
                if let source = itemSources[n] {
                    perItemNeeds.append(n)
                    sources.insert(source)
                }
            }
            let at = marks[id]?.node["for-each"]?.location ?? stage.location
            var runs = StageGraph.Runs.once
            if stage.forEach != nil {
                if stage.fanIn, let f = marks[id]?.node["fan-in"] {
                    error(f.location, "stage '\(id)' has both `for-each` and `fan-in`; a stage either runs per item or once after them")
                }
                if let p = perItemNeeds.first {
                    error(at, "stage '\(id)' has `for-each` but needs per-item stage '\(ids[p])'; nested for-each is not supported (add `fan-in: true` to a stage between them)")
                }
                runs = .perItem(source: i)
            } else if stage.fanIn {
                if perItemNeeds.isEmpty, let f = marks[id]?.node["fan-in"] {
                    warning(f.location, "`fan-in` has no effect: stage '\(id)' needs no per-item stage")
                } else if !perItemNeeds.isEmpty {
                    runs = .fanIn(sources: sources.sorted())
                }
            } else if sources.count > 1 {
                error(marks[id]?.needs ?? stage.location, "stage '\(id)' needs per-item stages of different for-each stages (\(sources.map { ids[$0] }.sorted().joined(separator: ", "))); give it `fan-in: true` or split it")
            } else if let source = sources.first {
                runs = .perItem(source: source)
            }
            graph.nodes[i].runs = runs
            if case .perItem(let source) = runs { itemSources[i] = source }
            stage.itemSource = itemSources[i].map { ids[$0] }
            let kindAt = marks[id]?.kind ?? stage.location
            if stage.kind.isPerItemOnly && stage.itemSource == nil {
                error(kindAt, "\(stage.kind.rawValue) works on one item at a time: give stage '\(id)' a `for-each:` or make it need a per-item stage")
            }
            if stage.kind == .queryReady && stage.itemSource != nil {
                error(kindAt, "query-ready runs once per run, but stage '\(id)' is per-item; give it `needs: []` or `fan-in: true`")
            }
            workflow.stages[i] = stage
        }
        let stages = workflow.stages
        for (i, stage) in stages.enumerated() where stage.kind.needsSession && stage.itemSource != nil && !unresolved.contains(stage.id) {
            let source = itemSources[i]
            guard let d = graph.nodes[i].ancestors.first(where: { stages[$0].kind == .dispatch && itemSources[$0] == source }) else {
                error(marks[stage.id]?.kind ?? stage.location, "\(stage.kind.rawValue) acts on an item's session: stage '\(stage.id)' needs a dispatch stage upstream")
                continue
            }
            // An argv agent has no profile to resume it by.
            if stage.kind == .waitApproved, stage.parameter(WaitApprovedParameters.resume) == nil, case .list? = stages[d].parameter(DispatchParameters.agent) {
                error(marks[stage.id]?.kind ?? stage.location, "wait-approved stage '\(stage.id)' needs a `resume:` argv: dispatch '\(stages[d].id)' gives `agent` as an argv, which has no profile to resume it by (or name a profile: agent: claude)")
            }
        }

        for stage in stages where stage.kind == .merge { checkLanding(stage, at: marks[stage.id]?.kind ?? stage.location) }

        // What the run needs besides the edges: each item's session, and the stages that refill.
        let ancestors = graph.nodes.map(\.ancestors)
        for (i, stage) in stages.enumerated() {
            if stage.kind == .dispatch, let source = itemSources[i], graph.nodes[source].dispatch == nil {
                graph.nodes[source].dispatch = i
            }
            if stage.kind == .queryReady, stage.literal(QueryReadyParameters.refill) == true {
                // `refill-interval` is a checked duration, never an expression: its literal is always there.
                let interval = stage.literal(QueryReadyParameters.refillInterval)?.milliseconds ?? StageGraph.Refill.minimumInterval
                let fed = stages.indices.filter { stages[$0].forEach != nil && ancestors[$0].contains(i) }
                graph.nodes[i].refill = StageGraph.Refill(interval: max(interval, StageGraph.Refill.minimumInterval), maxItems: stage.literal(QueryReadyParameters.maxItems), fed: fed)
            }
        }
        workflow.graph = graph
        return unresolved
    }

    /// Reports each `needs` cycle once, named by its path (depth-first search). Returns whether there was one.
    private mutating func reportCycles(_ graph: StageGraph, stages: [Stage], marks: [String: StageMarks]) -> Bool {
        let ids = stages.map(\.id)
        var color = [Int](repeating: 0, count: ids.count)
        var path: [Int] = []
        var reported = Set<Set<String>>()
        var cyclic = false
        func visit(_ v: Int, _ checker: inout WorkflowChecker) {
            color[v] = 1
            path.append(v)
            for w in graph.nodes[v].needs {
                if color[w] == 1, let start = path.firstIndex(of: w) {
                    cyclic = true
                    let members = path[start...].map { ids[$0] }
                    if reported.insert(Set(members)).inserted {
                        // Printed in the direction work would flow: each stage before the one that needs it.
                        let names = ([ids[w]] + members.reversed()).joined(separator: " -> ")
                        checker.error(marks[ids[v]]?.needs ?? stages[v].location, "`needs` form a cycle: \(names)")
                    }
                } else if color[w] == 0 {
                    visit(w, &checker)
                }
            }
            path.removeLast()
            color[v] = 2
        }
        for v in ids.indices where color[v] == 0 { visit(v, &self) }
        return cyclic
    }

    /// Every stage after the stages it needs, file order breaking ties; stages on or after a cycle are left out.
    private static func topologicalOrder(_ nodes: [StageGraph.Node]) -> [Int] {
        var indegree = nodes.map(\.needs.count)
        var ready = nodes.indices.filter { indegree[$0] == 0 }[...]
        var order: [Int] = []
        while let i = ready.popFirst() {
            order.append(i)
            for d in nodes[i].dependants {
                indegree[d] -= 1
                if indegree[d] == 0 { ready.append(d) }
            }
        }
        return order
    }

    /// Every stage `i` depends on, directly or through others, in file order.
    private static func ancestors(of i: Int, in nodes: [StageGraph.Node]) -> [Int] {
        var seen = Set<Int>()
        var stack = nodes[i].needs
        while let n = stack.popLast() {
            if seen.insert(n).inserted { stack.append(contentsOf: nodes[n].needs) }
        }
        return seen.sorted()
    }

    /// An `if` that calls `success()`, `failure()`, `always()` or `cancelled()`.
    private static func callsStatusFunction(_ condition: Template?) -> Bool {
        guard let condition else { return false }
        return condition.expressions.contains { e in
            var found = false
            e.expression.forEachNode { if case .call(let n, _, _) = $0, ExpressionFunction(name: n)?.isStatusFunction == true { found = true } }
            return found
        }
    }

    /// The keys of a merge's landing that go together (SPEC §10): a pull request is landed by
    /// GitHub, one per item, so the local queue's keys have no meaning there, and the other way round.
    private mutating func checkLanding(_ stage: Stage, at: SourcePosition) {
        let local = ["batch", "batch-wait", "verify-concurrency", "speculate", "push", "push-attempts", "verify"]
        let pullRequest = ["remote", "wait", "auto-merge"]
        // A `via` given as an expression is known only per item.
        let via = stage.literal(MergeParameters.via)
        if via == "pull-request" {
            for key in local where stage.with[key] != nil {
                error(at, "merge stage '\(stage.id)': `\(key)` does not go with `via: pull-request` (GitHub lands the pull request, once its own checks pass); remove it, or land locally")
            }
        } else if via == "local" {
            for key in pullRequest where stage.with[key] != nil {
                error(at, "merge stage '\(stage.id)': `\(key)` needs `via: pull-request`")
            }
        }
        if stage.literal(MergeParameters.speculate) == true, let n = stage.literal(MergeParameters.verifyConcurrency), n < 2 {
            error(at, "merge stage '\(stage.id)': `speculate: true` verifies the next batch while one verifies: give it `verify-concurrency: 2` or more")
        }
        if let c = stage.concurrency, let n = stage.literal(MergeParameters.batch), c < n {
            error(at, "merge stage '\(stage.id)': `concurrency: \(c)` lets fewer items into the queue than `batch: \(n)`; remove `concurrency`, or make it at least \(n)")
        }
    }
}

extension StageGraph.Refill {
    /// The shortest `refill-interval` a run honours: a query at most ten times a second.
    public static let minimumInterval: Int64 = 100
}
