#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading workflow files from disk.
public enum WorkflowFile {
    /// A file that could not be read, with the reason the system gave.
    public struct ReadError: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot read '\(path)': \(reason)" }
    }

    /// The bytes of a file, refusing directories and files over `limit` bytes.
    public static func read(_ path: String, limit: Int = 4 << 20) throws(ReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ReadError(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw ReadError(path: path, reason: "it is a directory") }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[..<n])
            if bytes.count > limit { throw ReadError(path: path, reason: "it is larger than \(limit) bytes") }
        }
        return bytes
    }

    /// Reads a workflow file once and checks it; a file that cannot be read is one diagnostic at
    /// 1:1. The bytes come back too (for showing source lines, or keeping a copy).
    public static func load(_ path: String) -> (result: WorkflowChecker.Result, bytes: [UInt8]?) {
        do {
            let bytes = try read(path)
            return (WorkflowChecker.check(bytes: bytes, file: path), bytes)
        } catch {
            var d = Diagnostic.error(at: .start, error.description)
            d.file = path
            return (WorkflowChecker.Result(workflow: nil, diagnostics: [d]), nil)
        }
    }
}
