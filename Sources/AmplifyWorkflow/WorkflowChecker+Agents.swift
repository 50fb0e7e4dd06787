// The top-level `agents:` key: profiles a workflow declares (SPEC §11); `agent:` and `budget:` values.

extension WorkflowChecker {
    /// `agents:` — name → profile. Each error is located; unknown keys get a suggestion.
    mutating func checkAgents(_ node: YAMLNode) -> [String: AgentProfile] {
        var profiles: [String: AgentProfile] = [:]
        guard let pairs = node.mapping else {
            if node.scalar?.resolved != .null {
                error(node.location, "`agents` must be a mapping of profile names to profiles, not \(node.kindDescription)")
            }
            return profiles
        }
        for pair in pairs {
            let name = pair.key
            guard WorkflowChecker.isName(name) else {
                error(pair.keyLocation, "'\(name)' is not a valid profile name (letters, digits, '_' and '-', starting with a letter or '_')")
                continue
            }
            if AgentProfile.builtIn[name] != nil {
                error(pair.keyLocation, "'\(name)' is a built-in profile; give yours another name (built-in: \(AgentProfile.builtIn.keys.sorted().joined(separator: ", ")))")
                continue
            }
            guard let keys = pair.value.mapping else {
                error(pair.value.location, "agents.\(name) must be a mapping (command, resume, output, session-id, cost, tokens, turns, error), not \(pair.value.kindDescription)")
                continue
            }
            checkKeys(keys, allowed: WorkflowLanguage.agentProfileKeys, in: "agents.\(name)", at: pair.value.location)
            guard let commandNode = pair.value["command"],
                  let command = value(commandNode, .argv, key: "agents.\(name).command", in: Scope(stage: nil, field: .agent)) else { continue }
            var profile = AgentProfile(name: name, command: command)
            if let n = pair.value["resume"] {
                profile.resume = value(n, .argv, key: "agents.\(name).resume", in: Scope(stage: nil, field: .resume))
            }
            if let n = pair.value["output"], case .literal(.string(let s))? = value(n, .choice(AgentProfile.OutputKind.allCases.map(\.rawValue)), key: "agents.\(name).output", in: .topLevel) {
                profile.output = AgentProfile.OutputKind(rawValue: s) ?? .jsonl
            }
            for (key, path) in [("session-id", \AgentProfile.sessionId), ("cost", \.cost), ("tokens", \.tokens), ("turns", \.turns), ("error", \.error), ("usage-limit", \.usageLimit)] {
                if let n = pair.value[key] { profile[keyPath: path] = checkRule(n, key: "agents.\(name).\(key)") }
            }
            for (key, path) in [("cost-limit", \AgentProfile.costLimit), ("turns-limit", \.turnsLimit)] {
                if let n = pair.value[key] { profile[keyPath: path] = value(n, .argv, key: "agents.\(name).\(key)", in: Scope(stage: nil, field: .limit)) }
            }
            if let n = pair.value["environment"], case .object(let entries)? = value(n, .stringMap, key: "agents.\(name).environment", in: .topLevel) {
                for entry in entries {
                    if case .literal(.string(let v)) = entry.value { profile.environment[entry.key] = v }
                }
            }
            if let n = pair.value["sandbox-writable"] { profile.sandboxWritable = sandboxPaths(n, key: "agents.\(name).sandbox-writable") }
            profiles[name] = profile
        }
        return profiles
    }

    /// `{type, field, when?, sum?, total?}`.
    mutating func checkRule(_ node: YAMLNode, key: String) -> OutputRule? {
        guard let pairs = node.mapping else {
            error(node.location, "`\(key)` must be a rule {type, field, when?, sum?, total?}, not \(node.kindDescription)")
            return nil
        }
        checkKeys(pairs, allowed: WorkflowLanguage.outputRuleKeys, in: key, at: node.location)
        guard let typeNode = node["type"], let type = plainString(typeNode, key: key + ".type") else { return nil }
        guard let fieldNode = node["field"] else { return nil }
        var fields: [String] = []
        for n in fieldNode.sequence ?? [fieldNode] {
            guard let path = plainString(n, key: key + ".field") else { continue }
            guard !path.isEmpty, !path.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
                error(n.location, "`\(key).field`: '\(path)' is not a dotted path of field names (like usage.output_tokens)")
                continue
            }
            fields.append(path)
        }
        guard !fields.isEmpty else {
            if fieldNode.sequence?.isEmpty == true { error(fieldNode.location, "`\(key).field` must name at least one field") }
            return nil
        }
        var when: String?
        var equals: [(String, Value)] = []
        if let n = node["when"] {
            if let pairs = n.mapping {
                for p in pairs {
                    guard let v = p.value.scalar, !v.text.contains("${{") else {
                        error(p.value.location, "`\(key).when.\(p.key)` must be a plain value (a string, number or boolean), not \(p.value.kindDescription)")
                        continue
                    }
                    equals.append((p.key, v.resolved))
                }
            } else {
                when = plainString(n, key: key + ".when")
            }
        }
        var contains: String?
        if let n = node["contains"] { contains = plainString(n, key: key + ".contains") }
        func flag(_ name: String) -> Bool {
            guard let n = node[name] else { return false }
            guard case .bool(let b) = n.scalar?.resolved else {
                error(n.location, "`\(key).\(name)` must be true or false, not \(n.kindDescription)")
                return false
            }
            return b
        }
        let sum = flag("sum"), total = flag("total")
        if sum && total { error(node.location, "`\(key)`: `sum` and `total` cannot both be true (a running total is not summed)") }
        return OutputRule(type: type, field: fields, when: when, equals: equals, contains: contains, sum: sum, total: total)
    }

    /// `dispatch`'s `agent`: a profile's name (one the workflow declares or a built-in one) or an
    /// argv. A name given through an expression (`${{ vars.agent }}`) is checked when the run starts.
    mutating func agentChoice(_ node: YAMLNode, key: String, in scope: Scope) -> TemplateValue? {
        guard let s = node.scalar else { return value(node, .argv, key: key, in: scope) }
        guard s.resolved != .null else {
            error(node.location, "`\(key)` must be \(ValueType.agent.expectation), not \(describe(node))")
            return nil
        }
        if s.text.contains("${{") { return value(node, .string, key: key, in: scope) }
        let known = Array(declaredAgents.keys) + AgentProfile.builtIn.keys
        guard known.contains(s.text) else {
            let argvHint = s.text.contains(" ") ? "; write an argv as a list, such as [\(s.text.split(separator: " ").map { "\"\($0)\"" }.joined(separator: ", "))]" : ""
            error(node.location, "`\(key)`: unknown agent profile '\(s.text)'\(DidYouMean.hint(s.text, known)); profiles: \(known.sorted().joined(separator: ", ")) (declare your own under `agents:`, or give an argv)\(argvHint)")
            return nil
        }
        return .literal(.string(s.text))
    }

    /// A budget the profile can keep: one it passes to the CLI, or one whose figure it reads.
    /// nil when it can; else why not, in words.
    public static func unkeptBudget(_ budget: Budget, profile: AgentProfile) -> String? {
        var missing: [String] = []
        if budget.cost != nil && profile.costLimit == nil && profile.cost == nil { missing.append("cost") }
        if budget.turns != nil && profile.turnsLimit == nil && profile.turns == nil { missing.append("turns") }
        guard !missing.isEmpty else { return nil }
        let what = missing.joined(separator: " and ")
        return "the \(profile.name) profile cannot keep a budget of \(what): the CLI reports no \(what) and has no flag for \(missing.count == 1 ? "it" : "them"), so the runner could never tell it was spent"
    }

    /// `{cost, turns}`: a positive number of dollars, a whole number of turns ≥ 1. `turnsAllowed`
    /// is false for `settings.budget` (a run has no turns).
    mutating func budget(_ node: YAMLNode, key: String, turnsAllowed: Bool = true) -> Budget? {
        guard let pairs = node.mapping else {
            error(node.location, "`\(key)` must be \(turnsAllowed ? ValueType.budget.expectation : "{cost: dollars}"), not \(describe(node))")
            return nil
        }
        checkKeys(pairs, allowed: [KeySpec("cost", .string, ""), KeySpec("turns", .integer(minimum: 1), "")].filter { turnsAllowed || $0.name == "cost" }, in: "`\(key)`", at: node.location)
        var b = Budget()
        for p in pairs {
            switch p.key {
            case "cost":
                switch p.value.scalar?.resolved {
                case .double(let d)? where d > 0 && d.isFinite: b.cost = d
                case .int(let i)? where i > 0: b.cost = Double(i)
                default: error(p.value.location, "`\(key).cost` must be a number of dollars above 0 (such as 2.50), not \(describe(p.value))")
                }
            case "turns":
                if turnsAllowed, let n = integer(p.value, minimum: 1, key: key + ".turns") { b.turns = n }
            default: break
            }
        }
        return b
    }
}
