import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// What the terminal is: whether output goes to one, whether it may use colour (a TTY without
/// NO_COLOR), its size; and diagnostics as a terminal shows them.
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

    /// The terminal's width (80 when unknown).
    static var columns: UInt16 {
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return size.ws_col
    }

    /// Prints diagnostics as `FILE:LINE:COL: error: MESSAGE`; on a terminal with the line and a caret.
    static func printDiagnostics(_ diagnostics: [Diagnostic], source: [UInt8]?, to err: OutputWriter) {
        let color = colorOnStderr
        let lines = source.map { String(decoding: $0, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) }
        for d in diagnostics {
            var text = d.description
            if color {
                let label = d.severity == .error ? "\u{1B}[1;31merror:\u{1B}[0m" : "\u{1B}[1;33mwarning:\u{1B}[0m"
                text = text.replacingFirst("\(d.severity.rawValue):", with: label)
                text = "\u{1B}[1m" + text.replacingFirst(": ", with: ":\u{1B}[0m ")
            }
            err.line(text)
            if isTTY(2), let lines, d.location.line >= 1, d.location.line <= lines.count {
                let line = String(lines[d.location.line - 1])
                let number = String(d.location.line)
                let pad = String(repeating: " ", count: number.count)
                let caretPad = String(line.unicodeScalars.prefix(max(0, d.location.column - 1)).map { $0 == "\t" ? "\t" : " " })
                err.line(" \(number) | \(line)\n \(pad) | \(caretPad)^")
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

/// Widths in terminal columns, so that columns line up and cut text fits: a combining mark takes
/// none, an East Asian wide character or an emoji two, others one. An approximation of
/// `wcwidth` by ranges, enough for titles; text is made `visible` before it is measured.
extension String {
    var displayWidth: Int {
        // ASCII, the common case, is one column a byte.
        if utf8.allSatisfy({ $0 < 0x80 }) { return utf8.count }
        return reduce(0) { $0 + $1.displayWidth }
    }

    /// At most `width` columns: cut between characters (never inside one), ending in `…` when cut.
    func truncated(toWidth width: Int) -> String {
        guard displayWidth > width else { return self }
        var out = ""
        var used = 0
        for c in self {
            let w = c.displayWidth
            if used + w > width - 1 { break }
            out.append(c)
            used += w
        }
        return out + "…"
    }
}

extension Character {
    /// The columns a character takes: its first scalar's (the base; marks joined to it take none).
    var displayWidth: Int {
        guard let s = unicodeScalars.first else { return 0 }
        let v = s.value
        if v < 0x300 { return 1 }
        switch s.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: break
        }
        switch v {
        case 0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x23E9...0x23EC, 0x23F0, 0x23F3, 0x25FD...0x25FE,
             0x2614...0x2615, 0x2648...0x2653, 0x267F, 0x2693, 0x26A1, 0x26AA...0x26AB, 0x26BD...0x26BE,
             0x26C4...0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2...0x26F3, 0x26F5, 0x26FA, 0x26FD, 0x2705,
             0x270A...0x270B, 0x2728, 0x274C, 0x274E, 0x2753...0x2755, 0x2757, 0x2795...0x2797, 0x27B0, 0x27BF,
             0x2B1B...0x2B1C, 0x2B50, 0x2B55, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
             0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE10...0xFE19, 0xFE30...0xFE6F,
             0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F1E6...0x1F1FF, 0x1F300...0x1F64F, 0x1F680...0x1F6FF,
             0x1F900...0x1F9FF, 0x1FA70...0x1FAFF, 0x20000...0x3FFFD:
            return 2
        default:
            return 1
        }
    }
}
