import AmplifyWorkflow

/// `$AMPLIFY_OUTPUT`: `key=value` lines, and `key<<DELIM` … `DELIM` for multi-line values.
public enum OutputFile {
    /// Lines end in "\n" or "\r\n" (a script written on Windows, or `printf '…\r\n'`): split on
    /// scalars, since "\r\n" is one Character that a split on "\n" would never cut.
    public static func parse(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            Substring(String(String.UnicodeScalarView(line.last == "\r" ? line.dropLast() : line)))
        }[...]
        while let line = lines.popFirst() {
            if let r = line.firstRange(of: "<<"), !line[..<r.lowerBound].contains("=") {
                let key = String(line[..<r.lowerBound])
                let delimiter = line[r.upperBound...]
                var value: [Substring] = []
                while let l = lines.popFirst(), l != delimiter { value.append(l) }
                out[key] = value.joined(separator: "\n")
            } else if let eq = line.firstIndex(of: "=") {
                out[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
        }
        return out
    }
}
