// The top-level `agents:` key: profiles a workflow declares (SPEC §11). WORK IN PROGRESS.

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
            for (key, path) in [("session-id", \AgentProfile.sessionId), ("cost", \.cost), ("tokens", \.tokens), ("turns", \.turns), ("error", \.error)] {
                if let n = pair.value[key] { profile[keyPath: path] = checkRule(n, key: "agents.\(name).\(key)") }
            }
            if let n = pair.value["environment"], case .object(let entries)? = value(n, .stringMap, key: "agents.\(name).environment", in: .topLevel) {
                for entry in entries {
                    if case .literal(.string(let v)) = entry.value { profile.environment[entry.key] = v }
                }
            }
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
        if let n = node["when"] { when = plainString(n, key: key + ".when") }
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
        return OutputRule(type: type, field: fields, when: when, sum: sum, total: total)
    }
}
