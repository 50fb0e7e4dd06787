import AmplifyEngine
@testable import AmplifyStages
import AmplifyTestSupport
import Foundation
import Testing

/// The named pieces of the world the stages act on, each on its own: the tracker a claim names,
/// git's common directory, a tool run to completion.
@Suite("the world's pieces: Tracker, Git, CommandRunner")
struct WorldPiecesTests {
    /// Two runs of one user: a claim is the claiming run's, and no other run's — with bd (whose
    /// `--claim` by the same actor again is a no-op success, so the run claims as itself) and
    /// with an issues file (the run is written as the assignee).
    @Test("a run's claim is its own: another run is refused, the same run may claim again after a crash", arguments: ["bd", "file"])
    func claimsAreTheRunsOwn(_ kind: String) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("claims-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("bin"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.path + "/issues.jsonl"
        try #"{"id":"c-1","title":"C","status":"open"}"#.appending("\n").write(toFile: db, atomically: true, encoding: .utf8)
        let fakeBd = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fake-bd")
        try FileManager.default.copyItem(at: fakeBd, to: dir.appendingPathComponent("bin/bd"))
        let env = ["PATH": dir.path + "/bin:/usr/bin:/bin", "BD_DB": db, "USER": "same-person"]
        let tracker: Tracker = kind == "bd" ? .bd : .file(path: db, given: "issues.jsonl")
        let claims = Claims(stateDirectory: dir.path + "/state")
        try await tracker.claim("c-1", run: "run-1", claims: claims, repository: dir.path, environment: env)
        await #expect(throws: StageError.self, "another run of the same user is refused") {
            try await tracker.claim("c-1", run: "run-2", claims: claims, repository: dir.path, environment: env)
        }
        try await tracker.claim("c-1", run: "run-1", claims: claims, repository: dir.path, environment: env)
        #expect(claims.all().map(\.run) == ["run-1"], "the refused run's announcement is withdrawn")
    }

    @Test("a claim on record names its tracker, or says why amplify-run cannot change it")
    func trackerOfClaim() async throws {
        #expect(try Tracker.of(Claims.Entry(item: "a-1", run: "r", source: "bd", path: nil)).get() == .bd)
        #expect(try Tracker.of(Claims.Entry(item: "a-1", run: "r", source: "file", path: "/x/issues.jsonl")).get() == .file(path: "/x/issues.jsonl", given: "/x/issues.jsonl"))
        guard case .failure(let noPath) = Tracker.of(Claims.Entry(item: "a-1", run: "r", source: "file", path: nil)),
              case .failure(let other) = await Tracker.release("a-1", claim: Claims.Entry(item: "a-1", run: "r", source: "jira", path: nil), repository: "/", environment: [:]) else {
            Issue.record("a claim without a file, or in an unknown tracker, was accepted")
            return
        }
        #expect(noPath.message == "the claim of run r names no issues file")
        #expect(other.message == "run r claimed it in a `jira` tracker, which amplify-run cannot change")
        #expect(Tracker.bd.unshownItemsStayClaimed && !Tracker.file(path: "/x", given: "x").unshownItemsStayClaimed)
    }

    @Test("the common git directory, found without git, is the one git names: checkout, subfolder, linked worktree; none outside")
    func commonDirectory() throws {
        let box = try Sandbox("version: 1\n")
        try shell("mkdir -p sub/deeper && git -c user.name=t -c user.email=t@e commit -q --allow-empty -m base && git worktree add -q ../\(box.url.lastPathComponent)-wt", in: box.url)
        let worktree = box.path + "-wt"
        defer { try? FileManager.default.removeItem(atPath: worktree) }
        let expected = box.url.resolvingSymlinksInPath().path + "/.git"
        for directory in [box.path, box.path + "/sub/deeper", worktree] {
            let named = try shell("git rev-parse --path-format=absolute --git-common-dir", in: URL(fileURLWithPath: directory)).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(URL(fileURLWithPath: named).resolvingSymlinksInPath().path == expected, "git: \(named)")
            #expect(Git.commonDirectory(containing: directory) == expected, "from \(directory)")
        }
        #expect(Git(box.path, environment: [:]).commonDirectory() == expected)
        #expect(Git.commonDirectory(containing: "/proc") == nil)
    }

    @Test("a tool runs to completion: what it printed, how it ended, the end of what it said on failure; a missing program is said")
    func toolRun() async {
        let ok = await CommandRunner.run(["/bin/sh", "-c", "echo out; echo err >&2"], in: "/", environment: ["PATH": "/usr/bin:/bin"])
        #expect(ok.succeeded && ok.stdout == "out\n" && ok.stderr == "err\n" && ok.spawnError == nil)
        let failed = await CommandRunner.run(["/bin/sh", "-c", "echo one >&2; echo two >&2; exit 3"], in: "/", environment: [:])
        #expect(failed.termination == .exited(3))
        #expect(failed.failure(["sh", "x"]) == "`sh x` \(ChildProcess.Termination.exited(3)): one | two")
        let missing = await CommandRunner.run(["amplify-no-such-program"], in: "/", environment: ["PATH": "/nonexistent"])
        #expect(!missing.succeeded && missing.spawnError != nil && missing.termination == .exited(127))
    }
}
