/// Suggestions for misspelt names ("did you mean …").
public enum DidYouMean {
    /// The closest candidate, if it is close enough to be what was meant.
    public static func closest(to word: String, in candidates: [String]) -> String? {
        let lower = word.lowercased()
        var best: (String, Int)?
        for candidate in candidates {
            let c = candidate.lowercased()
            if c == lower { return candidate }
            let d = distance(lower, c)
            let limit = max(1, min(3, max(word.count, candidate.count) / 3))
            let prefixMatch = c.count >= 3 && lower.count >= 3 && (c.hasPrefix(lower) || lower.hasPrefix(c))
            if d <= limit || prefixMatch, best.map({ d < $0.1 }) ?? true {
                best = (candidate, d)
            }
        }
        return best?.0
    }

    /// " (did you mean 'x'?)" or "".
    public static func hint(_ word: String, _ candidates: [String]) -> String {
        closest(to: word, in: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }

    /// Damerau–Levenshtein distance (optimal string alignment).
    public static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { d[i][0] = i }
        for j in 0...y.count { d[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[x.count][y.count]
    }
}
