/// A JSON-like value: what YAML scalars resolve to, what work items and stage outputs are,
/// and what expressions evaluate to.
public enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case object(OrderedObject)

    /// "a string", "a number", … for error messages.
    public var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        case .list: return "a list"
        case .object: return "a mapping"
        }
    }

    /// Truthiness as in GitHub Actions: null, false, 0, "" and NaN are false; lists and objects true.
    public var isTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0 && !d.isNaN
        case .string(let s): return !s.isEmpty
        case .list, .object: return true
        }
    }

    /// The text a value becomes when substituted into a string: null is empty,
    /// lists and objects are their JSON.
    public var renderedText: String {
        switch self {
        case .null: return ""
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return Value.format(d)
        case .string(let s): return s
        case .list, .object: return json
        }
    }

    /// Compact JSON with keys in their original order.
    public var json: String {
        var out = ""
        writeJSON(into: &out, indent: nil, level: 0)
        return out
    }

    /// JSON indented by two spaces, for people.
    public var prettyJSON: String {
        var out = ""
        writeJSON(into: &out, indent: "  ", level: 0)
        return out
    }

    func writeJSON(into out: inout String, indent: String?, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? Value.format(d) : "null"
        case .string(let s): Value.writeJSONString(s, into: &out)
        case .list(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += "," }
                Value.newline(&out, indent, level + 1)
                item.writeJSON(into: &out, indent: indent, level: level + 1)
            }
            Value.newline(&out, indent, level)
            out += "]"
        case .object(let object):
            guard !object.isEmpty else { out += "{}"; return }
            out += "{"
            for (n, (key, value)) in object.enumerated() {
                if n > 0 { out += "," }
                Value.newline(&out, indent, level + 1)
                Value.writeJSONString(key, into: &out)
                out += indent == nil ? ":" : ": "
                value.writeJSON(into: &out, indent: indent, level: level + 1)
            }
            Value.newline(&out, indent, level)
            out += "}"
        }
    }

    private static func newline(_ out: inout String, _ indent: String?, _ level: Int) {
        guard let indent else { return }
        out += "\n"
        out += indent == "  " && level < spaces.count ? spaces[level] : String(repeating: indent, count: level)
    }

    /// The usual indents, made once.
    private static let spaces = (0..<32).map { String(repeating: "  ", count: $0) }

    static func writeJSONString(_ s: String, into out: inout String) {
        out += "\""
        // Most strings need no escape: appended whole (a scalar at a time was most of the cost
        // of writing a large status).
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    static func format(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
        return String(d)
    }

    /// The value of a key of an object (nil for other values); setting it on another value does nothing.
    public subscript(key: String) -> Value? {
        get { if case .object(let o) = self { return o[key] } else { return nil } }
        set {
            guard case .object(var o) = self else { return }
            o[key] = newValue
            self = .object(o)
        }
    }

    /// The number a value means, when it is one (strings are not converted).
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
}

/// A string-keyed map that keeps the order its keys were first written in. Small objects (most
/// of them: journal events, items) are searched linearly — no hashing, no dictionary to build;
/// an index is kept only past `indexThreshold` keys.
public struct OrderedObject: Sendable, Hashable, Sequence {
    public private(set) var keys: [String] = []
    private var values: [Value] = []
    private var index: [String: Int]?
    private static let indexThreshold = 12

    public init() {}

    public init(_ pairs: [(String, Value)]) {
        keys.reserveCapacity(pairs.count)
        values.reserveCapacity(pairs.count)
        for (k, v) in pairs { self[k] = v }
    }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return keys.firstIndex(of: key)
    }

    public subscript(key: String) -> Value? {
        get { position(of: key).map { values[$0] } }
        set {
            if let newValue {
                if let i = position(of: key) {
                    values[i] = newValue
                } else {
                    keys.append(key)
                    values.append(newValue)
                    if index != nil {
                        index![key] = keys.count - 1
                    } else if keys.count > OrderedObject.indexThreshold {
                        index = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
                    }
                }
            } else if let i = position(of: key) {
                keys.remove(at: i)
                values.remove(at: i)
                index = keys.count > OrderedObject.indexThreshold ? Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) }) : nil
            }
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// Equal when they hold the same keys with the same values, in whatever order (as JSON objects are).
    public static func == (a: OrderedObject, b: OrderedObject) -> Bool {
        guard a.keys.count == b.keys.count else { return false }
        if a.keys == b.keys { return a.values == b.values }
        for (k, v) in zip(a.keys, a.values) where b[k] != v { return false }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent, like ==.
        var combined = 0
        for (k, v) in zip(keys, values) {
            var h = Hasher()
            h.combine(k)
            h.combine(v)
            combined ^= h.finalize()
        }
        hasher.combine(keys.count)
        hasher.combine(combined)
    }

    public func makeIterator() -> Zip2Sequence<[String], [Value]>.Iterator {
        zip(keys, values).makeIterator()
    }
}
