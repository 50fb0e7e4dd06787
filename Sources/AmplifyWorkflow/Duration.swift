/// A length of time written as `500ms`, `90s`, `15m`, `4h`, `1h30m` or `2d`.
public struct WorkflowDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    public static func seconds(_ s: Int64) -> WorkflowDuration { WorkflowDuration(milliseconds: s * 1000) }

    public static func < (a: WorkflowDuration, b: WorkflowDuration) -> Bool { a.milliseconds < b.milliseconds }

    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// Parses the text; nil when it is not a duration (the caller words the error).
    public init?(parsing text: String) {
        let s = Array(text.utf8)
        guard !s.isEmpty else { return nil }
        var i = 0
        var total: Int64 = 0
        var lastUnit = Int64.max
        while i < s.count {
            var n: Int64 = 0
            let digitsStart = i
            while i < s.count, s[i] >= 48, s[i] <= 57 {
                let (m, o1) = n.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(s[i] - 48))
                guard !o1, !o2 else { return nil }
                n = a
                i += 1
            }
            guard i > digitsStart else { return nil }
            let unitStart = i
            while i < s.count, s[i] >= 97, s[i] <= 122 { i += 1 }
            let unit = String(decoding: s[unitStart..<i], as: UTF8.self)
            guard let factor = WorkflowDuration.units.first(where: { $0.suffix == unit })?.milliseconds else { return nil }
            // Units go from large to small, each once: `1h30m`, not `30m1h`.
            guard factor < lastUnit else { return nil }
            lastUnit = factor
            let (product, o3) = n.multipliedReportingOverflow(by: factor)
            let (sum, o4) = total.addingReportingOverflow(product)
            guard !o3, !o4 else { return nil }
            total = sum
        }
        milliseconds = total
    }

    /// The shortest spelling: `1h30m`, `500ms`, `0s`.
    public var description: String {
        guard milliseconds > 0 else { return "0s" }
        var rest = milliseconds
        var out = ""
        for (suffix, factor) in WorkflowDuration.units.reversed() where rest >= factor {
            out += "\(rest / factor)\(suffix)"
            rest %= factor
        }
        return out
    }

    public var seconds: Double { Double(milliseconds) / 1000 }
}
