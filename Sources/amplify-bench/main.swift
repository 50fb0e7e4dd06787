import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

// The state machine and the journal at scale, with executors that succeed at once: how the cost
// of a run grows with its size. Prints, for each size, the events, the time per event, the time
// to replay the journal (what a resume does before its first new action), the time to build
// `status`'s report, and the peak memory.
//
//   swift run -c release amplify-bench [ITEMS...]     (default: 1000 10000 100000)

func seconds(_ body: () throws -> Void) rethrows -> Double {
    var a = timespec(), b = timespec()
    clock_gettime(CLOCK_MONOTONIC, &a)
    try body()
    clock_gettime(CLOCK_MONOTONIC, &b)
    return Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) / 1e9
}

func peakMemoryMiB() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}

let sizes = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let text = """
version: 1
stages:
  list: {run: list, outputs: [n]}
  one: {for-each: "${{ stages.list.outputs.n }}", run: one}
  two: {run: two}
  three: {run: three}
  report: {fan-in: true, run: report}
"""
guard let workflow = WorkflowChecker.check(text, file: "bench.yaml").workflow else { fatalError("the bench workflow does not check") }
print("items     events   run total   µs/event   replay    status    peak RSS")
for items in sizes.isEmpty ? [1000, 10000, 100000] : sizes {
    let path = "/tmp/amplify-bench-\(getpid())-\(items).jsonl"
    unlink(path)
    defer { unlink(path) }
    var machine = RunStateMachine(workflow: workflow, runId: "bench", maxProcesses: 4)
    let journal = try Journal(path: path, lastSeq: 0, size: 0)
    var now: Int64 = 1_700_000_000_000
    var running: [InstanceKey] = []
    let list = Value.list((0..<items).map { .int($0) })
    let total = try seconds {
        while machine.outcome == nil {
            now += 1
            let decided = machine.decide(now: now)
            try journal.append(decided, at: now, sync: false)
            running += decided.compactMap { if case .instanceStarted(let k, _, _) = $0 { return k } else { return nil } }
            // Everything running succeeds, in one batch (group commit), as a busy runner sees it.
            let done = running.map { key -> RunEvent in
                .instanceSucceeded(key, outputs: key.stage == "list" ? OrderedObject([("n", list)]) : OrderedObject())
            }
            running.removeAll()
            try journal.append(done, at: now, sync: false)
            for e in done { machine.apply(e, at: now) }
        }
    }
    let events = machine.eventCount
    var replayed = RunStateMachine(workflow: workflow, runId: "bench", maxProcesses: 4)
    let replay = try seconds {
        for e in try Journal.read(path: path).entries { replayed.apply(e.event, at: e.at) }
        replayed.markAllPendingDirty()
        _ = replayed.decide(now: now)
    }
    var rows = 0
    let status = seconds { rows = RunReport(replayed, now: now).rows.count }
    precondition(rows == 3 * items + 2, "every instance is in the report")
    let pad = { (s: String, n: Int) in String(repeating: " ", count: max(0, n - s.count)) + s }
    print(pad("\(items)", 6), pad("\(events)", 10), pad(String(format2(total)) + " s", 11), pad(format2(total / Double(events) * 1e6), 9),
          pad(format2(replay) + " s", 9), pad(format2(status) + " s", 9), pad(format2(peakMemoryMiB()) + " MiB", 11))
}

func format2(_ x: Double) -> String {
    let r = (x * 100).rounded() / 100
    let s = String(r)
    guard let dot = s.firstIndex(of: ".") else { return s + ".00" }
    let decimals = s[s.index(after: dot)...].count
    return decimals >= 2 ? s : s + String(repeating: "0", count: 2 - decimals)
}
