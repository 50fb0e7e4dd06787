/// Draws a `Plan`: a table for `amplify-run plan`, a Mermaid flowchart, a Graphviz graph, JSON, or
/// an SVG picture (the dashboard's).
/// It only reads the plan; the graph itself is the checker's.
public struct PlanRenderer: Sendable {
    public let plan: Plan
    private var workflow: Workflow { plan.workflow }

    public init(_ plan: Plan) {
        self.plan = plan
    }

    public enum Format: String, CaseIterable, Sendable {
        case text, mermaid, dot, json, svg
    }

    public func render(_ format: Format) -> String {
        switch format {
        case .text: return text
        case .mermaid: return mermaid
        case .dot: return dot
        case .json: return json.prettyJSON + "\n"
        case .svg: return svg
        }
    }

    /// The stages in dependency order.
    private var stages: [Stage] { plan.graph.order.map { workflow.stages[$0] } }

    /// How a stage runs, in words: "once", "per item of ready", "once after every item of ready".
    public func multiplicity(of stage: Stage) -> String {
        switch plan.node(stage.id)?.runs ?? .once {
        case .once: return "once"
        case .perItem(let source): return "per item (from \(workflow.stages[source].id))"
        case .fanIn(let sources): return "once, after every item of \(sources.map { workflow.stages[$0].id }.sorted().joined(separator: ", "))"
        }
    }

    private func details(of stage: Stage) -> [String] {
        var d: [String] = []
        if let c = stage.effectiveConcurrency { d.append("concurrency \(c)") }
        if stage.kind == .dispatch {
            d.append("sessions ≤ \(workflow.settings.concurrency)")
            switch agent(of: stage) {
            case .profile(let name)?: d.append("agent \(name)" + (workflow.agents[name] != nil ? " (the workflow's profile)" : ""))
            case .argv(let argv)?: d.append("agent argv \(argv.first ?? "")")
            case nil: d.append("agent \(stage.parameter(DispatchParameters.agent)?.sourceValue.renderedText ?? "?")")
            }
        }
        if let t = stage.timeout { d.append("timeout \(t)") }
        if stage.retry.attempts > 1 { d.append("retry \(stage.retry.attempts)× backoff \(stage.retry.backoff)") }
        if stage.continueOnError { d.append("continue-on-error") }
        if let c = stage.condition?.expressionSource { d.append("if \(c)") }
        return d
    }

    /// A dispatch's agent as the workflow's variables decide it (`${{ vars.agent }}` → its default);
    /// nil when it depends on the item.
    func agent(of stage: Stage) -> AgentChoice? {
        let evaluator = ExpressionEvaluator(context: ExpressionContext(roots: ["vars": .object(workflow.vars), "settings": workflow.settings.value]))
        return try? stage.value(DispatchParameters.agent, evaluator)
    }

    /// A dispatch's agent for `plan --json`: the profile's name and argvs as written, or the argv.
    func agentJSON(of stage: Stage) -> Value {
        var o = OrderedObject()
        switch agent(of: stage) {
        case .profile(let name)?:
            o["profile"] = .string(name)
            if let p = workflow.agentProfile(name) {
                o["command"] = p.command.sourceValue
                o["resume"] = p.resume?.sourceValue ?? .null
                o["cost-limit"] = p.costLimit?.sourceValue ?? .null
                o["turns-limit"] = p.turnsLimit?.sourceValue ?? .null
            }
        case .argv?, nil:
            o["argv"] = stage.parameter(DispatchParameters.agent)?.sourceValue ?? .null
        }
        return .object(o)
    }

    // MARK: text

    private var text: String {
        let rows = stages.map { s -> [String] in
            [s.id, s.kind.rawValue, multiplicity(of: s), s.needs.isEmpty ? "-" : s.needs.joined(separator: ", "), details(of: s).joined(separator: "; ")]
        }
        let header = ["STAGE", "KIND", "RUNS", "NEEDS", ""]
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for r in all { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = "workflow \(workflow.name): \(stages.count) stage\(stages.count == 1 ? "" : "s"), base \(workflow.settings.base), up to \(workflow.settings.concurrency) live sessions\n"
        for r in all {
            let line = r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i]) }.joined(separator: "  ")
            out += line.trimmingTrailingSpaces() + "\n"
        }
        return out
    }

    // MARK: mermaid

    private var mermaid: String {
        var out = "flowchart TD\n"
        func node(_ s: Stage) -> String {
            let label = "\(s.id)<br/><small>\(s.kind.rawValue)\(details(of: s).isEmpty ? "" : " · " + details(of: s).joined(separator: " · "))</small>"
            let escaped = PlanRenderer.mermaidEscape(label)
            let id = PlanRenderer.mermaidId(s.id)
            if s.fanIn { return "\(id){{\"\(escaped)\"}}" }
            if s.kind == .queryReady { return "\(id)[(\"\(escaped)\")]" }
            return "\(id)[\"\(escaped)\"]"
        }
        let groups = Dictionary(grouping: stages.filter(\.isPerItem), by: { $0.itemSource! })
        for s in stages where !s.isPerItem { out += "    \(node(s))\n" }
        for source in groups.keys.sorted() {
            out += "    subgraph per_item_\(PlanRenderer.mermaidId(source))[\"per item of \(PlanRenderer.mermaidEscape(source))\"]\n"
            for s in stages where s.itemSource == source { out += "        \(node(s))\n" }
            out += "    end\n"
        }
        for s in stages {
            for n in s.needs {
                let arrow = s.fanIn && workflow.stage(n)?.isPerItem == true ? "==>|all items|" : "-->"
                out += "    \(PlanRenderer.mermaidId(n)) \(arrow) \(PlanRenderer.mermaidId(s.id))\n"
            }
        }
        return out
    }

    static func mermaidId(_ id: String) -> String {
        "s_" + id.map { $0.isLetter || $0.isNumber || $0 == "_" ? String($0) : "_" }.joined()
    }

    static func mermaidEscape(_ s: String) -> String {
        s.replacingAll("\"", with: "#quot;")
    }

    // MARK: dot

    private var dot: String {
        var out = "digraph \"\(PlanRenderer.dotEscape(workflow.name))\" {\n    rankdir=TB;\n    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
        func node(_ s: Stage) -> String {
            let extra = details(of: s).joined(separator: "\\n")
            let shape = s.fanIn ? ", shape=hexagon" : (s.kind == .queryReady ? ", shape=cylinder" : "")
            return "\"\(PlanRenderer.dotEscape(s.id))\" [label=\"\(PlanRenderer.dotEscape(s.id))\\n\(s.kind.rawValue)\(extra.isEmpty ? "" : "\\n" + extra)\"\(shape)];"
        }
        for s in stages where !s.isPerItem { out += "    \(node(s))\n" }
        let sources = Set(stages.compactMap(\.itemSource)).sorted()
        for (i, source) in sources.enumerated() {
            out += "    subgraph cluster_\(i) {\n        label=\"per item of \(PlanRenderer.dotEscape(source))\";\n        style=dashed;\n"
            for s in stages where s.itemSource == source { out += "        \(node(s))\n" }
            out += "    }\n"
        }
        for s in stages {
            for n in s.needs {
                let style = s.fanIn && workflow.stage(n)?.isPerItem == true ? " [style=bold, label=\"all items\"]" : ""
                out += "    \"\(PlanRenderer.dotEscape(n))\" -> \"\(PlanRenderer.dotEscape(s.id))\"\(style);\n"
            }
        }
        return out + "}\n"
    }

    static func dotEscape(_ s: String) -> String {
        s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
    }

    // MARK: svg

    /// The stages left to right in layers (a stage one layer past the deepest it needs), each a
    /// box with its id and kind, per-item stages drawn double, edges as curves.
    private var svg: String {
        let ids = plan.order
        var layer: [String: Int] = [:]
        for id in ids {
            let needs = workflow.stage(id)?.needs ?? []
            layer[id] = (needs.compactMap { layer[$0] }.max() ?? -1) + 1
        }
        var rows: [Int: Int] = [:]
        var place: [String: (x: Int, y: Int)] = [:]
        let boxW = 128, boxH = 42, gapX = 26, gapY = 14, pad = 6
        for id in ids {
            let l = layer[id] ?? 0
            let r = rows[l, default: 0]
            rows[l] = r + 1
            place[id] = (pad + l * (boxW + gapX), pad + r * (boxH + gapY))
        }
        let width = pad * 2 + ((layer.values.max() ?? 0) + 1) * (boxW + gapX) - gapX
        let height = pad * 2 + (rows.values.max() ?? 1) * (boxH + gapY) - gapY
        func x(_ s: String) -> String {
            s.replacingAll("&", with: "&amp;").replacingAll("<", with: "&lt;").replacingAll(">", with: "&gt;").replacingAll("\"", with: "&quot;")
        }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"the stages of \(x(workflow.name))\" font-family=\"system-ui, sans-serif\">\n"
        out += "<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#98a2b3\"/></marker></defs>\n"
        for id in ids {
            guard let to = place[id] else { continue }
            for need in workflow.stage(id)?.needs ?? [] {
                guard let from = place[need] else { continue }
                let x1 = from.x + boxW, y1 = from.y + boxH / 2, x2 = to.x, y2 = to.y + boxH / 2, mid = (x1 + x2) / 2
                out += "<path d=\"M\(x1),\(y1) C\(mid),\(y1) \(mid),\(y2) \(x2 - 1),\(y2)\" fill=\"none\" stroke=\"#98a2b3\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>\n"
            }
        }
        for id in ids {
            guard let p = place[id], let stage = workflow.stage(id) else { continue }
            let fill = stage.kind == .dispatch || stage.kind == .waitApproved ? "#e8f0fe" : stage.kind == .merge ? "#e5f5ec" : "#f2f4f7"
            if stage.isPerItem {
                out += "<rect x=\"\(p.x + 4)\" y=\"\(p.y + 4)\" width=\"\(boxW)\" height=\"\(boxH)\" rx=\"8\" fill=\"#fff\" stroke=\"#c5cbd3\"/>\n"
            }
            out += "<g data-stage=\"\(x(id))\"><rect x=\"\(p.x)\" y=\"\(p.y)\" width=\"\(boxW)\" height=\"\(boxH)\" rx=\"8\" fill=\"\(fill)\" stroke=\"#98a2b3\"/>"
            let name = id.count > 17 ? String(id.prefix(16)) + "…" : id
            out += "<text x=\"\(p.x + boxW / 2)\" y=\"\(p.y + 19)\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"600\" fill=\"#1c2330\">\(x(name))</text>"
            out += "<text x=\"\(p.x + boxW / 2)\" y=\"\(p.y + 35)\" text-anchor=\"middle\" font-size=\"11\" fill=\"#667085\">\(x(stage.kind.rawValue + (stage.isPerItem ? " · per item" : "")))</text></g>\n"
        }
        return out + "</svg>\n"
    }

    // MARK: json

    /// The plan as a JSON value: the workflow's settings and each stage with its edges.
    public var json: Value {
        var root = OrderedObject()
        root["name"] = .string(workflow.name)
        root["settings"] = workflow.settings.value
        root["stages"] = .list(stages.map { s in
            var o = OrderedObject()
            o["id"] = .string(s.id)
            o["kind"] = .string(s.kind.rawValue)
            o["needs"] = .list(s.needs.map(Value.string))
            o["per-item"] = .bool(s.isPerItem)
            o["item-source"] = s.itemSource.map(Value.string) ?? .null
            o["fan-in"] = .bool(s.fanIn)
            o["concurrency"] = s.effectiveConcurrency.map(Value.int) ?? .null
            o["timeout"] = s.timeout.map { .string($0.description) } ?? .null
            o["retry"] = .int(s.retry.attempts)
            o["continue-on-error"] = .bool(s.continueOnError)
            o["if"] = s.condition?.expressionSource.map(Value.string) ?? .null
            if s.kind == .dispatch { o["agent"] = agentJSON(of: s) }
            return .object(o)
        })
        root["edges"] = .list(stages.flatMap { s in s.needs.map { Value.list([.string($0), .string(s.id)]) } })
        return .object(root)
    }
}

extension String {
    func padding(toLength n: Int) -> String {
        count >= n ? self : self + String(repeating: " ", count: n - count)
    }

    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }

    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Index>? {
        let t = Array(target.unicodeScalars)
        var i = startIndex
        while i < endIndex {
            var j = i
            var k = 0
            while k < t.count, j < endIndex, self.unicodeScalars[j] == t[k] {
                j = self.unicodeScalars.index(after: j)
                k += 1
            }
            if k == t.count { return i..<j }
            i = self.unicodeScalars.index(after: i)
        }
        return nil
    }
}
