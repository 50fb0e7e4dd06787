import AmplifyEngine
import AmplifyWorkflow

/// Which issues of a Beads issues file are ready, by the rules `bd ready` applies to its
/// database: status `open`; no `blocks` dependency on an issue that is not `closed` or `pinned`;
/// no ancestor (through `parent-child` links) blocked that way — an open parent alone blocks
/// nothing; neither the issue nor its parent deferred (`defer_until`) past now. Ordered by
/// priority, then `created_at`. `related` and `discovered-from` links never block.
///
/// Timestamps are compared as instants (`RFC3339`), never as text: bd and people write any
/// offset (`+02:00`, `Z`), fractions of a second or none, and text order is not time order.
public enum BeadsReadiness {
    /// Where an issues file stops being JSON: a line (1-based) and column (1-based, in
    /// characters) a person can go to, and the byte offset in the file.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var offset: Int
        public var message: String
        public var description: String { "line \(line), column \(column): \(message) (byte \(offset))" }

        /// The error at byte `offset` of `bytes`.
        init(_ message: String, at offset: Int, in bytes: [UInt8]) {
            let end = min(offset, bytes.count)
            var line = 1
            var lineStart = IssuesFile.byteOrderMarkLength(bytes)
            for i in 0..<end where bytes[i] == 0x0A {
                line += 1
                lineStart = i + 1
            }
            // UTF-8 continuation bytes (10xxxxxx) do not start a character.
            let column = (lineStart..<max(lineStart, end)).filter { bytes[$0] & 0xC0 != 0x80 }.count + 1
            self.init(line: line, column: column, offset: offset, message: message)
        }

        public init(line: Int, column: Int, offset: Int, message: String) {
            self.line = line
            self.column = column
            self.offset = offset
            self.message = message
        }
    }

    /// Parses a JSON array or JSONL (one issue per line) of issues.
    public static func parseIssues(_ text: String) throws(ParseError) -> [Value] {
        try parseIssues(bytes: Array(text.utf8))
    }

    /// Parses a JSON array or JSONL of issues from a file's bytes. A UTF-8 byte order mark is
    /// skipped; a JSONL line may end in `\r\n` (a file checked out with `eol=crlf`); blank lines
    /// are skipped. Errors point at the file's line and byte, the mark counted.
    public static func parseIssues(bytes: [UInt8]) throws(ParseError) -> [Value] {
        let start = IssuesFile.byteOrderMarkLength(bytes)
        if IssuesFile.isJSONArray(bytes) {
            do {
                guard case .list(let items) = try JSONParser.parse(bytes: Array(bytes[start...])) else { return [] }
                return items
            } catch {
                throw ParseError(error.message, at: start + error.offset, in: bytes)
            }
        }
        var items: [Value] = []
        for line in IssuesFile.lines(bytes) where !line.content.allSatisfy(IssuesFile.isSpace) {
            // JSONParser takes the `\r` before the `\n` for the white space it is.
            do { items.append(try JSONParser.parse(bytes: Array(line.content))) } catch {
                throw ParseError(error.message, at: line.content.startIndex + error.offset, in: bytes)
            }
        }
        return items
    }

    /// The ready issues, in bd's order. `now` is the current instant in milliseconds since the
    /// Unix epoch, compared with each `defer_until`.
    ///
    /// A timestamp that does not parse (see `RFC3339`) is treated as absent: a `defer_until`
    /// nobody can read defers nothing — hiding an item for ever over a typo would be silent,
    /// while dispatching it shows — and a `created_at` nobody can read sorts after every
    /// readable one of the same priority (then by file order), so a malformed item never
    /// jumps the queue and the order stays total.
    public static func ready(_ issues: [Value], now: Int64) -> [Value] {
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
            guard let until = instant(o["defer_until"]) else { return false }
            return until > now
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
        let keyed = result.enumerated().map { (offset: $0.offset, issue: $0.element, priority: priority($0.element), created: instant($0.element["created_at"])) }
        let order = keyed.sorted { a, b in
            if a.priority != b.priority { return a.priority < b.priority }
            switch (a.created, b.created) {
            case let (ca?, cb?) where ca != cb: return ca < cb
            case (.some, nil): return true
            case (nil, .some): return false
            default: return a.offset < b.offset
            }
        }
        return order.map { .object($0.issue) }
    }

    private static func instant(_ value: Value?) -> Int64? {
        guard case .string(let text)? = value else { return nil }
        return RFC3339.milliseconds(text)
    }

    /// RFC 3339 timestamps as instants, without Foundation: `2026-12-01T09:00:00+02:00`,
    /// `…-05:30`, `…Z`, lower-case `t` and `z`, a space for the `T` (RFC 3339 §5.6 allows it),
    /// any number of fraction digits (Go's RFC3339Nano, which bd writes, has up to nine; they
    /// are truncated to milliseconds). Two forms beyond the RFC, both read as UTC because that
    /// is what bd stores: a date alone (`2026-12-01`, its midnight) and a date and time
    /// without an offset. Anything else — out-of-range fields, a 30th of February, text
    /// around it — is nil.
    public enum RFC3339 {
        /// Milliseconds since 1970-01-01T00:00:00Z, or nil when `text` is not a timestamp.
        public static func milliseconds(_ text: String) -> Int64? {
            var text = text
            return text.withUTF8 { milliseconds(utf8: $0) }
        }

        static func milliseconds(utf8 b: UnsafeBufferPointer<UInt8>) -> Int64? {
            var i = 0
            func digits(_ count: Int) -> Int64? {
                guard i + count <= b.count else { return nil }
                var v: Int64 = 0
                for k in i..<(i + count) {
                    let d = b[k] &- 48
                    guard d < 10 else { return nil }
                    v = v * 10 + Int64(d)
                }
                i += count
                return v
            }
            func expect(_ c: UInt8) -> Bool {
                guard i < b.count, b[i] == c else { return false }
                i += 1
                return true
            }
            guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")), let day = digits(2),
                  (1...12).contains(month), (1...daysInMonth(month, year: year)).contains(day) else { return nil }
            let days = daysFromCivil(year: year, month: month, day: day)
            if i == b.count { return days * 86_400_000 }
            guard i < b.count, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
            i += 1
            guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2), expect(UInt8(ascii: ":")), let second = digits(2),
                  hour < 24, minute < 60, second <= 60 else { return nil }   // 60: a leap second
            var millis: Int64 = 0
            if expect(UInt8(ascii: ".")) {
                let first = i
                while i < b.count, b[i] &- 48 < 10 {
                    if i - first < 3 { millis = millis * 10 + Int64(b[i] - 48) }
                    i += 1
                }
                guard i > first else { return nil }
                for _ in min(i - first, 3)..<3 { millis *= 10 }
            }
            var offsetMinutes: Int64 = 0
            if i < b.count {
                switch b[i] {
                case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                    i += 1
                case UInt8(ascii: "+"), UInt8(ascii: "-"):
                    let sign: Int64 = b[i] == UInt8(ascii: "-") ? -1 : 1
                    i += 1
                    guard let oh = digits(2), expect(UInt8(ascii: ":")), let om = digits(2), oh < 24, om < 60 else { return nil }
                    offsetMinutes = sign * (oh * 60 + om)
                default:
                    return nil
                }
                guard i == b.count else { return nil }
            }
            let local = ((days * 24 + hour) * 60 + minute) * 60 + second
            return (local - offsetMinutes * 60) * 1000 + millis
        }

        private static func daysInMonth(_ month: Int64, year: Int64) -> Int64 {
            switch month {
            case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
            case 4, 6, 9, 11: return 30
            default: return 31
            }
        }

        /// Howard Hinnant's days-from-civil, as `Timestamp.parse` does.
        private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
            let y = month <= 2 ? year - 1 : year
            let era = (y >= 0 ? y : y - 399) / 400
            let yoe = y - era * 400
            let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
            return era * 146_097 + doe - 719_468
        }
    }
}
