import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// A Beads issues file (JSONL, or a JSON array) changed in place: atomically (temp file and
/// rename), one writer at a time, every other line kept byte for byte — line endings
/// included: a file checked out with `eol=crlf` stays CRLF, so git sees one changed line.
///
/// The writers' lock is not beside the file, where `git status` would show it in the user's
/// checkout: inside a git repository it is `<git common dir>/amplify-issues-<hash>.lock`,
/// named from the file's path so two issues files don't share one; elsewhere it is
/// `<file>.amplify-lock`.
public enum IssuesFile {
    public static func closeIssue(id: String, reason: String, path: String) async -> StageResult {
        let now = nowValue()
        let result = await update(id: id, path: path, what: "close") { o in
            guard o["status"] != .string("closed") else { return nil }
            var o = o
            o["status"] = .string("closed")
            o["closed_at"] = now
            o["close_reason"] = .string(reason)
            o["updated_at"] = now
            return o
        }
        return result.map { $0.stageResult { .succeeded(OrderedObject([("closed", .bool($0))])) } } ?? .failed("close: no issue \(id) in \(path)")
    }

    /// Claims an item: `in_progress`, as `bd update --claim` does. Claimed already is fine.
    /// Succeeds with `claimed` (whether this call claimed it) and `status` (the item's status
    /// before), so a caller can tell its own earlier claim from another's.
    ///
    /// `claimant` goes into `assignee`, as `bd update --claim` puts its actor there: an item in
    /// progress is the caller's again only when it is the assignee (a run claiming once more after
    /// a crash), never because it merely is in progress (another run's, or a person's).
    public static func claimIssue(id: String, path: String, claimant: String? = nil) async -> StageResult {
        let now = nowValue()
        var before = Value.null
        var assignee = Value.null
        var mine = false
        let result = await update(id: id, path: path, what: "claim") { o in
            before = o["status"] ?? .null
            assignee = o["assignee"] ?? .null
            if let claimant, o["status"] == .string("in_progress"), o["assignee"] == .string(claimant) { mine = true }
            guard o["status"] == .string("open") else { return nil }
            var o = o
            o["status"] = .string("in_progress")
            if let claimant { o["assignee"] = .string(claimant) }
            o["updated_at"] = now
            return o
        }
        return result.map { $0.stageResult { .succeeded(OrderedObject([("claimed", .bool($0 || mine)), ("status", before), ("assignee", assignee)])) } }
            ?? .failed("claim: no issue \(id) in \(path)")
    }

    /// Gives back an item a run claimed: `in_progress` becomes `open` again. Any other status
    /// (closed, open already, blocked…) is left as it is. Succeeds with `released`: whether
    /// the file changed; an unknown id fails.
    public static func releaseIssue(id: String, path: String) async -> StageResult {
        let now = nowValue()
        let result = await update(id: id, path: path, what: "release") { o in
            guard o["status"] == .string("in_progress") else { return nil }
            var o = o
            o["status"] = .string("open")
            // The claimant the runner wrote goes with the claim; a person's assignee stays.
            if case .string(let a)? = o["assignee"], a.hasPrefix("amplify-run/") { o["assignee"] = nil }
            o["updated_at"] = now
            return o
        }
        return result.map { $0.stageResult { .succeeded(OrderedObject([("released", .bool($0))])) } } ?? .failed("release: no issue \(id) in \(path)")
    }

    private static func nowValue() -> Value {
        .string(String(Timestamp.iso8601(milliseconds: Processes.now()).prefix(19)) + "Z")
    }

    /// Rewrites one issue of the file; `change` returns nil to leave it as it is. Returns whether
    /// it changed, or nil when no such issue (errors come back as a failure message in `.some`).
    static func update(id: String, path: String, what: String, _ change: (OrderedObject) -> OrderedObject?) async -> Result<Bool, StageError>? {
        let lockPath = lockPath(for: path)
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return .failure(StageError("\(what): cannot open the lock \(lockPath): \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        // Never block a pool thread in flock: try, and sleep between tries.
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try? await Task.sleep(for: .milliseconds(5))
        }
        defer { flock(fd, LOCK_UN) }
        let bytes: [UInt8]
        do { bytes = try WorkflowFile.read(path, limit: QueryReadyExecutor.inputLimit) } catch {
            return .failure(StageError("\(what): \(error.description)"))
        }
        let output: [UInt8]
        switch rewrite(bytes, id: id, change) {
        case .noSuchIssue: return nil
        case .unchanged: return .success(false)
        case .notAnArray(let why): return .failure(StageError("\(what): \(path) is not a JSON array of issues: \(why)"))
        case .changed(let new): output = new
        }
        // Keep the file's permissions (a private tracker stays private).
        var st = stat()
        let mode = stat(path, &st) == 0 ? mode_t(st.st_mode & 0o7777) : 0o644
        do { try RunStore.writeAtomically(output, to: path, mode: mode) } catch {
            return .failure(StageError("\(what): \(error.message)"))
        }
        if stat(path, &st) == 0, st.st_mode & 0o7777 != mode { chmod(path, mode) }   // the umask took bits away
        return .success(true)
    }

    enum Rewrite: Equatable {
        case noSuchIssue, unchanged, changed([UInt8]), notAnArray(String)
    }

    /// The file's new bytes with issue `id` changed. JSONL: only that line is written anew (it
    /// keeps its `\r\n` or `\n`, or none on a last line); a byte order mark stays. A JSON array
    /// is written again whole, pretty, with the file's line ending and mark.
    static func rewrite(_ bytes: [UInt8], id: String, _ change: (OrderedObject) -> OrderedObject?) -> Rewrite {
        let mark = byteOrderMarkLength(bytes)
        var found = false
        var changed = false
        var output = Array(bytes[..<mark])
        output.reserveCapacity(bytes.count + 256)
        if isJSONArray(bytes) {
            let items: [Value]
            do {
                guard case .list(let list) = try JSONParser.parse(bytes: Array(bytes[mark...])) else { return .notAnArray("not a list") }
                items = list
            } catch {
                return .notAnArray(BeadsReadiness.ParseError(error.message, at: mark + error.offset, in: bytes).description)
            }
            let updated = items.map { v -> Value in
                guard !found, case .object(let o) = v, o["id"] == .string(id) else { return v }
                found = true
                guard let new = change(o) else { return v }
                changed = true
                return .object(new)
            }
            guard found else { return .noSuchIssue }
            guard changed else { return .unchanged }
            let crlf = lines(bytes).first { !$0.terminator.isEmpty }?.terminator.count == 2
            for byte in Value.list(updated).prettyJSON.utf8 {
                if byte == 0x0A && crlf { output.append(0x0D) }
                output.append(byte)
            }
            if bytes.last == 0x0A { output += crlf ? [0x0D, 0x0A] : [0x0A] }
            return .changed(output)
        }
        let needle = Array("\"\(id)\"".utf8)
        for line in lines(bytes) {
            if !found, contains(line.content, needle), case .object(let o)? = try? JSONParser.parse(bytes: Array(line.content)), o["id"] == .string(id) {
                found = true
                if let new = change(o) {
                    changed = true
                    output += Value.object(new).json.utf8
                } else {
                    output += line.content
                }
            } else {
                output += line.content
            }
            output += line.terminator
        }
        guard found else { return .noSuchIssue }
        return changed ? .changed(output) : .unchanged
    }

    // MARK: The file's bytes

    /// 3 when the file starts with a UTF-8 byte order mark, else 0.
    static func byteOrderMarkLength(_ bytes: [UInt8]) -> Int {
        bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    /// Whether the file holds a JSON array (its first character after the mark and white
    /// space is `[`) rather than JSONL.
    static func isJSONArray(_ bytes: [UInt8]) -> Bool {
        bytes[byteOrderMarkLength(bytes)...].first { !isSpace($0) } == UInt8(ascii: "[")
    }

    /// The lines after the byte order mark: each one's text and what ended it (`\r\n`, `\n`,
    /// or nothing for the last). Joined again they are the file, byte for byte.
    static func lines(_ bytes: [UInt8]) -> [(content: ArraySlice<UInt8>, terminator: ArraySlice<UInt8>)] {
        var result: [(content: ArraySlice<UInt8>, terminator: ArraySlice<UInt8>)] = []
        var start = byteOrderMarkLength(bytes)
        while true {
            guard let newline = bytes[start...].firstIndex(of: 0x0A) else {
                result.append((bytes[start...], bytes[bytes.count...]))
                return result
            }
            let end = newline > start && bytes[newline - 1] == 0x0D ? newline - 1 : newline
            result.append((bytes[start..<end], bytes[end...newline]))
            start = newline + 1
        }
    }

    private static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return false }
        var i = haystack.startIndex
        while let k = haystack[i...].firstIndex(of: first), k + needle.count <= haystack.endIndex {
            if haystack[k..<(k + needle.count)].elementsEqual(needle) { return true }
            i = k + 1
        }
        return false
    }

    // MARK: The lock

    /// Where the writers of `path` lock: in the git common directory of the repository that
    /// holds the file (where nothing shows in `git status`, and where a linked worktree's
    /// checkout of the same file locks too), named from the file's canonical path; beside the
    /// file when no repository holds it.
    static func lockPath(for path: String) -> String {
        let (directory, name) = split(path)
        guard let real = realpath(directory.isEmpty ? "." : directory, nil) else { return path + ".amplify-lock" }
        let canonicalDirectory = String(cString: real)
        free(real)
        guard let common = Git.commonDirectory(containing: canonicalDirectory) else { return path + ".amplify-lock" }
        let canonical = (canonicalDirectory == "/" ? "" : canonicalDirectory) + "/" + name
        return common + "/amplify-issues-" + RunLock.hashedName(canonical) + ".lock"
    }

    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty && path.hasPrefix("/") ? "/" : directory, String(path[path.index(after: slash)...]))
    }

}

extension Result where Failure == StageError {
    func stageResult(_ f: (Success) -> StageResult) -> StageResult {
        switch self {
        case .success(let v): return f(v)
        case .failure(let e): return e.result
        }
    }
}
