/// Checks a workflow file and builds its `Workflow` and `Plan`, reporting every problem in one pass.
///
/// The passes, one file each: keys and types of every mapping, with "did you mean"
/// (`WorkflowChecker+TopLevel`, `+Stages`, `+Values`); then the graph (`+Graph`: `needs`, cycles,
/// which stages run per item and which fan in), which compiles the Plan; then every expression
/// against the stages and names it may see from where it stands (`+Expressions`). Line:column
/// positions inside values are `SourceLines`'; shell quoting is `ShellQuoting`.
public struct WorkflowChecker {
    /// The result of a check: the workflow when there were no errors, and every diagnostic.
    public struct Result: Sendable {
        public var workflow: Workflow?
        public var diagnostics: [Diagnostic]
        /// The compiled DAG, when there were no errors (built by the graph pass, not again here).
        public var plan: Plan? { workflow.map(Plan.init) }
    }

    /// Where a template was written, so that its expressions can be checked in their scope.
    struct Site {
        var template: Template
        var node: YAMLNode
        var scope: Scope
        var isShell: Bool
    }

    /// What an expression may see from where it is written: the stage (nil at the top level) and
    /// the field of the stage, passed down with each value checked.
    struct Scope: Equatable {
        enum Field: Equatable {
            case general, condition, forEach, prompt, agent, resume, limit, notify
        }
        var stage: String?
        var field: Field = .general

        static let topLevel = Scope(stage: nil)
    }

    /// Where a stage's parts were written, for the graph pass's messages.
    struct StageMarks {
        var node: YAMLNode
        /// `needs:`, or the stage's id when it needs the stage above it.
        var needs: SourcePosition?
        /// `uses:` or `run:`.
        var kind: SourcePosition?
    }

    let source: SourceLines
    /// What the passes found so far; the one thing every pass adds to.
    var diagnostics: [Diagnostic] = []
    /// Every template with expressions (and every shell command), for the expression pass.
    var sites: [Site] = []
    /// The profiles the workflow declares (`agents:`), read before the stages that name them.
    var declaredAgents: [String: AgentProfile] = [:]

    private init(source: [UInt8]) {
        self.source = SourceLines(source)
    }

    /// Checks workflow text; `file` names it in diagnostics and gives the default `name`.
    public static func check(_ source: String, file: String) -> Result {
        check(bytes: Array(source.utf8), file: file)
    }

    public static func check(bytes: [UInt8], file: String) -> Result {
        let loaded = YAMLLoader().load(bytes: bytes)
        var checker = WorkflowChecker(source: bytes)
        checker.diagnostics = loaded.diagnostics
        var workflow: Workflow?
        if let root = loaded.root {
            workflow = checker.checkWorkflow(root, file: file)
        } else if loaded.diagnostics.isEmpty {
            checker.error(.start, "the file is empty; a workflow needs at least `version: 1` and `stages:`")
        }
        let diagnostics = checker.diagnostics.map { d -> Diagnostic in
            var d = d
            d.file = file
            return d
        }.sortedForDisplay()
        return Result(workflow: diagnostics.hasErrors ? nil : workflow, diagnostics: diagnostics)
    }

    // MARK: - Diagnostics

    mutating func error(_ at: SourcePosition, _ message: String) {
        diagnostics.append(.error(at: at, message))
    }

    mutating func warning(_ at: SourcePosition, _ message: String) {
        diagnostics.append(.warning(at: at, message))
    }

    // MARK: - The passes

    /// The top-level keys, then each stage (`WorkflowChecker+Stages`), the graph, which compiles
    /// the Plan (`WorkflowChecker+Graph`), and the expressions (`WorkflowChecker+Expressions`).
    private mutating func checkWorkflow(_ root: YAMLNode, file: String) -> Workflow? {
        guard let pairs = root.mapping else {
            error(root.location, "the top level of a workflow must be a mapping (version, name, settings, vars, stages), not \(root.kindDescription)")
            return nil
        }
        // `x-…` keys are extension fields, ignored: a place for anchors (`x-defaults: &defaults`).
        checkKeys(pairs.filter { !$0.key.hasPrefix("x-") }, allowed: WorkflowLanguage.topLevelKeys, in: "the workflow", at: root.location)

        var version = WorkflowLanguage.supportedVersion
        if let node = root["version"] {
            if case .int(let v) = node.scalar?.resolved {
                version = v
                if v != WorkflowLanguage.supportedVersion {
                    error(node.location, "unsupported version \(v); this amplify-run reads version \(WorkflowLanguage.supportedVersion)")
                }
            } else {
                error(node.location, "`version` must be the number \(WorkflowLanguage.supportedVersion), not \(node.kindDescription)")
            }
        }
        var name = WorkflowChecker.stem(of: file)
        if let node = root["name"], let s = plainString(node, key: "name") { name = s }
        var description: String?
        if let node = root["description"] { description = plainString(node, key: "description") }

        let settings = root["settings"].map { checkSettings($0) } ?? Settings()
        let vars = root["vars"].map { checkVars($0) } ?? OrderedObject()

        let agents = root["agents"].map { checkAgents($0) } ?? [:]
        declaredAgents = agents

        guard let stagesNode = root["stages"] else { return nil }
        guard let stagePairs = stagesNode.mapping else {
            error(stagesNode.location, "`stages` must be a mapping of stage ids to stages, not \(stagesNode.kindDescription)")
            return nil
        }
        if stagePairs.isEmpty {
            // Entries the loader already rejected (non-string keys) leave the mapping empty: don't pile on.
            if !diagnostics.contains(where: { $0.isError && $0.location >= stagesNode.location && $0.location <= stagesNode.endLocation }) {
                error(stagesNode.location, "`stages` is empty; a workflow needs at least one stage")
            }
            return nil
        }
        var stages: [Stage] = []
        var marks: [String: StageMarks] = [:]
        var previous: String?
        for pair in stagePairs {
            if let (stage, stageMarks) = checkStage(pair, previous: previous, allIds: stagePairs.map(\.key)) {
                stages.append(stage)
                marks[stage.id] = stageMarks
            }
            previous = pair.key
        }
        var workflow = Workflow(version: version, name: name, description: description, settings: settings, vars: vars, stages: stages)
        workflow.agents = agents
        let unresolved = checkGraph(&workflow, marks: marks)
        checkExpressions(workflow, unresolved: unresolved)
        return workflow
    }

}
