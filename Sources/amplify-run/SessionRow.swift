import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import FoundationEssentials

/// A session of a run as `status` shows it: its agent, its cost, the questions still unanswered.
struct SessionRow {
    var id: String
    var item: String
    var agent: String
    var cost: Double?
    var pending: [OrderedObject]

    static func all(_ machine: RunStateMachine, stateDirectory: String) -> [SessionRow] {
        var rows: [SessionRow] = []
        // The wait of each item, found once (not a scan of every instance per session).
        let all = machine.allInstances
        var waits: [Int: [(key: InstanceKey, instance: RunStateMachine.Instance)]] = [:]
        for (k, i) in all where k.item != nil && machine.stage(of: k)?.kind == .waitApproved { waits[k.item!, default: []].append((k, i)) }
        for (key, inst) in all where machine.stage(of: key)?.kind == .dispatch {
            guard case .string(let sid)? = inst.outputs["session"] else { continue }
            let files = SessionFiles(stateDirectory: stateDirectory, id: sid)
            let record = files.readRecord()
            var agent = "not known"
            if let pid = record?.pid, let start = record?.startTime {
                agent = Processes.isAlive(pid: pid, startTime: start) ? "running (pid \(pid))" : "exited"
            } else if !FileManager.default.fileExists(atPath: files.directory) {
                agent = "archived"
            }
            var cost: Double?
            var pending: [OrderedObject] = []
            let answers = files.answers()
            for (k, i) in waits[key.item ?? -1] ?? [] {
                if let c = RunReport.number(i.outputs["cost"]) ?? (machine.notes[k] ?? []).last(where: { $0.kind == "usage" }).flatMap({ RunReport.number($0.fields["cost"]) }) { cost = c }
                guard !i.status.isEnded else { continue }
                for note in machine.notes[k] ?? [] where note.kind == "question" {
                    if let qid = note.fields["id"]?.renderedText, answers[qid] == nil { pending.append(note.fields) }
                }
            }
            rows.append(SessionRow(id: sid, item: RunStateMachine.itemName(machine.item(for: key), index: key.item ?? 0), agent: agent, cost: cost, pending: pending))
        }
        return rows
    }
}
