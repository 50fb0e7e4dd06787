import AmplifyEngine
import AmplifyWorkflow
import Testing

@Suite("Refill and live sessions in the machine")
struct RefillTests {
    static let yaml = """
    version: 1
    settings: {concurrency: 2}
    stages:
      ready: {uses: query-ready, with: {source: file, path: x, refill: true, refill-interval: 10s, max-items: 4}}
      dispatch: {uses: dispatch, for-each: "${{ stages.ready.outputs.items }}", with: {prompt: p}}
      approved: {uses: wait-approved}
    """

    static func item(_ id: String) -> Value { .object(OrderedObject([("id", .string(id))])) }

    /// Every event a step produced, of one kind.
    static func refillsStarted(_ sim: Simulation, from: Int) -> Int {
        sim.log[from...].filter { if case .refillStarted = $0.0 { return true } else { return false } }.count
    }

    @Test("a pipeline's end asks again; new items get pipelines; a dry query after the last pipeline closes the list and ends the run")
    func refill() {
        var sim = Simulation(workflow(Self.yaml))
        #expect(sim.step() == [InstanceKey("ready")])
        sim.succeed(InstanceKey("ready"), [("items", .list([Self.item("a")])), ("count", .int(1))])
        #expect(sim.step() == [InstanceKey("dispatch", item: 0)])
        #expect(sim.machine.sources.values.first?.closed == false, "the list stays open while pipelines run")
        sim.succeed(InstanceKey("dispatch", item: 0))
        #expect(sim.step() == [InstanceKey("approved", item: 0)])
        var mark = sim.log.count
        sim.succeed(InstanceKey("approved", item: 0))
        sim.step()
        #expect(Self.refillsStarted(sim, from: mark) == 1, "a's pipeline ended: ask again")
        // The answer repeats a (seen) and brings b.
        sim.feed(.refilled(stage: "ready", items: [Self.item("a"), Self.item("b")], error: nil))
        #expect(sim.step() == [InstanceKey("dispatch", item: 1)])
        #expect(sim.machine.items(of: "dispatch").count == 2)
        sim.succeed(InstanceKey("dispatch", item: 1))
        sim.step()
        mark = sim.log.count
        sim.succeed(InstanceKey("approved", item: 1))
        sim.step()
        #expect(Self.refillsStarted(sim, from: mark) == 1)
        #expect(sim.machine.outcome == nil, "not over until a query made after the last pipeline ended is dry")
        sim.feed(.refilled(stage: "ready", items: [Self.item("b")], error: nil))
        sim.step()
        #expect(sim.machine.outcome == .succeeded)
    }

    @Test("max-items bounds what one run takes, over every query")
    func maxItems() {
        var sim = Simulation(workflow(Self.yaml))
        sim.step()
        sim.succeed(InstanceKey("ready"), [("items", .list([Self.item("a"), Self.item("b"), Self.item("c")]))])
        sim.step()
        sim.feed(.refilled(stage: "ready", items: ["d", "e", "f"].map(Self.item), error: nil))
        sim.step()
        #expect(sim.machine.items(of: "dispatch").map { $0["id"]?.renderedText ?? "" } == ["a", "b", "c", "d"])
    }

    @Test("settings.concurrency bounds live sessions; a session ends with its wait; slots are reused")
    func liveSessions() {
        var sim = Simulation(workflow(Self.yaml))
        sim.step()
        sim.succeed(InstanceKey("ready"), [("items", .list(["a", "b", "c"].map(Self.item)))])
        #expect(sim.step() == [InstanceKey("dispatch", item: 0), InstanceKey("dispatch", item: 1)], "two live sessions at most")
        #expect(Set(sim.machine.slots.values) == [0, 1])
        sim.succeed(InstanceKey("dispatch", item: 0))
        #expect(sim.step() == [InstanceKey("approved", item: 0)], "a dispatched agent still holds its slot")
        sim.feed(.instanceFailed(InstanceKey("approved", item: 0), attempt: 1, reason: "rejected", retryAt: nil, kind: .rejected))
        #expect(sim.step() == [InstanceKey("dispatch", item: 2)])
        #expect(sim.machine.slots[InstanceKey("dispatch", item: 2)] == 0, "the freed slot is reused")
        #expect(sim.machine.instance(InstanceKey("approved", item: 0))?.failureKind == .rejected)
    }

    @Test("a refill in flight when the runner died is asked again after replay")
    func refillInFlightSurvivesReplay() {
        var sim = Simulation(workflow(Self.yaml))
        sim.step()
        sim.succeed(InstanceKey("ready"), [("items", .list([Self.item("a")]))])
        sim.step(); sim.succeed(InstanceKey("dispatch", item: 0)); sim.step(); sim.succeed(InstanceKey("approved", item: 0)); sim.step()
        var replayed = RunStateMachine(workflow: workflow(Self.yaml), runId: "test-run", maxProcesses: 100)
        for (e, at) in sim.log { replayed.apply(e, at: at) }
        #expect(replayed.refillsInFlight == ["ready"])
        #expect(snapshot(replayed) == snapshot(sim.machine))
    }
}
