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

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "write-run" {
    // amplify-bench write-run REPO ITEMS finished|unfinished: a real run of the bench workflow in
    // REPO's state directory, for timing `status` and resume as whole processes (bench/resume-status.sh).
    guard arguments.count == 4, let items = Int(arguments[2]) else { fatalError("usage: amplify-bench write-run REPO ITEMS finished|unfinished") }
    try writeRun(repo: arguments[1], items: items, finished: arguments[3] == "finished")
    exit(0)
}
let sizes = arguments.compactMap { Int($0) }
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
    let total = try seconds { try drive(&machine, journal: journal, now: &now, items: items) }
    let events = machine.eventCount
    var replayed = RunStateMachine(workflow: workflow, runId: "bench", maxProcesses: 4)
    let replay = try seconds {
        for e in try Journal.read(path: path).entries { replayed.apply(e.event, at: e.at) }
        _ = replayed.runnerStarted(pid: getpid(), resumed: true, now: now)
        _ = replayed.reconcileEnded(now: now)
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

/// Writes the journal a run of `items` items leaves: every instance succeeded, and with
/// `finished: false` the last stage (`report`, a fan-in) not started yet — so a resume's first new
/// action is to start it (its command writes the time it started to `first-action`).
func writeRun(repo: String, items: Int, finished: Bool) throws {
    let yaml = """
    version: 1
    stages:
      list: {run: list, outputs: [n]}
      one: {for-each: "${{ stages.list.outputs.n }}", run: "true"}
      two: {run: "true"}
      three: {run: "true"}
      report: {fan-in: true, run: "date +%s%N > first-action"}

    """
    guard let wf = WorkflowChecker.check(yaml, file: "bench.yaml").workflow else { fatalError("the workflow does not check") }
    let store = RunStore(root: repo + "/.amplify")
    let id = RunStore.newRunId(now: Processes.now())
    try store.create(run: id)
    try RunStore.writeAtomically(Array(yaml.utf8), to: store.workflowCopy(of: id))
    try RunStore.writeAtomically(Array(yaml.utf8), to: repo + "/bench.yaml")
    var machine = RunStateMachine(workflow: wf, runId: id, maxProcesses: 4)
    let journal = try Journal(path: store.journal(of: id), lastSeq: 0, size: 0)
    var now = Processes.now() - 3_600_000
    try journal.append([.runStarted(run: id, workflow: "bench.yaml", name: wf.name, vars: wf.vars), .runnerStarted(pid: 1, resumed: false)], at: now, sync: false)
    // Unfinished: stop before the report starts, so the run's next action is known.
    try drive(&machine, journal: journal, now: &now, items: items, stopBefore: finished ? nil : "report")
    print("\(id) \(machine.eventCount + 2)")
}

/// Runs the bench workflow to its end (or until `stopBefore` would start) with executors that
/// succeed at once: everything running succeeds in one batch (group commit), as a busy runner
/// sees it; `list` gives `items` items.
func drive(_ machine: inout RunStateMachine, journal: Journal, now: inout Int64, items: Int, stopBefore: String? = nil) throws {
    let list = Value.list((0..<items).map { .int($0) })
    while machine.outcome == nil {
        now += 1
        let decided = machine.tick(now: now).flatMap { action -> [RunEvent] in
            if case .persist(let events, _, _) = action { return events } else { return [] }
        }
        if let stopBefore, let i = decided.firstIndex(where: { if case .instanceStarted(let k, _, _) = $0 { return k.stage == stopBefore } else { return false } }) {
            try journal.append(Array(decided[..<i]), at: now, sync: false)
            return
        }
        try journal.append(decided, at: now, sync: false)
        let done = decided.compactMap { e -> RunEvent? in
            guard case .instanceStarted(let key, _, _) = e else { return nil }
            return .instanceSucceeded(key, outputs: key.stage == "list" ? OrderedObject([("n", list)]) : OrderedObject())
        }
        try journal.append(done, at: now, sync: false)
        for e in done { machine.apply(e, at: now) }
    }
}
