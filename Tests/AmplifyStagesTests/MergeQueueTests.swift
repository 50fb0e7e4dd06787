import AmplifyStages
import AmplifyTestSupport
import Foundation
import Testing

/// The merge queue (SPEC §10): batches verified once at the tip, bisected on failure, conflicts
/// taken out, a kill -9 in the middle, and pushing to a remote that someone else pushes to too.
@Suite("Merge queue: batches, bisection, pushing", .serialized)
struct MergeQueueTests {
    /// A run of `ids` (each approved with a file `<id>.txt` of its own, or `shared.txt` for those
    /// in `conflicting`), landed by a merge stage with `merge` as its `with:`. Every verification
    /// appends the items it saw to `verifications` (outside the repository).
    static func orchestra(_ ids: [String], conflicting: Set<String> = [], merge: String) throws -> Orchestra {
        let workflow = Orchestra.workflow(timeout: "60s", concurrency: ids.count, merge: merge, refill: false)
        return try Orchestra(ids.map { ($0, conflicting.contains($0) ? "conflict" : "approve", nil) }, workflow: workflow)
    }

    /// A `verify` that records what it saw and fails while `<bad>.txt` is in the tree.
    static func verify(failingWith bad: [String], sleep: String = "0") -> String {
        let test = bad.map { "test ! -e \($0).txt" }.joined(separator: " && ")
        return #"["ls *.txt | tr '\\n' ' ' >> ../../../verifications; echo >> ../../../verifications; sleep \#(sleep); \#(bad.isEmpty ? "true" : test)"]"#
    }

    func verifications(_ o: Orchestra) -> [String] {
        o.box.read("verifications").split(separator: "\n").map(String.init)
    }

    @Test("batch: 8 with one failing item: the seven others land once each, in approval order, the failing one never; at most 1 + 2·log2 8 verifications; its failure names the verification that convicted it")
    func bisection() async throws {
        let ids = (1...8).map { "q-\($0)" }
        let o = try MergeQueueTests.orchestra(ids, merge: "{batch: 8, batch-wait: 3s, verify: \(MergeQueueTests.verify(failingWith: ["q-6"]))}")
        let r = try await o.run()
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        for id in ids where id != "q-6" {
            #expect(try o.landed(id) == 1, "\(id)")
            #expect(o.status(of: id) == "closed", "\(id)")
        }
        #expect(try o.landed("q-6") == 0)
        #expect(o.status(of: "q-6") != "closed")
        let used = verifications(o)
        #expect(used.count <= 7 && used.count >= 2, "\(used)")
        // Never a verification that passed with q-6 in it, and main never had it.
        #expect(try !o.git("log main --format=%s").contains("q-6"))
        let status = try await o.run(["status", "--json"])
        #expect(status.stdout.contains("convicted by verification"), "\(status.stdout)")
        #expect(r.stdout.contains("convicted by verification") || r.stderr.contains("convicted by verification"), "\(r.stdout)")
    }

    @Test("batch: 8 with none failing: one verification, one fast-forward of main, every item's `batch` output the same")
    func oneVerification() async throws {
        let ids = (1...8).map { "n-\($0)" }
        let o = try MergeQueueTests.orchestra(ids, merge: "{batch: 8, batch-wait: 3s, verify: \(MergeQueueTests.verify(failingWith: []))}")
        // The agents end together, so all 8 reach the queue within its batch-wait on a loaded machine too.
        let r = try await o.run(extra: ["AGENT_BARRIER": "\(ids.count)"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(verifications(o).count == 1, "\(verifications(o))")
        // The run's lines say where each item is in the queue, in words.
        #expect(r.stdout.contains("in the merge queue") && r.stdout.contains("batch 1 of 8 items: verifying (verification 1)"), "\(r.stdout)")
        #expect(!r.stdout.contains("queued: "), "\(r.stdout)")
        let seen = try #require(verifications(o).first)
        for id in ids {
            #expect(try o.landed(id) == 1, "\(id)")
            #expect(seen.contains("\(id).txt"), "the one verification saw every item: \(seen)")
        }
        // One fast-forward: main's reflog has the initial commit and one landing.
        let reflog = try o.git("reflog show main --format=%gs")
        #expect(reflog.split(separator: "\n").count == 2, "\(reflog)")
        let status = try await o.run(["status", "--json"])
        #expect(status.stdout.contains(#""batch":1"#) || status.stdout.contains(#""batch": 1"#), "\(status.stdout)")
    }

    @Test("a conflict inside a batch is taken out as `conflict` and the chain rebuilt without it: the others land")
    func conflictTakenOut() async throws {
        let ids = ["c-1", "c-2", "c-3", "c-4"]
        let o = try MergeQueueTests.orchestra(ids, conflicting: ["c-2", "c-3"], merge: "{batch: 4, batch-wait: 3s, verify: \(MergeQueueTests.verify(failingWith: []))}")
        let r = try await o.run(extra: ["AGENT_BARRIER": "\(ids.count)"])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(try o.landed("c-1") == 1)
        #expect(try o.landed("c-4") == 1)
        // c-2 and c-3 both write shared.txt: the first lands, the second conflicts with it.
        #expect(try o.landed("c-2") + o.landed("c-3") == 1)
        #expect(r.stdout.contains("conflict"), "\(r.stdout)")
        #expect(verifications(o).count == 1, "\(verifications(o))")
    }

    @Test("kill -9 of the runner while the queue bisects, then resume: every good item lands once, the failing one never")
    func killWhileBisecting() async throws {
        let ids = (1...6).map { "k-\($0)" }
        let o = try MergeQueueTests.orchestra(ids, merge: "{batch: 6, batch-wait: 3s, verify: \(MergeQueueTests.verify(failingWith: ["k-2"], sleep: "0.4"))}")
        let runner = try startAmplify(["wf.yaml"], in: o.box, environment: o.environment)
        // Killed once the second verification has started: in the middle of the bisection.
        await eventually(seconds: 120) { verifications(o).count >= 2 }
        #expect(verifications(o).count >= 2)
        kill(runner.processIdentifier, SIGKILL)
        runner.waitUntilExit()
        let r = try await o.run()
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        for id in ids where id != "k-2" { #expect(try o.landed(id) == 1, "\(id)") }
        #expect(try o.landed("k-2") == 0)
        #expect(o.status(of: "k-2") != "closed")
        let journal = try #require(try o.box.journals().first)
        let text = try String(contentsOfFile: journal, encoding: .utf8)
        #expect(text.contains(#""kind":"convicted""#))
    }

    @Test("push: the base goes to a bare remote that someone else pushes to meanwhile: refused, fetched, rebuilt, verified again, pushed as a fast-forward; nothing of theirs rewritten")
    func pushWhenTheRemoteMoved() async throws {
        let ids = ["p-1", "p-2", "p-3"]
        // The first verification pushes someone else's commit to the remote, as a colleague would.
        let other = #"if [ ! -e ../../../pushed-once ]; then touch ../../../pushed-once; (cd ../../../colleague && echo theirs > theirs.txt && git add theirs.txt && git -c user.name=C -c user.email=c@e commit -qm 'their work' && git push -q origin main); fi"#
        let o = try MergeQueueTests.orchestra(ids, merge: #"{batch: 3, batch-wait: 3s, push: origin, verify: ["\#(other)", "ls *.txt | tr '\\n' ' ' >> ../../../verifications; echo >> ../../../verifications"]}"#)
        try shell("git init -q --bare -b main remote.git && git remote add origin \"$PWD/remote.git\" && git push -q origin main && git clone -q remote.git colleague && printf '/remote.git/\\n/colleague/\\n/pushed-once\\n/verifications\\n' >> .git/info/exclude", in: o.box.url)
        let r = try await o.run()
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let remote = try o.git("--git-dir=remote.git log main --format=%B")
        for id in ids { #expect(remote.components(separatedBy: "Amplify-Item: \(id)\n").count - 1 == 1, "\(id) on the remote once") }
        #expect(remote.contains("their work"))
        // The local base followed the remote, and the colleague's commit is underneath ours.
        #expect(try o.git("rev-parse main") == o.git("--git-dir=remote.git rev-parse main"))
        #expect(try o.git("log main --format=%s").contains("their work"))
        // Verified again after the remote moved: the last verification saw their file too.
        #expect(verifications(o).count >= 2, "\(verifications(o))")
        #expect(verifications(o).last?.contains("theirs.txt") == true, "\(verifications(o))")
    }

    @Test("push: a remote that does not exist fails the items before anything lands, naming the remote")
    func pushToNoRemote() async throws {
        let o = try MergeQueueTests.orchestra(["r-1"], merge: "{push: upstream}")
        let r = try await o.run()
        #expect(r.status == 1)
        #expect(r.stdout.contains("upstream") && r.stdout.contains("git remote add"), "\(r.stdout)")
        #expect(try o.landed("r-1") == 0)
    }
}

extension MergeQueueTests {
    @Test("speculate: the next batch is verified on top of the one verifying, at the same time; a failing item is still found alone and never lands")
    func speculation() async throws {
        let ids = (1...6).map { "s-\($0)" }
        let overlap = #"["echo begin >> ../../../overlap; sleep 0.5; echo end >> ../../../overlap; ls *.txt | tr '\\n' ' ' >> ../../../verifications; echo >> ../../../verifications; test ! -e s-5.txt"]"#
        let o = try MergeQueueTests.orchestra(ids, merge: "{batch: 2, batch-wait: 3s, speculate: true, verify-concurrency: 2, verify: \(overlap)}")
        let r = try await o.run()
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        for id in ids where id != "s-5" { #expect(try o.landed(id) == 1, "\(id)") }
        #expect(try o.landed("s-5") == 0)
        // Two verifications ran at once: two begins in a row.
        #expect(o.box.read("overlap").contains("begin\nbegin\n"), "\(o.box.read("overlap"))")
    }
}
