/// Checks a workflow file and builds its `Workflow`, reporting every problem in one pass.
///
/// The passes: keys and types of every mapping (with "did you mean"), then the graph (`needs`,
/// cycles, which stages run per item and which fan in), then every expression against the
/// stages and names it may see from where it stands.
public struct WorkflowChecker {
    /// The result of a check: the workflow when there were no errors, and every diagnostic.
    public struct Result: Sendable {
        public var workflow: Workflow?
        public var diagnostics: [Diagnostic]
    }

    /// Where a template was written, so that its expressions can be checked in their scope.
    private struct Site {
        enum Field: Equatable {
            case general, condition, forEach, prompt, agent, resume
        }
        var template: Template
        var node: YAMLNode
        var stage: String?
        var field: Field
        var isShell: Bool
    }

    private let lines: [[Unicode.Scalar]]
    private var diagnostics: [Diagnostic] = []
    private var sites: [Site] = []
    private var currentStage: String?
    private var currentField: Site.Field = .general
    private var stageNodes: [String: YAMLNode] = [:]
    private var needsLocations: [String: SourcePosition] = [:]
    private var kindLocations: [String: SourcePosition] = [:]
    /// Stages on or after a cycle: which of them run per item cannot be known.
    private var unresolved = Set<String>()

    private init(source: [UInt8]) {
        lines = String(decoding: source, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { Array($0.unicodeScalars) }
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

    private mutating func error(_ at: SourcePosition, _ message: String) {
        diagnostics.append(.error(at: at, message))
    }

    private mutating func warning(_ at: SourcePosition, _ message: String) {
        diagnostics.append(.warning(at: at, message))
    }

    // MARK: - Top level

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
        var previous: String?
        for pair in stagePairs {
            if let stage = checkStage(pair, previous: previous, allIds: stagePairs.map(\.key)) {
                stages.append(stage)
            }
            previous = pair.key
        }
        var workflow = Workflow(version: version, name: name, description: description, settings: settings, vars: vars, stages: stages)
        checkGraph(&workflow)
        checkExpressions(workflow)
        return workflow
    }

    static func stem(of file: String) -> String {
        var base = Substring(file.split(separator: "/").last ?? Substring(file))
        for ext in [".yaml", ".yml"] where base.hasSuffix(ext) { base = base.dropLast(ext.count) }
        return String(base)
    }

    /// Reports unknown keys (with a suggestion) and missing required ones.
    private mutating func checkKeys(_ pairs: [YAMLPair], allowed: [KeySpec], in what: String, at location: SourcePosition, extraHint: (String) -> String? = { _ in nil }) {
        let names = allowed.map(\.name)
        for pair in pairs where !names.contains(pair.key) {
            let hint = extraHint(pair.key) ?? DidYouMean.hint(pair.key, names)
            error(pair.keyLocation, "unknown key '\(pair.key)' in \(what)\(hint)")
        }
        for spec in allowed where spec.required && !pairs.contains(where: { $0.key == spec.name }) {
            error(location, "\(what) is missing the required key '\(spec.name)'")
        }
    }

    private mutating func plainString(_ node: YAMLNode, key: String) -> String? {
        guard let s = node.scalar, s.resolved != .null else {
            error(node.location, "`\(key)` must be a string, not \(node.kindDescription)")
            return nil
        }
        if s.text.contains("${{") {
            error(node.location, "expressions are not evaluated in `\(key)`; write a plain value")
            return nil
        }
        return s.text
    }

    private mutating func checkSettings(_ node: YAMLNode) -> Settings {
        var settings = Settings()
        guard let pairs = node.mapping else {
            if node.scalar?.resolved != .null {
                error(node.location, "`settings` must be a mapping, not \(node.kindDescription)")
            }
            return settings
        }
        checkKeys(pairs, allowed: WorkflowLanguage.settingsKeys, in: "settings", at: node.location)
        for pair in pairs {
            let v = pair.value
            switch pair.key {
            case "base":
                if let s = plainString(v, key: "settings.base") {
                    if WorkflowChecker.isValidBranchName(s) { settings.base = s } else { error(v.location, "'\(s)' is not a valid git branch name") }
                }
            case "worktrees", "state":
                if let s = plainString(v, key: "settings.\(pair.key)") {
                    if s.isEmpty || s.hasPrefix("/") || s.split(separator: "/").contains("..") {
                        error(v.location, "settings.\(pair.key) must be a path inside the repository (relative, without '..'), not '\(s)'")
                    } else if pair.key == "worktrees" { settings.worktrees = s } else { settings.state = s }
                }
            case "concurrency":
                if let n = integer(v, minimum: 1, key: "settings.concurrency") { settings.concurrency = n }
            case "max-processes":
                if let n = integer(v, minimum: 1, key: "settings.max-processes") { settings.maxProcesses = n }
            case "poll":
                if let d = duration(v, key: "settings.poll") { settings.poll = d }
            default: break
            }
        }
        return settings
    }

    static func isValidBranchName(_ s: String) -> Bool {
        guard !s.isEmpty, !s.hasPrefix("-"), !s.hasPrefix("/"), !s.hasSuffix("/"), !s.hasSuffix(".lock"), !s.hasSuffix(".") else { return false }
        if s.contains("..") || s.contains("//") || s.contains("@{") || s == "@" { return false }
        return !s.unicodeScalars.contains { $0.value < 0x21 || $0 == "\u{7F}" || "~^:?*[\\".unicodeScalars.contains($0) }
    }

    private mutating func checkVars(_ node: YAMLNode) -> OrderedObject {
        var vars = OrderedObject()
        guard let pairs = node.mapping else {
            if node.scalar?.resolved != .null {
                error(node.location, "`vars` must be a mapping of names to values, not \(node.kindDescription)")
            }
            return vars
        }
        for pair in pairs {
            if !WorkflowChecker.isName(pair.key) {
                error(pair.keyLocation, "'\(pair.key)' is not a valid variable name (letters, digits, '_' and '-', starting with a letter or '_')")
                continue
            }
            guard let s = pair.value.scalar else {
                error(pair.value.location, "vars.\(pair.key) must be a string, number or boolean, not \(pair.value.kindDescription)")
                continue
            }
            if s.text.contains("${{") {
                error(pair.value.location, "expressions are not evaluated in `vars`; write a plain value (or pass --var \(pair.key)=…)")
                continue
            }
            vars[pair.key] = s.resolved
        }
        return vars
    }

    static func isName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || $0 == "-" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    static func isEnvironmentName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    // MARK: - Scalars

    private mutating func integer(_ node: YAMLNode, minimum: Int, key: String) -> Int? {
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

    private mutating func duration(_ node: YAMLNode, key: String) -> WorkflowDuration? {
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

    private func describe(_ node: YAMLNode) -> String {
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
    private mutating func templated(_ node: YAMLNode, shell: Bool = false) -> Template? {
        guard let s = node.scalar else { return nil }
        let text = s.resolved == .null && s.style == .plain ? "" : s.text
        let (template, errors) = Template.parse(text)
        for e in errors {
            error(locate(node, offset: e.offset, in: text), "bad expression: \(e.message)")
        }
        if template.hasExpressions || shell {
            sites.append(Site(template: template, node: node, stage: currentStage, field: currentField, isShell: shell))
        }
        return template
    }

    /// Converts a node to a `TemplateValue`, checking it against a type.
    private mutating func value(_ node: YAMLNode, _ type: ValueType, key: String) -> TemplateValue? {
        switch type {
        case .string:
            guard let s = node.scalar, s.resolved != .null else {
                error(node.location, "`\(key)` must be a string, not \(describe(node))")
                return nil
            }
            return templated(node).map(WorkflowChecker.wrap) ?? .literal(.string(s.text))
        case .integer(let minimum):
            if let t = singleExpression(node) { return t }
            return integer(node, minimum: minimum, key: key).map { .literal(.int($0)) }
        case .boolean:
            if let t = singleExpression(node) { return t }
            guard case .bool(let b) = node.scalar?.resolved else {
                error(node.location, "`\(key)` must be true or false, not \(describe(node))")
                return nil
            }
            return .literal(.bool(b))
        case .duration:
            return duration(node, key: key).map { .literal(.string($0.description)) }
        case .choice(let words):
            if let t = singleExpression(node) { return t }
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
            if node.scalar != nil { return value(node, .string, key: key).map { .list([$0]) } }
            return stringList(node, key: key, allowEmpty: true)
        case .argv:
            if node.scalar != nil {
                error(node.location, "`\(key)` must be a list of strings (an argv such as [\"claude\", \"-p\", \"${{ prompt }}\"]), not \(describe(node))")
                return nil
            }
            return stringList(node, key: key, allowEmpty: false)
        case .command:
            return command(node, key: key).map(WorkflowChecker.commandValue)
        case .commands:
            if let items = node.sequence {
                var out: [TemplateValue] = []
                for (i, item) in items.enumerated() {
                    if let c = command(item, key: "\(key)[\(i)]") { out.append(WorkflowChecker.commandValue(c)) }
                }
                return .list(out)
            }
            return command(node, key: key).map { .list([WorkflowChecker.commandValue($0)]) }
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
                if let v = value(pair.value, .string, key: "\(key).\(pair.key)") { entries.append(TemplateEntry(key: pair.key, value: v)) }
            }
            return .object(entries)
        case .listExpression:
            if let t = singleExpression(node) { return t }
            if node.scalar != nil {
                error(node.location, "`\(key)` must be \(type.expectation) (for example ${{ stages.ready.outputs.items }}), not \(describe(node))")
                return nil
            }
            return anyValue(node)
        case .condition:
            return condition(node).map { .template($0) }
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
            return anyValue(node)
        }
    }

    private static func wrap(_ t: Template) -> TemplateValue {
        if !t.hasExpressions, case .text(let s)? = t.parts.first, t.parts.count == 1 { return .literal(.string(s)) }
        if t.parts.isEmpty { return .literal(.string("")) }
        return .template(t)
    }

    private static func commandValue(_ c: Command) -> TemplateValue {
        switch c {
        case .shell(let t): return wrap(t)
        case .argv(let items): return .list(items.map(wrap))
        }
    }

    /// A string that is exactly one `${{ }}`: its type is known only when it runs.
    private mutating func singleExpression(_ node: YAMLNode) -> TemplateValue? {
        guard let s = node.scalar, s.style != .plain || s.resolved.kindDescription == "a string", s.text.contains("${{") else { return nil }
        guard let t = templated(node) else { return nil }
        return t.singleExpression != nil ? .template(t) : nil
    }

    private mutating func stringList(_ node: YAMLNode, key: String, allowEmpty: Bool) -> TemplateValue? {
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
            out.append(templated(item).map(WorkflowChecker.wrap) ?? .literal(.string(s.text)))
        }
        return .list(out)
    }

    private mutating func command(_ node: YAMLNode, key: String) -> Command? {
        if let s = node.scalar {
            guard case .string(let text) = s.resolved, !text.trimming(" \t\n").isEmpty else {
                error(node.location, "`\(key)` must be a command: a string for /bin/sh -c or a list of strings (an argv), not \(describe(node))")
                return nil
            }
            return templated(node, shell: true).map(Command.shell)
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
            argv.append(templated(item) ?? Template(parts: [.text(s.text)]))
        }
        return .argv(argv)
    }

    /// Any value, strings parsed as templates.
    private mutating func anyValue(_ node: YAMLNode) -> TemplateValue {
        switch node.content {
        case .scalar(let s):
            if case .string(let text) = s.resolved, text.contains("${{"), let t = templated(node) { return WorkflowChecker.wrap(t) }
            return .literal(s.resolved)
        case .sequence(let items):
            return .list(items.map { anyValue($0) })
        case .mapping(let pairs):
            return .object(pairs.map { TemplateEntry(key: $0.key, value: anyValue($0.value)) })
        }
    }

    /// `if:` — `${{ expr }}`, a bare expression, or true/false.
    private mutating func condition(_ node: YAMLNode) -> Template? {
        guard let s = node.scalar else {
            error(node.location, "`if` must be an expression, not \(node.kindDescription)")
            return nil
        }
        switch s.resolved {
        case .bool(let b):
            return Template(parts: [.expression(.literal(.bool(b), offset: 0), source: s.text, offset: -3)])
        case .string(let text):
            if text.contains("${{") {
                guard let t = templated(node) else { return nil }
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
                sites.append(Site(template: t, node: node, stage: currentStage, field: .condition, isShell: false))
                return t
            } catch {
                self.error(locate(node, offset: error.offset, in: text), "bad expression: \(error.message)")
                return nil
            }
        default:
            error(node.location, "`if` must be an expression or true/false, not \(describe(node))")
            return nil
        }
    }

    // MARK: - Stages

    private mutating func checkStage(_ pair: YAMLPair, previous: String?, allIds: [String]) -> Stage? {
        let id = pair.key
        let node = pair.value
        currentStage = id
        defer { currentStage = nil; currentField = .general }
        if !WorkflowChecker.isName(id) {
            error(pair.keyLocation, "'\(id)' is not a valid stage id (letters, digits, '_' and '-', starting with a letter or '_')")
        }
        guard let pairs = node.mapping else {
            error(node.location, "stage '\(id)' must be a mapping with `uses:` or `run:`, not \(describe(node))")
            return nil
        }
        stageNodes[id] = node
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
            kindLocations[id] = usesNode.location
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
                kindLocations[id] = runNode.location
                command = self.command(runNode, key: "run")
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
                    currentField = .general
                    if kind == .dispatch && p.key == "agent" { currentField = .agent }
                    if kind == .dispatch && p.key == "prompt" { currentField = .prompt }
                    if kind == .waitApproved && p.key == "resume" { currentField = .resume }
                    if let v = value(p.value, spec.type, key: "with.\(p.key)") { stage.with[p.key] = v }
                    currentField = .general
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
                command = self.command(c, key: "with.command")
            }
            stage.command = command
        }
        if kind == .queryReady { checkQueryReady(stage, node: node) }

        // needs
        if let needsNode = node["needs"] {
            needsLocations[id] = needsNode.location
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
            needsLocations[id] = pair.keyLocation
        }

        if let n = node["for-each"] {
            currentField = .forEach
            stage.forEach = value(n, .listExpression, key: "for-each")
            currentField = .general
        }
        if let n = node["if"] {
            currentField = .condition
            stage.condition = condition(n)
            currentField = .general
        }
        if let n = node["timeout"] { stage.timeout = duration(n, key: "timeout") }
        if let n = node["retry"] { stage.retry = retry(n) }
        if let n = node["continue-on-error"], case .literal(.bool(let b))? = value(n, .boolean, key: "continue-on-error") { stage.continueOnError = b }
        if let n = node["fan-in"] {
            if case .bool(let b) = n.scalar?.resolved { stage.fanIn = b } else { error(n.location, "`fan-in` must be true or false, not \(describe(n))") }
        }
        if let n = node["concurrency"] { stage.concurrency = integer(n, minimum: 1, key: "concurrency") }
        if let n = node["env"], case .object(let entries)? = value(n, .stringMap, key: "env") { stage.env = entries }
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
            } else if case .template(let t)? = value(n, .string, key: "working-directory") {
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
        return stage
    }

    private mutating func checkQueryReady(_ stage: Stage, node: YAMLNode) {
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

    private mutating func retry(_ node: YAMLNode) -> RetryPolicy {
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

    // MARK: - The graph

    private mutating func checkGraph(_ workflow: inout Workflow) {
        let ids = workflow.stages.map(\.id)
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })

        // Cycles: depth-first search; each cycle reported once, named by its path.
        var color = [Int](repeating: 0, count: ids.count)
        var path: [Int] = []
        var reported = Set<Set<String>>()
        var cyclic = false
        func visit(_ v: Int, _ checker: inout WorkflowChecker) {
            color[v] = 1
            path.append(v)
            for n in workflow.stages[v].needs {
                guard let w = index[n] else { continue }
                if color[w] == 1, let start = path.firstIndex(of: w) {
                    cyclic = true
                    let members = path[start...].map { ids[$0] }
                    if reported.insert(Set(members)).inserted {
                        // Printed in the direction work would flow: each stage before the one that needs it.
                        let names = ([ids[w]] + members.reversed()).joined(separator: " -> ")
                        checker.error(checker.needsLocations[ids[v]] ?? workflow.stages[v].location, "`needs` form a cycle: \(names)")
                    }
                } else if color[w] == 0 {
                    visit(w, &checker)
                }
            }
            path.removeLast()
            color[v] = 2
        }
        for v in ids.indices where color[v] == 0 { visit(v, &self) }

        // Per-item resolution, in dependency order; stages on or after a cycle stay unresolved.
        let order = workflow.topologicalOrder
        if cyclic { unresolved = Set(ids).subtracting(order) }
        for id in order {
            guard let i = index[id] else { continue }
            var stage = workflow.stages[i]
            let perItemNeeds = stage.needs.filter { workflow.stages[index[$0]!].itemSource != nil }
            let sources = Set(perItemNeeds.map { workflow.stages[index[$0]!].itemSource! })
            let at = stageNodes[id]?["for-each"]?.location ?? stage.location
            if stage.forEach != nil {
                if stage.fanIn, let f = stageNodes[id]?["fan-in"] {
                    error(f.location, "stage '\(id)' has both `for-each` and `fan-in`; a stage either runs per item or once after them")
                }
                if let p = perItemNeeds.first {
                    error(at, "stage '\(id)' has `for-each` but needs per-item stage '\(p)'; nested for-each is not supported (add `fan-in: true` to a stage between them)")
                }
                stage.itemSource = id
            } else if stage.fanIn {
                if perItemNeeds.isEmpty, let f = stageNodes[id]?["fan-in"] {
                    warning(f.location, "`fan-in` has no effect: stage '\(id)' needs no per-item stage")
                }
            } else if sources.count > 1 {
                error(needsLocations[id] ?? stage.location, "stage '\(id)' needs per-item stages of different for-each stages (\(sources.sorted().joined(separator: ", "))); give it `fan-in: true` or split it")
            } else {
                stage.itemSource = sources.first
            }
            let kindAt = kindLocations[id] ?? stage.location
            if stage.kind.isPerItemOnly && stage.itemSource == nil {
                error(kindAt, "\(stage.kind.rawValue) works on one item at a time: give stage '\(id)' a `for-each:` or make it need a per-item stage")
            }
            if stage.kind == .queryReady && stage.itemSource != nil {
                error(kindAt, "query-ready runs once per run, but stage '\(id)' is per-item; give it `needs: []` or `fan-in: true`")
            }
            workflow.stages[i] = stage
        }
        for stage in workflow.stages where stage.kind.needsSession && stage.itemSource != nil && !unresolved.contains(stage.id) {
            let upstream = ancestors(of: stage.id, in: workflow)
            if !upstream.contains(where: { workflow.stage($0)?.kind == .dispatch && workflow.stage($0)?.itemSource == stage.itemSource }) {
                error(kindLocations[stage.id] ?? stage.location, "\(stage.kind.rawValue) acts on an item's session: stage '\(stage.id)' needs a dispatch stage upstream")
            }
        }
    }

    /// Every stage `id` depends on, directly or through others.
    private func ancestors(of id: String, in workflow: Workflow) -> Set<String> {
        var seen = Set<String>()
        var stack = workflow.stage(id)?.needs ?? []
        while let n = stack.popLast() {
            guard seen.insert(n).inserted else { continue }
            stack.append(contentsOf: workflow.stage(n)?.needs ?? [])
        }
        return seen
    }

    // MARK: - Expressions

    private mutating func checkExpressions(_ workflow: Workflow) {
        var ancestorCache: [String: Set<String>] = [:]
        for site in sites {
            let stage = site.stage.flatMap { workflow.stage($0) }
            if site.isShell { checkShellQuoting(site) }
            for part in site.template.parts {
                guard case .expression(let e, _, let open) = part else { continue }
                let upstream: Set<String>
                if let id = stage?.id {
                    if let cached = ancestorCache[id] { upstream = cached } else {
                        upstream = ancestors(of: id, in: workflow)
                        ancestorCache[id] = upstream
                    }
                } else {
                    upstream = []
                }
                e.forEachNode { node in
                    checkNode(node, site: site, open: open, stage: stage, upstream: upstream, workflow: workflow)
                }
            }
        }
    }

    private mutating func checkNode(_ node: Expression, site: Site, open: Int, stage: Stage?, upstream: Set<String>, workflow: Workflow) {
        let text = site.node.scalar?.text ?? ""
        let lines = self.lines
        let at = { (offset: Int) in WorkflowChecker.locate(site.node, offset: open + 3 + offset, in: text, lines: lines) }
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
            if f.isStatusFunction && site.field != .condition {
                error(at(offset), "\(f.rawValue)() is a status function; it may be used only in `if`")
            }
        case .path(let root, let components, let offset):
            checkPath(root: root, components: components, at: at, offset: offset, site: site, stage: stage, upstream: upstream, workflow: workflow)
        default:
            break
        }
    }

    private mutating func checkPath(root: String, components: [Expression.PathComponent], at: (Int) -> SourcePosition, offset: Int, site: Site, stage: Stage?, upstream: Set<String>, workflow: Workflow) {
        func name(_ i: Int) -> (String, Int)? {
            guard i < components.count else { return nil }
            switch components[i] {
            case .name(let n, let o): return (n, o)
            case .index(.literal(.string(let n), let o)): return (n, o)
            case .index: return nil
            }
        }
        let stageId = stage?.id ?? ""
        if unresolved.contains(stageId) && (root == "item" || root == "session") { return }
        switch root {
        case "item":
            if stage?.itemSource == nil {
                error(at(offset), "`item` exists only in per-item stages; stage '\(stageId)' runs once (give it `for-each:` or make it need a per-item stage)")
            } else if site.field == .forEach {
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
            let hasSession = stage.map { s in
                s.kind == .dispatch || upstream.contains { workflow.stage($0)?.kind == .dispatch && workflow.stage($0)?.itemSource == s.itemSource }
            } ?? false
            if !hasSession || site.field == .forEach {
                error(at(offset), "`session` exists only in dispatch stages and the per-item stages after them")
            } else if let (n, o) = name(0), !WorkflowLanguage.sessionFields.contains(n) {
                error(at(o), "`session` has \(WorkflowLanguage.sessionFields.joined(separator: ", "))\(DidYouMean.hint(n, WorkflowLanguage.sessionFields))")
            }
        case "env":
            break
        case "prompt":
            if site.field != .agent {
                error(at(offset), "`prompt` is the rendered prompt, usable only in a dispatch stage's `agent`")
            }
        case "answer":
            if site.field != .resume {
                error(at(offset), "`answer` is usable only in a wait-approved stage's `resume`")
            }
        default:
            var hint = DidYouMean.hint(root, WorkflowLanguage.expressionRoots)
            if root == "needs" || root == "steps" || root == "jobs" { hint = "; did you mean 'stages'? (stages.<id>.outputs.<key>)" }
            if root == "inputs" { hint = "; did you mean 'vars'?" }
            error(at(offset), "unknown name '\(root)'\(hint) (names: \(WorkflowLanguage.expressionRoots.joined(separator: ", ")))")
        }
    }

    /// In a shell string, `${{ }}` becomes `"$AMPLIFY_EXPR_n"`, which stays literal inside '…'.
    private mutating func checkShellQuoting(_ site: Site) {
        let text = Array((site.node.scalar?.text ?? "").unicodeScalars)
        var inSingle = false
        var inDouble = false
        var i = 0
        while i < text.count {
            let c = text[i]
            if inSingle {
                if c == "'" { inSingle = false }
                else if c == "$", i + 2 < text.count, text[i + 1] == "{", text[i + 2] == "{" {
                    error(locate(site.node, offset: i, in: String(String.UnicodeScalarView(text))), "`${{ }}` inside single quotes would stay literal in a shell command; take it out of the quotes (it is passed safely as \"$AMPLIFY_EXPR_n\")")
                }
            } else if c == "\\" {
                i += 1
            } else if c == "'" && !inDouble {
                inSingle = true
            } else if c == "\"" {
                inDouble.toggle()
            }
            i += 1
        }
    }

    // MARK: - Positions inside scalars

    /// The file position of `offset` (in Unicode scalars) into a scalar's value: the k-th `${{`
    /// of the value is found as the k-th `${{` of the node's source text, and offsets on the
    /// same line are counted from there.
    private func locate(_ node: YAMLNode, offset: Int, in text: String) -> SourcePosition {
        WorkflowChecker.locate(node, offset: offset, in: text, lines: lines)
    }

    private static func locate(_ node: YAMLNode, offset: Int, in text: String, lines: [[Unicode.Scalar]]) -> SourcePosition {
        let value = Array(text.unicodeScalars)
        // Which `${{` the offset belongs to, and how far past it.
        var k = -1
        var anchor = 0
        var i = 0
        while i + 2 < value.count, i <= offset {
            if value[i] == "$", value[i + 1] == "{", value[i + 2] == "{" { k += 1; anchor = i }
            i += 1
        }
        guard k >= 0 else {
            // No `${{` (a bare `if` expression): count from the value's first character.
            guard let s = node.scalar, s.style == .plain || s.style == .singleQuoted || s.style == .doubleQuoted else { return node.location }
            let quote = s.style == .plain ? 0 : 1
            let line = node.location.line
            let column = node.location.column + quote + max(0, offset)
            if line <= lines.count, column - 1 <= lines[line - 1].count { return SourcePosition(line: line, column: column) }
            return node.location
        }
        var line = node.location.line - 1
        var column = node.location.column - 1
        var found = -1
        while line < lines.count, SourcePosition(line: line + 1, column: column + 1) <= node.endLocation {
            let l = lines[line]
            if column + 2 < l.count, l[column] == "$", l[column + 1] == "{", l[column + 2] == "{" {
                found += 1
                if found == k {
                    var delta = offset - anchor
                    var c = column
                    while delta > 0, c < l.count { c += 1; delta -= 1 }
                    return SourcePosition(line: line + 1, column: (delta == 0 ? c : column) + 1)
                }
            }
            column += 1
            if column >= l.count { line += 1; column = 0 }
        }
        return node.location
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
