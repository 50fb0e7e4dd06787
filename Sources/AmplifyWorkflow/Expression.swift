/// A parsed `${{ … }}` expression. Every node keeps its offset (in Unicode scalars) from the
/// start of the expression's source text, so errors can point inside it.
public indirect enum Expression: Sendable, Hashable {
    case literal(Value, offset: Int)
    case path(root: String, components: [PathComponent], offset: Int)
    case call(name: String, arguments: [Expression], offset: Int)
    case not(Expression, offset: Int)
    case binary(BinaryOperator, Expression, Expression, offset: Int)

    public enum PathComponent: Sendable, Hashable {
        case name(String, offset: Int)
        case index(Expression)
    }

    public enum BinaryOperator: String, Sendable, Hashable {
        case and = "&&", or = "||"
        case equal = "==", notEqual = "!="
        case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    }

    public var offset: Int {
        switch self {
        case .literal(_, let o), .path(_, _, let o), .call(_, _, let o), .not(_, let o), .binary(_, _, _, let o): return o
        }
    }

    /// Visits this node and every node below it, depth first.
    public func forEachNode(_ body: (Expression) -> Void) {
        body(self)
        switch self {
        case .literal: break
        case .path(_, let components, _):
            for case .index(let e) in components { e.forEachNode(body) }
        case .call(_, let arguments, _):
            for a in arguments { a.forEachNode(body) }
        case .not(let e, _): e.forEachNode(body)
        case .binary(_, let l, let r, _):
            l.forEachNode(body)
            r.forEachNode(body)
        }
    }
}

/// A syntax error in an expression, at an offset into its source text.
public struct ExpressionSyntaxError: Error, Sendable, Hashable {
    public var offset: Int
    public var message: String
}

/// Recursive-descent parser for the expression grammar (lowest precedence first):
/// `||`, `&&`, `== !=`, `< <= > >=`, `!`, postfix (`.name`, `[index]`, calls), primaries.
public struct ExpressionParser {
    private enum Token: Equatable {
        case identifier(String)
        case number(Value)
        case string(String)
        case punctuation(String)
        case end
    }

    private var tokens: [(token: Token, offset: Int)] = []
    private var position = 0
    private let maxDepth = 64
    private var depth = 0

    /// Parses one expression (the text between `${{` and `}}`).
    public static func parse(_ text: String) throws(ExpressionSyntaxError) -> Expression {
        var parser = ExpressionParser()
        parser.tokens = try tokenize(Array(text.unicodeScalars))
        if parser.tokens.count == 1 {
            throw ExpressionSyntaxError(offset: 0, message: "empty expression")
        }
        let e = try parser.parseOr()
        guard case .end = parser.current else {
            throw ExpressionSyntaxError(offset: parser.currentOffset, message: "unexpected \(parser.describe(parser.current)) after the end of the expression")
        }
        return e
    }

    private static func tokenize(_ s: [Unicode.Scalar]) throws(ExpressionSyntaxError) -> [(token: Token, offset: Int)] {
        var result: [(token: Token, offset: Int)] = []
        var i = 0
        func isIdentStart(_ c: Unicode.Scalar) -> Bool { c == "_" || (c.isASCII && c.properties.isAlphabetic) }
        func isIdentPart(_ c: Unicode.Scalar) -> Bool { isIdentStart(c) || c == "-" || ("0"..."9").contains(c) }
        func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
        while i < s.count {
            let c = s[i]
            if c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1; continue }
            let start = i
            if isIdentStart(c) {
                while i < s.count, isIdentPart(s[i]) { i += 1 }
                result.append((.identifier(String(String.UnicodeScalarView(s[start..<i]))), start))
            } else if isDigit(c) || (c == "-" && i + 1 < s.count && isDigit(s[i + 1])) || (c == "." && i + 1 < s.count && isDigit(s[i + 1]) && !(result.last.map { if case .identifier = $0.token { return true } else { return false } } ?? false)) {
                i += 1
                while i < s.count, isDigit(s[i]) || s[i] == "." || s[i] == "e" || s[i] == "E" || s[i] == "x" || (s[i].isASCII && s[i].properties.isASCIIHexDigit) { i += 1 }
                let text = String(String.UnicodeScalarView(s[start..<i]))
                if let n = Int(text) { result.append((.number(.int(n)), start)) }
                else if text.hasPrefix("0x"), let n = Int(text.dropFirst(2), radix: 16) { result.append((.number(.int(n)), start)) }
                else if let d = Double(text) { result.append((.number(.double(d)), start)) }
                else { throw ExpressionSyntaxError(offset: start, message: "'\(text)' is not a number") }
            } else if c == "'" {
                var text = ""
                i += 1
                while true {
                    guard i < s.count else { throw ExpressionSyntaxError(offset: start, message: "string literal is not closed with '") }
                    if s[i] == "'" {
                        if i + 1 < s.count, s[i + 1] == "'" { text.unicodeScalars.append("'"); i += 2; continue }
                        i += 1
                        break
                    }
                    text.unicodeScalars.append(s[i])
                    i += 1
                }
                result.append((.string(text), start))
            } else if c == "\"" {
                throw ExpressionSyntaxError(offset: start, message: "strings in expressions use single quotes ('text'), as in GitHub Actions")
            } else {
                let two = i + 1 < s.count ? String(String.UnicodeScalarView([c, s[i + 1]])) : ""
                if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                    result.append((.punctuation(two), start))
                    i += 2
                } else if "()[],.!<>".unicodeScalars.contains(c) {
                    result.append((.punctuation(String(c)), start))
                    i += 1
                } else if c == "=" {
                    throw ExpressionSyntaxError(offset: start, message: "'=' is not an operator; compare with '=='")
                } else if c == "&" || c == "|" {
                    throw ExpressionSyntaxError(offset: start, message: "'\(c)' is not an operator; use '\(c)\(c)'")
                } else {
                    throw ExpressionSyntaxError(offset: start, message: "unexpected character '\(c)'")
                }
            }
        }
        result.append((.end, s.count))
        return result
    }

    private var current: Token { tokens[position].token }
    private var currentOffset: Int { tokens[position].offset }

    private func describe(_ t: Token) -> String {
        switch t {
        case .identifier(let s): return "'\(s)'"
        case .number(let v): return "number \(v.renderedText)"
        case .string(let s): return "string '\(s)'"
        case .punctuation(let p): return "'\(p)'"
        case .end: return "end of expression"
        }
    }

    private mutating func accept(_ p: String) -> Bool {
        if case .punctuation(p) = current { position += 1; return true }
        return false
    }

    private mutating func expect(_ p: String, _ what: String) throws(ExpressionSyntaxError) {
        guard accept(p) else {
            throw ExpressionSyntaxError(offset: currentOffset, message: "expected \(what), found \(describe(current))")
        }
    }

    private mutating func binaryLevel(_ ops: [String], _ next: (inout ExpressionParser) throws(ExpressionSyntaxError) -> Expression) throws(ExpressionSyntaxError) -> Expression {
        var left = try next(&self)
        while case .punctuation(let p) = current, ops.contains(p), let op = Expression.BinaryOperator(rawValue: p) {
            let offset = currentOffset
            position += 1
            let right = try next(&self)
            left = .binary(op, left, right, offset: offset)
        }
        return left
    }

    private mutating func parseOr() throws(ExpressionSyntaxError) -> Expression {
        depth += 1
        defer { depth -= 1 }
        guard depth <= maxDepth else { throw ExpressionSyntaxError(offset: currentOffset, message: "expression nested too deeply") }
        return try binaryLevel(["||"]) { (p: inout ExpressionParser) throws(ExpressionSyntaxError) in try p.parseAnd() }
    }

    private mutating func parseAnd() throws(ExpressionSyntaxError) -> Expression {
        try binaryLevel(["&&"]) { (p: inout ExpressionParser) throws(ExpressionSyntaxError) in try p.parseEquality() }
    }

    private mutating func parseEquality() throws(ExpressionSyntaxError) -> Expression {
        try binaryLevel(["==", "!="]) { (p: inout ExpressionParser) throws(ExpressionSyntaxError) in try p.parseComparison() }
    }

    private mutating func parseComparison() throws(ExpressionSyntaxError) -> Expression {
        try binaryLevel(["<", "<=", ">", ">="]) { (p: inout ExpressionParser) throws(ExpressionSyntaxError) in try p.parseUnary() }
    }

    private mutating func parseUnary() throws(ExpressionSyntaxError) -> Expression {
        let offset = currentOffset
        if accept("!") {
            depth += 1
            defer { depth -= 1 }
            guard depth <= maxDepth else { throw ExpressionSyntaxError(offset: offset, message: "expression nested too deeply") }
            return .not(try parseUnary(), offset: offset)
        }
        return try parsePostfix()
    }

    private mutating func parsePostfix() throws(ExpressionSyntaxError) -> Expression {
        let offset = currentOffset
        switch current {
        case .number(let v):
            position += 1
            return .literal(v, offset: offset)
        case .string(let s):
            position += 1
            return .literal(.string(s), offset: offset)
        case .punctuation("("):
            position += 1
            let e = try parseOr()
            try expect(")", "')'")
            return e
        case .identifier(let name):
            position += 1
            switch name {
            case "true": return .literal(.bool(true), offset: offset)
            case "false": return .literal(.bool(false), offset: offset)
            case "null": return .literal(.null, offset: offset)
            default: break
            }
            if accept("(") {
                var arguments: [Expression] = []
                if !accept(")") {
                    repeat { arguments.append(try parseOr()) } while accept(",")
                    try expect(")", "',' or ')' in the arguments of \(name)()")
                }
                return .call(name: name, arguments: arguments, offset: offset)
            }
            var components: [Expression.PathComponent] = []
            while true {
                if accept(".") {
                    guard case .identifier(let key) = current else {
                        throw ExpressionSyntaxError(offset: currentOffset, message: "expected a name after '.', found \(describe(current))")
                    }
                    components.append(.name(key, offset: currentOffset))
                    position += 1
                } else if accept("[") {
                    components.append(.index(try parseOr()))
                    try expect("]", "']'")
                } else {
                    break
                }
            }
            return .path(root: name, components: components, offset: offset)
        case .punctuation(let p):
            throw ExpressionSyntaxError(offset: offset, message: "unexpected '\(p)'")
        case .end:
            throw ExpressionSyntaxError(offset: offset, message: "the expression ends too early")
        }
    }
}
