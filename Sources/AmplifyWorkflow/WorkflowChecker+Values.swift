// Values and scalars: integers, durations, strings that may hold `${{ }}`, argv lists, commands,
// `if` conditions, each checked against its `ValueType` from the language catalogue.

extension WorkflowChecker {
    // MARK: - Scalars

    mutating func integer(_ node: YAMLNode, minimum: Int, key: String) -> Int? {
        guard case .int(let n) = node.scalar?.resolved else {
            error(node.location, "`\(key)` must be a whole number, not \(describe(node))")
            return nil
        }
        guard n >= minimum else {
            error(node.location, "`\(key)` must be at least \(minimum), not \(n)")
            return nil
        }
        return n
    }

    mutating func duration(_ node: YAMLNode, key: String) -> WorkflowDuration? {
        guard let s = node.scalar else {
            error(node.location, "`\(key)` must be a duration such as 500ms, 90s, 15m, 4h or 1h30m, not \(node.kindDescription)")
            return nil
        }
        if case .int(let n) = s.resolved {
            error(node.location, "`\(key)`: a duration needs a unit: write \(n)s, \(n)m or \(n)ms")
            return nil
        }
        guard let d = WorkflowDuration(parsing: s.text) else {
            error(node.location, "`\(key)`: '\(s.text)' is not a duration; write 500ms, 90s, 15m, 4h or 1h30m (units ms, s, m, h, d, largest first)")
            return nil
        }
        guard d.milliseconds > 0 else {
            error(node.location, "`\(key)` must be longer than zero")
            return nil
        }
        return d
    }

    func describe(_ node: YAMLNode) -> String {
        if let s = node.scalar {
            switch s.resolved {
            case .string(let t): return "the string '\(t)'"
            case .null: return "an empty value"
            default: return "\(s.resolved.kindDescription) (\(s.text))"
            }
        }
        return node.kindDescription
    }

    /// A string value that may hold expressions; records where it was written.
    mutating func templated(_ node: YAMLNode, shell: Bool = false, in scope: Scope) -> Template? {
        guard let s = node.scalar else { return nil }
        let text = s.resolved == .null && s.style == .plain ? "" : s.text
        let (template, errors) = Template.parse(text)
        for e in errors {
            error(source.locate(node, offset: e.offset, in: text), "bad expression: \(e.message)")
        }
        if template.hasExpressions || shell {
            sites.append(Site(template: template, node: node, scope: scope, isShell: shell))
        }
        return template
    }

    /// Converts a node to a `TemplateValue`, checking it against a type.
    mutating func value(_ node: YAMLNode, _ type: ValueType, key: String, in scope: Scope) -> TemplateValue? {
        switch type {
        case .string:
            guard let s = node.scalar, s.resolved != .null else {
                error(node.location, "`\(key)` must be a string, not \(describe(node))")
                return nil
            }
            return templated(node, in: scope).map(WorkflowChecker.wrap) ?? .literal(.string(s.text))
        case .integer(let minimum):
            if let t = singleExpression(node, in: scope) { return t }
            return integer(node, minimum: minimum, key: key).map { .literal(.int($0)) }
        case .boolean:
            if let t = singleExpression(node, in: scope) { return t }
            guard case .bool(let b) = node.scalar?.resolved else {
                error(node.location, "`\(key)` must be true or false, not \(describe(node))")
                return nil
            }
            return .literal(.bool(b))
        case .duration:
            return duration(node, key: key).map { .literal(.string($0.description)) }
        case .choice(let words):
            if let t = singleExpression(node, in: scope) { return t }
            guard case .string(let s) = node.scalar?.resolved else {
                error(node.location, "`\(key)` must be \(type.expectation), not \(describe(node))")
                return nil
            }
            guard words.contains(s) else {
                error(node.location, "`\(key)`: unknown value '\(s)'; expected \(type.expectation)\(DidYouMean.hint(s, words))")
                return nil
            }
            return .literal(.string(s))
        case .stringOrList:
            if node.scalar != nil { return value(node, .string, key: key, in: scope).map { .list([$0]) } }
            return stringList(node, key: key, allowEmpty: true, in: scope)
        case .argv:
            if node.scalar != nil {
                error(node.location, "`\(key)` must be a list of strings (an argv such as [\"claude\", \"-p\", \"${{ prompt }}\"]), not \(describe(node))")
                return nil
            }
            return stringList(node, key: key, allowEmpty: false, in: scope)
        case .agent:
            return agentChoice(node, key: key, in: scope)
        case .budget:
            return budget(node, key: key).map { .literal($0.value) }
        case .notify:
            return nil
        case .slurm:
            return slurmOptions(node, key: key).map { .literal($0.value) }
        case .command:
            return command(node, key: key, in: scope).map(WorkflowChecker.commandValue)
        case .commands:
            if let items = node.sequence {
                var out: [TemplateValue] = []
                for (i, item) in items.enumerated() {
                    if let c = command(item, key: "\(key)[\(i)]", in: scope) { out.append(WorkflowChecker.commandValue(c)) }
                }
                return .list(out)
            }
            return command(node, key: key, in: scope).map { .list([WorkflowChecker.commandValue($0)]) }
        case .stringMap:
            guard let pairs = node.mapping else {
                error(node.location, "`\(key)` must be a mapping of names to strings, not \(describe(node))")
                return nil
            }
            var entries: [TemplateEntry] = []
            for pair in pairs {
                guard WorkflowChecker.isEnvironmentName(pair.key) else {
                    error(pair.keyLocation, "'\(pair.key)' is not a valid environment variable name (letters, digits and '_', not starting with a digit)")
                    continue
                }
                guard pair.value.scalar != nil else {
                    error(pair.value.location, "`\(key).\(pair.key)` must be a string, not \(pair.value.kindDescription)")
                    continue
                }
                if let v = value(pair.value, .string, key: "\(key).\(pair.key)", in: scope) { entries.append(TemplateEntry(key: pair.key, value: v)) }
            }
            return .object(entries)
        case .listExpression:
            if let t = singleExpression(node, in: scope) { return t }
            if node.scalar != nil {
                error(node.location, "`\(key)` must be \(type.expectation) (for example ${{ stages.ready.outputs.items }}), not \(describe(node))")
                return nil
            }
            return anyValue(node, in: scope)
        case .condition:
            return condition(node, in: scope.stage).map { .template($0) }
        case .retry:
            return nil
        case .names:
            guard let items = node.sequence else {
                error(node.location, "`\(key)` must be a list of names, not \(describe(node))")
                return nil
            }
            var out: [TemplateValue] = []
            for item in items {
                guard case .string(let s) = item.scalar?.resolved, !s.isEmpty, !s.contains("${{") else {
                    error(item.location, "`\(key)` must list plain names, not \(describe(item))")
                    continue
                }
                out.append(.literal(.string(s)))
            }
            return .list(out)
        case .any:
            return anyValue(node, in: scope)
        }
    }

    static func wrap(_ t: Template) -> TemplateValue {
        if !t.hasExpressions, case .text(let s)? = t.parts.first, t.parts.count == 1 { return .literal(.string(s)) }
        if t.parts.isEmpty { return .literal(.string("")) }
        return .template(t)
    }

    static func commandValue(_ c: Command) -> TemplateValue {
        switch c {
        case .shell(let t): return wrap(t)
        case .argv(let items): return .list(items.map(wrap))
        }
    }

    /// A string that is exactly one `${{ }}`: its type is known only when it runs.
    mutating func singleExpression(_ node: YAMLNode, in scope: Scope) -> TemplateValue? {
        guard let s = node.scalar, s.style != .plain || s.resolved.kindDescription == "a string", s.text.contains("${{") else { return nil }
        guard let t = templated(node, in: scope) else { return nil }
        return t.singleExpression != nil ? .template(t) : nil
    }

    mutating func stringList(_ node: YAMLNode, key: String, allowEmpty: Bool, in scope: Scope) -> TemplateValue? {
        guard let items = node.sequence else {
            error(node.location, "`\(key)` must be a list of strings, not \(describe(node))")
            return nil
        }
        if items.isEmpty && !allowEmpty {
            error(node.location, "`\(key)` must not be empty")
            return nil
        }
        var out: [TemplateValue] = []
        for (i, item) in items.enumerated() {
            guard let s = item.scalar, s.resolved != .null else {
                error(item.location, "`\(key)[\(i)]` must be a string, not \(describe(item))")
                continue
            }
            out.append(templated(item, in: scope).map(WorkflowChecker.wrap) ?? .literal(.string(s.text)))
        }
        return .list(out)
    }

    mutating func command(_ node: YAMLNode, key: String, in scope: Scope) -> Command? {
        if let s = node.scalar {
            guard case .string(let text) = s.resolved, !text.trimming(" \t\n").isEmpty else {
                error(node.location, "`\(key)` must be a command: a string for /bin/sh -c or a list of strings (an argv), not \(describe(node))")
                return nil
            }
            return templated(node, shell: true, in: scope).map(Command.shell)
        }
        guard let items = node.sequence else {
            error(node.location, "`\(key)` must be a command: a string for /bin/sh -c or a list of strings (an argv), not \(node.kindDescription)")
            return nil
        }
        guard !items.isEmpty else {
            error(node.location, "`\(key)`: an argv needs at least the program's name")
            return nil
        }
        var argv: [Template] = []
        for (i, item) in items.enumerated() {
            guard let s = item.scalar, s.resolved != .null else {
                error(item.location, "`\(key)[\(i)]` must be a string, not \(describe(item))")
                continue
            }
            argv.append(templated(item, in: scope) ?? Template(parts: [.text(s.text)]))
        }
        return .argv(argv)
    }

    /// Any value, strings parsed as templates.
    mutating func anyValue(_ node: YAMLNode, in scope: Scope) -> TemplateValue {
        switch node.content {
        case .scalar(let s):
            if case .string(let text) = s.resolved, text.contains("${{"), let t = templated(node, in: scope) { return WorkflowChecker.wrap(t) }
            return .literal(s.resolved)
        case .sequence(let items):
            return .list(items.map { anyValue($0, in: scope) })
        case .mapping(let pairs):
            return .object(pairs.map { TemplateEntry(key: $0.key, value: anyValue($0.value, in: scope)) })
        }
    }

    /// `if:` — `${{ expr }}`, a bare expression, or true/false.
    /// Its expressions are checked as an `if`, where status functions may be called.
    mutating func condition(_ node: YAMLNode, in stage: String?) -> Template? {
        let scope = Scope(stage: stage, field: .condition)
        guard let s = node.scalar else {
            error(node.location, "`if` must be an expression, not \(node.kindDescription)")
            return nil
        }
        switch s.resolved {
        case .bool(let b):
            return Template(parts: [.expression(.literal(.bool(b), offset: 0), source: s.text, offset: -3)])
        case .string(let text):
            if text.contains("${{") {
                guard let t = templated(node, in: scope) else { return nil }
                if t.singleExpression == nil {
                    error(node.location, "`if` is one expression: write `${{ a && b }}` or `a && b`, not text around `${{ }}`")
                    return nil
                }
                return t
            }
            do {
                // A bare expression; offset -3 lines its body up with the value's text.
                let e = try ExpressionParser.parse(text)
                let t = Template(parts: [.expression(e, source: text, offset: -3)])
                sites.append(Site(template: t, node: node, scope: scope, isShell: false))
                return t
            } catch {
                self.error(source.locate(node, offset: error.offset, in: text), "bad expression: \(error.message)")
                return nil
            }
        default:
            error(node.location, "`if` must be an expression or true/false, not \(describe(node))")
            return nil
        }
    }

    /// A literal value as a `TemplateValue` (defaults of parameters may hold expressions).
    public static func templateValue(from value: Value) -> TemplateValue {
        switch value {
        case .string(let s):
            return s.contains("${{") ? wrap(Template.parse(s).template) : .literal(value)
        case .list(let items):
            return .list(items.map(templateValue(from:)))
        case .object(let o):
            return .object(o.map { TemplateEntry(key: $0.0, value: templateValue(from: $0.1)) })
        default:
            return .literal(value)
        }
    }
}
