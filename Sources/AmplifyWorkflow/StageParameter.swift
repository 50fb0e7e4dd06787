/// A stage kind's parameter, as the language catalogue declares it (`MergeParameters.strategy`):
/// its `KeySpec`, what its value reads as, and whether the catalogue gives it a default.
///
/// Read it from a stage with `stage.value(MergeParameters.strategy, evaluator)`: the value given
/// in `with`, else the catalogue's default, rendered and read as `Reading`. A parameter
/// `WithDefault` always has a value, so no call site repeats the default.
public struct StageParameter<Reading: Sendable, Presence>: Sendable {
    public let spec: KeySpec
    public var name: String { spec.name }

    init(_ spec: KeySpec) {
        precondition((Presence.self == WithDefault.self) == (spec.defaultValue != nil), "`\(spec.name)` is declared \(Presence.self) but its default is \(spec.defaultValue.map { "\($0)" } ?? "none")")
        self.spec = spec
    }
}

/// The catalogue gives the parameter a default: it always has a value.
public enum WithDefault {}
/// The parameter has a value only when the workflow gives one.
public enum WithoutDefault {}

/// What a parameter's rendered value can be read as.
public protocol ParameterReading: Sendable {
    /// The value read as this type, or nil when it is not one; `type` is the catalogue's.
    static func read(_ value: Value, as type: ValueType) -> Self?
}

extension String: ParameterReading {
    /// Any value, as text (`renderedText`).
    public static func read(_ value: Value, as type: ValueType) -> String? { value.renderedText }
}

extension Int: ParameterReading {
    public static func read(_ value: Value, as type: ValueType) -> Int? {
        if case .int(let n) = value { return n }
        return nil
    }
}

extension Bool: ParameterReading {
    /// true or false, also as the text an expression may give.
    public static func read(_ value: Value, as type: ValueType) -> Bool? {
        switch value {
        case .bool(let b): return b
        case .string("true"): return true
        case .string("false"): return false
        default: return nil
        }
    }
}

extension WorkflowDuration: ParameterReading {
    public static func read(_ value: Value, as type: ValueType) -> WorkflowDuration? {
        if case .string(let t) = value { return WorkflowDuration(parsing: t) }
        return nil
    }
}

extension Array: ParameterReading where Element == String {
    /// A list, each element as text; one string is a list of one, except for an argv.
    public static func read(_ value: Value, as type: ValueType) -> [String]? {
        switch value {
        case .list(let items): return items.map(\.renderedText)
        case .string(let s) where type != .argv: return [s]
        default: return nil
        }
    }
}

/// `dispatch`'s `agent`: a profile's name, or an argv.
public enum AgentChoice: Sendable, Hashable, ParameterReading {
    case profile(String)
    case argv([String])

    public static func read(_ value: Value, as type: ValueType) -> AgentChoice? {
        switch value {
        case .string(let name): return .profile(name)
        case .list(let items): return .argv(items.map(\.renderedText))
        default: return nil
        }
    }

    /// The argv, or a profile's name as an argv of one (how an argv agent is started).
    public var argv: [String] {
        switch self {
        case .argv(let a): return a
        case .profile(let name): return [name]
        }
    }
}

/// A budget (`budget:` of a dispatch, `settings.budget`): dollars and turns, each optional.
public struct Budget: Sendable, Hashable, ParameterReading {
    public var cost: Double?
    public var turns: Int?

    public init(cost: Double? = nil, turns: Int? = nil) {
        self.cost = cost
        self.turns = turns
    }

    public static func read(_ value: Value, as type: ValueType) -> Budget? {
        guard case .object(let o) = value else { return nil }
        var b = Budget()
        switch o["cost"] {
        case .double(let d)?: b.cost = d
        case .int(let i)?: b.cost = Double(i)
        case .string(let s)?: guard let d = Double(s) else { return nil }; b.cost = d
        case nil, .null?: break
        default: return nil
        }
        switch o["turns"] {
        case .int(let i)?: b.turns = i
        case .string(let s)?: guard let i = Int(s) else { return nil }; b.turns = i
        case nil, .null?: break
        default: return nil
        }
        return b
    }

    /// As expressions see it (`${{ budget.cost }}`), and as the journal and views show it.
    public var value: Value {
        var o = OrderedObject()
        if let cost { o["cost"] = .double(cost) }
        if let turns { o["turns"] = .int(turns) }
        return .object(o)
    }
}

extension Stage {
    /// A parameter's value as written, unrendered: the given one, else the catalogue's default.
    public func parameter<R, P>(_ p: StageParameter<R, P>) -> TemplateValue? {
        parameter(p.name)
    }

    /// A parameter the catalogue gives a default, rendered and read.
    public func value<R: ParameterReading>(_ p: StageParameter<R, WithDefault>, _ evaluator: ExpressionEvaluator) throws(EvaluationError) -> R {
        guard let v = try renderedValue(p, evaluator) else {
            preconditionFailure("the catalogue gives `\(p.name)` of \(kind.rawValue) no default")
        }
        return v
    }

    /// A parameter without a default, rendered and read; nil when the workflow does not give it.
    public func value<R: ParameterReading>(_ p: StageParameter<R, WithoutDefault>, _ evaluator: ExpressionEvaluator) throws(EvaluationError) -> R? {
        try renderedValue(p, evaluator)
    }

    /// A parameter's value when it holds no expression (the given one, else the default), read
    /// without an evaluator: for what is decided before any item exists.
    public func literal<R: ParameterReading, P>(_ p: StageParameter<R, P>) -> R? {
        parameter(p).flatMap(\.literalValue).flatMap { R.read($0, as: p.spec.type) }
    }

    /// A `command` parameter, unrendered (its expressions are rendered as it is run).
    public func command<P>(_ p: StageParameter<Command, P>) -> Command? {
        parameter(p)?.command
    }

    /// A `commands` parameter (one command or a list of them), unrendered.
    public func commands<P>(_ p: StageParameter<[Command], P>) -> [Command] {
        guard case .list(let items)? = parameter(p) else { return [] }
        return items.compactMap(\.command)
    }

    private func renderedValue<R: ParameterReading, P>(_ p: StageParameter<R, P>, _ evaluator: ExpressionEvaluator) throws(EvaluationError) -> R? {
        guard let given = parameter(p) else { return nil }
        let rendered = try given.render(evaluator)
        guard let v = R.read(rendered, as: p.spec.type) else {
            throw EvaluationError(offset: 0, message: "`with.\(p.name)` must be \(p.spec.type.expectation), not \(rendered.kindDescription)")
        }
        return v
    }
}

extension TemplateValue {
    /// A checked `command` parameter's value as a command: a string runs under /bin/sh -c, a list
    /// is an argv.
    public var command: Command? {
        switch self {
        case .list(let parts):
            return .argv(parts.map { p in
                if case .template(let t) = p { return t }
                return Template(parts: [.text(p.literalValue?.renderedText ?? "")])
            })
        case .template(let t): return .shell(t)
        case .literal(let v): return .shell(Template(parts: [.text(v.renderedText)]))
        case .object: return nil
        }
    }
}
