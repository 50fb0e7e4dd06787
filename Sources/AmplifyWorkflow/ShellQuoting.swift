/// Where shell text leaves you in its quoting, read the way `/bin/sh` reads it: `'…'` keeps
/// everything literal, `"…"` toggles outside single quotes, and a backslash outside single quotes
/// escapes the next character.
///
/// One scanner for both sides of a `run:` string: the checker uses it to find `${{ }}` inside
/// single quotes (which would stay literal), and the command stage to know whether the
/// `"$AMPLIFY_EXPR_n"` it puts in place of an expression is already inside double quotes.
public struct ShellQuoting: Sendable, Hashable {
    public private(set) var inDoubleQuotes = false
    public private(set) var inSingleQuotes = false
    /// The last character was a backslash outside single quotes: the next one is taken as it is.
    public private(set) var escaped = false

    public init() {}

    /// Reads one more character.
    public mutating func scan(_ c: Unicode.Scalar) {
        if escaped { escaped = false; return }
        if inSingleQuotes { if c == "'" { inSingleQuotes = false }; return }
        switch c {
        case "\\": escaped = true
        case "'": if !inDoubleQuotes { inSingleQuotes = true }
        case "\"": inDoubleQuotes.toggle()
        default: break
        }
    }

    /// Reads more text; quoting carries over from one call to the next.
    public mutating func scan(_ text: String) {
        for c in text.unicodeScalars { scan(c) }
    }

    /// The offsets (in Unicode scalars) of each `${{` that stands inside single quotes.
    public static func expressionsInSingleQuotes(_ text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var quoting = ShellQuoting()
        var offsets: [Int] = []
        for (i, c) in scalars.enumerated() {
            if quoting.inSingleQuotes, c == "$", i + 2 < scalars.count, scalars[i + 1] == "{", scalars[i + 2] == "{" {
                offsets.append(i)
            }
            quoting.scan(c)
        }
        return offsets
    }
}
