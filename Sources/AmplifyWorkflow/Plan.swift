/// The compiled DAG of a checked workflow: built once, by the checker's graph pass (the same walk
/// that finds `needs` cycles), and read by everything that needs the graph — the run state
/// machine, `Workflow.topologicalOrder`, the checker's expression pass and `PlanRenderer`.
///
/// Stages are numbered by their place in the file (`workflow.stages[i]` is `nodes[i]`'s stage).
public struct Plan: Sendable {
    public let workflow: Workflow

    /// The plan of a checked workflow (which carries the graph its check compiled; nothing is
    /// worked out again here).
    public init(_ workflow: Workflow) {
        self.workflow = workflow
    }

    public var graph: StageGraph { workflow.graph }
    public var stages: [Stage] { workflow.stages }
    public var nodes: [StageGraph.Node] { workflow.graph.nodes }
    /// A stage's number, by id.
    public var index: [String: Int] { workflow.graph.index }
    /// Stage ids, every stage after the stages it needs (file order breaks ties).
    public var order: [String] { workflow.graph.order.map { workflow.stages[$0].id } }

    public func node(_ id: String) -> StageGraph.Node? {
        workflow.graph.index[id].map { workflow.graph.nodes[$0] }
    }
}

/// The edges of the DAG and how each stage runs, by stage number: what the checker's graph pass
/// compiled, kept on the checked `Workflow` and read through `Plan`.
public struct StageGraph: Sendable {
    /// How many times a stage runs.
    public enum Runs: Sendable, Hashable {
        /// Once per run.
        case once
        /// Once per item of the `for-each` stage `source` (the stage itself when it has `for-each`).
        case perItem(source: Int)
        /// Once, after every item's instance of the per-item stages it needs has ended: the
        /// `for-each` stages of those items, in file order.
        case fanIn(sources: [Int])
    }

    /// A `query-ready` stage with `refill: true`: asked again while pipelines run.
    public struct Refill: Sendable, Hashable {
        /// How often it is asked again, in milliseconds (`refill-interval`, at least 100 ms).
        public var interval: Int64
        /// `max-items`: the most items the run takes from it.
        public var maxItems: Int?
        /// The `for-each` stages whose items it gives (those that depend on it), in file order.
        public var fed: [Int]
    }

    /// One stage of the DAG.
    public struct Node: Sendable, Hashable {
        public var id: String
        /// The stages it needs: its `needs:`, or the stage above it when it has none.
        public var needs: [Int]
        /// The stages that need it.
        public var dependants: [Int] = []
        /// Every stage it depends on, directly or through others, in file order.
        public var ancestors: [Int] = []
        public var runs: Runs = .once
        /// Its `if` calls a status function (`success()`, `failure()`, `always()`, `cancelled()`):
        /// it decides itself whether to run after a failure or a cancel.
        public var conditionUsesStatus = false
        /// For a `for-each` stage: the first `dispatch` stage over its items (whose session the
        /// items' later stages act on).
        public var dispatch: Int?
        public var refill: Refill?

        /// The `for-each` stage whose items it runs once per; nil = it runs once.
        public var itemSource: Int? {
            if case .perItem(let source) = runs { return source }
            return nil
        }
    }

    public internal(set) var nodes: [Node] = []
    public internal(set) var index: [String: Int] = [:]
    /// Stage numbers, every stage after the stages it needs (file order breaks ties); stages on
    /// or after a cycle are left out.
    public internal(set) var order: [Int] = []

    public init() {}
}
