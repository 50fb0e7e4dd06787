import AmplifyEngine
import AmplifyWorkflow

/// Which issues of a Beads issues file are ready, by the rules `bd ready` applies to its
/// database: status `open`; no `blocks` dependency on an issue that is not `closed` or `pinned`;
/// no ancestor (through `parent-child` links) blocked that way — an open parent alone blocks
/// nothing; neither the issue nor its parent deferred (`defer_until`) past now. Ordered by
/// priority, then `created_at`. `related` and `discovered-from` links never block.
public enum BeadsReadiness {
    /// Parses a JSON array or JSONL (one issue per line) of issues.
    public static func parseIssues(_ text: String) throws(JSONParser.Error) -> [Value] {
        let trimmed = text.trimming(" \t\r\n")
        if trimmed.hasPrefix("[") {
            guard case .list(let items) = try JSONParser.parse(trimmed) else { return [] }
            return items
        }
        var items: [Value] = []
        var offset = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            defer { offset += line.utf8.count + 1 }
            if String(line).trimming(" \t\r").isEmpty { continue }
            do { items.append(try JSONParser.parse(String(line))) } catch {
                throw JSONParser.Error(offset: offset + error.offset, message: error.message)
            }
        }
        return items
    }

    /// The ready issues, in bd's order. `now` is an ISO 8601 timestamp compared with `defer_until`.
    public static func ready(_ issues: [Value], now: String) -> [Value] {
        var byId: [String: OrderedObject] = [:]
        for case .object(let o) in issues {
            if case .string(let id)? = o["id"] { byId[id] = o }
        }
        func status(_ id: String) -> String? { byId[id]?["status"].map(\.renderedText) }
        func links(_ o: OrderedObject, _ type: String) -> [String] {
            guard case .list(let deps)? = o["dependencies"] else { return [] }
            return deps.compactMap { d in
                guard case .string(let t)? = d["type"], t == type, case .string(let target)? = d["depends_on_id"] else { return nil }
                return target
            }
        }
        func parent(_ o: OrderedObject) -> String? {
            links(o, "parent-child").first ?? { if case .string(let p)? = o["parent"] { return p } else { return nil } }()
        }
        func blockedDirectly(_ o: OrderedObject) -> Bool {
            links(o, "blocks").contains { target in
                guard let s = status(target) else { return false }
                return s != "closed" && s != "pinned"
            }
        }
        func deferred(_ o: OrderedObject) -> Bool {
            if case .string(let until)? = o["defer_until"], !until.isEmpty { return until > now }
            return false
        }
        var result: [OrderedObject] = []
        for case .object(let o) in issues {
            guard o["status"]?.renderedText == "open", !blockedDirectly(o), !deferred(o) else { continue }
            if let p = parent(o), let po = byId[p], deferred(po) { continue }
            // Walk the ancestors (bounded: a cycle of parents must not loop).
            var seen = Set<String>()
            var blocked = false
            var next = parent(o)
            while let id = next, seen.insert(id).inserted, let ancestor = byId[id] {
                if blockedDirectly(ancestor) { blocked = true; break }
                next = parent(ancestor)
            }
            if !blocked { result.append(o) }
        }
        func priority(_ o: OrderedObject) -> Double {
            switch o["priority"] {
            case .int(let i)?: return Double(i)
            case .double(let d)?: return d
            default: return 99
            }
        }
        let order = result.enumerated().sorted { a, b in
            let (pa, pb) = (priority(a.element), priority(b.element))
            if pa != pb { return pa < pb }
            let (ca, cb) = (a.element["created_at"]?.renderedText ?? "", b.element["created_at"]?.renderedText ?? "")
            if ca != cb { return ca < cb }
            return a.offset < b.offset
        }
        return order.map { .object($0.element) }
    }
}
