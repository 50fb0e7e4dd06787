// The expression pass: every `${{ }}` checked against the names it may see from where it stands.

extension WorkflowChecker {
    /// What an expression written at a site may see: its stage and the stages that stage needs.
    struct Visibility {
        var workflow: Workflow
        var site: Site
        var stage: Stage?
        /// Every stage the site's stage depends on (by id).
        var upstream: Set<String>
        /// The stage is on or after a `needs` cycle: whether it runs per item is not known.
        var unresolved: Bool
    }

    mutating func checkExpressions(_ workflow: Workflow, unresolved: Set<String>) {
        let graph = workflow.graph
        for site in sites {
            let stage = site.scope.stage.flatMap { workflow.stage($0) }
            if site.isShell { checkShellQuoting(site) }
            let upstream = stage.flatMap { graph.index[$0.id] }.map { Set(graph.nodes[$0].ancestors.map { workflow.stages[$0].id }) } ?? []
            let visibility = Visibility(workflow: workflow, site: site, stage: stage, upstream: upstream, unresolved: stage.map { unresolved.contains($0.id) } ?? false)
            for part in site.template.parts {
                guard case .expression(let e, _, let open) = part else { continue }
                e.forEachNode { node in
                    checkNode(node, open: open, in: visibility)
                }
            }
        }
    }

    mutating func checkNode(_ node: Expression, open: Int, in visibility: Visibility) {
        let site = visibility.site
        let text = site.node.scalar?.text ?? ""
        let source = self.source
        let at = { (offset: Int) in source.locate(site.node, offset: open + 3 + offset, in: text) }
        switch node {
        case .call(let name, let arguments, let offset):
            guard let f = ExpressionFunction(name: name) else {
                let names = ExpressionFunction.allCases.map(\.rawValue)
                error(at(offset), "unknown function '\(name)()'\(DidYouMean.hint(name, names)) (functions: \(names.map { $0 + "()" }.joined(separator: ", ")))")
                return
            }
            if !f.arity.contains(arguments.count) {
                error(at(offset), "\(f.rawValue)() takes \(ExpressionEvaluator.describe(f.arity)), not \(arguments.count)")
            }
            if f.isStatusFunction && site.scope.field != .condition {
                error(at(offset), "\(f.rawValue)() is a status function; it may be used only in `if`")
            }
        case .path(let root, let components, let offset):
            checkPath(root: root, components: components, at: at, offset: offset, in: visibility)
        default:
            break
        }
    }

    mutating func checkPath(root: String, components: [Expression.PathComponent], at: (Int) -> SourcePosition, offset: Int, in visibility: Visibility) {
        let (workflow, site, stage, upstream) = (visibility.workflow, visibility.site, visibility.stage, visibility.upstream)
        func name(_ i: Int) -> (String, Int)? {
            guard i < components.count else { return nil }
            switch components[i] {
            case .name(let n, let o): return (n, o)
            case .index(.literal(.string(let n), let o)): return (n, o)
            case .index: return nil
            }
        }
        let stageId = stage?.id ?? ""
        if visibility.unresolved && (root == "item" || root == "session") { return }
        if site.scope.field == .notify && root != "env" && root != "vars" {
            // Rendered once, when the runner starts: nothing of a stage or an item exists then.
            error(at(offset), "`settings.notify` may name only `env` (secrets from the environment) and `vars`, not '\(root)'")
            return
        }
        switch root {
        case "item":
            if stage?.itemSource == nil {
                error(at(offset), "`item` exists only in per-item stages; stage '\(stageId)' runs once (give it `for-each:` or make it need a per-item stage)")
            } else if site.scope.field == .forEach {
                error(at(offset), "`item` is not known yet in `for-each`, which makes the items")
            }
        case "stages":
            guard let (id, o) = name(0) else {
                if components.isEmpty { error(at(offset), "`stages` must be followed by a stage id: stages.<id>.outputs.<key>") }
                return
            }
            guard let target = workflow.stage(id) else {
                error(at(o), "unknown stage '\(id)'\(DidYouMean.hint(id, workflow.stages.map(\.id)))")
                return
            }
            if !upstream.contains(id) {
                let why = id == stageId ? "a stage cannot read its own outputs" : "stage '\(id)' may not have run yet when '\(stageId)' runs"
                error(at(o), "\(why); add '\(id)' to the `needs` of '\(stageId)' (directly or through a stage it needs)")
                return
            }
            guard let (field, fo) = name(1) else { return }
            guard field == "outputs" else {
                error(at(fo), "stages.\(id) has only `outputs` (stages.\(id).outputs.<key>)\(DidYouMean.hint(field, ["outputs"]))")
                return
            }
            guard let (key, ko) = name(2), let names = target.outputNames, !names.contains(key) else { return }
            let declared = names.isEmpty ? "it has none" : "it has " + names.joined(separator: ", ")
            let extra = target.kind == .run ? " (declare it in the stage's `outputs:`)" : ""
            error(at(ko), "stage '\(id)' (\(target.kind.rawValue)) has no output '\(key)'\(DidYouMean.hint(key, names)); \(declared)\(extra)")
        case "vars":
            guard let (n, o) = name(0) else { return }
            if workflow.vars[n] == nil {
                let known = workflow.vars.keys
                error(at(o), "unknown variable '\(n)'\(DidYouMean.hint(n, known)); declare it under `vars:`\(known.isEmpty ? "" : " (declared: " + known.joined(separator: ", ") + ")")")
            }
        case "settings":
            guard let (n, o) = name(0) else { return }
            let keys = WorkflowLanguage.settingsKeys.map(\.name)
            if !keys.contains(n) { error(at(o), "unknown setting '\(n)'\(DidYouMean.hint(n, keys))") }
        case "run":
            guard let (n, o) = name(0) else { return }
            if !WorkflowLanguage.runFields.contains(n) { error(at(o), "`run` has only `id`\(DidYouMean.hint(n, WorkflowLanguage.runFields))") }
        case "session":
            // An agent profile's argv (top level, `agents:`) is rendered in a dispatch or a resume.
            let inProfile = stage == nil && (site.scope.field == .agent || site.scope.field == .resume)
            let hasSession = inProfile || (stage.map { s in
                s.kind == .dispatch || upstream.contains { workflow.stage($0)?.kind == .dispatch && workflow.stage($0)?.itemSource == s.itemSource }
            } ?? false)
            if !hasSession || site.scope.field == .forEach {
                error(at(offset), "`session` exists only in dispatch stages and the per-item stages after them")
            } else if let (n, o) = name(0), !WorkflowLanguage.sessionFields.contains(n) {
                error(at(o), "`session` has \(WorkflowLanguage.sessionFields.joined(separator: ", "))\(DidYouMean.hint(n, WorkflowLanguage.sessionFields))")
            }
        case "env":
            break
        case "prompt":
            if site.scope.field != .agent {
                error(at(offset), "`prompt` is the rendered prompt, usable only in a dispatch stage's `agent`")
            }
        case "answer":
            if site.scope.field != .resume {
                error(at(offset), "`answer` is usable only in a wait-approved stage's `resume`")
            }
        case "budget":
            if site.scope.field != .limit {
                error(at(offset), "`budget` is usable only in an agent profile's `cost-limit` and `turns-limit`")
            } else if let (n, o) = name(0), !["cost", "turns"].contains(n) {
                error(at(o), "`budget` has cost and turns\(DidYouMean.hint(n, ["cost", "turns"]))")
            }
        default:
            var hint = DidYouMean.hint(root, WorkflowLanguage.expressionRoots)
            if root == "needs" || root == "steps" || root == "jobs" { hint = "; did you mean 'stages'? (stages.<id>.outputs.<key>)" }
            if root == "inputs" { hint = "; did you mean 'vars'?" }
            error(at(offset), "unknown name '\(root)'\(hint) (names: \(WorkflowLanguage.expressionRoots.joined(separator: ", ")))")
        }
    }

    /// In a shell string, `${{ }}` becomes `"$AMPLIFY_EXPR_n"`, which stays literal inside '…'.
    mutating func checkShellQuoting(_ site: Site) {
        let text = site.node.scalar?.text ?? ""
        for offset in ShellQuoting.expressionsInSingleQuotes(text) {
            error(source.locate(site.node, offset: offset, in: text), "`${{ }}` inside single quotes would stay literal in a shell command; take it out of the quotes (it is passed safely as \"$AMPLIFY_EXPR_n\")")
        }
    }
}
