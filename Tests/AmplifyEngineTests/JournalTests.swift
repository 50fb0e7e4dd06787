import AmplifyEngine
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Synchronization
import Testing

@Suite("Journal")
struct JournalTests {
    func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString).jsonl").path
    }

    static let events: [RunEvent] = [
        .runStarted(run: "r1", workflow: "w.yaml", name: "w", vars: OrderedObject([("agent", .string("claude"))])),
        .runnerStarted(pid: 42, resumed: false),
        .itemsAdded(stage: "build", items: [.object(OrderedObject([("id", .string("a-1")), ("title", .string("quote \" and \n newline"))]))], closed: true),
        .instanceStarted(InstanceKey("build", item: 0), attempt: 1, deadline: 1_800_000_000_000),
        .processStarted(InstanceKey("build", item: 0), pid: 4242, startTime: 987_654),
        .instanceFailed(InstanceKey("build", item: 0), attempt: 1, reason: "exit 1", retryAt: 1_700_000_010_000),
        .instanceSucceeded(InstanceKey("build", item: 0), outputs: OrderedObject([("exit-code", .int(0)), ("stdout", .string("ok"))])),
        .instanceSkipped(InstanceKey("test"), reason: "`if` is false", afterFailure: false),
        .instanceCancelled(InstanceKey("x"), reason: "cancel"),
        .expansionEnded(stage: "s", failed: true, reason: "not a list"),
        .cancelRequested(reason: "user"),
        .interrupted(signal: 2),
        .runFinished(.failed),
    ]

    @Test("every event survives a write and a read, with seq and time")
    func roundTrip() throws {
        let path = tempPath()
        defer { unlink(path) }
        let journal = try Journal(path: path, lastSeq: 0, size: 0)
        try journal.append(Array(Self.events.prefix(5)), at: 1_700_000_000_123, sync: true)
        try journal.append(Array(Self.events.dropFirst(5)), at: 1_700_000_000_456, sync: false)
        let read = try Journal.read(path: path)
        #expect(read.entries.map(\.event) == Self.events)
        #expect(read.entries.map(\.seq) == Array(1...Self.events.count))
        #expect(read.entries.first?.at == 1_700_000_000_123)
        #expect(read.entries.last?.at == 1_700_000_000_456)
        #expect(!read.tornTail)
        let first = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("{\"seq\":1,\"at\":\"2023-11-14T22:13:20.123Z\",\"type\":\"run-started\""))
    }

    @Test("a torn last line, even the only one, is left out and can be cut off")
    func tornTail() throws {
        for prefix in ["", "{\"seq\":1,\"at\":\"2023-11-14T22:13:20.123Z\",\"type\":\"runner-started\",\"pid\":1,\"resumed\":false}\n"] {
            let path = tempPath()
            defer { unlink(path) }
            try (prefix + "{\"seq\":2,\"at\":\"2023-11-").write(toFile: path, atomically: true, encoding: .utf8)
            let read = try Journal.read(path: path)
            #expect(read.tornTail)
            #expect(read.validSize == prefix.utf8.count)
            try Journal.truncate(path: path, to: read.validSize)
            #expect(try String(contentsOfFile: path, encoding: .utf8) == prefix)
        }
    }

    @Test("garbage in the middle is an error naming its line", arguments: [
        ("not json at all", "line2", "not a JSON event"),
        ("{\"seq\":2,\"at\":\"2023-11-14T22:13:20.123Z\",\"type\":\"no-such-event\"}", "line2", "unknown or incomplete event"),
        ("{\"seq\":5,\"at\":\"2023-11-14T22:13:20.123Z\",\"type\":\"interrupted\",\"signal\":2}", "line2", "out of order"),
    ])
    func garbage(_ bad: String, _ where_: String, _ words: String) throws {
        let path = tempPath()
        defer { unlink(path) }
        let good = "{\"seq\":1,\"at\":\"2023-11-14T22:13:20.123Z\",\"type\":\"runner-started\",\"pid\":1,\"resumed\":false}\n"
        let third = "{\"seq\":3,\"at\":\"2023-11-14T22:13:20.123Z\",\"type\":\"interrupted\",\"signal\":2}\n"
        try (good + bad + "\n" + third).write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try Journal.read(path: path)
            Issue.record("read a damaged journal")
        } catch {
            #expect(error.message.contains("\(path):2: error:"), "\(error.message)")
            #expect(error.message.contains(words), "\(error.message)")
        }
    }

    @Test("one file written atomically by many threads at once: every write succeeds, the file is one of them whole, no temp file is left")
    func atomicWritesAtOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/job.sh"
        let texts = (0..<8).map { String(repeating: "writer \($0)\n", count: 2000) }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            do { try RunStore.writeAtomically(Array(texts[i % 8].utf8), to: path) } catch { failures.withLock { $0.append("\(error)") } }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(3))")
        #expect(texts.contains(try String(contentsOfFile: path, encoding: .utf8)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["job.sh"])
    }

    @Test("timestamps round-trip", arguments: [Int64(0), 1_700_000_000_123, 951_782_400_000, 4_102_444_799_999])
    func timestamps(_ ms: Int64) {
        #expect(Timestamp.parse(Timestamp.iso8601(milliseconds: ms)) == ms)
    }
}

@Suite("Replaying journals")
struct ReplayTests {
    /// A deterministic pseudo-random generator, so a failing seed can be run again.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let workflowText = """
    version: 1
    stages:
      list: {run: x, outputs: [n]}
      build:
        for-each: [a, b, c, d]
        run: make
        retry: {attempts: 2, backoff: 1s}
        outputs: [v]
      test: {run: test, continue-on-error: true}
      ship: {run: ship, if: "${{ item != 'c' }}"}
      report: {fan-in: true, if: "${{ always() }}", run: report}
      after: {run: after}
    """

    @Test("replaying any prefix of a run's journal gives the state the live run had", arguments: Array(UInt64(1)...25))
    func prefixReplay(seed: UInt64) throws {
        var rng = Generator(state: seed)
        let w = workflow(Self.workflowText)
        var sim = Simulation(w)
        var snapshots: [String] = [snapshot(sim.machine)]
        var running: [InstanceKey] = []
        var steps = 0
        while sim.machine.outcome == nil && steps < 500 {
            steps += 1
            running += sim.step()
            snapshots += Array(repeating: "", count: sim.log.count + 1 - snapshots.count)
            snapshots[sim.log.count] = snapshot(sim.machine)
            guard !running.isEmpty else {
                sim.now += 1000
                continue
            }
            let k = running.remove(at: Int.random(in: 0..<running.count, using: &rng))
            sim.now += Int64.random(in: 1...2000, using: &rng)
            if Bool.random(using: &rng) || Int.random(in: 0..<4, using: &rng) == 0 {
                sim.succeed(k, [("v", .string("\(k)"))])
            } else {
                sim.fail(k)
            }
            snapshots += Array(repeating: "", count: sim.log.count + 1 - snapshots.count)
            snapshots[sim.log.count] = snapshot(sim.machine)
        }
        #expect(sim.machine.outcome != nil, "the generated run finished")

        // Through the journal's text, as a resumed runner reads it.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString).jsonl").path
        defer { unlink(path) }
        let journal = try Journal(path: path, lastSeq: 0, size: 0)
        for (e, at) in sim.log { try journal.append([e], at: at, sync: false) }
        let entries = try Journal.read(path: path).entries
        #expect(entries.count == sim.log.count)

        for n in 0...entries.count where !snapshots[n].isEmpty {
            var replayed = RunStateMachine(workflow: w, runId: "test-run", maxProcesses: 100)
            for e in entries.prefix(n) { replayed.apply(e.event, at: e.at) }
            #expect(snapshot(replayed) == snapshots[n], "seed \(seed), prefix \(n)")
        }
    }
}
