import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// What an agent said: cost, tokens, turns, its session id, its own words when it ended in
/// error, and whether its provider's usage limit stopped it — each only when it said so.
public struct AgentReport: Sendable, Equatable {
    public var cost: Double?
    public var turns: Int?
    /// Tokens, for agents that report no cost (codex, gemini).
    public var tokens: Int?
    public var agentSession: String?
    public var isError: Bool?
    /// The agent's error in its own words (the profile's `error` rule: Claude's `result` or
    /// `errors` of a result line with `is_error`, codex's `turn.failed` message, …).
    public var errorMessage: String?
    /// The last start was stopped by the provider's usage limit: when it resets (ms since the
    /// epoch), nil when the agent did not say.
    public var usageLimit: UsageLimit?

    public struct UsageLimit: Sendable, Equatable {
        public var resetsAt: Int64?
        /// What the agent said about it.
        public var said: String
    }

    public init() {}
}

/// Reads an agent's output.log by its profile's rules (SPEC §11): one JSON object a line, each
/// rule picking lines by `type`. Within one start of the agent a figure is the last value read
/// (or their sum, `sum`); the starts of a session add up unless the rule is a running `total`.
/// The session id, the error and the usage limit are the last start's.
///
/// The whole log is read, once, as it grows (`read(_:)` goes on from where it stopped), so a
/// figure summed over a long session is never cut by a window; a line longer than
/// `longestLine` (a tool's output, not a report) is skipped.
struct AgentOutput {
    static let longestLine = 1 << 20
    /// Bytes read at a time.
    static let chunk = 1 << 20

    var profile: AgentProfile
    /// Where each start of the agent began in the log (the session record's `starts`).
    var starts: [Int] = []
    /// The next byte of the log to read.
    private(set) var offset = 0
    /// The unfinished line at `offset` (its bytes so far), or nil while skipping a line too long.
    private var pending: [UInt8]? = []
    /// Where that line began.
    private var lineStart = 0
    /// The start being read, and what the starts before it added up to.
    private var current = Start()
    private var finished = Start.Totals()
    private var now: Int64

    /// What one start of the agent said.
    private struct Start {
        var report = AgentReport()
        var figures: [String: Double] = [:]

        /// The figures of the finished starts, combined.
        struct Totals {
            var figures: [String: Double] = [:]
            var agentSession: String?
        }
    }

    init(profile: AgentProfile, starts: [Int] = [], now: Int64 = Processes.now()) {
        self.profile = profile
        self.starts = starts.sorted()
        self.now = now
    }

    /// What the agent said in `bytes`, which begin at `offset` of the log.
    func report(_ bytes: ArraySlice<UInt8>, from offset: Int, starts: [Int], now: Int64 = Processes.now()) -> AgentReport {
        var tally = AgentOutput(profile: profile, starts: starts, now: now)
        tally.offset = offset
        tally.lineStart = offset
        tally.feed(bytes)
        return tally.report
    }

    /// Reads what the session's output.log gained since the last read (never through a symlink).
    mutating func read(_ session: SessionFiles) {
        let fd = open(session.path("output.log"), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return }
        var buffer = [UInt8](repeating: 0, count: AgentOutput.chunk)
        while offset < Int(st.st_size) {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, min(AgentOutput.chunk, Int(st.st_size) - offset), off_t(offset)) }
            guard n > 0 else { break }
            feed(buffer[..<n])
        }
    }

    /// Takes the next bytes of the log.
    mutating func feed(_ bytes: ArraySlice<UInt8>) {
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let newline = bytes[i...].firstIndex(of: UInt8(ascii: "\n"))
            let end = newline ?? bytes.endIndex
            if pending != nil {
                pending!.append(contentsOf: bytes[i..<end])
                if pending!.count > AgentOutput.longestLine { pending = nil }
            }
            offset += end - i
            guard newline != nil else { break }
            offset += 1
            if let line = pending { take(line[...], at: lineStart) }
            pending = []
            lineStart = offset
            i = end + 1
        }
    }

    /// What the log read so far says. A last line without its newline is read if it is whole
    /// JSON (an agent that exited after printing it); half a line written so far is not.
    var report: AgentReport {
        if let line = pending, !line.isEmpty {
            var whole = self
            whole.pending = []
            whole.take(line[...], at: lineStart)
            return whole.reportOfLinesTaken
        }
        return reportOfLinesTaken
    }

    private var reportOfLinesTaken: AgentReport {
        var figures = finished.figures
        for (name, rule) in profile.figureRules {
            guard let v = current.figures[name] else { continue }
            figures[name] = rule.total ? v : (figures[name] ?? 0) + v
        }
        var report = current.report
        report.agentSession = current.report.agentSession ?? finished.agentSession
        report.cost = figures["cost"]
        report.tokens = figures["tokens"].map(AgentOutput.count)
        report.turns = figures["turns"].map(AgentOutput.count)
        return report
    }

    /// One whole line, which began at `at`.
    private mutating func take(_ line: ArraySlice<UInt8>, at: Int) {
        // A line past the next start's offset belongs to that start: the one before it is finished.
        while let next = starts.first(where: { $0 > 0 }), at >= next {
            starts.removeFirst()
            finish()
        }
        guard profile.output == .jsonl, line.first == UInt8(ascii: "{"),
              let v = try? JSONParser.parse(String(decoding: line, as: UTF8.self)) else { return }
        if case .string(let sid)? = profile.sessionId?.read(v), !sid.isEmpty { current.report.agentSession = sid }
        for (name, rule) in profile.figureRules {
            guard let read = rule.read(v), let n = AgentOutput.number(read) else { continue }
            current.figures[name] = rule.sum ? min((current.figures[name] ?? 0) + n, 1e15) : n
        }
        if let e = profile.error?.read(v) {
            let words: [String]
            if case .list(let items) = e { words = items.map(\.renderedText) } else { words = [e.renderedText] }
            let said = words.map { $0.trimming(" \t\r\n") }.filter { !$0.isEmpty }.joined(separator: "; ")
            if !said.isEmpty {
                current.report.errorMessage = String(said.prefix(500))
                current.report.isError = true
                // In the agent's words when it says more than a reset time (Claude's result after the event).
                current.report.usageLimit?.said = current.report.errorMessage!
            }
        }
        if let limit = profile.usageLimit?.read(v) {
            current.report.usageLimit = AgentReport.UsageLimit(resetsAt: UsageLimitClock.resetTime(limit, now: now),
                                                               said: current.report.errorMessage ?? String(limit.renderedText.prefix(300)))
        }
    }

    /// The start being read has ended: its figures join the totals.
    private mutating func finish() {
        for (name, rule) in profile.figureRules {
            guard let v = current.figures[name] else { continue }
            finished.figures[name] = rule.total ? v : min((finished.figures[name] ?? 0) + v, 1e15)
        }
        finished.agentSession = current.report.agentSession ?? finished.agentSession
        current = Start()
    }

    /// A figure the agent printed: a finite number ≥ 0 (its output is untrusted: a NaN, a
    /// negative cost or 1e300 tokens must neither crash the runner nor defeat a budget).
    static func number(_ v: Value) -> Double? {
        let d: Double?
        switch v {
        case .double(let x): d = x
        case .int(let i): d = Double(i)
        case .string(let s): d = Double(s)
        default: d = nil
        }
        guard let d, d.isFinite, d >= 0 else { return nil }
        return min(d, 1e15)
    }

    /// A count (tokens, turns), clamped to what an Int holds.
    static func count(_ d: Double) -> Int { Int(min(d, 1e15).rounded(.down)) }
}

/// When a usage limit resets, from what the agent said: Unix seconds (Claude's `resetsAt`), or
/// the text of a message — "try again at 3:28 PM" (codex: the next such local time), "reset
/// after 1h49m8s" (Gemini CLI). nil when it cannot be told.
enum UsageLimitClock {
    /// The longest pause believed: a reset further ahead (a mistake, or hostile output) is
    /// treated as this far ahead, so nothing is blocked for ever.
    static let longest: Int64 = 8 * 86_400_000

    static func resetTime(_ value: Value, now: Int64) -> Int64? {
        let at: Int64?
        switch value {
        case .int(let s): at = s > Int(Int64.max / 1000) || s < 0 ? now + longest : Int64(s) * 1000
        case .double(let s): at = s.isFinite && s >= 0 ? (s >= Double(Int64.max / 1000) ? now + longest : Int64(s * 1000)) : nil
        case .string(let text): at = fromText(text, now: now)
        default: at = nil
        }
        return at.map { min($0, now + longest) }
    }

    static func fromText(_ text: String, now: Int64) -> Int64? {
        let lower = text.lowercased()
        if let r = lower.firstRange(of: "after ") ?? lower.firstRange(of: "in ") {
            // 1h49m8s, 21h53m56s, 45m, 30s
            var total: Int64 = 0, number: Int64 = 0, any = false
            for c in lower[r.upperBound...] {
                if let d = c.wholeNumberValue, d < 10 { number = min(number * 10 + Int64(d), 1_000_000); continue }
                switch c {
                case "h": total += number * 3_600_000
                case "m": total += number * 60_000
                case "s": total += number * 1000
                default: break
                }
                if "hms".contains(c) { any = true; number = 0; continue }
                break
            }
            if any && total > 0 { return now + total }
        }
        if let r = lower.firstRange(of: "try again at ") {
            // "3:28 pm", "15:28" (the next such local time), or, when it is another day,
            // "nov 5th, 2025 3:28 pm" (codex-rs error.rs formats it so).
            var rest = lower[r.upperBound...]
            var date: (year: Int, month: Int, day: Int)?
            if let month = months.firstIndex(where: { rest.hasPrefix($0) }) {
                let fields = rest.split(separator: " ", maxSplits: 3)
                let day = Int(fields.count > 1 ? fields[1].prefix { $0.isNumber } : "")
                let year = Int(fields.count > 2 ? fields[2].prefix { $0.isNumber } : "")
                guard fields.count == 4, let day, let year, (1...31).contains(day), (1970...9999).contains(year) else { return nil }
                date = (year, month + 1, day)
                rest = fields[3]
            }
            let digits = rest.prefix { $0.isNumber || $0 == ":" }
            let parts = digits.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2, parts[0] < 24, parts[1] < 60 else { return nil }
            var hour = parts[0]
            let after = rest.dropFirst(digits.count).trimmingPrefix(" ")
            if after.hasPrefix("pm"), hour < 12 { hour += 12 }
            if after.hasPrefix("am"), hour == 12 { hour = 0 }
            return localTime(hour: hour, minute: parts[1], date: date, now: now)
        }
        return nil
    }

    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// The local time hour:minute on `date`, or (no date) the next moment after `now` when the
    /// local clock shows it.
    static func localTime(hour: Int, minute: Int, date: (year: Int, month: Int, day: Int)?, now: Int64) -> Int64 {
        var t = time_t(now / 1000)
        var tm = tm()
        localtime_r(&t, &tm)
        if let date { tm.tm_year = Int32(date.year - 1900); tm.tm_mon = Int32(date.month - 1); tm.tm_mday = Int32(date.day) }
        tm.tm_hour = Int32(hour); tm.tm_min = Int32(minute); tm.tm_sec = 0; tm.tm_isdst = -1
        var at = Int64(mktime(&tm)) * 1000
        if date == nil, at <= now { at += 86_400_000 }
        return at
    }
}
