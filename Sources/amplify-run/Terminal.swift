import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// Where output goes, and whether it may use colour (a TTY without NO_COLOR).
struct Terminal {
    static func isTTY(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    static var colorOnStderr: Bool { isTTY(2) && getenv("NO_COLOR") == nil }

    /// Redraw in place only on a terminal, and not when NO_COLOR asks for plain output.
    static var liveView: Bool { isTTY(1) && getenv("NO_COLOR") == nil && getenv("TERM").map { String(cString: $0) } != "dumb" }

    /// The terminal's height (24 when unknown).
    static var rows: UInt16 {
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 else { return 24 }
        return size.ws_row
    }

    static func out(_ s: String) {
        print(s)
    }

    static func err(_ s: String) {
        var s = s
        if !s.hasSuffix("\n") { s += "\n" }
        var bytes = Array(s.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }

    /// Prints diagnostics as `FILE:LINE:COL: error: MESSAGE`; on a terminal with the line and a caret.
    static func printDiagnostics(_ diagnostics: [Diagnostic], source: [UInt8]?) {
        let color = colorOnStderr
        let lines = source.map { String(decoding: $0, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) }
        for d in diagnostics {
            var text = d.description
            if color {
                let label = d.severity == .error ? "\u{1B}[1;31merror:\u{1B}[0m" : "\u{1B}[1;33mwarning:\u{1B}[0m"
                text = text.replacingFirst("\(d.severity.rawValue):", with: label)
                text = "\u{1B}[1m" + text.replacingFirst(": ", with: ":\u{1B}[0m ")
            }
            err(text)
            if isTTY(2), let lines, d.location.line >= 1, d.location.line <= lines.count {
                let line = String(lines[d.location.line - 1])
                let number = String(d.location.line)
                let pad = String(repeating: " ", count: number.count)
                let caretPad = String(line.unicodeScalars.prefix(max(0, d.location.column - 1)).map { $0 == "\t" ? "\t" : " " })
                err(" \(number) | \(line)\n \(pad) | \(caretPad)^")
            }
        }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let r = range(of: target) else { return self }
        return String(self[..<r.lowerBound]) + replacement + String(self[r.upperBound...])
    }

    func range(of target: String) -> Range<String.Index>? {
        guard !target.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}
