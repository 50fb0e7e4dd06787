import AmplifyWorkflow

/// Just enough of JSON Schema draft-07 to check workflow files against
/// `schemas/orchestrate.schema.json` the way yaml-language-server does: type, enum, const,
/// pattern, minimum, minLength, minItems, minProperties, properties, patternProperties,
/// additionalProperties, required, items, propertyNames, oneOf, anyOf, allOf, if/then, $ref.
struct JSONSchemaValidator {
    let root: Value

    /// The paths where the instance breaks the schema (empty = valid).
    func errors(_ instance: Value) -> [String] {
        var out: [String] = []
        validate(instance, root, "$", &out)
        return out
    }

    private func resolve(_ schema: Value) -> Value {
        guard case .string(let ref)? = field(schema, "$ref") else { return schema }
        var node = root
        for part in ref.dropFirst(2).split(separator: "/") {
            node = field(node, String(part)) ?? .null
        }
        return node
    }

    private func field(_ v: Value, _ key: String) -> Value? {
        if case .object(let o) = v { return o[key] }
        return nil
    }

    private func typeName(_ v: Value) -> [String] {
        switch v {
        case .null: return ["null"]
        case .bool: return ["boolean"]
        case .int: return ["integer", "number"]
        case .double(let d): return d == d.rounded() ? ["integer", "number"] : ["number"]
        case .string: return ["string"]
        case .list: return ["array"]
        case .object: return ["object"]
        }
    }

    private func validate(_ v: Value, _ schemaIn: Value, _ path: String, _ out: inout [String]) {
        let schema = resolve(schemaIn)
        if case .bool(let b) = schema {
            if !b { out.append("\(path): not allowed") }
            return
        }
        if let t = field(schema, "type") {
            let allowed: [String]
            switch t {
            case .string(let s): allowed = [s]
            case .list(let l): allowed = l.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
            default: allowed = []
            }
            if !typeName(v).contains(where: allowed.contains) { out.append("\(path): type \(typeName(v)[0]) not in \(allowed)"); return }
        }
        if case .list(let options)? = field(schema, "enum"), !options.contains(v) { out.append("\(path): not in enum") }
        if let c = field(schema, "const"), c != v { out.append("\(path): not the const") }
        if case .string(let s) = v {
            if case .string(let pattern)? = field(schema, "pattern"), let regex = try? Regex(pattern), (try? regex.firstMatch(in: s)) == nil {
                out.append("\(path): '\(s)' does not match \(pattern)")
            }
            if case .int(let n)? = field(schema, "minLength"), s.count < n { out.append("\(path): shorter than \(n)") }
        }
        if let n = number(v), case .int(let minimum)? = field(schema, "minimum"), n < Double(minimum) { out.append("\(path): below \(minimum)") }
        if case .list(let items) = v {
            if case .int(let n)? = field(schema, "minItems"), items.count < n { out.append("\(path): fewer than \(n) items") }
            if let itemSchema = field(schema, "items") {
                for (i, item) in items.enumerated() { validate(item, itemSchema, "\(path)[\(i)]", &out) }
            }
        }
        if case .object(let o) = v {
            if case .int(let n)? = field(schema, "minProperties"), o.count < n { out.append("\(path): fewer than \(n) properties") }
            if case .list(let required)? = field(schema, "required") {
                for case .string(let key) in required where o[key] == nil { out.append("\(path): missing \(key)") }
            }
            let properties: OrderedObject
            if case .object(let p)? = field(schema, "properties") { properties = p } else { properties = OrderedObject() }
            var patterns: [(Regex<AnyRegexOutput>, Value)] = []
            if case .object(let pp)? = field(schema, "patternProperties") {
                for (pattern, s) in pp { if let r = try? Regex(pattern) { patterns.append((r, s)) } }
            }
            for (key, value) in o {
                if let names = field(schema, "propertyNames") { validate(.string(key), names, "\(path).\(key) (name)", &out) }
                var matched = false
                if let s = properties[key] { validate(value, s, "\(path).\(key)", &out); matched = true }
                for (r, s) in patterns where (try? r.firstMatch(in: key)) != nil {
                    validate(value, s, "\(path).\(key)", &out)
                    matched = true
                }
                if !matched, let additional = field(schema, "additionalProperties") {
                    validate(value, additional, "\(path).\(key)", &out)
                }
            }
        }
        if case .list(let all)? = field(schema, "allOf") { for s in all { validate(v, s, path, &out) } }
        if case .list(let any)? = field(schema, "anyOf") {
            if !any.contains(where: { passes(v, $0, path) }) { out.append("\(path): matches none of anyOf") }
        }
        if case .list(let one)? = field(schema, "oneOf") {
            let n = one.filter { passes(v, $0, path) }.count
            if n != 1 { out.append("\(path): matches \(n) of oneOf") }
        }
        if let condition = field(schema, "if") {
            if passes(v, condition, path), let then = field(schema, "then") { validate(v, then, path, &out) }
        }
    }

    private func passes(_ v: Value, _ schema: Value, _ path: String) -> Bool {
        var errors: [String] = []
        validate(v, schema, path, &errors)
        return errors.isEmpty
    }

    private func number(_ v: Value) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
}
