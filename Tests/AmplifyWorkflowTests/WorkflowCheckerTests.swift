import AmplifyWorkflow
import Foundation
import Testing

@Suite("Compiling workflows")
struct WorkflowCheckerTests {
    @Test("the default workflow compiles to one pipeline per item, with the README's defaults")
    func defaultWorkflow() throws {
        let result = check(try Repository.read("workflows/default.yaml"), file: "workflows/default.yaml")
        let w = try #require(result.workflow, "\(result.diagnostics)")
        #expect(w.name == "default")
        #expect(w.stages.map(\.id) == ["ready", "dispatch", "approved", "merge", "close", "cleanup"])
        #expect(w.stages.map(\.kind) == [.queryReady, .dispatch, .waitApproved, .merge, .close, .cleanup])
        #expect(w.stage("ready")?.isPerItem == false)
        for id in ["dispatch", "approved", "merge", "close", "cleanup"] {
            #expect(w.stage(id)?.itemSource == "dispatch", "\(id)")
        }
        #expect(w.stage("approved")?.needs == ["dispatch"], "needs defaults to the stage above")
        #expect(w.stage("approved")?.timeout == .seconds(4 * 3600))
        #expect(w.stage("merge")?.effectiveConcurrency == 1)
        #expect(w.stage("cleanup")?.condition?.expressionSource == "always()")
        #expect(w.settings == Settings())
        #expect(w.vars["agent"] == .string("claude"))
        #expect(w.stage("close")?.parameter("reason") == .literal(.string("Merged")))
        #expect(w.stage("merge")?.parameter("strategy") == .literal(.string("no-ff")))
    }

    @Test("the binary's embedded default workflow is workflows/default.yaml")
    func embeddedDefault() throws {
        #expect(EmbeddedWorkflows.defaultWorkflow == (try Repository.read("workflows/default.yaml")))
    }

    @Test("needs: omitted = the stage above, [] = none, a string = one")
    func needsDefaults() throws {
        let w = try #require(check("""
        version: 1
        stages:
          a: {run: echo a}
          b: {run: echo b}
          c: {run: echo c, needs: []}
          d: {run: echo d, needs: a}
          e: {run: echo e, needs: [b, d]}
        """).workflow)
        #expect(w.stages.map(\.needs) == [[], ["a"], [], ["a"], ["b", "d"]])
        let order = w.topologicalOrder
        #expect(order.firstIndex(of: "d")! < order.firstIndex(of: "e")!)
        #expect(order.firstIndex(of: "b")! < order.firstIndex(of: "e")!)
    }

    @Test("per-item stages follow their for-each; fan-in stages run once and see lists")
    func perItemAndFanIn() throws {
        let w = try #require(check("""
        version: 1
        stages:
          list: {run: "echo '[]'"}
          build:
            for-each: ${{ stages.list.outputs.stdout }}
            run: make
            outputs: [artifact]
          test: {run: make test}
          report:
            fan-in: true
            run: ["echo", "${{ join(stages.build.outputs.artifact, ',') }}"]
          after: {run: echo done}
        """).workflow)
        #expect(w.stage("list")?.itemSource == nil)
        #expect(w.stage("build")?.itemSource == "build")
        #expect(w.stage("test")?.itemSource == "build")
        #expect(w.stage("report")?.itemSource == nil)
        #expect(w.stage("report")?.fanIn == true)
        #expect(w.stage("after")?.itemSource == nil)
    }

    @Test("a shell `run:` and an argv `run:` compile to their command kinds")
    func commands() throws {
        let w = try #require(check("""
        version: 1
        vars: {name: world}
        stages:
          a: {run: "echo \\"hello ${{ vars.name }}\\""}
          b: {run: [echo, "${{ vars.name }}"]}
          c: {uses: run, with: {command: ls, working-directory: sub}}
        """).workflow)
        guard case .shell(let t)? = w.stage("a")?.command else { Issue.record("a is not a shell command"); return }
        #expect(t.expressions.count == 1)
        guard case .argv(let argv)? = w.stage("b")?.command else { Issue.record("b is not an argv"); return }
        #expect(argv.count == 2)
        #expect(w.stage("c")?.workingDirectory == Template(parts: [.text("sub")]))
    }

    @Test("retry, timeout, concurrency, env, continue-on-error and outputs are kept")
    func stageOptions() throws {
        let w = try #require(check("""
        version: 1
        stages:
          a:
            run: flaky
            retry: {attempts: 4, backoff: 2s, max-backoff: 1m}
            timeout: 1h30m
            concurrency: 3
            continue-on-error: true
            env: {MODE: fast, WHO: "${{ run.id }}"}
            outputs: [version, sha]
          b:
            run: ok
            retry: 2
        """).workflow)
        let a = try #require(w.stage("a"))
        #expect(a.retry == RetryPolicy(attempts: 4, backoff: .seconds(2), maxBackoff: .seconds(60)))
        #expect(a.timeout == .seconds(5400))
        #expect(a.concurrency == 3)
        #expect(a.continueOnError)
        #expect(a.env.map(\.key) == ["MODE", "WHO"])
        #expect(a.outputNames == ["exit-code", "stdout", "version", "sha"])
        #expect(w.stage("b")?.retry.attempts == 2)
        #expect(w.stage("b")?.outputNames == nil, "without `outputs:`, any key may be read")
    }

    @Test("a run stage without `outputs:` may be read for any key")
    func undeclaredOutputs() {
        #expect(errors("""
        version: 1
        stages:
          a: {run: echo}
          b: {run: ["echo", "${{ stages.a.outputs.anything }}"]}
        """).isEmpty)
    }

    @Test("expressions may name stages through indirect needs")
    func transitiveNeeds() {
        #expect(errors("""
        version: 1
        stages:
          a: {run: echo}
          b: {run: echo}
          c: {run: ["echo", "${{ stages.a.outputs.stdout }}"]}
        """).isEmpty)
    }

    @Test("bare `if` expressions and booleans are accepted")
    func conditions() throws {
        let w = try #require(check("""
        version: 1
        stages:
          a: {run: echo, if: "env.CI == 'true'"}
          b: {run: echo, if: false}
          c: {run: echo, if: "${{ failure() || cancelled() }}"}
        """).workflow)
        #expect(w.stage("a")?.condition?.expressionSource == "env.CI == 'true'")
        #expect(w.stage("b")?.condition != nil)
    }

    @Test("every problem is reported in one pass, in file order")
    func onePass() {
        let e = errors("""
        version: 3
        setings: {}
        stages:
          a: {uses: nope}
          b: {run: echo, timeout: soon}
          c: {run: echo, needs: [zz]}
        """)
        #expect(e.count == 5, "\(e)")
        #expect(e == e.sorted { $0.localizedStandardCompare($1) == .orderedAscending })
    }

    @Test("a typo in any key says what was meant", arguments: [
        ("verison: 1\nstages: {a: {run: x}}", "'version'"),
        ("version: 1\nsettings: {bse: main}\nstages: {a: {run: x}}", "'base'"),
        ("version: 1\nsettings: {worktree: w}\nstages: {a: {run: x}}", "'worktrees'"),
        ("version: 1\nsettings: {max-process: 2}\nstages: {a: {run: x}}", "'max-processes'"),
        ("version: 1\nstage: {a: {run: x}}", "'stages'"),
        ("version: 1\nstages: {a: {run: x, tiemout: 5s}}", "'timeout'"),
        ("version: 1\nstages: {a: {run: x, retyr: 2}}", "'retry'"),
        ("version: 1\nstages: {a: {run: x, continue-on-errors: true}}", "'continue-on-error'"),
        ("version: 1\nstages: {a: {run: x, fanin: true}}", "'fan-in'"),
        ("version: 1\nstages: {a: {run: x, output: [k]}}", "'outputs'"),
        ("version: 1\nstages: {a: {run: x, evn: {A: b}}}", "'env'"),
        ("version: 1\nstages: {a: {run: x, iff: true}}", "'if'"),
        ("version: 1\nstages: {a: {run: x, concurency: 2}}", "'concurrency'"),
        ("version: 1\nstages: {a: {use: merge}}", "'uses'"),
        ("version: 1\nstages: {a: {run: x, wiht: {}}}", "'with'"),
        ("version: 1\nstages: {a: {run: x, for_each: [1]}}", "'for-each'"),
        ("version: 1\nstages: {a: {run: x, retry: {attempt: 2}}}", "'attempts'"),
        ("version: 1\nstages: {a: {uses: query-ready, with: {sourc: bd}}}", "'source'"),
        ("version: 1\nstages: {a: {uses: query-ready, with: {exclude-types: [epic]}}}", "'exclude-type'"),
        ("version: 1\nstages: {a: {uses: query-ready, with: {max-item: 3}}}", "'max-items'"),
        ("version: 1\nstages: {a: {uses: query-ready, with: {source: bdd}}}", "'bd'"),
        ("version: 1\nstages: {a: {uses: dispach}}", "'dispatch'"),
        ("version: 1\nstages: {a: {uses: cleanp}}", "'cleanup'"),
        ("version: 1\nstages: {a: {uses: wait-approve}}", "'wait-approved'"),
    ])
    func typoSuggestions(_ yaml: String, _ meant: String) {
        let e = errors(yaml)
        #expect(e.contains { $0.contains("did you mean \(meant)") }, "\(e)")
    }

    @Test("settings.sparse takes directories inside the repository, one or a list; anything else is an error at its place", arguments: [
        ("[lib, app/web/]", nil),
        ("services", nil),
        ("[lib, ../secrets]", "3:38: settings.sparse takes directories inside the repository"),
        ("[/etc]", "3:33: settings.sparse takes directories inside the repository"),
        ("['src/*']", "3:33: settings.sparse takes directories, not patterns"),
        ("[-x]", "3:33: settings.sparse takes directories inside the repository"),
    ] as [(String, String?)])
    func sparse(_ value: String, _ expected: String?) throws {
        let e = errors("version: 1\nstages: {a: {run: x}}\nsettings: {base: main, sparse: \(value)}\n")
        if let expected {
            #expect(e.contains { $0.contains(expected) }, "\(e)")
        } else {
            #expect(e.isEmpty, "\(e)")
            let w = try #require(WorkflowChecker.check("version: 1\nstages: {a: {run: x}}\nsettings: {sparse: \(value)}\n", file: "wf.yaml").workflow)
            #expect(!w.settings.sparse.isEmpty && w.settings.sparse.allSatisfy { !$0.hasSuffix("/") })
        }
    }

    @Test("an expression's location points inside a block scalar at the offending name")
    func blockScalarLocation() throws {
        let d = check("""
        version: 1
        stages:
          a:
            run: |
              echo one
              echo ${{ vars.missing }}
        """).diagnostics
        #expect(d.first?.location == SourcePosition(line: 6, column: 21), "\(d)")
    }

    @Test("a valid workflow with warnings still compiles")
    func warningsOnly() throws {
        let result = check("""
        version: 1
        stages:
          a: {run: echo, fan-in: true}
        """)
        #expect(result.workflow != nil)
        #expect(result.diagnostics.map(\.severity) == [.warning])
    }
}
