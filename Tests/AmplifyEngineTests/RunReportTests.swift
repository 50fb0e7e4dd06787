import AmplifyEngine
import AmplifyWorkflow
import Testing

@Suite("Text from others, made visible")
struct VisibleTextTests {
    @Test("controls, DEL, C1, bidi controls and line separators become visible stand-ins", arguments: [
        ("a\nb", "a⏎b"),
        ("\u{1B}[2J", "␛[2J"),
        ("tab\there\r", "tab␉here␍"),
        ("\u{7F}\u{0}", "␡␀"),
        ("\u{85}\u{9B}31m", "<U+0085><U+009B>31m"),
        ("\u{202E}txt\u{2066}\u{2069}\u{200F}", "<U+202E>txt<U+2066><U+2069><U+200F>"),
        ("a\u{2028}b\u{2029}", "a<U+2028>b<U+2029>"),
        ("plain — ü 日本 e\u{301} 🙂", "plain — ü 日本 e\u{301} 🙂"),
    ])
    func visible(_ text: String, _ shown: String) {
        #expect(text.visible == shown)
    }
}

@Suite("The run report counts items")
struct RunReportTests {
    static let pipeline = """
    version: 1
    stages:
      ready: {uses: query-ready, with: {source: command, command: [x]}}
      dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {agent: [a], prompt: p}}
      approved: {uses: wait-approved, with: {resume: [a, "${{ answer }}"]}}
      merge: {uses: merge}
      close: {uses: close}
      cleanup: {uses: cleanup, if: "${{ always() }}"}
    """

    @Test("a rejected item is rejected at approved though cleanup ran after; a question waits for you")
    func outcomes() {
        var sim = Simulation(workflow(Self.pipeline))
        sim.step()
        sim.succeed(InstanceKey("ready"), [("items", .list(["m", "r", "q", "p"].map { .object(OrderedObject([("id", .string($0)), ("title", .string("T " + $0))])) }))])
        for _ in 0..<8 {
            for key in sim.step() {
                switch (key.stage, key.item) {
                case ("approved", 1): sim.feed(sim.machine.failure(key, reason: "rejected (state.json): no", now: sim.now, kind: .rejected))
                case ("approved", 2):
                    sim.feed(.note(key, kind: "question", fields: OrderedObject([("id", .string("q1")), ("question", .string("Which?")), ("session", .string("s-q"))])))
                case ("dispatch", 3): break
                default: sim.succeed(key)
                }
            }
        }
        let report = RunReport(sim.machine, now: sim.now)
        let byItem = Dictionary(uniqueKeysWithValues: report.items.map { ($0.item, $0) })
        #expect(byItem["m"]?.outcome == "merged")
        #expect(byItem["r"]?.outcome == "rejected" && byItem["r"]?.stage == "approved")
        #expect(sim.status("cleanup", 1) == "succeeded", "cleanup ran after the rejection")
        #expect(byItem["q"]?.outcome == "waiting for you" && byItem["q"]?.detail?.contains("Which?") == true)
        #expect(byItem["p"]?.outcome == "running")
        let answered = RunReport(sim.machine, now: sim.now) { _ in RunReport.SessionState(answered: ["q1"], agentExited: false) }
        #expect(answered.items.first { $0.item == "q" }?.outcome == "running", "an answered question waits for nobody")
        #expect(RunReport.countsPhrase(items: report.itemCounts, instances: report.counts, hasItems: true) == "1 merged · 1 rejected · 1 running · 1 waiting for you")
        #expect(RunReport.itemCounts(sim.machine).map { "\($0.1) \($0.0)" } == report.itemCounts.map { "\($0.1) \($0.0)" })
    }
}
