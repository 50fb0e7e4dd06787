// One stage: its keys, its kind (`uses:` or `run:`), its `with` parameters, `needs`, `retry` and
// the rest; query-ready's source-specific parameters.

extension WorkflowChecker {
    // MARK: - Stages

    /// A stage and where its parts were written; nil when it is not a mapping.
    mutating func checkStage(_ pair: YAMLPair, previous: String?, allIds: [String]) -> (stage: Stage, marks: StageMarks)? {
        let id = pair.key
        let node = pair.value
        let scope = Scope(stage: id)
        if !WorkflowChecker.isName(id) {
            error(pair.keyLocation, "'\(id)' is not a valid stage id (letters, digits, '_' and '-', starting with a letter or '_')")
        }
        guard let pairs = node.mapping else {
            error(node.location, "stage '\(id)' must be a mapping with `uses:` or `run:`, not \(describe(node))")
            return nil
        }
        var marks = StageMarks(node: node)
        checkKeys(pairs, allowed: WorkflowLanguage.stageKeys, in: "stage '\(id)'", at: pair.keyLocation) { key in
            switch key {
            case "depends_on", "depends-on", "after", "requires": return "; did you mean 'needs'?"
            case "foreach", "for_each", "each", "matrix": return "; did you mean 'for-each'?"
            case "steps", "script", "cmd", "shell": return "; did you mean 'run'?"
            case "when", "condition": return "; did you mean 'if'?"
            default: return nil
            }
        }

        // The kind: `uses:` or the `run:` shorthand.
        var kind: StageKind?
        var command: Command?
        let usesNode = node["uses"]
        let runNode = node["run"]
        if let usesNode {
            marks.kind = usesNode.location
            if case .string(let name) = usesNode.scalar?.resolved {
                kind = StageKind(rawValue: name)
                if kind == nil {
                    error(usesNode.location, "unknown stage kind '\(name)'\(DidYouMean.hint(name, StageKind.allCases.map(\.rawValue))) (kinds: \(StageKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
            } else {
                error(usesNode.location, "`uses` must name a stage kind, not \(describe(usesNode))")
            }
        }
        if let runNode {
            if usesNode != nil {
                error(runNode.location, "stage '\(id)' has both `uses` and `run`; `run: …` is shorthand for `uses: run`, give one of them")
            } else {
                kind = .run
                marks.kind = runNode.location
                command = self.command(runNode, key: "run", in: scope)
            }
        }
        if usesNode == nil && runNode == nil {
            error(pair.keyLocation, "stage '\(id)' needs `uses: <kind>` or `run: <command>`")
        }

        var stage = Stage(id: id, location: pair.keyLocation, kind: kind ?? .run)

        // `with`, per kind.
        let withKeyLocation = pairs.first { $0.key == "with" }?.keyLocation
        if let withNode = node["with"], withNode.mapping != nil || withNode.scalar?.resolved != .null {
            if let withPairs = withNode.mapping {
                if let kind {
                    checkKeys(withPairs, allowed: kind.parameters, in: "`with` of \(kind.rawValue) stage '\(id)'", at: withKeyLocation ?? withNode.location)
                }
                for p in withPairs {
                    guard let spec = kind?.parameters.first(where: { $0.name == p.key }) else { continue }
                    var field = Scope.Field.general
                    if kind == .dispatch && p.key == "agent" { field = .agent }
                    if kind == .dispatch && p.key == "prompt" { field = .prompt }
                    if kind == .waitApproved && p.key == "resume" { field = .resume }
                    if let v = value(p.value, spec.type, key: "with.\(p.key)", in: Scope(stage: id, field: field)) { stage.with[p.key] = v }
                }
                // A budget the named profile cannot keep is said here (a name from `--var`: when the run starts).
                if kind == .dispatch, let budgetPair = withPairs.first(where: { $0.key == "budget" }),
                   case .profile(let name)? = stage.literal(DispatchParameters.agent), let profile = declaredAgents[name] ?? AgentProfile.builtIn[name],
                   let budget = stage.literal(DispatchParameters.budget), let why = WorkflowChecker.unkeptBudget(budget, profile: profile) {
                    error(budgetPair.value.location, "`with.budget`: \(why)")
                }
                if kind == .dispatch, let writable = withPairs.first(where: { $0.key == "sandbox-writable" }), let paths = stage.literal(DispatchParameters.sandboxWritable) {
                    for path in paths where !WorkflowChecker.isSandboxPath(path) {
                        error(writable.value.location, "`with.sandbox-writable` takes absolute paths or `~/…` (the home directory), without '..', not '\(path)'")
                    }
                }
            } else {
                error(withNode.location, "`with` must be a mapping of parameters, not \(describe(withNode))")
            }
        } else if let kind {
            for spec in kind.parameters where spec.required {
                error(withKeyLocation ?? pair.keyLocation, "\(kind.rawValue) stage '\(id)' is missing the required parameter `with.\(spec.name)`")
            }
        }
        if kind == .run {
            let withCommand = stage.with["command"]
            if command == nil, withCommand == nil, runNode == nil {
                error(pair.keyLocation, "run stage '\(id)' has no command: give `run: <command>` or `with: {command: …}`")
            }
            if runNode != nil, withCommand != nil, let c = node["with"]?["command"] {
                error(c.location, "stage '\(id)' gives its command twice (`run:` and `with.command`)")
            }
            if command == nil, let c = node["with"]?["command"] {
                command = self.command(c, key: "with.command", in: scope)
            }
            stage.command = command
        }
        if kind == .queryReady { checkQueryReady(stage, node: node) }

        // needs
        if let needsNode = node["needs"] {
            marks.needs = needsNode.location
            var needs: [String] = []
            let items: [YAMLNode]
            if needsNode.scalar != nil { items = [needsNode] } else { items = needsNode.sequence ?? [] }
            if needsNode.mapping != nil {
                error(needsNode.location, "`needs` must be a stage id or a list of stage ids, not a mapping")
            }
            for item in items {
                guard case .string(let n) = item.scalar?.resolved else {
                    error(item.location, "`needs` lists stage ids; this is \(describe(item))")
                    continue
                }
                if n == id {
                    error(item.location, "stage '\(id)' cannot need itself")
                } else if !allIds.contains(n) {
                    error(item.location, "`needs` names unknown stage '\(n)'\(DidYouMean.hint(n, allIds.filter { $0 != id }))")
                } else if needs.contains(n) {
                    warning(item.location, "stage '\(n)' is listed twice in `needs`")
                } else {
                    needs.append(n)
                }
            }
            stage.needs = needs
        } else if let previous {
            stage.needs = [previous]
            marks.needs = pair.keyLocation
        }

        if let n = node["for-each"] {
            stage.forEach = value(n, .listExpression, key: "for-each", in: Scope(stage: id, field: .forEach))
        }
        if let n = node["if"] {
            stage.condition = condition(n, in: id)
        }
        if let n = node["timeout"] { stage.timeout = duration(n, key: "timeout") }
        if let n = node["retry"] { stage.retry = retry(n) }
        if let n = node["continue-on-error"], case .literal(.bool(let b))? = value(n, .boolean, key: "continue-on-error", in: scope) { stage.continueOnError = b }
        if let n = node["fan-in"] {
            if case .bool(let b) = n.scalar?.resolved { stage.fanIn = b } else { error(n.location, "`fan-in` must be true or false, not \(describe(n))") }
        }
        if let n = node["concurrency"] { stage.concurrency = integer(n, minimum: 1, key: "concurrency") }
        if let n = node["env"], case .object(let entries)? = value(n, .stringMap, key: "env", in: scope) { stage.env = entries }
        if let n = node["outputs"] {
            if kind != .run {
                error(n.location, "`outputs` is for run stages; \(kind?.rawValue ?? "this") stage '\(id)' has the outputs its kind declares")
            } else if let items = n.sequence {
                var names: [String] = []
                for item in items {
                    guard case .string(let s) = item.scalar?.resolved, WorkflowChecker.isName(s) else {
                        error(item.location, "`outputs` lists output names (letters, digits, '_' and '-'); this is \(describe(item))")
                        continue
                    }
                    if StageKind.run.outputs.contains(where: { $0.name == s }) {
                        error(item.location, "'\(s)' is an output every run stage has; leave it out of `outputs`")
                    } else if names.contains(s) {
                        error(item.location, "output '\(s)' is listed twice")
                    } else {
                        names.append(s)
                    }
                }
                stage.outputs = names
            } else {
                error(n.location, "`outputs` must be a list of names, not \(describe(n))")
            }
        }
        if let n = node["working-directory"] {
            if kind != .run {
                error(n.location, "`working-directory` is for run stages")
            } else if node["with"]?["working-directory"] != nil {
                error(n.location, "stage '\(id)' gives its working directory twice (here and in `with`)")
            } else if case .template(let t)? = value(n, .string, key: "working-directory", in: scope) {
                stage.workingDirectory = t
            } else if case .string(let s) = n.scalar?.resolved {
                stage.workingDirectory = Template(parts: [.text(s)])
            }
        } else if kind == .run, let wd = stage.with["working-directory"] {
            switch wd {
            case .template(let t): stage.workingDirectory = t
            case .literal(let v): stage.workingDirectory = Template(parts: [.text(v.renderedText)])
            default: break
            }
        }
        return (stage, marks)
    }

    mutating func checkQueryReady(_ stage: Stage, node: YAMLNode) {
        let withNode = node["with"]
        let source: String
        if case .literal(.string(let s))? = stage.with["source"] { source = s } else { source = "bd" }
        let at = withNode?.location ?? stage.location
        switch source {
        case "file":
            if stage.with["path"] == nil { error(withNode?["source"]?.location ?? at, "`source: file` needs `path:` naming the Beads issues file") }
        case "command":
            if stage.with["command"] == nil { error(withNode?["source"]?.location ?? at, "`source: command` needs `command:`, the command that prints the items as a JSON array") }
        default: break
        }
        if source != "file", let p = withNode?["path"] {
            error(p.location, "`path` is read only with `source: file` (this stage's source is \(source))")
        }
        if source != "command", let c = withNode?["command"] {
            error(c.location, "`command` is run only with `source: command` (this stage's source is \(source))")
        }
        if source != "bd", let a = withNode?["args"] {
            error(a.location, "`args` are passed to `bd ready` only with `source: bd`")
        }
        if stage.with["refill"] == nil || stage.with["refill"] == .literal(.bool(false)), let r = withNode?["refill-interval"] {
            warning(r.location, "`refill-interval` has no effect without `refill: true`")
        }
    }

    mutating func retry(_ node: YAMLNode) -> RetryPolicy {
        var policy = RetryPolicy()
        if let s = node.scalar {
            guard case .int(let n) = s.resolved, n >= 1 else {
                error(node.location, "`retry` must be a number of attempts (≥ 1) or {attempts, backoff, max-backoff}, not \(describe(node))")
                return policy
            }
            policy.attempts = n
            return policy
        }
        guard let pairs = node.mapping else {
            error(node.location, "`retry` must be a number of attempts or {attempts, backoff, max-backoff}, not \(node.kindDescription)")
            return policy
        }
        checkKeys(pairs, allowed: WorkflowLanguage.retryKeys, in: "retry", at: node.location)
        for p in pairs {
            switch p.key {
            case "attempts": if let n = integer(p.value, minimum: 1, key: "retry.attempts") { policy.attempts = n }
            case "backoff": if let d = duration(p.value, key: "retry.backoff") { policy.backoff = d }
            case "max-backoff": if let d = duration(p.value, key: "retry.max-backoff") { policy.maxBackoff = d }
            default: break
            }
        }
        if policy.maxBackoff < policy.backoff, let n = node["max-backoff"] {
            error(n.location, "`retry.max-backoff` (\(policy.maxBackoff)) is shorter than `retry.backoff` (\(policy.backoff))")
        }
        return policy
    }

}
