/// Text from the tracker, a session file or an agent's output, made safe to show a person.
///
/// Item titles, failure reasons, questions and warnings are written by others — a tracker, an
/// agent — and reach a terminal that obeys escape sequences: an ESC in a title could clear the
/// screen or rewrite the terminal's title, a newline splits a table row in two, a bidi override
/// makes text read other than it is. Every human view (summary, `status`, the line and live views,
/// a future page) shows such text through `visible`, which keeps it on one line and shows each
/// such character as a visible stand-in:
///
/// - `\n` → `⏎`; the other C0 controls and DEL → their control pictures (`␛` for ESC, `␍`, `␉`, `␡`);
/// - C1 controls (U+0080–U+009F), the bidi overrides, embeddings, isolates and marks
///   (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) and the line and paragraph
///   separators U+2028/U+2029 → `<U+XXXX>`.
///
/// JSON output needs none of this: its escaping already makes these characters harmless.
public enum VisibleText {
    /// `text` with every control, bidi and line-separating character replaced by a visible stand-in.
    public static func visible(_ text: String) -> String {
        // Most text has none: give it back untouched, without copying.
        guard text.unicodeScalars.contains(where: needsStandIn) else { return text }
        var out = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            guard needsStandIn(s) else { out.append(s); continue }
            out.append(contentsOf: standIn(s).unicodeScalars)
        }
        return String(out)
    }

    static func needsStandIn(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C, 0x2028, 0x2029: return true
        default: return false
        }
    }

    static func standIn(_ s: Unicode.Scalar) -> String {
        switch s.value {
        case 0x0A: return "⏎"
        case 0x00...0x1F: return String(Unicode.Scalar(0x2400 + s.value)!)
        case 0x7F: return "␡"
        default:
            let hex = String(s.value, radix: 16, uppercase: true)
            return "<U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + ">"
        }
    }
}

extension String {
    /// This text with control, bidi and line-separating characters shown as visible stand-ins
    /// (see `VisibleText`): for every human view of text that others wrote.
    public var visible: String { VisibleText.visible(self) }
}
