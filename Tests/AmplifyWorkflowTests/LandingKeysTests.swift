import AmplifyWorkflow
import Testing

/// The keys of SPEC §10 that go together, and the concurrency a landing merge gets.
@Suite("merge: the landing keys")
struct LandingKeysTests {
    static func workflow(_ with: String, concurrency: String = "") -> String {
        """
        version: 1
        stages:
          ready: {uses: query-ready, with: {source: file, path: issues.jsonl}}
          dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {prompt: p}}
          merge: {uses: merge, \(concurrency)with: \(with)}
        """
    }

    @Test("a batch, a push or a pull request lifts merge's one-at-a-time limit (the queue lands one batch at a time); a plain merge keeps it")
    func concurrency() throws {
        for (with, limit) in [("{}", 1 as Int?), ("{batch: 4}", nil), ("{push: origin}", nil), ("{via: pull-request}", nil), ("{strategy: squash}", 1)] {
            let w = try #require(check(LandingKeysTests.workflow(with)).workflow, "\(with)")
            #expect(w.stage("merge")?.effectiveConcurrency == limit, "\(with)")
        }
    }

    @Test("keys that do not go together are errors at the stage, saying what to do")
    func refusals() {
        let cases: [(String, String, String)] = [
            ("{via: pull-request, batch: 4}", "", "`batch` does not go with `via: pull-request`"),
            ("{via: pull-request, push: origin}", "", "`push` does not go with `via: pull-request`"),
            ("{wait: opened}", "", "`wait` needs `via: pull-request`"),
            ("{auto-merge: true}", "", "`auto-merge` needs `via: pull-request`"),
            ("{speculate: true, batch: 4}", "", "give it `verify-concurrency: 2`"),
            ("{batch: 8}", "concurrency: 2, ", "`concurrency: 2` lets fewer items into the queue than `batch: 8`"),
            ("{batch: 0}", "", "batch"),
        ]
        for (with, concurrency, expected) in cases {
            let found = errors(LandingKeysTests.workflow(with, concurrency: concurrency))
            #expect(found.contains { $0.contains(expected) && $0.hasPrefix("5:") }, "\(with): \(found)")
        }
        #expect(errors(LandingKeysTests.workflow("{batch: 4, batch-wait: 30s, verify-concurrency: 2, speculate: true, push: origin, push-attempts: 5, verify: [make test]}")).isEmpty)
        #expect(errors(LandingKeysTests.workflow("{via: pull-request, wait: opened, auto-merge: true, remote: upstream, strategy: squash}")).isEmpty)
    }
}
