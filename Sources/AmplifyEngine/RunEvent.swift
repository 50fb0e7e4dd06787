#if canImport(Glibc)
import Glibc
#endif
import AmplifyWorkflow

/// One instance of a stage: the stage, and for per-item stages the item's index in its list.
public struct InstanceKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var stage: String
    public var item: Int?

    public init(_ stage: String, item: Int? = nil) {
        self.stage = stage
        self.item = item
    }

    public static func < (a: InstanceKey, b: InstanceKey) -> Bool {
        (a.item ?? -1, a.stage) < (b.item ?? -1, b.stage)
    }

    public var description: String { item.map { "\(stage)[\($0)]" } ?? stage }
}

/// How a run ended.
public enum RunOutcome: String, Sendable, Hashable {
    case succeeded, failed, cancelled

    /// The process exit code (README, "Exit codes").
    public var exitCode: Int32 {
        switch self {
        case .succeeded: return 0
        case .failed: return 1
        case .cancelled: return 3
        }
    }
}

/// How an attempt that did not succeed ended. Only `failed` is retried.
public enum FailureKind: String, Sendable, Hashable {
    case failed
    /// The session was rejected.
    case rejected
    /// The branch did not merge cleanly.
    case conflict
    case timedOut = "timed-out"
    /// The agent passed the item's budget (cost or turns).
    case overBudget = "over-budget"
    /// The item's pull request was closed without being merged.
    case prClosed = "pr-closed"

    /// As a person says it: `failed`, `rejected`, `conflict`, `timed out`, `over budget`.
    public var word: String {
        switch self {
        case .timedOut: return "timed out"
        case .overBudget: return "over budget"
        case .prClosed: return "pull request closed"
        default: return rawValue
        }
    }
}

/// An event of a run, one line of `journal.jsonl`. The run's state is the fold of its events.
public enum RunEvent: Sendable, Equatable {
    /// The first event: which workflow, with which variables.
    case runStarted(run: String, workflow: String, name: String, vars: OrderedObject)
    /// A runner process took the run (again, when `resumed`).
    case runnerStarted(pid: Int32, resumed: Bool)
    /// Items for a `for-each` stage's instances; `closed` = no more will come.
    case itemsAdded(stage: String, items: [Value], closed: Bool)
    /// A `for-each` stage that will have no instances: skipped, or its list could not be made.
    case expansionEnded(stage: String, failed: Bool, reason: String)
    /// Written before an instance's side effects start; `deadline` is when its attempt times out (ms since 1970).
    case instanceStarted(InstanceKey, attempt: Int, deadline: Int64?)
    /// The process an instance started: its group is ended on timeout, cancel, or a resumed re-run.
    case processStarted(InstanceKey, pid: Int32, startTime: UInt64)
    case instanceSucceeded(InstanceKey, outputs: OrderedObject)
    /// A failed attempt; with `retryAt`, another attempt follows at that time. `kind` says how
    /// an item ended when it is more than a failure: `rejected`, `conflict`, `timed-out`.
    case instanceFailed(InstanceKey, attempt: Int, reason: String, retryAt: Int64?, kind: FailureKind = .failed)
    case instanceSkipped(InstanceKey, reason: String, afterFailure: Bool)
    case instanceCancelled(InstanceKey, reason: String)
    case cancelRequested(reason: String)
    /// Something an instance reported while it ran (a session's question, a warning about a
    /// session file): shown, listed by `status`, and never reported twice.
    case note(InstanceKey, kind: String, fields: OrderedObject)
    /// A `refill: true` query asked again while pipelines run.
    case refillStarted(stage: String)
    /// Its answer: the items not seen before in this run (or why the query failed).
    case refilled(stage: String, items: [Value], error: String?)
    /// The runner stopped on a signal; the run is resumable.
    case interrupted(signal: Int32)
    case runFinished(RunOutcome)
    /// How a notification (`settings.notify`) went to target `target` (1-based): delivered, or
    /// why not after `attempts`. Written after the delivery, so a resumed runner does not send
    /// again what was delivered; it names the target by its number, never by its URL.
    case notified(id: String, event: String, target: Int, attempts: Int, error: String?)

    public var type: String {
        switch self {
        case .runStarted: return "run-started"
        case .runnerStarted: return "runner-started"
        case .itemsAdded: return "items-added"
        case .expansionEnded: return "expansion-ended"
        case .instanceStarted: return "instance-started"
        case .processStarted: return "process-started"
        case .instanceSucceeded: return "instance-succeeded"
        case .instanceFailed: return "instance-failed"
        case .instanceSkipped: return "instance-skipped"
        case .instanceCancelled: return "instance-cancelled"
        case .cancelRequested: return "cancel-requested"
        case .note: return "note"
        case .refillStarted: return "refill-started"
        case .refilled: return "refilled"
        case .interrupted: return "interrupted"
        case .runFinished: return "run-finished"
        case .notified: return "notified"
        }
    }

    /// Events announcing a side effect that is not safe to repeat must be on disk before it starts.
    public var needsSync: Bool {
        switch self {
        case .runStarted, .runFinished, .cancelRequested, .interrupted: return true
        case .runnerStarted, .itemsAdded, .expansionEnded, .instanceStarted, .processStarted, .instanceSucceeded, .instanceFailed,
             .instanceSkipped, .instanceCancelled, .note, .refillStarted, .refilled, .notified: return false
        }
    }

    /// The event's fields (without `seq`, `at` and `type`).
    public var fields: OrderedObject {
        var o = OrderedObject()
        func key(_ k: InstanceKey) {
            o["stage"] = .string(k.stage)
            if let i = k.item { o["item"] = .int(i) }
        }
        switch self {
        case .runStarted(let run, let workflow, let name, let vars):
            o["run"] = .string(run); o["workflow"] = .string(workflow); o["name"] = .string(name); o["vars"] = .object(vars)
        case .runnerStarted(let pid, let resumed):
            o["pid"] = .int(Int(pid)); o["resumed"] = .bool(resumed)
        case .itemsAdded(let stage, let items, let closed):
            o["stage"] = .string(stage); o["items"] = .list(items); o["closed"] = .bool(closed)
        case .expansionEnded(let stage, let failed, let reason):
            o["stage"] = .string(stage); o["failed"] = .bool(failed); o["reason"] = .string(reason)
        case .instanceStarted(let k, let attempt, let deadline):
            key(k); o["attempt"] = .int(attempt)
            if let deadline { o["deadline"] = .int(Int(deadline)) }
        case .processStarted(let k, let pid, let startTime):
            key(k); o["pid"] = .int(Int(pid)); o["start-time"] = .int(Int(startTime))
        case .instanceSucceeded(let k, let outputs):
            key(k); o["outputs"] = .object(outputs)
        case .instanceFailed(let k, let attempt, let reason, let retryAt, let kind):
            key(k); o["attempt"] = .int(attempt); o["reason"] = .string(reason)
            if let retryAt { o["retry-at"] = .int(Int(retryAt)) }
            if kind != .failed { o["kind"] = .string(kind.rawValue) }
        case .instanceSkipped(let k, let reason, let afterFailure):
            key(k); o["reason"] = .string(reason); o["after-failure"] = .bool(afterFailure)
        case .instanceCancelled(let k, let reason):
            key(k); o["reason"] = .string(reason)
        case .cancelRequested(let reason):
            o["reason"] = .string(reason)
        case .note(let k, let kind, let fields):
            key(k); o["kind"] = .string(kind); o["fields"] = .object(fields)
        case .refillStarted(let stage):
            o["stage"] = .string(stage)
        case .refilled(let stage, let items, let error):
            o["stage"] = .string(stage); o["items"] = .list(items)
            if let error { o["error"] = .string(error) }
        case .interrupted(let signal):
            o["signal"] = .int(Int(signal))
        case .runFinished(let outcome):
            o["outcome"] = .string(outcome.rawValue); o["exit-code"] = .int(Int(outcome.exitCode))
        case .notified(let id, let event, let target, let attempts, let error):
            o["id"] = .string(id); o["event"] = .string(event); o["target"] = .int(target)
            o["ok"] = .bool(error == nil); o["attempts"] = .int(attempts)
            if let error { o["error"] = .string(error) }
        }
        return o
    }

    /// The journal line for this event (without the newline).
    public func line(seq: Int, at: Int64) -> String {
        var o = OrderedObject()
        o["seq"] = .int(seq)
        o["at"] = .string(Timestamp.iso8601(milliseconds: at))
        o["type"] = .string(type)
        for (k, v) in fields { o[k] = v }
        return Value.object(o).json
    }

    /// An event read back from its JSON object; nil for an unknown type or missing fields.
    public init?(_ v: Value) {
        guard case .string(let type)? = v["type"] else { return nil }
        func str(_ k: String) -> String? { if case .string(let s)? = v[k] { return s }; return nil }
        func int(_ k: String) -> Int? { if case .int(let i)? = v[k] { return i }; return nil }
        func bool(_ k: String) -> Bool? { if case .bool(let b)? = v[k] { return b }; return nil }
        func obj(_ k: String) -> OrderedObject? { if case .object(let o)? = v[k] { return o }; return nil }
        var key: InstanceKey? { str("stage").map { InstanceKey($0, item: int("item")) } }
        switch type {
        case "run-started":
            guard let run = str("run"), let workflow = str("workflow"), let name = str("name") else { return nil }
            self = .runStarted(run: run, workflow: workflow, name: name, vars: obj("vars") ?? OrderedObject())
        case "runner-started":
            guard let pid = int("pid") else { return nil }
            self = .runnerStarted(pid: Int32(truncatingIfNeeded: pid), resumed: bool("resumed") ?? false)
        case "items-added":
            guard let stage = str("stage"), case .list(let items)? = v["items"] else { return nil }
            self = .itemsAdded(stage: stage, items: items, closed: bool("closed") ?? true)
        case "expansion-ended":
            guard let stage = str("stage") else { return nil }
            self = .expansionEnded(stage: stage, failed: bool("failed") ?? true, reason: str("reason") ?? "")
        case "instance-started":
            guard let key, let attempt = int("attempt") else { return nil }
            self = .instanceStarted(key, attempt: attempt, deadline: int("deadline").map(Int64.init))
        case "process-started":
            guard let key, let pid = int("pid") else { return nil }
            self = .processStarted(key, pid: Int32(truncatingIfNeeded: pid), startTime: UInt64(max(0, int("start-time") ?? 0)))
        case "instance-succeeded":
            guard let key else { return nil }
            self = .instanceSucceeded(key, outputs: obj("outputs") ?? OrderedObject())
        case "instance-failed":
            guard let key else { return nil }
            self = .instanceFailed(key, attempt: int("attempt") ?? 1, reason: str("reason") ?? "", retryAt: int("retry-at").map(Int64.init),
                                   kind: str("kind").flatMap(FailureKind.init(rawValue:)) ?? .failed)
        case "instance-skipped":
            guard let key else { return nil }
            self = .instanceSkipped(key, reason: str("reason") ?? "", afterFailure: bool("after-failure") ?? false)
        case "instance-cancelled":
            guard let key else { return nil }
            self = .instanceCancelled(key, reason: str("reason") ?? "")
        case "cancel-requested":
            self = .cancelRequested(reason: str("reason") ?? "")
        case "note":
            guard let key, let kind = str("kind") else { return nil }
            self = .note(key, kind: kind, fields: obj("fields") ?? OrderedObject())
        case "refill-started":
            guard let stage = str("stage") else { return nil }
            self = .refillStarted(stage: stage)
        case "refilled":
            guard let stage = str("stage"), case .list(let items)? = v["items"] else { return nil }
            self = .refilled(stage: stage, items: items, error: str("error"))
        case "interrupted":
            self = .interrupted(signal: Int32(truncatingIfNeeded: int("signal") ?? 0))
        case "run-finished":
            guard let outcome = str("outcome").flatMap(RunOutcome.init(rawValue:)) else { return nil }
            self = .runFinished(outcome)
        case "notified":
            guard let id = str("id"), let target = int("target") else { return nil }
            let error = bool("ok") == true ? nil : str("error") ?? "not delivered"
            self = .notified(id: id, event: str("event") ?? "", target: target, attempts: int("attempts") ?? 1, error: error)
        default:
            return nil
        }
    }
}

/// UTC timestamps without Foundation (the journal writes one per event).
public enum Timestamp {
    /// `14:05` on this machine's clock, with the date (`Dec 2 14:05`) when not within the next 24 hours.
    public static func localClock(milliseconds: Int64, now: Int64) -> String {
        var t = time_t(milliseconds / 1000)
        var tm = tm()
        localtime_r(&t, &tm)
        let clock = pad(Int(tm.tm_hour), 2) + ":" + pad(Int(tm.tm_min), 2)
        guard milliseconds - now >= 86_400_000 else { return clock }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(months[Int(tm.tm_mon)]) \(tm.tm_mday) " + clock
    }

    /// `2026-11-24T18:05:12.345Z`
    public static func iso8601(milliseconds: Int64) -> String {
        let (secs, ms) = (milliseconds / 1000, milliseconds % 1000)
        let (date, time) = civil(secs)
        return "\(date)T\(time).\(pad(Int(ms), 3))Z"
    }

    /// `20261124T180512Z`, sortable, for run ids and worktree names.
    public static func compact(milliseconds: Int64) -> String {
        let (date, time) = civil(milliseconds / 1000)
        return date.replacingOccurrences("-") + "T" + time.replacingOccurrences(":") + "Z"
    }

    private static func civil(_ secs: Int64) -> (String, String) {
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = secs - days * 86400
        // Howard Hinnant's days-to-civil.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let year = m <= 2 ? y + 1 : y
        return ("\(year)-\(pad(Int(m), 2))-\(pad(Int(d), 2))", "\(pad(Int(rem / 3600), 2)):\(pad(Int(rem % 3600 / 60), 2)):\(pad(Int(rem % 60), 2))")
    }

    private static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

extension String {
    func replacingOccurrences(_ c: Character) -> String { filter { $0 != c } }
}
