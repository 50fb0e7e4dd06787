import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// `sessions: slurm` (SPEC §14): each start of an agent is a Slurm batch job.
///
/// The job runs `job.sh` (below) on a node: it checks the node sees the session directory, takes
/// the start's marker (`slurm-<token>.started`, made with mkdir: the first copy of a job Slurm
/// started twice runs the agent, any other leaves), runs the agent, and writes its exit status to
/// `slurm-<token>.exit`. Slurm's `--output` is the session's `output.log`.
///
/// On the runner's machine a small watcher (`watch.sh`) stands for the job: it is the process the
/// journal records, waits for and ends, as it would a local agent. It exits with the agent's
/// status once the job is over (its exit file, looked for every 2 s; squeue every 10 s), says in output.log how a job ended that left no status, and on
/// SIGTERM cancels the job (`scancel`, and the cancel file the job's own heartbeat obeys when the
/// controller is away) and waits until it is gone.
///
/// What the runner knows of a start is in the session's record (`SlurmJob`): the token first,
/// then the job id the moment sbatch prints it. A restarted runner re-attaches by job id (a new
/// watcher), looks a job up by its name and token when its id was never recorded, and submits
/// again only a start whose job Slurm has forgotten before the agent started.
struct SlurmJob: Sendable, Equatable {
    var options: SlurmOptions
    /// This start's: its marker, heartbeat, exit and cancel files are named by it, and its job
    /// carries it as its comment. nil until the start is submitted.
    var token: String?
    /// The job id sbatch printed.
    var job: String?
    /// How many jobs this start was submitted as (one the controller forgot is submitted again).
    var submissions = 0
    /// The start's argv (within its walls when sandboxed): what a forgotten job is submitted again with.
    var argv: [String] = []

    init(options: SlurmOptions) { self.options = options }

    var value: Value {
        var o = OrderedObject()
        o["options"] = options.value
        if let token { o["token"] = .string(token) }
        if let job { o["job"] = .string(job) }
        o["submissions"] = .int(submissions)
        if !argv.isEmpty { o["argv"] = .list(argv.map(Value.string)) }
        return .object(o)
    }

    init?(_ v: Value) {
        guard let options = v["options"].flatMap({ SlurmOptions.read($0) }) else { return nil }
        self.options = options
        if case .string(let t)? = v["token"], Slurm.isToken(t) { token = t }
        if case .string(let j)? = v["job"], Slurm.isJobId(j) { job = j }
        if case .int(let n)? = v["submissions"] { submissions = n }
        if case .list(let l)? = v["argv"] { argv = l.map(\.renderedText) }
    }
}

enum Slurm {
    /// The job's name: `amplify-<session id>`.
    static func name(_ session: SessionFiles) -> String { "amplify-" + session.id }

    static func isJobId(_ s: String) -> Bool { !s.isEmpty && s.count < 24 && s.allSatisfy { $0.isASCII && $0.isNumber } }
    static func isToken(_ s: String) -> Bool { !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") } }

    static func started(_ session: SessionFiles, _ token: String) -> String { session.path("slurm-\(token).started") }
    static func exitFile(_ session: SessionFiles, _ token: String) -> String { session.path("slurm-\(token).exit") }
    static func cancelFile(_ session: SessionFiles, _ token: String) -> String { session.path("slurm-\(token).cancel") }

    /// A job's state as squeue tells it.
    enum State: Equatable {
        /// Pending, running, or on its way out.
        case active(String)
        /// Over, in Slurm's word (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, …).
        case ended(String)
        /// Slurm does not know it (it forgot it, or the id is now another job's).
        case gone
        /// The controller did not answer.
        case unreachable(String)
    }

    /// How a job ends that would end the same way again: it failed on the node before the agent
    /// started (the node cannot see the session's directories), or ran out of time or memory.
    static let endsForGood: Set<String> = ["FAILED", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE", "COMPLETED"]

    static let activeStates: Set<String> = ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                                            "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"]

    /// The state of job `id`, if it is still `name`'s.
    static func state(of id: String, name: String, environment: [String: String]) async -> State {
        let r = await CommandRunner.run(["squeue", "-h", "-t", "all", "-j", id, "-o", "%j|%T"], in: "/", environment: environment)
        guard r.succeeded else {
            // "slurm_load_jobs error: Invalid job id specified": a job the controller no longer knows.
            return r.stderr.contains("Invalid job id") ? .gone : .unreachable(r.failure(["squeue"]))
        }
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == name else { continue }
            let s = String(parts[1])
            return activeStates.contains(s) ? .active(s) : .ended(s)
        }
        return .gone
    }

    /// The job of `name` carrying `token`, when Slurm knows one: a start whose id was never
    /// recorded (the runner died while sbatch ran) is found again, never submitted twice.
    /// `activeOnly`: a job still pending or running (an ended one is the job being replaced).
    /// A controller that does not answer is waited for (about a minute), then an error: "none"
    /// from a controller that never answered would submit a second job.
    static func lookup(name: String, token: String, activeOnly: Bool = false, environment: [String: String]) async throws(StageError) -> String? {
        var waited: Duration = .zero
        while true {
            let r = await CommandRunner.run(["squeue", "-h", "-t", "all", "-n", name, "-o", "%i|%k|%T"], in: "/", environment: environment)
            if r.succeeded {
                for line in r.stdout.split(separator: "\n") {
                    let parts = line.split(separator: "|").map(String.init)
                    if parts.count == 3, parts[1] == token, isJobId(parts[0]), !activeOnly || activeStates.contains(parts[2]) { return parts[0] }
                }
                return nil
            }
            guard waited < .seconds(60) else { throw StageError("the Slurm controller does not answer: \(r.failure(["squeue"]))") }
            try? await Task.sleep(for: .seconds(2))
            waited += .seconds(2)
        }
    }

    // MARK: - Starting

    /// Submits one start of the agent (`argv`, already within its walls when sandboxed) and
    /// starts its watcher. The token is recorded before sbatch runs, the job id the moment it
    /// returns. Output is appended to output.log, which the caller has opened as `output`.
    static func start(_ argv: [String], environment: [String: String], worktree: String, session: SessionFiles, output: Int32,
                      record: inout SessionFiles.Record, ended: AttemptEnd) async throws(StageError) -> (pid: Int32, startTime: UInt64) {
        guard var job = record.slurm else { throw StageError("the session has no Slurm job options") }
        job.token = UUID().uuidString.lowercased()
        job.job = nil
        job.submissions = 0
        job.argv = argv
        record.slurm = job
        record.pid = nil
        record.startTime = nil
        do { try session.writeRecord(record) } catch { throw StageError("cannot write \(session.recordPath): \(error)") }
        try await submit(environment: environment, worktree: worktree, session: session, record: &record, ended: ended)
        return try watch(session: session, record: record, environment: environment, output: output)
    }

    /// sbatch for the record's start, unless Slurm already has its job (found by name and token).
    /// A controller that does not answer is waited for (about a minute), as it comes back after a
    /// crash; a job sbatch refuses is an error in sbatch's words.
    /// `again`: the start's earlier job ended before its agent started; only a job still pending
    /// or running is taken for this one. An attempt the runner ends meanwhile (a timeout, a
    /// cancel) submits nothing more, and a job it submitted is cancelled.
    static func submit(environment: [String: String], worktree: String, session: SessionFiles, record: inout SessionFiles.Record,
                       again: Bool = false, ended: AttemptEnd? = nil) async throws(StageError) {
        guard var job = record.slurm, let token = job.token, !job.argv.isEmpty else { throw StageError("the session's Slurm start has no token") }
        let script = try scripts(session.stateDirectory).job
        let name = name(session)
        var waited: Duration = .zero
        var lastProblem = ""
        while true {
            if ended?.hasHappened == true { throw StageError("ended by the runner before the agent's job was submitted") }
            if let found = try await lookup(name: name, token: token, activeOnly: again, environment: environment) {
                job.job = found
                break
            }
            let sbatch = ["sbatch", "--parsable", "--job-name=" + name, "--comment=" + token, "--chdir=" + worktree, "--output=" + session.path("output.log"),
                          "--open-mode=append", "--no-requeue", "--export=ALL"] + job.options.sbatchArguments + [script, session.directory, token, worktree] + job.argv
            let r = await CommandRunner.run(sbatch, in: worktree, environment: environment)
            // `--parsable` prints "<id>" or "<id>;<cluster>".
            let id = String(r.stdout.trimming(" \t\r\n").prefix { $0 != ";" })
            if r.succeeded, isJobId(id) {
                job.job = id
                job.submissions += 1
                break
            }
            lastProblem = r.failure(["sbatch"])
            // A controller away (crashed, restarting) is waited for; a job it refuses is not.
            var unreachable = r.succeeded || Slurm.unreachableWords.contains { r.stderr.contains($0) }
            if !unreachable { unreachable = !(await ping(environment)).succeeded }
            guard unreachable, waited < .seconds(60) else {
                throw StageError("sbatch refused the agent's job: \(lastProblem)")
            }
            try? await Task.sleep(for: .seconds(2))
            waited += .seconds(2)
        }
        record.slurm = job
        do { try session.writeRecord(record) } catch { throw StageError("cannot write \(session.recordPath): \(error)") }
        if ended?.hasHappened == true {
            await cancel(session: session, record: record, environment: environment)
            throw StageError("ended by the runner while the agent's job was submitted; job \(job.job ?? "?") cancelled")
        }
    }

    /// Starts the watcher of the record's job on this machine, its output appended to `output`.
    static func watch(session: SessionFiles, record: SessionFiles.Record, environment: [String: String], output: Int32) throws(StageError) -> (pid: Int32, startTime: UInt64) {
        guard let job = record.slurm, let token = job.token, let id = job.job else { throw StageError("the session's Slurm job has no id") }
        var env = environment
        env["AMPLIFY_SLURM_WATCH"] = token
        let watcher = try scripts(session.stateDirectory).watcher
        return try LocalProcessLauncher().launch(["/bin/sh", watcher, session.directory, token, id, name(session)], environment: env, directory: "/", output: output)
    }

    // MARK: - After a restart

    /// Makes sure something stands for the record's start when its watcher is gone: a watcher of
    /// this start still alive (the runner died before recording it), a new watcher of a job Slurm
    /// still has or whose agent a copy still runs, or — for a job Slurm forgot before its agent
    /// started — the same start submitted again (with its token: it can still run only once).
    /// Returns false when the start is over: the caller judges how it ended.
    static func recover(session: SessionFiles, record: inout SessionFiles.Record, run: String, environment: [String: String]) async throws(StageError) -> Bool {
        guard var job = record.slurm, let token = job.token else { return false }
        // Its agent wrote its status: over, even while its watcher has yet to see it.
        if hasExited(session, record) { return false }
        if Agent.isAlive(record) { return true }
        if let w = LocalProcessLauncher().find(environment: ["AMPLIFY_SESSION_ID=\(session.id)", "AMPLIFY_RUN_ID=\(run)", "AMPLIFY_SLURM_WATCH=\(token)"]) {
            record.pid = w.pid
            record.startTime = w.startTime
            try? session.writeRecord(record)
            return true
        }
        let name = name(session)
        if job.job == nil, let found = try await lookup(name: name, token: token, environment: environment) {
            job.job = found
            record.slurm = job
            try? session.writeRecord(record)
        }
        let cancelled = FileManager.default.fileExists(atPath: cancelFile(session, token))
        let agentStarted = FileManager.default.fileExists(atPath: started(session, token))
        var resubmit = false
        if let id = job.job {
            switch await state(of: id, name: name, environment: environment) {
            case .active, .unreachable:
                break  // a watcher waits for it
            case .gone where !agentStarted && !cancelled:
                resubmit = true  // forgotten by a controller that lost its state
            case .ended(let s) where !agentStarted && !cancelled && !Slurm.endsForGood.contains(s):
                // Ended before the agent started, not by this runner: its node failed, it was
                // preempted, or the controller cancelled a job it had started twice.
                resubmit = true
            case .gone, .ended:
                // Over. A copy Slurm started twice may still run the agent: its heartbeat says.
                guard agentStarted, heartbeatIsFresh(session, token) else { return false }
            }
        } else {
            // Never submitted (the runner died before sbatch), or forgotten before the runner saw its id.
            guard !agentStarted, !cancelled else { return false }
            resubmit = true
        }
        if resubmit {
            guard job.submissions < 3 else { return false }
            record.slurm?.job = nil
            try await submit(environment: environment, worktree: record.worktree, session: session, record: &record, again: true)
        }
        let fd = try session.openOutputLog()
        defer { close(fd) }
        let (pid, start) = try watch(session: session, record: record, environment: environment, output: fd)
        record.pid = pid
        record.startTime = start
        try? session.writeRecord(record)
        return true
    }

    /// Whether the agent of a start beat its heart in the last minute (its job script touches
    /// `beat` every 3 s while the agent runs; a shared filesystem may show it late).
    static func heartbeatIsFresh(_ session: SessionFiles, _ token: String) -> Bool {
        var st = stat()
        guard stat(started(session, token) + "/beat", &st) == 0 else { return false }
        return Int64(time(nil)) - Int64(st.st_mtim.tv_sec) < 60
    }

    // MARK: - Ending

    /// Whether the agent of the record's Slurm start has written its exit status.
    static func hasExited(_ session: SessionFiles, _ record: SessionFiles.Record) -> Bool {
        guard let token = record.slurm?.token else { return false }
        return FileManager.default.fileExists(atPath: exitFile(session, token))
    }

    /// Cancels the record's job: the cancel file first (the job's heartbeat ends the agent even
    /// when the controller is away; a job not yet started never starts it), then `scancel`, by
    /// id and name, so a reused id is never another job's.
    static func cancel(session: SessionFiles, record: SessionFiles.Record, environment: [String: String]) async {
        guard let job = record.slurm, let token = job.token else { return }
        guard !hasExited(session, record) else { return }
        _ = FileManager.default.createFile(atPath: cancelFile(session, token), contents: nil)
        // A job not yet started never starts its agent.
        mkdir(started(session, token), 0o700)
        var id = job.job
        if id == nil { id = (try? await lookup(name: name(session), token: token, environment: environment)) ?? nil }
        if let id { _ = await CommandRunner.run(["scancel", "-n", name(session), id], in: "/", environment: environment) }
    }

    /// How the agent of the record's start ended, in words: from its exit file; nil when it
    /// left none (the watcher's line in output.log says why).
    static func ending(session: SessionFiles, record: SessionFiles.Record) -> String? {
        guard let job = record.slurm, let token = job.token else { return nil }
        let said = CommandRunner.readCapped(exitFile(session, token), limit: 64).trimming(" \n").split(separator: " ")
        guard said.count == 2, said[0] == "status", let n = Int32(said[1]) else {
            guard let id = job.job else { return nil }
            return FileManager.default.fileExists(atPath: started(session, token))
                ? "was lost with its Slurm job \(id) (killed with it, or its node failed; no exit status)"
                : "never started (its Slurm job \(id) ended first)"
        }
        return n > 128 && n < 160 ? "was ended by signal \(n - 128) (Slurm job \(job.job ?? "?"))" : "exited with status \(n) (Slurm job \(job.job ?? "?"))"
    }

    // MARK: - Whether Slurm can be used here

    /// What Slurm's commands say when the controller is away.
    static let unreachableWords = ["Unable to contact slurm controller", "Socket timed out", "Connection refused", "Connection reset by peer", "Broken pipe",
                                   "Transport endpoint is not connected", "Zero Bytes were transmitted", "Communication connection failure"]

    /// `scontrol ping`: succeeds when the controller answers.
    static func ping(_ environment: [String: String]) async -> CommandRunner.Output {
        await CommandRunner.run(["scontrol", "ping"], in: "/", environment: environment, timeout: .seconds(30))
    }

    private static let probed = Mutex<String??>(nil)

    /// Why agents cannot be Slurm jobs from this machine (no sbatch, or no controller answering),
    /// in words that name the way out; nil when they can. Asked once per process.
    static func problem(environment: [String: String]) async -> String? {
        if let known = probed.withLock({ $0 }) { return known }
        let path = environment["PATH"] ?? "/usr/bin:/bin"
        var found: String?
        if let missing = ["sbatch", "squeue", "scancel", "scontrol"].first(where: { ChildProcess.find($0, path: path) == nil }) {
            found = "`sessions: slurm` needs Slurm's client commands, and \(missing) is not on PATH (Debian: `apt install slurm-client`, with SLURM_CONF naming the cluster's slurm.conf); or set `sessions: local`"
        } else {
            // A controller restarting after a crash is back within seconds: waited for, 20 s.
            var r = await ping(environment)
            for _ in 0..<10 where !r.succeeded {
                try? await Task.sleep(for: .seconds(2))
                r = await ping(environment)
            }
            if !r.succeeded {
                let said = (r.stdout + r.stderr).split(separator: "\n").first.map(String.init) ?? r.failure(["scontrol", "ping"])
                found = "`sessions: slurm`: the Slurm controller does not answer (`scontrol ping`: \(said))\(environment["SLURM_CONF"] == nil ? "; SLURM_CONF is not set" : ", SLURM_CONF=\(environment["SLURM_CONF"]!)")"
            }
        }
        // Only a cluster that answered is remembered: one away now may be back at the next dispatch.
        if found == nil { probed.withLock { $0 = .some(nil) } }
        return found
    }

    // MARK: - The scripts

    /// `<state>/slurm/job.sh` and `watch.sh`, written when missing or different (a newer runner).
    /// sbatch sends the job script to the controller with each job, so only the session and
    /// worktree directories need to be shared with the nodes.
    static func scripts(_ stateDirectory: String) throws(StageError) -> (job: String, watcher: String) {
        let dir = stateDirectory + "/slurm"
        mkdir(dir, 0o700)
        try StateDirectory.requireReal(dir)
        var paths: [String] = []
        for (file, text) in [("job.sh", jobScript), ("watch.sh", watchScript)] {
            let path = dir + "/" + file
            if CommandRunner.readCapped(path, limit: 1 << 16) != text {
                do { try RunStore.writeAtomically(Array(text.utf8), to: path, mode: 0o700) } catch { throw StageError("cannot write \(path): \(error)") }
            }
            paths.append(path)
        }
        return (paths[0], paths[1])
    }

    static let jobScript = #"""
    #!/bin/sh
    # amplify-run: one start of an agent as a Slurm batch job (sessions: slurm).
    # usage: job.sh SESSION_DIR TOKEN WORKTREE ARGV...
    # Slurm may start a job twice (a controller that lost its state): the first copy to make the
    # start marker runs the agent; any other leaves at once.
    dir=$1 token=$2 worktree=$3; shift 3
    started="$dir/slurm-$token.started"
    if [ ! -d "$dir" ]; then
        echo "amplify-run: node $(hostname) cannot see the session directory $dir: the state directory must be on a filesystem the nodes share" >&2
        exit 96
    fi
    if ! cd "$worktree" 2>/dev/null; then
        echo "amplify-run: node $(hostname) cannot see the worktree $worktree: the worktrees must be on a filesystem the nodes share" >&2
        exit 96
    fi
    # Cancelled before it started: the agent never starts.
    if [ -e "$dir/slurm-$token.cancel" ]; then
        echo "amplify-run: job ${SLURM_JOB_ID:-?} was cancelled before its agent started" >&2
        exit 0
    fi
    if ! mkdir "$started" 2>/dev/null; then
        if [ -d "$started" ]; then
            echo "amplify-run: Slurm started job ${SLURM_JOB_ID:-?} again; its agent started once already, so not again" >&2
            exit 0
        fi
        echo "amplify-run: node $(hostname) cannot write the session directory $dir" >&2
        exit 96
    fi
    echo "$(hostname) ${SLURM_JOB_ID:-?} $$" > "$started/who"
    touch "$started/beat"
    agent= stop=
    trap 'stop=1; [ -z "$agent" ] || kill -s TERM -- "-$agent" 2>/dev/null' TERM INT HUP
    # The agent in a process group of its own: the heartbeat can end all of it.
    setsid "$@" < /dev/null &
    agent=$!
    [ -z "$stop" ] || kill -s TERM -- "-$agent" 2>/dev/null
    # The heartbeat: says the agent still runs, and ends it when the runner asks by file (a
    # controller that does not answer cannot scancel).
    (
        while kill -0 "$agent" 2>/dev/null; do
            touch "$started/beat"
            if [ -e "$dir/slurm-$token.cancel" ]; then
                kill -s TERM -- "-$agent" 2>/dev/null; sleep 10; kill -s KILL -- "-$agent" 2>/dev/null
            fi
            sleep 3
        done
    ) &
    beat=$!
    status=0
    while :; do
        wait "$agent"; status=$?
        kill -0 "$agent" 2>/dev/null || break
    done
    kill "$beat" 2>/dev/null
    printf 'status %d\n' "$status" > "$dir/slurm-$token.exit.tmp" && mv -f "$dir/slurm-$token.exit.tmp" "$dir/slurm-$token.exit"
    exit "$status"

    """#

    static let watchScript = #"""
    #!/bin/sh
    # amplify-run: stands for one agent's Slurm job on the runner's machine (sessions: slurm).
    # usage: watch.sh SESSION_DIR TOKEN JOB_ID JOB_NAME
    # Exits with the agent's status once the job is over; on SIGTERM cancels the job and waits
    # until it is gone. What it says goes to the session's output.log.
    dir=$1 token=$2 job=$3 name=$4
    started="$dir/slurm-$token.started" exitfile="$dir/slurm-$token.exit"
    err=$(mktemp) || exit 1
    trap 'rm -f "$err"' EXIT
    say() { echo "amplify-run: Slurm job $job $*"; }
    finish() {
        if [ -e "$exitfile" ]; then
            read -r word status < "$exitfile"
            case $status in ''|*[!0-9]*) exit 1 ;; *) exit "$status" ;; esac
        fi
    }
    look() {
        out=$(squeue -h -t all -j "$job" -o '%j|%T' 2>"$err"); rc=$?
        if [ $rc -ne 0 ]; then
            case $(cat "$err") in *"Invalid job id"*) state=gone ;; *) state=unreachable ;; esac
            return
        fi
        case $out in
            "$name|"*)
                state=${out#*|} raw=${out#*|}
                case $state in
                    \#(activeStates.sorted().joined(separator: "|"))) state=active ;;
                esac ;;
            *) state=gone ;;
        esac
    }
    cancelled=
    cancel() {
        cancelled=1
        # A job that has not started its agent never will; one that has is ended by its heartbeat too.
        mkdir "$started" 2>/dev/null
        [ -e "$exitfile" ] || : > "$dir/slurm-$token.cancel"
        scancel -n "$name" "$job" 2>/dev/null
    }
    trap cancel TERM INT HUP
    # A controller that lost its state can keep a job RUNNING whose processes are gone: its
    # agent's heartbeat (or, before the agent, its start marker) says so within a minute.
    ghost() {
        [ "$raw" = RUNNING ] && [ -z "$cancelled" ] || { running_since=; return 1; }
        running_since=${running_since:-$n}
        if [ -d "$started" ]; then
            [ -z "$(find "$started/beat" -newermt '-60 seconds' 2>/dev/null)" ]
        else
            [ $((n - running_since)) -ge 30 ]
        fi
    }
    n=0 raw= running_since=
    while :; do
        finish
        if [ -n "$cancelled" ] || [ $((n % 5)) -eq 0 ]; then
            look
            case $state in
                active|unreachable)
                    [ -n "$cancelled" ] && [ $((n % 5)) -eq 0 ] && scancel -n "$name" "$job" 2>/dev/null
                    if [ "$state" = active ] && ghost; then
                        ls "$dir" > /dev/null 2>&1
                        finish
                        say "is RUNNING for Slurm, but its agent has shown no sign of life for a minute (a controller that lost its state keeps such jobs); cancelled"
                        scancel -n "$name" "$job" 2>/dev/null
                        [ -d "$started" ] && exit 137
                        exit 75
                    fi ;;
                *)
                    # Over. On a shared filesystem a file made on the node may show late: the
                    # directory is read afresh, and a heartbeat a minute old still counts.
                    ls "$dir" > /dev/null 2>&1
                    finish
                    [ -n "$cancelled" ] && exit 143
                    if [ -d "$started" ] && [ -n "$(find "$started/beat" -newermt '-60 seconds' 2>/dev/null)" ]; then
                        : # a copy of the job Slurm started twice still runs the agent
                    elif [ -d "$started" ]; then
                        say "ended ($state) and its agent left no exit status (killed with its job, or its node failed)"
                        exit 137
                    else
                        code=$(scontrol show job "$job" 2>/dev/null | sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p' | head -n 1)
                        case $state:$code in
                            gone:*) say "was forgotten by the Slurm controller before its agent started" ;;
                            *:0:53|*:1:0) say "ended $state (exit $code) before its agent started: the node could not open the session's output.log or see its directories; the worktrees and the state directory must be on a filesystem the nodes share" ;;
                            *) say "ended $state${code:+ (exit $code)} before its agent started" ;;
                        esac
                        exit 75
                    fi ;;
            esac
        fi
        sleep 2 & wait $!
        n=$((n + 1))
    done

    """#
}
