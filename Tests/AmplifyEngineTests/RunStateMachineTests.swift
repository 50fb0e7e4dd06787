import AmplifyEngine
import AmplifyTestSupport
import AmplifyWorkflow
import Testing

@Suite("Run state machine")
struct RunStateMachineTests {
    @Test("a chain runs one stage after the other and finishes succeeded")
    func chain() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {run: x}, b: {run: y}, c: {run: z}}"))
        #expect(sim.step() == [InstanceKey("a")])
        #expect(sim.step().isEmpty, "nothing new until a ends")
        sim.succeed(InstanceKey("a"))
        #expect(sim.step() == [InstanceKey("b")])
        sim.succeed(InstanceKey("b"))
        #expect(sim.step() == [InstanceKey("c")])
        sim.succeed(InstanceKey("c"))
        sim.step()
        #expect(sim.machine.outcome == .succeeded)
    }

    @Test("for-each expands into per-item pipelines that wait only for their own item")
    func perItemPipelines() {
        var sim = Simulation(workflow("""
        version: 1
        stages:
          build: {for-each: [x, y], run: make}
          test: {run: test}
          report: {fan-in: true, run: report}
        """))
        #expect(sim.step() == [InstanceKey("build", item: 0), InstanceKey("build", item: 1)])
        sim.succeed(InstanceKey("build", item: 1))
        #expect(sim.step() == [InstanceKey("test", item: 1)], "item 1 goes on without item 0")
        sim.succeed(InstanceKey("test", item: 1))
        #expect(sim.step().isEmpty, "fan-in waits for every item")
        sim.succeed(InstanceKey("build", item: 0))
        sim.step()
        sim.succeed(InstanceKey("test", item: 0))
        #expect(sim.step() == [InstanceKey("report")])
    }

    // A table: how a stage with each kind of `if` reacts to what it needs having failed.
    @Test("needs that failed skip dependants unless `if` says otherwise", arguments: [
        ("", "skipped"),
        ("if: ${{ always() }}", "running"),
        ("if: ${{ failure() }}", "running"),
        ("if: ${{ success() }}", "skipped"),
        ("if: \"true\"", "skipped"),
        ("if: ${{ cancelled() }}", "skipped"),
    ])
    func conditionsAfterFailure(_ condition: String, _ expected: String) {
        var sim = Simulation(workflow("version: 1\nstages:\n  a: {run: x}\n  b:\n    run: y\n    \(condition)\n"))
        sim.step()
        sim.fail(InstanceKey("a"))
        sim.step()
        #expect(sim.status("b") == expected)
    }

    @Test("a skip by `if` lets dependants run; a skip after failure passes the failure on")
    func skipPropagation() {
        var sim = Simulation(workflow("""
        version: 1
        stages:
          a: {run: x, if: false}
          b: {run: y}
          c: {run: z, needs: [], }
          d: {run: w, needs: c}
          e: {run: v, needs: d}
        """))
        let started = sim.step()
        #expect(sim.status("a") == "skipped")
        #expect(started.contains(InstanceKey("b")), "a skipped by its own `if` counts as success")
        sim.fail(InstanceKey("c"))
        sim.step()
        #expect(sim.status("d") == "skipped")
        #expect(sim.status("e") == "skipped", "the failure passes through d's skip")
    }

    @Test("retry: a failed attempt waits its backoff, then runs again; the last failure is final")
    func retry() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {run: x, retry: {attempts: 3, backoff: 10s}}}"))
        sim.step()
        sim.fail(InstanceKey("a"))
        #expect(sim.status("a") == "retrying")
        #expect(sim.machine.nextWakeup == sim.now + 10_000)
        #expect(sim.step().isEmpty, "not before the backoff")
        sim.now += 10_000
        #expect(sim.step() == [InstanceKey("a")])
        #expect(sim.machine.instance(InstanceKey("a"))?.attempts == 2)
        sim.fail(InstanceKey("a"))
        sim.now += 20_000
        #expect(sim.step() == [InstanceKey("a")], "the backoff doubled")
        sim.fail(InstanceKey("a"))
        #expect(sim.status("a") == "failed")
        sim.step()
        #expect(sim.machine.outcome == .failed)
    }

    @Test("timeout: the deadline is set at start and reported when it passes")
    func timeout() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {run: x, timeout: 90s}}"))
        sim.step()
        #expect(sim.machine.expired(now: sim.now + 89_999).isEmpty)
        #expect(sim.machine.expired(now: sim.now + 90_000) == [InstanceKey("a")])
    }

    @Test("continue-on-error: dependants run and the run does not fail")
    func continueOnError() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {run: x, continue-on-error: true}, b: {run: y}}"))
        sim.step()
        sim.fail(InstanceKey("a"))
        #expect(sim.step() == [InstanceKey("b")])
        sim.succeed(InstanceKey("b"))
        sim.step()
        #expect(sim.machine.outcome == .succeeded)
    }

    @Test("per-stage concurrency and max-processes hold instances back in order")
    func concurrency() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {for-each: [1, 2, 3, 4, 5], run: x, concurrency: 2}}"))
        #expect(sim.step() == [InstanceKey("a", item: 0), InstanceKey("a", item: 1)])
        sim.succeed(InstanceKey("a", item: 0))
        #expect(sim.step() == [InstanceKey("a", item: 2)])
        var capped = Simulation(workflow("version: 1\nsettings: {max-processes: 3}\nstages: {a: {for-each: [1, 2, 3, 4, 5], run: x}}"))
        #expect(capped.step().count == 3)
    }

    @Test("outputs flow to the same item's later stages and, as lists, to fan-in stages")
    func outputs() throws {
        var sim = Simulation(workflow("""
        version: 1
        stages:
          a: {for-each: [p, q], run: x, outputs: [v]}
          b: {run: ["echo", "${{ stages.a.outputs.v }}"]}
          c: {fan-in: true, needs: a, if: "${{ join(stages.a.outputs.v, '+') == 'P+Q' }}", run: y}
        """))
        sim.step()
        sim.succeed(InstanceKey("a", item: 0), [("v", .string("P"))])
        sim.succeed(InstanceKey("a", item: 1), [("v", .string("Q"))])
        sim.step()
        let context = sim.machine.expressionContext(for: InstanceKey("b", item: 1))
        #expect(try ExpressionEvaluator(context: context).render(Template.parse("${{ stages.a.outputs.v }}").template) == .string("Q"))
        #expect(try ExpressionEvaluator(context: context).render(Template.parse("${{ item }}").template) == .string("q"))
        #expect(sim.status("c") == "running", "the fan-in `if` saw the list of both items' outputs")
    }

    @Test("items arriving in batches get their own pipelines; fan-in waits until the list is closed")
    func itemsInBatches() {
        // A source whose list stays open (refill): more items come, and fan-in waits for them.
        var open = Simulation(workflow("""
        version: 1
        stages:
          list: {run: x}
          build: {for-each: [], run: make, needs: list}
          report: {fan-in: true, run: report}
        """))
        open.step()
        open.succeed(InstanceKey("list"))
        open.feed(.itemsAdded(stage: "build", items: [.string("a")], closed: false))
        #expect(open.step() == [InstanceKey("build", item: 0)])
        open.succeed(InstanceKey("build", item: 0))
        #expect(open.step().isEmpty, "the list is still open: report waits")
        open.feed(.itemsAdded(stage: "build", items: [.string("b")], closed: true))
        #expect(open.step() == [InstanceKey("build", item: 1)])
        open.succeed(InstanceKey("build", item: 1))
        #expect(open.step() == [InstanceKey("report")])
    }

    @Test("a per-item stage that also needs a once-stage starts when that stage ends last")
    func perItemNeedsOnceStage() {
        var sim = Simulation(workflow("""
        version: 1
        stages:
          setup: {run: prepare}
          build: {for-each: [x, y], needs: [], run: make}
          test: {needs: [build, setup], run: test}
        """))
        sim.step()
        sim.succeed(InstanceKey("build", item: 0))
        sim.succeed(InstanceKey("build", item: 1))
        #expect(sim.step().isEmpty, "test waits for setup")
        sim.succeed(InstanceKey("setup"))
        #expect(sim.step() == [InstanceKey("test", item: 0), InstanceKey("test", item: 1)])
    }

    @Test("a for-each that is not a list fails the stage and the run, not the runner")
    func badForEach() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {run: x, outputs: [n]}, b: {for-each: '${{ stages.a.outputs.n }}', run: y}}"))
        sim.step()
        sim.succeed(InstanceKey("a"), [("n", .string("not a list"))])
        sim.step()
        #expect(sim.machine.outcome == .failed)
        #expect(sim.machine.sources.values.contains { if case .failed = $0.state { return true } else { return false } })
    }

    @Test("an empty for-each list ends the run with nothing per item")
    func emptyList() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {for-each: [], run: x}, b: {run: y}}"))
        sim.step()
        #expect(sim.machine.outcome == .succeeded)
    }

    @Test("cancel: pending instances are cancelled, `always()` ones still run, the run ends cancelled")
    func cancel() {
        var sim = Simulation(workflow("version: 1\nstages: {a: {run: x}, b: {run: y}, c: {run: z, if: '${{ always() }}'}}"))
        sim.step()
        sim.feed(.cancelRequested(reason: "test"))
        sim.feed(.instanceCancelled(InstanceKey("a"), reason: "ended by cancel"))
        sim.step()
        #expect(sim.status("b") == "cancelled")
        #expect(sim.status("c") == "running")
        sim.succeed(InstanceKey("c"))
        sim.step()
        #expect(sim.machine.outcome == .cancelled)
        #expect(sim.machine.outcome?.exitCode == 3)
    }
}
