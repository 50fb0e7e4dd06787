import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// The smallest HTTP/1.1 client that posts a webhook over `http://`: one request on a connection
/// of its own (`Connection: close`), on a thread of its own (never on the concurrency pool's two
/// threads), and one deadline for the whole exchange — connecting, sending, and the status line
/// of the answer, which is all it reads. No redirects, no TLS (`https://` goes through curl).
/// Its errors never repeat the URL: it may hold a secret.
enum HTTPClient {
    /// POSTs `body`; returns the answer's status code.
    static func post(_ url: WebhookURL, body: [UInt8], headers: [(String, String)], timeout: WorkflowDuration) async -> Result<Int, NotifyError> {
        var head = "POST \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        let request = Array((head + "\r\n").utf8) + body
        return await withCheckedContinuation { c in
            detachThread {
                c.resume(returning: exchange(url, request: request, deadline: Processes.now() + timeout.milliseconds, timeout: timeout))
            }
        }
    }

    /// Blocking; called on a thread of its own.
    private static func exchange(_ url: WebhookURL, request: [UInt8], deadline: Int64, timeout: WorkflowDuration) -> Result<Int, NotifyError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(url.host, String(url.port), &hints, &found)
        guard rc == 0, let first = found else {
            return .failure(NotifyError("cannot find the host's address (\(String(cString: gai_strerror(rc))))"))
        }
        defer { freeaddrinfo(first) }
        var failure = NotifyError("cannot connect")
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let a = next {
            next = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            switch connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen, deadline: deadline, timeout: timeout) {
            case .failure(let e):
                failure = e
                continue
            case .success:
                if let e = sendAll(fd, request, deadline: deadline, timeout: timeout) { return .failure(e) }
                return statusCode(fd, deadline: deadline, timeout: timeout)
            }
        }
        return .failure(failure)
    }

    private static func connect(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t, deadline: Int64, timeout: WorkflowDuration) -> Result<Void, NotifyError> {
        if Glibc.connect(fd, address, length) == 0 { return .success(()) }
        guard errno == EINPROGRESS else { return .failure(NotifyError(describe(errno))) }
        guard wait(fd, for: POLLOUT, deadline: deadline) else { return .failure(NotifyError("timed out after \(timeout) connecting")) }
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
        return error == 0 ? .success(()) : .failure(NotifyError(describe(error)))
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: Int64, timeout: WorkflowDuration) -> NotifyError? {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            guard n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) else { return NotifyError("the connection broke while sending (\(describe(errno)))") }
            guard wait(fd, for: POLLOUT, deadline: deadline) else { return NotifyError("timed out after \(timeout) sending") }
        }
        return nil
    }

    /// Reads until the status line is whole: `HTTP/1.1 200 OK`.
    private static func statusCode(_ fd: Int32, deadline: Int64, timeout: WorkflowDuration) -> Result<Int, NotifyError> {
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(0x0A) && answer.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { answer += buffer[..<n]; continue }
            if n == 0 { break }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else { return .failure(NotifyError("the connection broke while waiting for the answer (\(describe(errno)))")) }
            guard wait(fd, for: POLLIN, deadline: deadline) else { return .failure(NotifyError("timed out after \(timeout) waiting for the answer")) }
        }
        let line = String(decoding: answer.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
        let words = line.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[0].hasPrefix("HTTP/1."), let code = Int(words[1]), (100...599).contains(code) else {
            return .failure(NotifyError(answer.isEmpty ? "the connection closed without an answer" : "the answer is not HTTP/1.x"))
        }
        return .success(code)
    }

    /// Waits until `fd` is ready for `event` or the deadline passes (false).
    private static func wait(_ fd: Int32, for event: Int32, deadline: Int64) -> Bool {
        while true {
            let left = deadline - Processes.now()
            guard left > 0 else { return false }
            var p = pollfd(fd: fd, events: Int16(event), revents: 0)
            let n = poll(&p, 1, Int32(clamping: left))
            if n > 0 { return true }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return false }
            return true  // An error: the next call says which.
        }
    }

    private static func describe(_ code: Int32) -> String {
        switch code {
        case ECONNREFUSED: return "connection refused"
        case ENETUNREACH, EHOSTUNREACH: return "the host cannot be reached"
        case ECONNRESET: return "the connection was reset"
        case EPIPE: return "the other side closed the connection"
        default: return String(cString: strerror(code))
        }
    }
}
