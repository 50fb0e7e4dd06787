import AmplifyEngine
@testable import AmplifyStages
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

/// `source: file` trackers changed in place: line endings, byte order marks, the lock's place,
/// release.
@Suite("issues file")
struct IssuesFileTests {
    /// A fresh directory (not inside any git repository), removed at the end.
    final class Folder {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("issues-\(UUID().uuidString)").path
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    static let fixture = (try? Data(contentsOf: QueryReadyTests.fixtures.appendingPathComponent("beads-issues.jsonl"))).map { [UInt8]($0) } ?? []
    static let crlfFixture = Array(String(decoding: fixture, as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n").utf8)

    func bytes(_ path: String) -> [UInt8] { (try? Data(contentsOf: URL(fileURLWithPath: path))).map { [UInt8]($0) } ?? [] }

    /// The file's lines, each with its terminator, as text.
    func lines(_ b: [UInt8]) -> [String] {
        String(decoding: b, as: UTF8.self).utf8.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    func status(_ id: String, in path: String) throws -> String? {
        try BeadsReadiness.parseIssues(bytes: bytes(path)).first { $0["id"] == .string(id) }?["status"]?.renderedText
    }

    @Test("claim and close on a CRLF file: CRLF kept, the changed line only, every other byte as it was")
    func crlf() async throws {
        let folder = try Folder()
        let path = folder.path + "/issues.jsonl"
        try Data(Self.crlfFixture).write(to: URL(fileURLWithPath: path))
        #expect(await IssuesFile.claimIssue(id: "demo-2", path: path) == .succeeded(OrderedObject([("claimed", .bool(true)), ("status", .string("open")), ("assignee", .null)])))
        #expect(try status("demo-2", in: path) == "in_progress")
        #expect(await IssuesFile.closeIssue(id: "demo-2", reason: "done", path: path) == .succeeded(OrderedObject([("closed", .bool(true))])))
        #expect(try status("demo-2", in: path) == "closed")
        let (before, after) = (lines(Self.crlfFixture), lines(bytes(path)))
        #expect(after.count == before.count)
        for (b, a) in zip(before, after) where !b.contains("\"demo-2\",\"title\"") { #expect(a == b) }
        #expect(after.dropLast().allSatisfy { $0.hasSuffix("\r") }, "every line still ends in CRLF")
        #expect(after.last == "")
    }

    @Test("a byte order mark stays, and the first line is found behind it")
    func byteOrderMark() async throws {
        let folder = try Folder()
        let path = folder.path + "/issues.jsonl"
        let text = "\u{FEFF}{\"id\":\"a-1\",\"status\":\"open\"}\r\n{\"id\":\"a-2\",\"status\":\"open\"}\r\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(await IssuesFile.claimIssue(id: "a-1", path: path) == .succeeded(OrderedObject([("claimed", .bool(true)), ("status", .string("open")), ("assignee", .null)])))
        let after = bytes(path)
        #expect(after.starts(with: [0xEF, 0xBB, 0xBF]))
        #expect(try status("a-1", in: path) == "in_progress")
        #expect(String(decoding: after, as: UTF8.self).hasSuffix("\r\n{\"id\":\"a-2\",\"status\":\"open\"}\r\n"))
    }

    @Test("no newline at the end: none added, whichever line changes", arguments: ["\n", "\r\n"])
    func noLastNewline(eol: String) async throws {
        let folder = try Folder()
        let path = folder.path + "/issues.jsonl"
        try "{\"id\":\"a-1\",\"status\":\"open\"}\(eol){\"id\":\"a-2\",\"status\":\"open\"}".write(toFile: path, atomically: true, encoding: .utf8)
        _ = await IssuesFile.claimIssue(id: "a-2", path: path)
        let text = String(decoding: bytes(path), as: UTF8.self)
        #expect(text.hasPrefix("{\"id\":\"a-1\",\"status\":\"open\"}\(eol){\"id\":\"a-2\",\"status\":\"in_progress\""))
        #expect(text.hasSuffix("}"))
        _ = await IssuesFile.claimIssue(id: "a-1", path: path)
        #expect(try status("a-1", in: path) == "in_progress")
        #expect(bytes(path).last == UInt8(ascii: "}"))
    }

    @Test("a JSON array with CRLF and a byte order mark keeps both")
    func jsonArray() async throws {
        let folder = try Folder()
        let path = folder.path + "/issues.json"
        let text = "\u{FEFF}[\r\n  {\"id\": \"a-1\", \"status\": \"open\"},\r\n  {\"id\": \"a-2\", \"status\": \"open\"}\r\n]\r\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(await IssuesFile.claimIssue(id: "a-2", path: path) == .succeeded(OrderedObject([("claimed", .bool(true)), ("status", .string("open")), ("assignee", .null)])))
        let after = bytes(path)
        #expect(after.starts(with: [0xEF, 0xBB, 0xBF]))
        #expect(try status("a-2", in: path) == "in_progress")
        #expect(try status("a-1", in: path) == "open")
        let newlines = after.indices.filter { after[$0] == 0x0A }
        #expect(!newlines.isEmpty && newlines.allSatisfy { after[$0 - 1] == 0x0D }, "every line ends in CRLF")
        #expect(after.suffix(2) == [0x0D, 0x0A])
    }

    @Test("release: in_progress goes back to open; any other status stays; an unknown id fails")
    func release() async throws {
        let folder = try Folder()
        let path = folder.path + "/issues.jsonl"
        let text = ["open", "in_progress", "closed", "blocked", "deferred"].map { "{\"id\":\"\($0)\",\"status\":\"\($0)\"}\r\n" }.joined()
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        for id in ["open", "closed", "blocked", "deferred"] {
            #expect(await IssuesFile.releaseIssue(id: id, path: path) == .succeeded(OrderedObject([("released", .bool(false))])))
        }
        #expect(bytes(path) == Array(text.utf8), "nothing released, nothing written")
        #expect(await IssuesFile.releaseIssue(id: "in_progress", path: path) == .succeeded(OrderedObject([("released", .bool(true))])))
        #expect(try status("in_progress", in: path) == "open")
        #expect(await IssuesFile.releaseIssue(id: "in_progress", path: path) == .succeeded(OrderedObject([("released", .bool(false))])))
        #expect(lines(bytes(path)).filter { !$0.contains("\"id\":\"in_progress\"") } == lines(Array(text.utf8)).filter { !$0.contains("\"id\":\"in_progress\"") })
        guard case .failed(let why) = await IssuesFile.releaseIssue(id: "zz", path: path) else {
            Issue.record("releasing an unknown id succeeded")
            return
        }
        #expect(why.contains("no issue zz"))
        // Claimed, released, claimed again: the round trip a rerun makes.
        #expect(await IssuesFile.claimIssue(id: "in_progress", path: path) == .succeeded(OrderedObject([("claimed", .bool(true)), ("status", .string("open")), ("assignee", .null)])))
    }

    @Test("a tracked CRLF issues file (eol=crlf) in a repository and its worktree: claim and close leave only the item's line changed, no lock file in the checkout")
    func gitRepository() async throws {
        let box = try Sandbox("version: 1\n")
        try shell("mkdir .beads && printf '*.jsonl text eol=crlf\\n' > .gitattributes", in: box.url)
        try Data(Self.fixture).write(to: box.url.appendingPathComponent(".beads/issues.jsonl"))
        try shell("git -c core.safecrlf=false add -A && git -c user.name=t -c user.email=t@e commit -qm issues && rm .beads/issues.jsonl && git checkout -- .beads/issues.jsonl", in: box.url)
        let path = box.path + "/.beads/issues.jsonl"
        #expect(bytes(path) == Self.crlfFixture, "git checked the file out with CRLF")

        #expect(await IssuesFile.claimIssue(id: "demo-2", path: path) == .succeeded(OrderedObject([("claimed", .bool(true)), ("status", .string("open")), ("assignee", .null)])))
        #expect(await IssuesFile.closeIssue(id: "demo-2", reason: "done", path: path) == .succeeded(OrderedObject([("closed", .bool(true))])))
        #expect(try shell("git status --porcelain --untracked-files=all", in: box.url) == " M .beads/issues.jsonl\n")
        #expect(try shell("git diff --numstat", in: box.url) == "1\t1\t.beads/issues.jsonl\n", "one line changed, no line-ending churn")
        let lock = IssuesFile.lockPath(for: path)
        #expect(lock.hasPrefix(box.url.resolvingSymlinksInPath().path + "/.git/amplify-issues-"), "\(lock)")
        #expect(FileManager.default.fileExists(atPath: lock))

        // A linked worktree's copy locks in the same common directory, under its own name.
        try shell("git worktree add -q ../\(box.url.lastPathComponent)-wt HEAD", in: box.url)
        let worktree = box.path + "-wt"
        defer { try? FileManager.default.removeItem(atPath: worktree) }
        let other = worktree + "/.beads/issues.jsonl"
        #expect(await IssuesFile.claimIssue(id: "demo-4", path: other) == .succeeded(OrderedObject([("claimed", .bool(true)), ("status", .string("open")), ("assignee", .null)])))
        #expect(try shell("git status --porcelain --untracked-files=all", in: URL(fileURLWithPath: worktree)) == " M .beads/issues.jsonl\n")
        #expect(IssuesFile.lockPath(for: other).hasPrefix(box.url.resolvingSymlinksInPath().path + "/.git/amplify-issues-"))
        #expect(IssuesFile.lockPath(for: other) != lock)
        // The same file by another path (a relative one, through a symlink) takes the same lock.
        try FileManager.default.createSymbolicLink(atPath: box.path + "-link", withDestinationPath: box.path)
        defer { try? FileManager.default.removeItem(atPath: box.path + "-link") }
        #expect(IssuesFile.lockPath(for: box.path + "-link/.beads/issues.jsonl") == lock)
    }

    @Test("the lock is never opened through a symbolic link")
    func lockSymlink() async throws {
        let folder = try Folder()
        let path = folder.path + "/issues.jsonl"
        try "{\"id\":\"a-1\",\"status\":\"open\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(IssuesFile.lockPath(for: path) == path + ".amplify-lock", "no repository: beside the file")
        try FileManager.default.createSymbolicLink(atPath: path + ".amplify-lock", withDestinationPath: folder.path + "/elsewhere")
        guard case .failed(let why) = await IssuesFile.claimIssue(id: "a-1", path: path) else {
            Issue.record("claimed through a symlinked lock")
            return
        }
        #expect(why.contains("lock"), "\(why)")
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/elsewhere"))
    }

    @Test("the file keeps its permissions")
    func permissions() async throws {
        let folder = try Folder()
        let path = folder.path + "/issues.jsonl"
        try "{\"id\":\"a-1\",\"status\":\"open\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        _ = await IssuesFile.claimIssue(id: "a-1", path: path)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
    }
}
