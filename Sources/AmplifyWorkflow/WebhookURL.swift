/// An `http://` or `https://` URL taken apart for a POST: scheme, host, port and the request
/// target (path and query). Credentials in the URL (`user:pass@`) are not taken; a fragment is
/// dropped. The whole URL may be a secret: nothing here says it in an error.
public struct WebhookURL: Sendable, Hashable {
    public var isHTTPS: Bool
    /// A name or an address; an IPv6 address without its brackets.
    public var host: String
    public var port: Int
    /// `/path?query`, at least `/`.
    public var target: String

    /// nil when `text` is not an http:// or https:// URL with a host (and a valid port).
    public init?(_ text: String) {
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") {
            isHTTPS = false
            rest = text.dropFirst(7)
        } else if lower.hasPrefix("https://") {
            isHTTPS = true
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...].prefix { $0 != "#" })
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        guard !authority.isEmpty, !authority.contains("@"),
              !target.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else { return nil }
        var host = authority
        var port = isHTTPS ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            host = authority[..<colon]
            port = p
            // An IPv6 address needs its brackets.
            guard !host.contains(":") else { return nil }
        }
        guard !host.isEmpty, host.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0 != "/" && $0 != "\\" }) else { return nil }
        self.host = String(host)
        self.port = port
        self.target = target
    }

    /// The `Host:` header: the host, with the port when it is not the scheme's.
    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (isHTTPS ? 443 : 80) ? h : "\(h):\(port)"
    }
}
