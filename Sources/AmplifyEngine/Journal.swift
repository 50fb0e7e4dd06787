import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// A problem with a journal or the state directory, with a message a user can act on.
public struct JournalError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

/// One event read back from a journal.
public struct JournalEntry: Sendable {
    public var seq: Int
    public var at: Int64
    public var event: RunEvent

    public init(seq: Int, at: Int64, event: RunEvent) {
        self.seq = seq
        self.at = at
        self.event = event
    }
}

/// `journal.jsonl`: append-only, one JSON event per line with `seq`, `at` and `type`.
///
/// Events are written in batches (group commit): one `write` and at most one `fsync` however
/// many events are ready at once. A batch that announces a side effect not safe to repeat is
/// synced before the effect starts. A write that fails part-way is cut back, so the journal
/// stays well formed. The file is opened with O_CLOEXEC: no child process inherits it.
public final class Journal {
    public let path: String
    private let fd: Int32
    public private(set) var lastSeq: Int
    private var size: Int

    /// Opens (creating) the journal for appending after `lastSeq` events and `size` bytes.
    public init(path: String, lastSeq: Int, size: Int) throws(JournalError) {
        self.path = path
        self.lastSeq = lastSeq
        self.size = size
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError("cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Appends events that happened at `at`; returns their entries.
    @discardableResult
    public func append(_ events: [RunEvent], at: Int64, sync: Bool) throws(JournalError) -> [JournalEntry] {
        guard !events.isEmpty else { return [] }
        var text = ""
        var entries: [JournalEntry] = []
        for e in events {
            lastSeq += 1
            text += e.line(seq: lastSeq, at: at)
            text += "\n"
            entries.append(JournalEntry(seq: lastSeq, at: at, event: e))
        }
        var bytes = Array(text.utf8)[...]
        let total = bytes.count
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                // Cut a partial batch back so the journal stays well formed.
                _ = ftruncate(fd, off_t(size))
                lastSeq -= events.count
                throw JournalError("cannot write the journal \(path): \(reason)")
            }
            bytes = bytes.dropFirst(n)
        }
        size += total
        if sync, fsync(fd) != 0 {
            throw JournalError("cannot sync the journal \(path): \(String(cString: strerror(errno)))")
        }
        return entries
    }

    /// Reads a journal. A torn last line (no newline: the runner died mid-write) is left out,
    /// and `validSize` says where the good part ends; anything else malformed is an error
    /// naming its line.
    public static func read(path: String) throws(JournalError) -> (entries: [JournalEntry], validSize: Int, tornTail: Bool) {
        let bytes: [UInt8]
        do { bytes = try WorkflowFile.read(path, limit: 1 << 31) } catch { throw JournalError(error.description) }
        return try parse(bytes, path: path)
    }

    public static func parse(_ bytes: [UInt8], path: String) throws(JournalError) -> (entries: [JournalEntry], validSize: Int, tornTail: Bool) {
        // Whole lines end with a newline; what follows the last one is a torn tail.
        guard let lastNewline = bytes.lastIndex(of: 0x0A) else { return ([], 0, !bytes.isEmpty) }
        let whole = lastNewline + 1
        // Big journals are parsed in pieces, one per core: a resume or `status` of a long run
        // spends most of its time here.
        let pieces = whole < 1 << 20 ? 1 : max(1, min(4, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        var bounds = [0]
        for k in 1..<max(pieces, 1) {
            var p = max(bounds.last!, whole * k / pieces)
            while p < whole && bytes[p - 1] != 0x0A { p += 1 }
            if p < whole && p > bounds.last! { bounds.append(p) }
        }
        bounds.append(whole)
        let results = UnsafeMutableBufferPointer<Result<[JournalEntry], PieceError>>.allocate(capacity: bounds.count - 1)
        defer { results.deallocate() }
        bytes.withUnsafeBufferPointer { buffer in
            // Each piece writes only its own slot and reads only its own bytes.
            struct Shared: @unchecked Sendable {
                var input: UnsafeBufferPointer<UInt8>
                var output: UnsafeMutableBufferPointer<Result<[JournalEntry], PieceError>>
                var bounds: [Int]
            }
            let shared = Shared(input: buffer, output: results, bounds: bounds)
            parallelFor(bounds.count - 1) { k in
                (shared.output.baseAddress! + k).initialize(to: parsePiece(shared.input, from: shared.bounds[k], to: shared.bounds[k + 1]))
            }
        }
        var entries: [JournalEntry] = []
        entries.reserveCapacity(whole / 100)
        var linesBefore = 0
        for k in 0..<(bounds.count - 1) {
            switch results[k] {
            case .success(let piece):
                if let first = piece.first, first.seq != (entries.last?.seq ?? 0) + 1 {
                    throw JournalError("\(path):\(linesBefore + 1): error: event out of order (seq \(first.seq) after \(entries.last?.seq ?? 0))")
                }
                entries += piece
                linesBefore += piece.count
            case .failure(let e):
                throw JournalError("\(path):\(linesBefore + e.line): error: \(e.message)")
            }
        }
        for k in 0..<(bounds.count - 1) { (results.baseAddress! + k).deinitialize(count: 1) }
        return (entries, whole, whole < bytes.count)
    }

    struct PieceError: Error {
        var line: Int
        var message: String
    }

    /// The events of whole lines `from..<to`; line numbers in errors count from the piece's start.
    private static func parsePiece(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Result<[JournalEntry], PieceError> {
        var entries: [JournalEntry] = []
        var start = from
        var line = 0
        var previousSeq: Int?
        while start < to {
            var newline = start
            while bytes[newline] != 0x0A { newline += 1 }
            line += 1
            let value: Value
            do { value = try JSONParser.parse(bytes: Array(bytes[start..<newline])) } catch {
                return .failure(PieceError(line: line, message: "not a JSON event (\(error)); the journal is damaged and the run cannot be resumed; start afresh with --new"))
            }
            guard let event = RunEvent(value) else {
                return .failure(PieceError(line: line, message: "unknown or incomplete event \(value["type"]?.renderedText ?? "(no type)")"))
            }
            guard case .int(let seq)? = value["seq"], previousSeq.map({ seq == $0 + 1 }) ?? true else {
                return .failure(PieceError(line: line, message: "event out of order (seq \(value["seq"]?.renderedText ?? "missing") after \(previousSeq ?? 0))"))
            }
            previousSeq = seq
            guard case .string(let s)? = value["at"], let at = Timestamp.parse(s) else {
                return .failure(PieceError(line: line, message: "event without a valid `at` time"))
            }
            entries.append(JournalEntry(seq: seq, at: at, event: event))
            start = newline + 1
        }
        return .success(entries)
    }

    /// Cuts the file to `size` bytes (a torn tail) and syncs it.
    public static func truncate(path: String, to size: Int) throws(JournalError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw JournalError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0, fsync(fd) == 0 else {
            throw JournalError("cannot cut the torn end off \(path): \(String(cString: strerror(errno)))")
        }
    }
}

extension Timestamp {
    /// Parses what `iso8601(milliseconds:)` writes.
    public static func parse(_ s: String) -> Int64? {
        var s = s
        return s.withUTF8 { parse(utf8: $0) }
    }

    /// The same from the bytes (no allocation: the journal has one timestamp per event).
    static func parse(utf8 b: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard b.count == 24, b[4] == 45, b[7] == 45, b[10] == 84, b[13] == 58, b[16] == 58, b[19] == 46, b[23] == 90 else { return nil }
        func n(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for k in r {
                let d = b[k] &- 48
                guard d < 10 else { return nil }
                v = v * 10 + Int64(d)
            }
            return v
        }
        guard let y = n(0..<4), let mo = n(5..<7), let d = n(8..<10), let h = n(11..<13), let mi = n(14..<16), let se = n(17..<19), let ms = n(20..<23) else { return nil }
        // days-from-civil
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 86400 + h * 3600 + mi * 60 + se) * 1000) + ms
    }
}
