import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The merge queue of one merge stage of one run (SPEC §10): approved items wait here in the
/// order they arrived, and land one batch at a time.
///
/// A batch is every item waiting when the queue is free (up to `batch`, once `batch-wait` has
/// passed since the first arrived and no item is still getting ready), and is landed by a
/// `MergeBatch`, under the repository's landing lock. What a batch cannot land now — the
/// remote's base moved under a push — comes back to the front of the queue, to be built again on
/// the remote's new base. The queue lives in the runner's memory; what must survive a kill -9
/// is in the journal (each verdict) and on the base (each item's trailer), so a resumed runner's
/// queue starts again from the items still in flight, and lands each exactly once.
actor MergeQueue {
    /// The stage's landing keys, as the item that opens a batch gives them.
    struct Parameters: Sendable {
        var batch: Int
        /// Milliseconds.
        var batchWait: Int64
        var verifyConcurrency: Int
        var speculate: Bool
        var push: String?
        var pushAttempts: Int
    }

    /// An item ready to land: its branch's leftovers committed, its tip found.
    struct Request: Sendable {
        var job: StageJob
        var id: String
        var tip: String
        var strategy: String
        var hooks: CommitHooks
        var subject: String
        var empty: String
        /// The runner's scratch path for this item (its message file).
        var scratch: String
        var parameters: Parameters
        var processStarted: @Sendable (Int32, UInt64) -> Void
    }

    private struct Waiting {
        var request: Request
        var continuation: CheckedContinuation<StageResult, Never>
        var since: Int64
        /// Pushes refused because the remote's base moved.
        var refusals = 0
    }

    private static let queues = Mutex<[String: MergeQueue]>([:])

    /// The queue of `job`'s merge stage in its run.
    static func queue(for job: StageJob) -> MergeQueue {
        queues.withLock { queues in
            let key = job.runDirectory + "\n" + job.key.stage
            if let queue = queues[key] { return queue }
            let queue = MergeQueue()
            queues[key] = queue
            return queue
        }
    }

    private var waiting: [Waiting] = []
    /// The items of the batch being landed, and of those `speculate` took on top of it.
    private var inFlight: [Waiting] = []
    /// Those of `inFlight` whose stage has been told its end already.
    private var told = Set<Int>()
    /// Items on their way in (committing a session's leftovers): a batch being formed waits for them.
    private var arriving = 0
    private var leading = false
    /// The numbers given last, in this run (a resumed runner goes on from the journal's).
    private var batches = 0
    private var verifications = 0
    /// How long a batch waits for items still getting ready (their hooks may be slow).
    static let arrivalWait: Int64 = 30_000

    func arrive() { arriving += 1 }

    func leave() { arriving = max(0, arriving - 1) }

    /// Waits in the queue until the item's batch has landed it, or found it cannot.
    func land(_ request: Request) async -> StageResult {
        await withCheckedContinuation { (continuation: CheckedContinuation<StageResult, Never>) in
            arriving = max(0, arriving - 1)
            waiting.append(Waiting(request: request, continuation: continuation, since: Processes.now()))
            request.job.note("queued", OrderedObject([("position", .int(waiting.count))]))
            for note in request.job.notes {
                if case .int(let n)? = note.fields["batch"] { batches = max(batches, n) }
                if case .int(let n)? = note.fields["verification"] { verifications = max(verifications, n) }
            }
            if !leading {
                leading = true
                Task { await self.lead() }
            }
        }
    }

    /// Forms and lands batches until no item waits.
    private func lead() async {
        while let first = waiting.first {
            let p = first.request.parameters
            let formed = first.since + p.batchWait
            while true {
                // Items the runner ended while they waited (their timeout, a cancel) leave the queue.
                for w in waiting where w.request.job.ended.hasHappened {
                    w.continuation.resume(returning: .failed("merge: ended by the runner while in the merge queue; \(w.request.job.settings.base) is unchanged"))
                }
                waiting.removeAll { $0.request.job.ended.hasHappened }
                let now = Processes.now()
                if waiting.isEmpty { break }
                if now >= formed, arriving == 0 || waiting.count >= p.batch || now >= formed + MergeQueue.arrivalWait { break }
                try? await Task.sleep(for: .milliseconds(max(10, min(100, formed - now))))
            }
            guard !waiting.isEmpty else { break }
            inFlight = Array(waiting.prefix(p.batch))
            waiting.removeFirst(inFlight.count)
            batches += 1
            told = []
            let batch = MergeBatch(number: batches, members: inFlight.map(\.request), verifications: verifications,
                                   next: { [self] in await self.next() }, report: { [self] member, result in await self.tell(member, result) })
            let outcomes = await batch.run()
            verifications = max(verifications, batch.verifications)
            var again: [Waiting] = []
            for (i, (w, outcome)) in zip(inFlight, outcomes).enumerated() where !told.contains(i) {
                switch outcome {
                case .ended(let result):
                    w.continuation.resume(returning: result)
                case .again(let refused):
                    var w = w
                    if refused { w.refusals += 1 }
                    if w.refusals >= p.pushAttempts, let remote = p.push {
                        w.continuation.resume(returning: .failed("merge: \(remote) refused the push \(w.refusals) time\(w.refusals == 1 ? "" : "s"): its \(w.request.job.settings.base) kept moving (push-attempts: \(p.pushAttempts)); nothing of this item was pushed"))
                    } else {
                        w.request.job.note("queued", OrderedObject([("position", .int(again.count + 1))]))
                        again.append(w)
                    }
                }
            }
            waiting.insert(contentsOf: again, at: 0)
            inFlight = []
        }
        leading = false
    }

    /// Ends the stage of a member of the batch being landed, as soon as its end is known.
    private func tell(_ member: Int, _ result: StageResult) {
        guard inFlight.indices.contains(member), told.insert(member).inserted else { return }
        inFlight[member].continuation.resume(returning: result)
    }

    /// The next batch, taken while one verifies (`speculate`): what waits now, up to `batch`.
    private func next() -> (number: Int, members: [Request])? {
        guard let first = waiting.first else { return nil }
        let taken = Array(waiting.prefix(first.request.parameters.batch))
        waiting.removeFirst(taken.count)
        inFlight += taken
        batches += 1
        return (batches, taken.map(\.request))
    }
}

/// One batch of a merge queue, landed under the repository's landing lock (SPEC §10).
///
/// Each item's commit is built on the one before it (a chain on the base), `verify` runs once on
/// the chain's tip, and a passing chain lands by one fast-forward. A failing chain is split in
/// halves: the first half is verified on the base; passed, it lands, and the failure is in the
/// second half (built on the first already); failed, it is settled the same way, and the second
/// half is built again on what landed and verified. An item alone in a failing chain is
/// convicted. So with one failing item in 16, at most 1 + 2·log2 16 = 9 verifications.
/// With `verify-concurrency` of 2 or more, the second half is verified on the base at the same
/// time as the first, which saves a round when the whole first half fails.
///
/// Every verification and verdict is journaled (on each item it covers) before anything lands;
/// an item whose trailer is on the base already is landed, so a batch interrupted at any moment
/// lands each item once. With `push`, the base is the remote's: fetched first, the chain pushed
/// as a fast-forward before the local base follows, and a push refused because the remote moved
/// sends the items not yet landed back to the queue.
final class MergeBatch {
    enum Outcome {
        case ended(StageResult)
        /// Back to the queue, to be built again; `refused`: because the remote's base moved.
        case again(refused: Bool)
    }

    /// A link of a chain: the member (its index) and the commit built for it.
    private struct Link {
        var member: Int
        var commit: String
    }

    /// A verification's verdict.
    private struct Verdict {
        var number: Int
        var passed: Bool
        var why: String
        var items: [String]
        var on: String
    }

    /// Rounds of speculation (two batches verified at once) per hold of the landing lock.
    static let speculationRounds = 4
    private var members: [MergeQueue.Request]
    /// The batch each member came in (speculation adds the next batches to this one's run).
    private var batchOf: [Int]
    /// The next batch of the queue, taken while one verifies (`speculate`).
    private let next: @Sendable () async -> (number: Int, members: [MergeQueue.Request])?
    /// Tells the queue a member's end at once (it lands, or is convicted, long before the bisection is over).
    private let report: @Sendable (Int, StageResult) async -> Void
    private(set) var verifications: Int
    private var outcomes: [Outcome?]
    /// Set when a push was refused because the remote's base moved.
    private var remoteMoved = false
    private let base: String
    private let parameters: MergeQueue.Parameters
    private let verify: [Command]
    private let merging: String

    init(number: Int, members: [MergeQueue.Request], verifications: Int, next: @escaping @Sendable () async -> (number: Int, members: [MergeQueue.Request])?,
         report: @escaping @Sendable (Int, StageResult) async -> Void) {
        self.members = members
        self.report = report
        self.batchOf = Array(repeating: number, count: members.count)
        self.next = next
        self.verifications = verifications
        outcomes = Array(repeating: nil, count: members.count)
        base = members[0].job.settings.base
        parameters = members[0].parameters
        verify = members[0].job.stage.commands(MergeParameters.verify)
        merging = members[0].job.stateDirectory + "/merging"
    }

    func run() async -> [Outcome] {
        let first = members[0].job
        let git = await Git(first.repository, environment: first.environment).withIdentity()
        do {
            try await git.withLandingLock { (git: Git) async throws(StageError) in try await self.locked(git) }
        } catch {
            for i in members.indices where outcomes[i] == nil { outcomes[i] = remoteMoved ? .again(refused: true) : .ended(error.result) }
        }
        return outcomes.map { $0 ?? .ended(.failed("merge: the queue let this item go without landing it; \(base) is unchanged")) }
    }

    /// A member's end: recorded, and told to the queue, which ends its stage.
    private func end(_ member: Int, _ result: StageResult) async {
        outcomes[member] = .ended(result)
        await report(member, result)
    }

    private func locked(_ git: Git) async throws(StageError) {
        mkdir(members[0].job.stateDirectory, 0o700)
        mkdir(merging, 0o700)
        try StateDirectory.requireReal(merging)
        var start: String
        if let remote = parameters.push {
            start = try await synchronize(git, remote: remote)
        } else {
            guard let tip = await git.commit("refs/heads/" + base) else { throw StageError("merge: the base branch \(base) does not exist") }
            start = tip
        }
        var chain = try await build(await notLanded(Array(members.indices), on: start, git: git), on: start, git: git)
        await announce(chain, on: start)
        guard parameters.speculate, parameters.verifyConcurrency > 1, !verify.isEmpty else {
            _ = try await settle(chain, on: start, failing: nil, git: git)
            return
        }
        // Speculation: while a chain verifies, the next batch is built on its tip and verified
        // at the same time. Both pass: both land, and the next two go. The first passes: it
        // lands, and the next is bisected on it. The first fails: the next's verdict means
        // nothing; it goes back to the queue, and the first is bisected.
        // At most a few rounds per hold of the landing lock: other stages and runs land too.
        var rounds = 0
        while !chain.isEmpty, rounds < MergeBatch.speculationRounds {
            rounds += 1
            guard let tip = chain.last?.commit, let (number, more) = await next() else { break }
            let indices = await notLanded(add(more, batch: number), on: start, git: git)
            guard let following = try await build(indices, on: tip, git: git, tentative: true), following.count == indices.count else {
                // It cannot be built on this chain as it is (a conflict, an item already in it): as a batch of its own, after.
                for i in indices { outcomes[i] = .again(refused: false) }
                break
            }
            await announce(following, on: tip)
            let verdicts = await check([chain, following], on: start, git: git)
            guard verdicts[0].passed else {
                for i in indices { outcomes[i] = .again(refused: false) }
                _ = try await settle(chain, on: start, failing: verdicts[0], git: git)
                return
            }
            start = try await land(chain, on: start, git: git)
            guard start == tip else {
                // An item of the chain was ended meanwhile, and what landed is not what the next was built on.
                for i in indices { outcomes[i] = .again(refused: false) }
                return
            }
            guard verdicts[1].passed else {
                _ = try await settle(following, on: start, failing: verdicts[1], git: git)
                return
            }
            start = try await land(following, on: start, git: git)
            // The next two batches, if any wait.
            guard let (n, waiting) = await next() else { return }
            chain = try await build(await notLanded(add(waiting, batch: n), on: start, git: git), on: start, git: git)
            await announce(chain, on: start)
        }
        _ = try await settle(chain, on: start, failing: nil, git: git)
    }

    /// Members taken from the queue while the batch runs (`speculate`): their indices.
    private func add(_ more: [MergeQueue.Request], batch: Int) -> [Int] {
        let indices = Array(members.count..<(members.count + more.count))
        members += more
        batchOf += Array(repeating: batch, count: more.count)
        outcomes += Array(repeating: nil, count: more.count)
        return indices
    }

    /// Those of `indices` not landed yet; the others end as landed before: their trailer from
    /// this run is on the base (a runner killed after landing or pushing them), or their branch's
    /// tip is in it (someone merged it). What makes a batch interrupted at any moment land each once.
    private func notLanded(_ indices: [Int], on start: String, git: Git) async -> [Int] {
        var open: [Int] = []
        for i in indices {
            if let sha = await MergeExecutor.landed(git: git, base: base, item: members[i].id, run: members[i].job.runId) {
                await end(i, .succeeded(OrderedObject([("commit", .string(sha)), ("landed-before", .bool(true))])))
            } else if await git.isAncestor(members[i].tip, of: start) {
                await end(i, .succeeded(OrderedObject([("commit", .string(start)), ("landed-before", .bool(true))])))
            } else {
                open.append(i)
            }
        }
        return open
    }

    /// A chain's make-up journaled on each of its items, before it is verified or landed.
    private func announce(_ chain: [Link], on start: String) async {
        for link in chain {
            await members[link.member].job.record("batch", OrderedObject([("batch", .int(batchOf[link.member])), ("items", .list(chain.map { .string(members[$0.member].id) })),
                                                                          ("base", .string(start))]))
        }
    }

    // MARK: - Chains

    /// The members' commits, each on the one before, from `start`. What cannot be built ends
    /// its item (a conflict with the base or with the items before it, a hook's refusal) and is
    /// left out; `tentative`, nothing ends, and nil says the chain is not what it would be.
    private func build(_ indices: [Int], on start: String, git: Git, tentative: Bool = false) async throws(StageError) -> [Link]? {
        let merger = try await git.readingAttributes(of: start, scratch: merging + "/attributes")
        var head = start
        var chain: [Link] = []
        for i in indices {
            let request = members[i]
            do {
                switch try await MergeExecutor.build(request, on: head, git: git, merger: merger, merging: merging) {
                case .commit(let sha):
                    chain.append(Link(member: i, commit: sha))
                    head = sha
                case .alreadyIn where head == start:
                    // Every commit of the branch is on the base already (cherry-picked there).
                    if tentative { return nil }
                    await end(i, .succeeded(OrderedObject([("commit", .string(start)), ("landed-before", .bool(true))])))
                case .changesNothing where head == start:
                    if tentative { return nil }
                    await end(i, request.empty == "skip" ? .succeeded(OrderedObject([("commit", .null), ("empty", .bool(true))]))
                        : .failed("merge: squashed, the branch changes nothing on \(base) (its changes are there already); nothing landed (set `empty: skip` to skip such items)"))
                case .alreadyIn, .changesNothing:
                    // Its changes are in the items before it: judged again once they have landed.
                    if tentative { return nil }
                    outcomes[i] = .again(refused: false)
                }
            } catch {
                if tentative { return nil }
                await end(i, error.result)
            }
        }
        return chain
    }

    /// `build` for certain: every member ends or is in the chain.
    private func build(_ indices: [Int], on start: String, git: Git) async throws(StageError) -> [Link] {
        try await build(indices, on: start, git: git, tentative: false) ?? []
    }

    // MARK: - Verifying and bisecting

    /// Lands what of `chain` passes, convicts what fails; returns the base's tip after.
    /// `failing`: the verification that showed this chain fails (nil: not verified yet).
    private func settle(_ chain: [Link], on start: String, failing: Verdict?, git: Git) async throws(StageError) -> String {
        guard !chain.isEmpty else { return start }
        guard !verify.isEmpty else { return try await land(chain, on: start, git: git) }
        var failing = failing
        if failing == nil {
            let verdict = await check([chain], on: start, git: git)[0]
            if verdict.passed { return try await land(chain, on: start, git: git) }
            failing = verdict
        }
        guard let failing else { return start }
        if chain.count == 1 {
            await convict(chain[0], by: failing)
            return start
        }
        let left = Array(chain.prefix(chain.count / 2))
        let right = Array(chain.dropFirst(chain.count / 2))
        // With room for two verifications, the second half on the base too, at the same time.
        var alone: [Link]?
        var verdicts: [Verdict]
        if parameters.verifyConcurrency > 1, let r = try await build(right.map(\.member), on: start, git: git, tentative: true), r.count == right.count {
            alone = r
            verdicts = await check([left, r], on: start, git: git)
        } else {
            verdicts = await check([left], on: start, git: git)
        }
        if verdicts[0].passed {
            let landed = try await land(left, on: start, git: git)
            // `right` was built on `left`: with it, it is what failed. Unless what landed is not
            // `left` (an item of it was ended meanwhile): then it is built again on what did.
            guard landed == left.last?.commit else {
                return try await settle(try await build(right.map(\.member), on: landed, git: git), on: landed, failing: nil, git: git)
            }
            return try await settle(right, on: landed, failing: failing, git: git)
        }
        let after = try await settle(left, on: start, failing: verdicts[0], git: git)
        if after == start, let alone, verdicts.count > 1 {
            // Nothing of the first half landed: the second half's verification on the base holds.
            return try await settle(alone, on: start, failing: verdicts[1].passed ? nil : verdicts[1], git: git, verified: verdicts[1].passed)
        }
        let rebuilt = try await build(right.map(\.member), on: after, git: git)
        return try await settle(rebuilt, on: after, failing: nil, git: git)
    }

    /// `settle` for a chain verified and passed already.
    private func settle(_ chain: [Link], on start: String, failing: Verdict?, git: Git, verified: Bool) async throws(StageError) -> String {
        verified ? try await land(chain, on: start, git: git) : try await settle(chain, on: start, failing: failing, git: git)
    }

    /// Runs `verify` on the tip of each chain (at once, each in a checkout of its own); each
    /// verification and its verdict is journaled on every item it covers.
    private func check(_ chains: [[Link]], on start: String, git: Git) async -> [Verdict] {
        var numbered: [(number: Int, chain: [Link], items: [String])] = []
        for chain in chains {
            verifications += 1
            let items = chain.map { members[$0.member].id }
            numbered.append((verifications, chain, items))
            for link in chain {
                await members[link.member].job.record("verifying", OrderedObject([("batch", .int(batchOf[link.member])), ("verification", .int(verifications)),
                                                                                    ("items", .list(items.map(Value.string))), ("base", .string(start))]))
            }
        }
        let verify = self.verify
        let merging = self.merging
        let runs = numbered.enumerated().map { slot, n in
            let tip = n.chain.last!.commit
            let job = members[n.chain.last!.member].job
            let started = n.chain.map { members[$0.member].processStarted }
            return (slot: slot, tip: tip, job: job, started: started)
        }
        let results = await withTaskGroup(of: (Int, String?).self) { group in
            for run in runs {
                group.addTask {
                    let why = await MergeBatch.runVerify(verify, on: run.tip, job: run.job, git: git,
                                                         checkout: merging + (run.slot == 0 ? "/checkout" : "/checkout-\(run.slot + 1)")) { pid, start in
                        for s in run.started { s(pid, start) }
                    }
                    return (run.slot, why)
                }
            }
            var out = [String?](repeating: nil, count: runs.count)
            for await (slot, why) in group { out[slot] = why }
            return out
        }
        var verdicts: [Verdict] = []
        for (n, why) in zip(numbered, results) {
            let verdict = Verdict(number: n.number, passed: why == nil, why: why ?? "", items: n.items, on: start)
            verdicts.append(verdict)
            for link in n.chain {
                await members[link.member].job.record("verified", OrderedObject([("batch", .int(batchOf[link.member])), ("verification", .int(n.number)),
                                                                                   ("passed", .bool(verdict.passed)), ("items", .list(n.items.map(Value.string)))]))
            }
        }
        return verdicts
    }

    /// The verify commands on `tip`, in the kept checkout at `checkout`; nil when they pass, else
    /// what the failing one said.
    private static func runVerify(_ commands: [Command], on tip: String, job: StageJob, git: Git, checkout path: String,
                                  started: @escaping @Sendable (Int32, UInt64) -> Void) async -> String? {
        do {
            let tree = try await git.output(["rev-parse", tip + "^{tree}"])
            let checkout = try await git.keptCheckout(path, head: tip, tree: tree)
            for command in commands {
                let ran = await CommandRunner().run(command, for: job, workingDirectory: Template(parts: [.text(checkout.directory)]), outputs: [], processStarted: started)
                if case .failed(let why) = ran { return why }
            }
            return nil
        } catch {
            return "the runner could not check the merge out to verify it: \(error.message)"
        }
    }

    /// The item alone failed: it ends failed with what verify said, journaled first.
    private func convict(_ link: Link, by verdict: Verdict) async {
        let request = members[link.member]
        let others = verdict.items.filter { $0 != request.id }
        let what = others.isEmpty
            ? "verification \(verdict.number) (batch \(batchOf[link.member])) on \(base) at \(verdict.on.prefix(8)) with it alone"
            : "verification \(verdict.number) (batch \(batchOf[link.member])) of \(verdict.items.joined(separator: ", ")) failed, and with it taken out the others pass"
        let reason = "merge: verify failed; \(base) is unchanged by \(request.id) (convicted by \(what)): \(verdict.why)"
        await request.job.record("convicted", OrderedObject([("attempt", .int(request.job.attempt)), ("batch", .int(batchOf[link.member])),
                                                             ("verification", .int(verdict.number)), ("reason", .string(reason))]))
        await end(link.member, .failed(reason))
    }

    // MARK: - Landing

    /// Lands `chain` (verified, or with no `verify`) on the base at `start`; returns its tip.
    /// A member whose attempt the runner has ended meanwhile (its timeout, a cancel) does not
    /// land: the rest is built again without it and verified again.
    private func land(_ chain: [Link], on start: String, git: Git) async throws(StageError) -> String {
        let gone = chain.filter { members[$0.member].job.ended.hasHappened }
        if !gone.isEmpty {
            for link in gone { await end(link.member, .failed("merge: ended by the runner before landing; \(base) is unchanged")) }
            let rebuilt = try await build(chain.filter { l in !gone.contains { $0.member == l.member } }.map(\.member), on: start, git: git)
            return try await settle(rebuilt, on: start, failing: nil, git: git)
        }
        guard let tip = chain.last?.commit else { return start }
        let ids = chain.map { members[$0.member].id }
        if let remote = parameters.push {
            try await push(tip, to: remote, git: git)
            // The local base follows what was pushed.
            do {
                try await git.land(tip, on: base, from: start, reason: "amplify-run: merge \(ids.joined(separator: ", "))")
            } catch {
                for link in chain {
                    members[link.member].job.note("warning", OrderedObject([("message", .string("pushed to \(remote); the local \(base) did not follow: \(error.message)"))]))
                }
            }
        } else {
            try await git.land(tip, on: base, from: start, reason: "amplify-run: merge \(ids.joined(separator: ", "))")
        }
        for link in chain {
            await end(link.member, .succeeded(OrderedObject([("commit", .string(link.commit)), ("batch", .int(batchOf[link.member]))])))
        }
        return tip
    }

    // MARK: - The remote

    /// The base made one with the remote's, before a batch is built on it: fetched; the local
    /// base fast-forwarded to the remote's, or the remote's to a local base ahead of it (work a
    /// killed runner landed but had not pushed). Returns the commit both are at.
    private func synchronize(_ git: Git, remote: String) async throws(StageError) -> String {
        let fetched = await git.fetchBranch(base, from: remote)
        guard fetched.succeeded else { throw StageError("merge: \(fetched.failure(["git", "fetch", remote])); nothing landed") }
        guard let local = await git.commit("refs/heads/" + base) else { throw StageError("merge: the base branch \(base) does not exist") }
        guard let theirs = await git.commit("refs/remotes/\(remote)/\(base)"), theirs != local else { return local }
        if await git.isAncestor(theirs, of: local) {
            try await push(local, to: remote, git: git)
            return local
        }
        if await git.isAncestor(local, of: theirs) {
            try await git.land(theirs, on: base, from: local, reason: "amplify-run: \(base) follows \(remote)/\(base)")
            return theirs
        }
        throw StageError("merge: \(base) (\(local.prefix(8))) and \(remote)/\(base) (\(theirs.prefix(8))) have diverged, and amplify-run rewrites neither; bring them together (e.g. `git pull --rebase \(remote) \(base)`) and run again; nothing landed")
    }

    /// Pushes `commit` to the remote's base as a fast-forward — never forced. Refused because
    /// the remote's base moved: the batch stops, its items not yet landed go back to the queue.
    private func push(_ commit: String, to remote: String, git: Git) async throws(StageError) {
        let r = await git.run(["push", "--porcelain", remote, "\(commit):refs/heads/\(base)"])
        if r.succeeded { return }
        let said = r.stdout + "\n" + r.stderr
        // Refused as not a fast-forward ("[rejected] (fetch first)", "(non-fast-forward)"), or
        // the remote's ref moved between its advertisement and the update ("cannot lock ref …
        // is at X but expected Y"): another pusher won the race. Any other refusal (a protected
        // branch's hook, no permission) is an error.
        if said.contains("[rejected]") || said.contains("cannot lock ref") {
            remoteMoved = true
            throw StageError("merge: \(remote) refused the push: its \(base) moved")
        }
        throw StageError("merge: \(r.failure(["git", "push", remote])); nothing of it is on \(remote)")
    }
}

extension Git {
    /// `git fetch` of the remote's `branch` into `refs/remotes/REMOTE/BRANCH`. Under the worktree
    /// lock: fetch walks every worktree's HEAD, and one being added is not a commit yet ("bad object").
    func fetchBranch(_ branch: String, from remote: String) async -> CommandRunner.Output {
        (try? await withWorktreeLock { (git: Git) async throws(StageError) in
            await git.run(["fetch", "--quiet", "--no-tags", remote, "+refs/heads/\(branch):refs/remotes/\(remote)/\(branch)"])
        }) ?? CommandRunner.Output(termination: .exited(1), stdout: "", stderr: "cannot take the worktree lock")
    }

    /// After GitHub merged an item's pull request, the local base follows the remote's, when it
    /// can as a fast-forward (later items then start from the work that landed); else it stays.
    /// Returns why it did not follow, or nil.
    func follow(_ base: String, of remote: String) async -> String? {
        do {
            return try await withLandingLock { (git: Git) async throws(StageError) -> String? in
                let fetched = await git.fetchBranch(base, from: remote)
                guard fetched.succeeded else { return fetched.failure(["git", "fetch", remote]) }
                guard let local = await git.commit("refs/heads/" + base), let theirs = await git.commit("refs/remotes/\(remote)/\(base)") else { return nil }
                guard local != theirs, await git.isAncestor(local, of: theirs) else { return nil }
                try await git.land(theirs, on: base, from: local, reason: "amplify-run: \(base) follows \(remote)/\(base)")
                return nil
            }
        } catch {
            return error.message
        }
    }
}
