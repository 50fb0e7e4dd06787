/// A node of a YAML document with the position of its first and last character.
///
/// Nodes are values: an alias becomes a copy of the node it names, and copies share their
/// children's storage, so an alias costs nothing until something walks it. `expandedSize`
/// counts the nodes a full walk would visit; the loader refuses documents where it explodes.
public struct YAMLNode: Sendable {
    public enum Content: Sendable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var content: Content
    public var location: SourcePosition
    public var endLocation: SourcePosition
    /// Nodes visited by a walk of this node, aliases expanded (saturating).
    public var expandedSize: Int

    public init(_ content: Content, at location: SourcePosition, end: SourcePosition? = nil, expandedSize: Int = 1) {
        self.content = content
        self.location = location
        self.endLocation = end ?? location
        self.expandedSize = expandedSize
    }

    public var scalar: YAMLScalar? {
        if case .scalar(let s) = content { return s }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let s) = content { return s }
        return nil
    }

    public var mapping: [YAMLPair]? {
        if case .mapping(let m) = content { return m }
        return nil
    }

    /// The value for a key of a mapping node.
    public subscript(key: String) -> YAMLNode? {
        mapping?.first { $0.key == key }?.value
    }

    /// What the node is, in the words an error message uses ("a string", "a list", …).
    public var kindDescription: String {
        switch content {
        case .scalar(let s): return s.resolved.kindDescription
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    /// The node as a plain value (JSON-like), aliases expanded.
    public var value: Value {
        switch content {
        case .scalar(let s): return s.resolved
        case .sequence(let items): return .list(items.map(\.value))
        case .mapping(let pairs): return .object(OrderedObject(pairs.map { ($0.key, $0.value.value) }))
        }
    }
}

/// One `key: value` entry of a mapping; keys are strings (the loader rejects others).
public struct YAMLPair: Sendable {
    public var key: String
    public var keyLocation: SourcePosition
    public var value: YAMLNode
}

/// A scalar with the style it was written in, which decides how it resolves to a type.
public struct YAMLScalar: Sendable, Hashable {
    public enum Style: Sendable, Hashable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    public var text: String
    public var style: Style
    /// An explicit tag such as `!!str`, expanded (`tag:yaml.org,2002:str`); nil when implicit.
    public var tag: String?

    public init(_ text: String, style: Style = .plain, tag: String? = nil) {
        self.text = text
        self.style = style
        self.tag = tag
    }

    /// The value under YAML 1.2's core schema: only plain scalars are anything but strings.
    public var resolved: Value {
        if let tag {
            switch tag {
            case "tag:yaml.org,2002:str": return .string(text)
            case "tag:yaml.org,2002:null": return .null
            case "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float":
                return YAMLScalar(text).resolved
            default: return .string(text)
            }
        }
        guard style == .plain else { return .string(text) }
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if let i = YAMLScalar.integer(text) { return .int(i) }
        if let d = YAMLScalar.float(text) { return .double(d) }
        return .string(text)
    }

    private static func integer(_ text: String) -> Int? {
        var body = Substring(text)
        var negative = false
        if body.first == "-" || body.first == "+" {
            negative = body.first == "-"
            body = body.dropFirst()
        }
        guard !body.isEmpty else { return nil }
        var radix = 10
        if body.hasPrefix("0x") { radix = 16; body = body.dropFirst(2) }
        else if body.hasPrefix("0o") { radix = 8; body = body.dropFirst(2) }
        guard !body.isEmpty, body.allSatisfy({ $0.isHexDigit }), let magnitude = Int(body, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }

    private static func float(_ text: String) -> Double? {
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
        let chars = Array(text.utf8)
        var i = 0
        if i < chars.count, chars[i] == UInt8(ascii: "-") || chars[i] == UInt8(ascii: "+") { i += 1 }
        var digits = 0
        while i < chars.count, chars[i] >= 48, chars[i] <= 57 { i += 1; digits += 1 }
        if i < chars.count, chars[i] == UInt8(ascii: ".") {
            i += 1
            while i < chars.count, chars[i] >= 48, chars[i] <= 57 { i += 1; digits += 1 }
        }
        guard digits > 0 else { return nil }
        if i < chars.count, chars[i] == UInt8(ascii: "e") || chars[i] == UInt8(ascii: "E") {
            i += 1
            if i < chars.count, chars[i] == UInt8(ascii: "-") || chars[i] == UInt8(ascii: "+") { i += 1 }
            var exp = 0
            while i < chars.count, chars[i] >= 48, chars[i] <= 57 { i += 1; exp += 1 }
            guard exp > 0 else { return nil }
        }
        guard i == chars.count else { return nil }
        return Double(text)
    }
}
