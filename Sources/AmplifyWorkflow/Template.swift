/// A string with `${{ … }}` expressions in it, split into literal text and parsed expressions.
public struct Template: Sendable, Hashable {
    public enum Part: Sendable, Hashable {
        case text(String)
        /// An expression and the offset (in Unicode scalars) of its `${{` in the template.
        case expression(Expression, source: String, offset: Int)
    }

    public var parts: [Part]

    public init(parts: [Part]) {
        self.parts = parts
    }

    /// A template that is exactly one `${{ }}` (surrounding spaces allowed) keeps the value's type.
    public var singleExpression: Expression? {
        var found: Expression?
        for part in parts {
            switch part {
            case .text(let t): if !t.allSatisfy({ $0 == " " }) { return nil }
            case .expression(let e, _, _):
                if found != nil { return nil }
                found = e
            }
        }
        return found
    }

    public var expressions: [(expression: Expression, offset: Int)] {
        parts.compactMap { if case .expression(let e, _, let o) = $0 { return (e, o) } else { return nil } }
    }

    public var hasExpressions: Bool { !expressions.isEmpty }

    /// The source text of the first expression, without `${{ }}` (how `plan` shows an `if`).
    public var expressionSource: String? {
        for case .expression(_, let source, _) in parts { return source.trimming(" ") }
        return nil
    }

    /// The template as written: its text, with each expression back in `${{ }}`.
    public var sourceText: String {
        parts.map { part in
            switch part {
            case .text(let t): return t
            case .expression(_, let source, _): return "${{ " + source.trimming(" ") + " }}"
            }
        }.joined()
    }

    /// A syntax error at an offset (in Unicode scalars) from the template's start.
    public struct ParseError: Error, Sendable, Hashable {
        public var offset: Int
        public var message: String
    }

    /// Splits `text` at its `${{ … }}` markers and parses each expression; collects every error.
    public static func parse(_ text: String) -> (template: Template, errors: [ParseError]) {
        let s = Array(text.unicodeScalars)
        var parts: [Part] = []
        var errors: [ParseError] = []
        var literal = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            if s[i] == "$", i + 2 < s.count, s[i + 1] == "{", s[i + 2] == "{" {
                let open = i
                let bodyStart = i + 3
                var j = bodyStart
                var inString = false
                var close: Int?
                while j < s.count {
                    if s[j] == "'" { inString.toggle() }
                    else if !inString, s[j] == "}", j + 1 < s.count, s[j + 1] == "}" { close = j; break }
                    j += 1
                }
                guard let close else {
                    errors.append(ParseError(offset: open, message: "`${{` is not closed with `}}`"))
                    literal.append(contentsOf: s[open...])
                    break
                }
                if !literal.isEmpty { parts.append(.text(String(literal))); literal = .init() }
                let body = String(String.UnicodeScalarView(s[bodyStart..<close]))
                do {
                    let e = try ExpressionParser.parse(body)
                    parts.append(.expression(e, source: body, offset: open))
                } catch {
                    errors.append(ParseError(offset: bodyStart + error.offset, message: error.message))
                    parts.append(.expression(.literal(.null, offset: 0), source: body, offset: open))
                }
                i = close + 2
            } else {
                literal.append(s[i])
                i += 1
            }
        }
        if !literal.isEmpty { parts.append(.text(String(literal))) }
        return (Template(parts: parts), errors)
    }
}
