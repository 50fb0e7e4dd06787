/// What an expression can see when it is evaluated.
public struct ExpressionContext: Sendable {
    /// Values of the roots: `item`, `stages`, `vars`, `env`, `run`, `session`, `settings`,
    /// `prompt`, `answer`. A root absent here is an error when named.
    public var roots: [String: Value]
    /// Roots whose missing fields read as `null` (as in GitHub Actions). In the other roots a
    /// missing first-level name (`vars.nope`, `stages.nope`) is an error; deeper, `null`.
    public var lenientRoots: Set<String> = ["item", "env"]
    /// For `success()`, `failure()` and `cancelled()`: how what this instance needs ended.
    public var dependencyFailed = false
    public var runCancelled = false

    public init(roots: [String: Value] = [:]) {
        self.roots = roots
    }
}

/// An error while evaluating, at an offset into the expression's source.
public struct EvaluationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { message }
}

/// The built-in functions and their arity; the checker and the evaluator share this table.
public enum ExpressionFunction: String, CaseIterable, Sendable {
    case contains, join, toJSON, startsWith, endsWith
    case success, failure, always, cancelled

    /// Function names match case-insensitively, as in GitHub Actions.
    public init?(name: String) {
        guard let f = ExpressionFunction.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
        self = f
    }

    public var arity: ClosedRange<Int> {
        switch self {
        case .contains, .startsWith, .endsWith: return 2...2
        case .join: return 1...2
        case .toJSON: return 1...1
        case .success, .failure, .always, .cancelled: return 0...0
        }
    }

    /// Status functions are allowed only in `if`.
    public var isStatusFunction: Bool {
        switch self {
        case .success, .failure, .always, .cancelled: return true
        default: return false
        }
    }
}

/// Evaluates expressions with GitHub Actions' semantics: loose equality, case-insensitive
/// string comparison, `&&`/`||` returning an operand, `null` as empty.
public struct ExpressionEvaluator: Sendable {
    public var context: ExpressionContext

    public init(context: ExpressionContext) {
        self.context = context
    }

    /// Renders a template: exactly one `${{ }}` keeps the value's type; otherwise a string.
    public func render(_ template: Template) throws(EvaluationError) -> Value {
        if let single = template.singleExpression { return try evaluate(single) }
        var out = ""
        for part in template.parts {
            switch part {
            case .text(let t): out += t
            case .expression(let e, _, let open):
                do { out += try evaluate(e).renderedText } catch {
                    throw EvaluationError(offset: open + 3 + error.offset, message: error.message)
                }
            }
        }
        return .string(out)
    }

    public func evaluate(_ e: Expression) throws(EvaluationError) -> Value {
        switch e {
        case .literal(let v, _):
            return v
        case .path(let root, let components, let offset):
            guard var value = context.roots[root] else {
                throw EvaluationError(offset: offset, message: "'\(root)' is not available here")
            }
            let lenient = context.lenientRoots.contains(root)
            var path = root
            for (depth, component) in components.enumerated() {
                switch component {
                case .name(let key, let o):
                    let next = ExpressionEvaluator.member(value, key)
                    if next == nil, depth == 0, !lenient {
                        throw EvaluationError(offset: o, message: "\(path) has no '\(key)'")
                    }
                    value = next ?? .null
                    path += "." + key
                case .index(let indexExpression):
                    let index = try evaluate(indexExpression)
                    switch (value, index) {
                    case (.list(let items), .int(let i)): value = items.indices.contains(i) ? items[i] : .null
                    case (.list(let items), .double(let d)) where d == d.rounded() && items.indices.contains(Int(d)): value = items[Int(d)]
                    case (_, .string(let key)): value = ExpressionEvaluator.member(value, key) ?? .null
                    default: value = .null
                    }
                    path += "[\(index.renderedText)]"
                }
            }
            return value
        case .call(let name, let arguments, let offset):
            guard let function = ExpressionFunction(name: name) else {
                throw EvaluationError(offset: offset, message: "unknown function \(name)()")
            }
            guard function.arity.contains(arguments.count) else {
                throw EvaluationError(offset: offset, message: "\(function.rawValue)() takes \(ExpressionEvaluator.describe(function.arity)), not \(arguments.count)")
            }
            var values: [Value] = []
            for a in arguments { values.append(try evaluate(a)) }
            return call(function, values)
        case .not(let operand, _):
            return .bool(!(try evaluate(operand)).isTruthy)
        case .binary(let op, let l, let r, _):
            let left = try evaluate(l)
            switch op {
            case .and: return left.isTruthy ? try evaluate(r) : left
            case .or: return left.isTruthy ? left : try evaluate(r)
            default: break
            }
            let right = try evaluate(r)
            switch op {
            case .equal: return .bool(ExpressionEvaluator.looselyEqual(left, right))
            case .notEqual: return .bool(!ExpressionEvaluator.looselyEqual(left, right))
            case .less: return .bool(ExpressionEvaluator.compare(left, right).map { $0 < 0 } ?? false)
            case .lessOrEqual: return .bool(ExpressionEvaluator.compare(left, right).map { $0 <= 0 } ?? false)
            case .greater: return .bool(ExpressionEvaluator.compare(left, right).map { $0 > 0 } ?? false)
            case .greaterOrEqual: return .bool(ExpressionEvaluator.compare(left, right).map { $0 >= 0 } ?? false)
            case .and, .or: return .null
            }
        }
    }

    static func describe(_ arity: ClosedRange<Int>) -> String {
        let n = arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" : "\(arity.lowerBound) or \(arity.upperBound)"
        return arity.upperBound == 1 ? "\(n) argument" : "\(n) arguments"
    }

    private func call(_ function: ExpressionFunction, _ v: [Value]) -> Value {
        switch function {
        case .contains:
            if case .list(let items) = v[0] { return .bool(items.contains { ExpressionEvaluator.looselyEqual($0, v[1]) }) }
            return .bool(v[0].renderedText.lowercased().contains(v[1].renderedText.lowercased()))
        case .startsWith:
            return .bool(v[0].renderedText.lowercased().hasPrefix(v[1].renderedText.lowercased()))
        case .endsWith:
            return .bool(v[0].renderedText.lowercased().hasSuffix(v[1].renderedText.lowercased()))
        case .join:
            let separator = v.count > 1 ? v[1].renderedText : ","
            if case .list(let items) = v[0] { return .string(items.map(\.renderedText).joined(separator: separator)) }
            return .string(v[0].renderedText)
        case .toJSON:
            return .string(v[0].prettyJSON)
        case .success:
            return .bool(!context.dependencyFailed && !context.runCancelled)
        case .failure:
            return .bool(context.dependencyFailed)
        case .always:
            return .bool(true)
        case .cancelled:
            return .bool(context.runCancelled)
        }
    }

    static func member(_ value: Value, _ key: String) -> Value? {
        if case .object(let o) = value { return o[key] }
        return nil
    }

    /// The number a value converts to for loose comparison (GitHub Actions' rules).
    static func coerceNumber(_ v: Value) -> Double {
        switch v {
        case .null: return 0
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .string(let s):
            let t = s.trimming(" \t\n")
            if t.isEmpty { return 0 }
            if t.hasPrefix("0x"), let i = Int(t.dropFirst(2), radix: 16) { return Double(i) }
            return Double(t) ?? .nan
        case .list, .object: return .nan
        }
    }

    static func looselyEqual(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x.lowercased() == y.lowercased()
        case (.list, .list), (.object, .object): return a == b
        case (.list, _), (_, .list), (.object, _), (_, .object): return false
        case (.null, .null): return true
        default: return coerceNumber(a) == coerceNumber(b)
        }
    }

    static func compare(_ a: Value, _ b: Value) -> Int? {
        if case .string(let x) = a, case .string(let y) = b {
            let (lx, ly) = (x.lowercased(), y.lowercased())
            return lx == ly ? 0 : (lx < ly ? -1 : 1)
        }
        let (x, y) = (coerceNumber(a), coerceNumber(b))
        if x.isNaN || y.isNaN { return nil }
        return x == y ? 0 : (x < y ? -1 : 1)
    }
}

extension String {
    /// The string without the given characters at either end.
    /// Without the leading and trailing scalars in `set` (scalars, not characters: "\r\n" is one
    /// Character, so a set of Characters would not take a lone "\n").
    public func trimming(_ set: String) -> String {
        let chars = Set(set.unicodeScalars)
        var s = Substring(self).unicodeScalars[...]
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(String.UnicodeScalarView(s))
    }
}
