internal import CLibYAML

/// Loads YAML text into a `YAMLNode` tree through libyaml's event parser.
///
/// On top of libyaml it checks what libyaml leaves alone: duplicate keys, non-string keys,
/// merge keys (`<<: *base`, applied here), aliases that refer to themselves or expand past
/// `maxExpandedNodes`, nesting past `maxDepth`, invalid UTF-8, tabs used for indentation and
/// more than one document. Syntax errors stop the load; the other problems are collected so a
/// user sees all of them at once.
public struct YAMLLoader: Sendable {
    public var maxExpandedNodes = 100_000
    public var maxDepth = 200
    public var maxBytes = 4 << 20

    public init() {}

    public struct Result: Sendable {
        /// The root node, or nil when the file is empty or could not be parsed.
        public var root: YAMLNode?
        public var diagnostics: [Diagnostic]
    }

    public func load(_ text: String) -> Result {
        load(bytes: Array(text.utf8))
    }

    public func load(bytes: [UInt8]) -> Result {
        if bytes.count > maxBytes {
            return Result(root: nil, diagnostics: [.error(at: .start, "the file is \(bytes.count) bytes; a workflow file may have at most \(maxBytes)")])
        }
        if let bad = YAMLLoader.firstInvalidUTF8(bytes) {
            let location = YAMLLoader.location(ofByte: bad, in: bytes)
            return Result(root: nil, diagnostics: [.error(at: location, "invalid UTF-8 at byte offset \(bad); save the file as UTF-8")])
        }
        var composer = Composer(loader: self, bytes: bytes)
        let root = composer.run()
        return Result(root: root, diagnostics: composer.diagnostics)
    }

    /// The byte offset of the first byte that does not start a valid UTF-8 sequence.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            let length: Int
            var minimum: UInt32
            if b & 0xE0 == 0xC0 { length = 2; minimum = 0x80 }
            else if b & 0xF0 == 0xE0 { length = 3; minimum = 0x800 }
            else if b & 0xF8 == 0xF0 { length = 4; minimum = 0x10000 }
            else { return i }
            guard i + length <= n else { return i }
            var scalar = UInt32(b) & (0xFF >> (length + 1))
            for k in 1..<length {
                let c = bytes[i + k]
                guard c & 0xC0 == 0x80 else { return i }
                scalar = scalar << 6 | UInt32(c & 0x3F)
            }
            if scalar < minimum || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar) { return i }
            minimum = 0
            i += length
        }
        return nil
    }

    /// Line and column (in characters) of a byte offset.
    static func location(ofByte offset: Int, in bytes: [UInt8]) -> SourcePosition {
        var line = 1
        var column = 1
        for b in bytes[..<min(offset, bytes.count)] {
            if b == 0x0A { line += 1; column = 1 }
            else if b & 0xC0 != 0x80 { column += 1 }
        }
        return SourcePosition(line: line, column: column)
    }
}

/// Builds nodes from libyaml events with an explicit stack (no recursion on input depth).
private struct Composer {
    let loader: YAMLLoader
    let bytes: [UInt8]
    var diagnostics: [Diagnostic] = []

    private enum Entry {
        case pair(YAMLPair)
        case merge([YAMLPair])
    }

    private final class Frame {
        let isMapping: Bool
        let start: SourcePosition
        let anchor: String?
        var items: [YAMLNode] = []
        var entries: [Entry] = []
        var pendingKey: YAMLNode?
        var firstKeyLocation: [String: SourcePosition] = [:]
        var size = 1

        init(isMapping: Bool, start: SourcePosition, anchor: String?) {
            self.isMapping = isMapping
            self.start = start
            self.anchor = anchor
        }
    }

    private var stack: [Frame] = []
    private var anchors: [String: YAMLNode] = [:]
    private var root: YAMLNode?
    private var documents = 0
    private var failed = false

    init(loader: YAMLLoader, bytes: [UInt8]) {
        self.loader = loader
        self.bytes = bytes
    }

    mutating func run() -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else {
            diagnostics.append(.error(at: .start, "could not start the YAML parser (out of memory)"))
            return nil
        }
        defer { yaml_parser_delete(&parser) }
        bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var event = yaml_event_t()
            while !failed {
                guard yaml_parser_parse(&parser, &event) != 0 else {
                    reportParserError(parser)
                    return
                }
                let done = event.type == YAML_STREAM_END_EVENT
                handle(event)
                yaml_event_delete(&event)
                if done { break }
            }
        }
        if failed { return nil }
        if root == nil && diagnostics.isEmpty {
            return nil
        }
        return root
    }

    private static func mark(_ m: yaml_mark_t) -> SourcePosition {
        SourcePosition(line: Int(m.line) + 1, column: Int(m.column) + 1)
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int? = nil) -> String? {
        guard let pointer else { return nil }
        let count = length ?? strlen(UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    private mutating func fail(_ location: SourcePosition, _ message: String) {
        diagnostics.append(.error(at: location, message))
        failed = true
    }

    private mutating func handle(_ event: yaml_event_t) {
        let start = Composer.mark(event.start_mark)
        let end = Composer.mark(event.end_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                fail(start, "a workflow file holds one YAML document; this is a second one (remove the `---` or split the file)")
            }
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let text = Composer.string(s.value, length: Int(s.length)) ?? ""
            let style: YAMLScalar.Style
            switch s.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            var tag = Composer.string(s.tag)
            if tag == "!" { tag = nil }
            let node = YAMLNode(.scalar(YAMLScalar(text, style: style, tag: tag)), at: start, end: end)
            if let anchor = Composer.string(s.anchor) { anchors[anchor] = node }
            add(node)
        case YAML_ALIAS_EVENT:
            let name = Composer.string(event.data.alias.anchor) ?? ""
            if stack.contains(where: { $0.anchor == name }) {
                fail(start, "alias *\(name) refers to a node that contains it; recursive aliases are not allowed")
                return
            }
            guard let node = anchors[name] else {
                fail(start, "alias *\(name) names no anchor defined before it (write &\(name) on an earlier node)")
                return
            }
            // The copy keeps the anchor's positions, so errors inside it point at the anchored text.
            add(node, via: start)
        case YAML_SEQUENCE_START_EVENT:
            push(Frame(isMapping: false, start: start, anchor: Composer.string(event.data.sequence_start.anchor)))
        case YAML_MAPPING_START_EVENT:
            push(Frame(isMapping: true, start: start, anchor: Composer.string(event.data.mapping_start.anchor)))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return }
            var node: YAMLNode
            if frame.isMapping {
                node = YAMLNode(.mapping(resolve(frame)), at: frame.start, end: end, expandedSize: frame.size)
            } else {
                node = YAMLNode(.sequence(frame.items), at: frame.start, end: end, expandedSize: frame.size)
            }
            node.endLocation = end
            if let anchor = frame.anchor { anchors[anchor] = node }
            add(node)
        default:
            break
        }
    }

    private mutating func push(_ frame: Frame) {
        if stack.count >= loader.maxDepth {
            fail(frame.start, "nesting deeper than \(loader.maxDepth) levels")
            return
        }
        stack.append(frame)
    }

    private mutating func add(_ node: YAMLNode, via alias: SourcePosition? = nil) {
        guard let frame = stack.last else {
            root = node
            if node.expandedSize > loader.maxExpandedNodes {
                fail(alias ?? node.location, "aliases expand this document past \(loader.maxExpandedNodes) nodes; an alias bomb is not a workflow")
            }
            return
        }
        let (sum, overflow) = frame.size.addingReportingOverflow(node.expandedSize)
        frame.size = overflow ? Int.max : sum
        if frame.size > loader.maxExpandedNodes {
            fail(alias ?? node.location, "aliases expand this document past \(loader.maxExpandedNodes) nodes; an alias bomb is not a workflow")
            return
        }
        if !frame.isMapping {
            frame.items.append(node)
            return
        }
        guard let key = frame.pendingKey else {
            frame.pendingKey = node
            return
        }
        frame.pendingKey = nil
        guard let keyScalar = key.scalar else {
            diagnostics.append(.error(at: key.location, "mapping keys must be plain strings, not \(key.kindDescription)"))
            return
        }
        if keyScalar.style == .plain, keyScalar.text == "<<", keyScalar.tag == nil {
            merge(node, into: frame, at: key.location)
            return
        }
        let name = keyScalar.text
        if let first = frame.firstKeyLocation[name] {
            diagnostics.append(.error(at: key.location, "duplicate key '\(name)' (first defined at line \(first.line), column \(first.column))"))
            return
        }
        frame.firstKeyLocation[name] = key.location
        frame.entries.append(.pair(YAMLPair(key: name, keyLocation: key.location, value: node)))
    }

    /// `<<: *base` or `<<: [*a, *b]`: the entries of those mappings, below the explicit keys.
    private mutating func merge(_ value: YAMLNode, into frame: Frame, at location: SourcePosition) {
        let sources: [YAMLNode]
        switch value.content {
        case .mapping: sources = [value]
        case .sequence(let items): sources = items
        case .scalar:
            diagnostics.append(.error(at: value.location, "a merge key `<<` takes a mapping or a list of mappings (usually an alias like *defaults), not \(value.kindDescription)"))
            return
        }
        var pairs: [YAMLPair] = []
        for source in sources {
            guard let m = source.mapping else {
                diagnostics.append(.error(at: source.location, "a merge key `<<` takes mappings; this is \(source.kindDescription)"))
                continue
            }
            pairs.append(contentsOf: m)
        }
        frame.entries.append(.merge(pairs))
    }

    /// Explicit keys win over merged ones; among merged mappings, the first one listed wins.
    private func resolve(_ frame: Frame) -> [YAMLPair] {
        var result: [YAMLPair] = []
        var seen = Set(frame.firstKeyLocation.keys)
        for entry in frame.entries {
            switch entry {
            case .pair(let pair):
                result.append(pair)
            case .merge(let pairs):
                for pair in pairs where seen.insert(pair.key).inserted {
                    result.append(pair)
                }
            }
        }
        return result
    }

    private mutating func reportParserError(_ parser: yaml_parser_t) {
        let problem = Composer.cString(parser.problem) ?? "invalid YAML"
        var location = Composer.mark(parser.problem_mark)
        if parser.problem_mark.line == 0, parser.problem_mark.column == 0, parser.problem_offset > 0 {
            location = YAMLLoader.location(ofByte: Int(parser.problem_offset), in: bytes)
        }
        if let tab = tabInIndentation(near: location) {
            fail(tab, "tab character in indentation; YAML indents with spaces only")
            return
        }
        var message = problem
        if let context = Composer.cString(parser.context) {
            let at = Composer.mark(parser.context_mark)
            message += " (\(context) at line \(at.line), column \(at.column))"
        }
        fail(location, message)
    }

    private static func cString(_ p: UnsafePointer<CChar>?) -> String? {
        guard let p else { return nil }
        return String(cString: p)
    }

    /// The position of a tab in the leading whitespace of the error's line or the line above it.
    private func tabInIndentation(near location: SourcePosition) -> SourcePosition? {
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        for lineNumber in [location.line, location.line - 1] where lineNumber >= 1 && lineNumber <= lines.count {
            var column = 1
            for b in lines[lineNumber - 1] {
                if b == 0x09 { return SourcePosition(line: lineNumber, column: column) }
                if b != 0x20 { break }
                column += 1
            }
        }
        return nil
    }
}
