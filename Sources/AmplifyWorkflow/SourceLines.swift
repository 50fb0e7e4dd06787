/// The lines of a workflow file, to turn an offset inside a scalar's value into a line:column of
/// the file: a value's text is not the file's text (quotes, escapes, folded lines), so the k-th
/// `${{` of the value is found as the k-th `${{` of the node's source text.
struct SourceLines: Sendable {
    private let lines: [[Unicode.Scalar]]

    init(_ source: [UInt8]) {
        lines = String(decoding: source, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { Array($0.unicodeScalars) }
    }

    /// The file position of `offset` (in Unicode scalars) into a scalar's value `text`: offsets on
    /// the same line as their `${{` are counted from there.
    func locate(_ node: YAMLNode, offset: Int, in text: String) -> SourcePosition {
        let value = Array(text.unicodeScalars)
        // Which `${{` the offset belongs to, and how far past it.
        var k = -1
        var anchor = 0
        var i = 0
        while i + 2 < value.count, i <= offset {
            if value[i] == "$", value[i + 1] == "{", value[i + 2] == "{" { k += 1; anchor = i }
            i += 1
        }
        guard k >= 0 else {
            // No `${{` (a bare `if` expression): count from the value's first character.
            guard let s = node.scalar, s.style == .plain || s.style == .singleQuoted || s.style == .doubleQuoted else { return node.location }
            let quote = s.style == .plain ? 0 : 1
            let line = node.location.line
            let column = node.location.column + quote + max(0, offset)
            if line <= lines.count, column - 1 <= lines[line - 1].count { return SourcePosition(line: line, column: column) }
            return node.location
        }
        var line = node.location.line - 1
        var column = node.location.column - 1
        var found = -1
        while line < lines.count, SourcePosition(line: line + 1, column: column + 1) <= node.endLocation {
            let l = lines[line]
            if column + 2 < l.count, l[column] == "$", l[column + 1] == "{", l[column + 2] == "{" {
                found += 1
                if found == k {
                    var delta = offset - anchor
                    var c = column
                    while delta > 0, c < l.count { c += 1; delta -= 1 }
                    return SourcePosition(line: line + 1, column: (delta == 0 ? c : column) + 1)
                }
            }
            column += 1
            if column >= l.count { line += 1; column = 0 }
        }
        return node.location
    }
}
