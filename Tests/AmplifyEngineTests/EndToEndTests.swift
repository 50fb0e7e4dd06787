import AmplifyEngine
import AmplifyTestSupport
import AmplifyWorkflow
import Foundation
import Testing

@Suite("Running workflows end to end")
struct EndToEndTests {
    @Test("outputs flow between stages, per item and into a fan-in stage; exit 0")
    func outputsAndFanIn() async throws {
        let box = try Sandbox("""
        version: 1
        vars: {greeting: hello}
        stages:
          list:
            uses: query-ready
            with:
              source: command
              command: ["sh", "-c", "echo '[{\\"id\\":\\"a-1\\",\\"title\\":\\"$(rm -rf /) first\\"},{\\"id\\":\\"a-2\\",\\"title\\":\\"`whoami` second\\"}]'"]
          build:
            for-each: ${{ stages.list.outputs.items }}
            outputs: [artifact]
            run: |
              echo "${{ vars.greeting }} ${{ item.title }}" > "out-${{ item.id }}.txt"
              echo "artifact=out-${{ item.id }}.txt" >> "$AMPLIFY_OUTPUT"
          check:
            run: ["test", "-s", "${{ stages.build.outputs.artifact }}"]
          summary:
            fan-in: true
            run: echo ${{ join(stages.build.outputs.artifact, ',') }} > summary.txt
        """)
        let r = try await amplify(["wf.yaml"], in: box)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(box.read("out-a-1.txt") == "hello $(rm -rf /) first\n", "item text is data, never shell code")
        #expect(box.read("out-a-2.txt") == "hello `whoami` second\n")
        #expect(box.read("summary.txt") == "out-a-1.txt,out-a-2.txt\n")
        #expect(r.stdout.contains("run finished"))
    }

    @Test("retry, timeout, continue-on-error and `if` decide the exit code")
    func failuresAndExitCodes() async throws {
        let box = try Sandbox("""
        version: 1
        stages:
          flaky:
            run: |
              n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count
              [ $((n+1)) -ge 2 ]
            retry: {attempts: 2, backoff: 100ms}
          slow: {needs: [], run: sleep 120, timeout: 300ms}
          after-slow: {needs: slow, run: touch after-slow}
          cleanup: {needs: after-slow, if: "${{ always() }}", run: touch cleanup}
          tolerant: {needs: [], run: exit 3, continue-on-error: true}
          next: {needs: tolerant, run: touch next}
        """)
        let start = Date()
        let r = try await amplify(["wf.yaml"], in: box)
        #expect(r.status == 1, "a timed-out stage fails the run")
        // (Well under the sleep's 120 s, with room for a loaded machine.)
        #expect(Date().timeIntervalSince(start) < 60, "the timeout ended the sleep's process group")
        #expect(box.read("count") == "2\n", "flaky ran twice")
        #expect(!FileManager.default.fileExists(atPath: box.path + "/after-slow"))
        #expect(FileManager.default.fileExists(atPath: box.path + "/cleanup"))
        #expect(FileManager.default.fileExists(atPath: box.path + "/next"))
        #expect(r.stdout.contains("slow failed: timed out after 300ms"))
        let status = try await amplify(["status"], in: box)
        #expect(status.stdout.contains("after-slow  -     skipped"), "\(status.stdout)")
        #expect(status.stdout.contains("): finished — "), "\(status.stdout)")
        #expect(status.stdout.contains("; exit 1"), "a run without items counts instances and says its exit code")
    }

    @Test("a finished run is not run again; the next command starts a new run")
    func finishedRunsStayFinished() async throws {
        let box = try Sandbox("version: 1\nstages: {a: {run: echo x >> ledger}}")
        #expect(try await amplify(["wf.yaml"], in: box).status == 0)
        let second = try await amplify(["wf.yaml"], in: box)
        #expect(second.status == 0)
        #expect(second.stdout.contains("starting run"))
        #expect(box.read("ledger") == "x\nx\n")
        #expect(try box.journals().count == 2)
    }

    @Test("a second runner of the same run exits 4 naming the holder's pid")
    func lock() async throws {
        // Long enough that no load can make the first runner finish first; it is ended at the end.
        let box = try Sandbox("version: 1\nstages: {a: {run: sleep 60}}")
        let first = try startAmplify(["wf.yaml"], in: box)
        defer { first.terminate(); first.waitUntilExit() }
        // Until the first runner has made its run, a second one would rightly start a run of its own.
        // (Up to 10 s: a loaded machine can take seconds to start it.)
        func started() -> Bool { ((try? box.journals()) ?? []).contains { !box.read(String($0.dropFirst(box.path.count + 1))).isEmpty } }
        for _ in 0..<500 where !started() { try await Task.sleep(for: .milliseconds(20)) }
        var second = try await amplify(["wf.yaml"], in: box)
        for _ in 0..<50 where second.status != 4 {
            try await Task.sleep(for: .milliseconds(100))
            second = try await amplify(["wf.yaml"], in: box)
        }
        #expect(second.status == 4)
        #expect(second.stderr.contains("pid \(first.processIdentifier)"), "\(second.stderr)")
        let status = try await amplify(["status"], in: box)
        #expect(status.stdout.contains("running (pid \(first.processIdentifier))"), "status works while the run goes on: \(status.stdout)")
    }

    @Test("SIGINT checkpoints and exits 130; the same command resumes and finishes")
    func interrupt() async throws {
        // b waits for `go`, which exists only once the runner has been interrupted: no race with a slow machine.
        let box = try Sandbox("version: 1\nstages: {a: {run: touch a}, b: {run: 'while [ ! -e go ]; do sleep 0.05; done; touch b'}, c: {run: touch c}}")
        let runner = try startAmplify(["wf.yaml"], in: box)
        await eventually { FileManager.default.fileExists(atPath: box.path + "/a") }
        try await Task.sleep(for: .milliseconds(200))
        kill(runner.processIdentifier, SIGINT)
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 130)
        #expect(try await amplify(["status"], in: box).stdout.contains("interrupted (resumable"))
        _ = FileManager.default.createFile(atPath: box.path + "/go", contents: nil)
        let resumed = try await amplify(["wf.yaml"], in: box)
        #expect(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
        #expect(resumed.stdout.hasPrefix("amplify-run: resuming run"))
        #expect(FileManager.default.fileExists(atPath: box.path + "/c"))
    }

    @Test("a torn last journal line is cut off on resume")
    func tornJournal() async throws {
        let box = try Sandbox("version: 1\nstages: {a: {run: touch a}, b: {run: sleep 30}}")
        let runner = try startAmplify(["wf.yaml"], in: box)
        await eventually { FileManager.default.fileExists(atPath: box.path + "/a") }
        try await Task.sleep(for: .milliseconds(300))
        kill(runner.processIdentifier, SIGKILL)
        runner.waitUntilExit()
        let journal = try #require(try box.journals().first)
        let handle = try #require(FileHandle(forWritingAtPath: journal))
        handle.seekToEndOfFile()
        handle.write(Data("{\"seq\":99,\"at\":\"2026-".utf8))
        try handle.close()
        try "version: 1\nstages: {a: {run: touch a}, b: {run: touch b}}".write(toFile: box.path + "/wf.yaml", atomically: true, encoding: .utf8)
        let resumed = try await amplify(["wf.yaml", "--new"], in: box)
        #expect(resumed.status == 0)
        // The interrupted run: resume it by id through its own journal.
        let text = try String(contentsOfFile: journal, encoding: .utf8)
        #expect(text.hasSuffix("\"2026-"), "untouched until that run is resumed")
        let status = try await amplify(["status", URL(fileURLWithPath: journal).deletingLastPathComponent().lastPathComponent], in: box)
        #expect(status.status == 0, "status ignores a torn line")
        // Settle the interrupted run: its orphaned `sleep 30` is ended, and the torn line cut.
        let cancel = try await amplify(["cancel", URL(fileURLWithPath: journal).deletingLastPathComponent().lastPathComponent], in: box)
        #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
        // Uncut, the fragment would have joined the next event into a garbage line.
        let settled = try Journal.read(path: journal)
        #expect(!settled.tornTail)
        #expect(settled.entries.last?.event == .runFinished(.cancelled))
    }

    @Test("resuming with other --var values is refused")
    func varsMismatch() async throws {
        let box = try Sandbox("version: 1\nvars: {n: '1'}\nstages: {a: {run: sleep 30}}")
        let runner = try startAmplify(["wf.yaml", "--var", "n=2"], in: box)
        await eventually { box.journalContains("process-started") }
        kill(runner.processIdentifier, SIGKILL)
        runner.waitUntilExit()
        let r = try await amplify(["wf.yaml", "--var", "n=3"], in: box)
        #expect(r.status == 2)
        #expect(r.stderr.contains("--new"))
        let unknown = try await amplify(["wf.yaml", "--new", "--var", "nn=3"], in: box)
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("did you mean 'n'?"))
        #expect(try await amplify(["cancel"], in: box).status == 0, "settling the run ends its orphaned command")
    }

    @Test("cancel a live run: running commands end, pending ones are cancelled, `always()` still runs, exit 3")
    func cancelLive() async throws {
        let box = try Sandbox("version: 1\nstages: {a: {run: sleep 30 && touch a}, b: {run: touch b}, c: {run: touch c, if: '${{ always() }}'}}")
        let runner = try startAmplify(["wf.yaml"], in: box)
        await eventually { box.journalContains("process-started") }
        let cancel = try await amplify(["cancel"], in: box)
        #expect(cancel.status == 0, "\(cancel.stderr)")
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 3)
        #expect(!FileManager.default.fileExists(atPath: box.path + "/b"))
        #expect(FileManager.default.fileExists(atPath: box.path + "/c"))
        let status = try await amplify(["status", "--json"], in: box)
        let v = try JSONParser.parse(status.stdout)
        #expect(v["state"] == .string("cancelled"))
        #expect(try await amplify(["cancel"], in: box).status == 2, "nothing left to cancel")
    }

    @Test("cancel a run whose runner is dead: settled under its lock, the orphaned command ended")
    func cancelDead() async throws {
        let box = try Sandbox("version: 1\nstages: {a: {run: 'echo $$ > pid; sleep 30'}, b: {run: touch b}}")
        let runner = try startAmplify(["wf.yaml"], in: box)
        // The command's start is in the journal before the kill: that is how cancel finds it.
        await eventually { !box.read("pid").isEmpty && box.journalContains("process-started") }
        kill(runner.processIdentifier, SIGKILL)
        runner.waitUntilExit()
        let orphan = try #require(Int32(box.read("pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(orphan, 0) == 0, "the command outlived its runner")
        let cancel = try await amplify(["cancel"], in: box)
        #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
        #expect(cancel.stdout.contains("run cancelled"))
        #expect(Processes.stat(orphan).map { $0.state == "Z" } ?? true, "the orphaned command was ended")
        #expect(!FileManager.default.fileExists(atPath: box.path + "/b"))
    }

    @Test("commands inherit no descriptor but stdin, stdout and stderr")
    func descriptors() async throws {
        // ls holds its directory open as 3; anything inherited would show as 3 and push it to 4.
        let box = try Sandbox("""
        version: 1
        stages:
          list: {run: [ls, /proc/self/fd]}
          keep: {run: [sh, -c, 'printf "%s" "$1" > fds.txt', sh, "${{ stages.list.outputs.stdout }}"]}
        """)
        #expect(try await amplify(["wf.yaml"], in: box).status == 0)
        #expect(box.read("fds.txt").split(separator: "\n").sorted() == ["0", "1", "2", "3"], "\(box.read("fds.txt"))")
    }

    @Test("--json prints journal events only")
    func json() async throws {
        let box = try Sandbox("version: 1\nstages: {a: {run: echo hi}}")
        let r = try await amplify(["wf.yaml", "--json"], in: box)
        #expect(r.status == 0)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count >= 4)
        for line in lines {
            let v = try JSONParser.parse(String(line))
            #expect(v["seq"] != nil && v["at"] != nil && v["type"] != nil)
        }
    }
}

@Suite("Crashes", .serialized)
struct CrashTests {
    /// SIGKILL the runner at random moments; each time run it again; at the end every step ran
    /// to completion, and no step whose success was journaled before a kill ever started again.
    @Test("kill -9 at any moment: the run finishes and finished steps never run again", arguments: [UInt64(7), 23])
    func killNine(seed: UInt64) async throws {
        var rng = ReplayTests.Generator(state: seed)
        let box = try Sandbox("""
        version: 1
        stages:
          list:
            uses: query-ready
            with: {source: command, command: ["sh", "-c", "echo '[{\\"id\\":\\"a\\"},{\\"id\\":\\"b\\"},{\\"id\\":\\"c\\"}]'"]}
          one:
            for-each: ${{ stages.list.outputs.items }}
            run: echo "start one ${{ item.id }}" >> ledger; sleep 0.6
          two:
            run: echo "start two ${{ item.id }}" >> ledger; sleep 0.6
          report:
            fan-in: true
            run: echo "start report" >> ledger
        """)
        var kills = 0
        var endings: [String] = []
        for _ in 0..<8 {
            let (done, finished) = try journaled(box)
            if finished { break }
            let before = box.read("ledger").split(separator: "\n").count
            let runner = try startAmplify(["wf.yaml"], in: box)
            // Kill once the journal has grown by a random number of events, then a random few ms later.
            await killAfter(runner, journalOf: box, events: journalLines(box) + Int.random(in: 1...8, using: &rng),
                            thenMilliseconds: Int.random(in: 0...40, using: &rng))
            runner.waitUntilExit()
            if runner.terminationReason == .uncaughtSignal { kills += 1 } else { endings.append("status \(runner.terminationStatus)") }
            for line in box.read("ledger").split(separator: "\n").dropFirst(before) {
                let words = line.split(separator: " ")
                let key = words.count == 3 ? "\(words[1])[\(words[2])]" : String(words[1])
                #expect(!done.contains(key), "\(key) had succeeded before the kill, yet started again (seed \(seed))")
            }
        }
        if try !journaled(box).finished {
            let final = try await amplify(["wf.yaml"], in: box)
            #expect(final.status == 0, "\(final.stdout)\(final.stderr)")
        }
        #expect(kills > 0, "runners ended by themselves: \(endings)")
        let ledger = box.read("ledger")
        for key in ["one a", "one b", "one c", "two a", "two b", "two c", "report"] {
            #expect(ledger.contains("start \(key)"), "\(key) never ran")
        }
        #expect(try box.journals().count == 1, "one run, resumed each time")
        for path in try box.journals() { _ = try Journal.read(path: path) }
    }

    func journalLines(_ box: Sandbox) -> Int {
        CrashTests.journalLines(runsOf: box.path)
    }

    static func journalLines(runsOf repository: String) -> Int {
        let runs = repository + "/.amplify/runs"
        guard let last = (try? FileManager.default.contentsOfDirectory(atPath: runs))?.sorted().last,
              let text = try? String(contentsOfFile: runs + "/" + last + "/journal.jsonl", encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").count
    }

    /// SIGKILLs the runner once its journal has `events` lines, `thenMilliseconds` later. The
    /// watching happens on a thread of its own: the concurrency pool (two threads, shared with
    /// every other test) wakes too late to catch a short run in the middle.
    func killAfter(_ runner: Process, journalOf box: Sandbox, events: Int, thenMilliseconds delay: Int) async {
        let repository = box.path
        let pid = runner.processIdentifier
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                var waited = 0
                while CrashTests.journalLines(runsOf: repository) < events, kill(pid, 0) == 0, waited < 20_000 {
                    usleep(2000)
                    waited += 2
                }
                usleep(useconds_t(delay * 1000))
                kill(pid, SIGKILL)
                c.resume()
            }
        }
    }

    /// Instance names (`one[b]`) journaled as succeeded in the sandbox's run, and whether it finished.
    func journaled(_ box: Sandbox) throws -> (done: Set<String>, finished: Bool) {
        guard let path = try? box.journals().last else { return ([], false) }
        var items: [Int: String] = [:]
        var done = Set<String>()
        var finished = false
        for entry in try Journal.read(path: path).entries {
            switch entry.event {
            case .itemsAdded(_, let list, _):
                for (i, v) in list.enumerated() { items[i] = v["id"]?.renderedText }
            case .instanceSucceeded(let key, _):
                done.insert(key.item.map { "\(key.stage)[\(items[$0] ?? "?")]" } ?? key.stage)
            case .runFinished:
                finished = true
            default: break
            }
        }
        return (done, finished)
    }
}
