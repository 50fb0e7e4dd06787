import AmplifyEngine
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// `merge` with `via: pull-request` (SPEC §10): the item's branch pushed to `remote`, one pull
/// request per item found or opened with GitHub's CLI, and — with `wait: merged` — waited for
/// until GitHub merges it.
///
/// One pull request per item, whatever happens to the runner: the branch's pull request is looked
/// for before one is opened, so a retry, or a runner resumed after kill -9 between `gh pr create`
/// and its note in the journal, finds the one opened before. Nothing leaves the machine before gh
/// is known to be there and logged in; the branch is pushed as it is, never forced. Waiting is a
/// `gh pr view` every `settings.poll`, until the stage's timeout or cancel ends it.
enum PullRequestLanding {
    /// Lands the item through a pull request. `git` runs in the repository; the session's
    /// leftovers are committed on `branch` already.
    static func land(_ job: StageJob, git: Git, item: OrderedObject, id: String, branch: String, strategy: String,
                     processStarted: @escaping @Sendable (Int32, UInt64) -> Void) async throws(StageError) -> StageResult {
        let evaluator = ExpressionEvaluator(context: job.context)
        let remote: String, wait: String, autoMerge: Bool
        do {
            remote = try job.stage.value(MergeParameters.remote, evaluator)
            wait = try job.stage.value(MergeParameters.wait, evaluator)
            autoMerge = try job.stage.value(MergeParameters.autoMerge, evaluator)
        } catch {
            throw StageError("merge: \(error.message)")
        }
        // git would read a name that starts with `-` as an option.
        guard !remote.isEmpty, !remote.hasPrefix("-") else { throw StageError("merge: `remote: \(remote)` does not name a remote") }
        let gh = GitHubCLI(directory: job.repository, environment: git.environment, started: processStarted)
        try await gh.requireLogin()
        // Timed out or cancelled meanwhile: the runner has recorded the item's end, nothing leaves now.
        guard !job.ended.hasHappened else { throw StageError("merge: ended by the runner before anything was pushed") }

        // Found first: a pull request opened by an earlier attempt (or run) is this item's. One
        // already merged or closed is this item's only if this run noted it, or GitHub saw the
        // branch at its tip: the same branch name may have landed other work in an earlier run.
        let tip = await git.commit("refs/heads/" + branch)
        let noted = Set(job.notes.filter { $0.kind == "pull-request" }.compactMap { n -> Int? in if case .int(let pr)? = n.fields["pr"] { pr } else { nil } })
        var pr: GitHubCLI.PullRequest
        if let found = try await gh.pullRequest(head: branch, accepting: { $0.state == .open || noted.contains($0.number) || ($0.headOid != nil && $0.headOid == tip) }) {
            pr = found
            // It may have gained commits since (the session's leftovers).
            if pr.state == .open { try await push(branch, to: remote, git: git, started: processStarted) }
        } else {
            try await push(branch, to: remote, git: git, started: processStarted)
            let bodyFile = try writeBody(job, item: item, id: id)
            defer { unlink(bodyFile) }
            pr = try await gh.create(base: job.settings.base, head: branch, title: title(item, id: id), bodyFile: bodyFile)
            pr.opened = true
        }
        if !job.notes.contains(where: { $0.kind == "pull-request" && $0.fields["pr"] == .int(pr.number) }) {
            job.note("pull-request", OrderedObject([("pr", .int(pr.number)), ("url", .string(pr.url)),
                                                    ("message", .string("#\(pr.number) \(pr.opened ? "opened" : "found"): \(pr.url)"))]))
        }
        var outputs = OrderedObject([("pr", .int(pr.number)), ("pr-url", .string(pr.url))])
        if pr.state == .closed { throw closedUnmerged(pr) }
        if wait == "opened" { return .succeeded(outputs) }

        // Asked once per pull request: a person who turned auto-merge off on GitHub since is not overruled by a retry.
        if autoMerge, pr.state == .open, !job.notes.contains(where: { $0.kind == "auto-merge" && $0.fields["pr"] == .int(pr.number) }) {
            let how = try await gh.enableAutoMerge(pr, strategy: strategy)
            job.note("auto-merge", OrderedObject([("pr", .int(pr.number)), ("message", .string(how))]))
        }
        let commit = try await waitUntilMerged(pr, gh: gh, job: job)
        outputs["commit"] = commit.map(Value.string) ?? .null
        return .succeeded(outputs)
    }

    /// Polls the pull request every `settings.poll` until GitHub says it is merged (its merge
    /// commit), or closed (the item fails as `pr-closed`). A gh that fails meanwhile (GitHub or the
    /// network down) is waited out, said once; one that says the pull request is gone is not.
    private static func waitUntilMerged(_ pr: GitHubCLI.PullRequest, gh: GitHubCLI, job: StageJob) async throws(StageError) -> String? {
        var warned = false
        var mergedWithoutCommit = 0
        while true {
            guard !job.ended.hasHappened else { throw StageError("merge: ended by the runner while waiting for pull request #\(pr.number) to be merged: \(pr.url)") }
            switch try await gh.view(pr.number) {
            case .merged(let commit?):
                return commit
            case .merged(nil):
                // GitHub reports the merge commit a moment after the merge; not for ever.
                mergedWithoutCommit += 1
                if mergedWithoutCommit >= 3 { return nil }
            case .closed:
                throw closedUnmerged(pr)
            case .open:
                break
            case .unavailable(let why):
                if !warned {
                    warned = true
                    job.note("warning", OrderedObject([("message", .string("gh could not read pull request #\(pr.number) (\(why)); still waiting for it to be merged"))]))
                }
            }
            await pause(milliseconds: job.settings.poll.milliseconds, unless: job.ended)
        }
    }

    private static func closedUnmerged(_ pr: GitHubCLI.PullRequest) -> StageError {
        StageError("pull request #\(pr.number) was closed without being merged: \(pr.url)", kind: .prClosed)
    }

    /// Sleeps, waking early when the runner ends the attempt (a timeout, a cancel).
    private static func pause(milliseconds: Int64, unless ended: AttemptEnd) async {
        var left = max(milliseconds, 1)
        while left > 0, !ended.hasHappened {
            let step = min(left, 250)
            try? await Task.sleep(for: .milliseconds(step))
            left -= step
        }
    }

    /// `git push REMOTE refs/heads/BRANCH:refs/heads/BRANCH`: a fast-forward or nothing. A remote
    /// branch with commits this one lacks (someone pushed to the pull request) fails the item.
    private static func push(_ branch: String, to remote: String, git: Git, started: @Sendable (Int32, UInt64) -> Void) async throws(StageError) {
        let args = ["push", remote, "refs/heads/\(branch):refs/heads/\(branch)"]
        let r = await git.run(args, stdoutLimit: 1 << 20, started: started)
        guard !r.succeeded else { return }
        let said = r.stderr + r.stdout
        if said.contains("[rejected]") || said.contains("non-fast-forward") || said.contains("fetch first") {
            throw StageError("merge: \(remote) refused \(branch): its \(branch) has commits this one lacks (pushed to the pull request by someone?), and amplify-run never force-pushes; bring them into \(branch) (git pull) or close the pull request, then run again: \(CommandRunner.tail(said, lines: 4))")
        }
        throw StageError("merge: pushing \(branch) to \(remote) failed: \(r.failure(["git"] + args))")
    }

    /// `<id>: <title>`, on one line, as long as GitHub takes (256 characters).
    static func title(_ item: OrderedObject, id: String) -> String {
        guard case .string(let t)? = item["title"] else { return id }
        let line = t.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\t" }).joined(separator: " ").trimming(" ")
        return String((line.isEmpty ? id : id + ": " + line).prefix(256))
    }

    /// The pull request's description: what the session said it did (its `summary.md`, else the
    /// summary its decision carried), then the item's own description. Written under the state
    /// directory (mode 0600), never in the repository; returns its path.
    private static func writeBody(_ job: StageJob, item: OrderedObject, id: String) throws(StageError) -> String {
        var summary = ""
        if case .string(let dir)? = job.session?["dir"] {
            summary = CommandRunner.readCapped(dir + "/summary.md", limit: textLimit).trimming(" \t\r\n")
        }
        if summary.isEmpty { summary = decisionSummary(job.context) ?? "" }
        var description = ""
        if case .string(let d)? = item["description"] { description = capped(d).trimming(" \t\r\n") }
        var body = summary.isEmpty ? "" : capped(summary) + "\n\n"
        if !description.isEmpty { body += "## \(title(item, id: id))\n\n" + description + "\n\n" }
        body += "Opened by amplify-run (run \(job.runId))."

        let directory = job.stateDirectory + "/pull-requests"
        mkdir(job.stateDirectory, 0o700)
        mkdir(directory, 0o700)
        try StateDirectory.requireReal(directory)
        let path = directory + "/" + SessionFiles.id(item: id, runId: job.runId) + ".md"
        do { try RunStore.writeAtomically(Array(body.utf8), to: path, mode: 0o600) } catch {
            throw StageError("merge: cannot write the pull request's description to \(path): \(error.message)")
        }
        return path
    }

    /// How much of a summary or a description goes into the body (GitHub takes 65,536 characters).
    private static let textLimit = 30_000

    private static func capped(_ text: String) -> String {
        text.utf8.count <= textLimit ? text : String(decoding: Array(text.utf8.prefix(textLimit)), as: UTF8.self) + "…"
    }

    /// The summary of the approving decision among the outputs this instance sees (wait-approved's `summary`).
    private static func decisionSummary(_ context: ExpressionContext) -> String? {
        guard case .object(let stages)? = context.roots["stages"] else { return nil }
        for (_, stage) in stages {
            guard case .object(let s) = stage, case .object(let outputs)? = s["outputs"],
                  outputs["decision"] == .string("approved"), case .string(let summary)? = outputs["summary"],
                  !summary.trimming(" \t\r\n").isEmpty else { continue }
            return summary.trimming(" \t\r\n")
        }
        return nil
    }

    /// Whether a merge stage this instance follows landed the item through a pull request that
    /// GitHub merged (its outputs hold `pr` and GitHub's merge `commit`). Such a branch is in the
    /// remote's base, not necessarily in the local one: cleanup counts it as merged.
    static func merged(in context: ExpressionContext) -> Bool {
        guard case .object(let stages)? = context.roots["stages"] else { return false }
        return stages.contains { _, stage in
            guard case .object(let s) = stage, case .object(let outputs)? = s["outputs"],
                  case .int? = outputs["pr"], case .string? = outputs["pr-url"], case .string(let commit)? = outputs["commit"] else { return false }
            return !commit.isEmpty
        }
    }
}

/// GitHub's CLI, `gh`, run in the repository (gh finds the GitHub repository from its remotes,
/// or `gh repo set-default`), never prompting, its JSON read as untrusted text. Every process is
/// reported through `started`, so the stage's timeout ends it; each is also bounded on its own.
struct GitHubCLI: Sendable {
    var directory: String
    var environment: [String: String]
    var started: @Sendable (Int32, UInt64) -> Void

    /// A pull request as `gh pr list` and `gh pr create` give it.
    struct PullRequest: Sendable, Equatable {
        var number: Int
        var url: String
        var state: State
        /// The commit its head branch was at, as GitHub last saw it.
        var headOid: String? = nil
        /// Opened by this attempt (else found).
        var opened = false
    }

    /// GitHub's `PullRequestState`.
    enum State: String, Sendable {
        case open = "OPEN", closed = "CLOSED", merged = "MERGED"
    }

    /// What `gh pr view` says of a pull request while it is waited for.
    enum Observation: Sendable, Equatable {
        case open
        case closed
        case merged(commit: String?)
        /// gh failed in a way that may pass (the network, GitHub itself).
        case unavailable(String)
    }

    /// The longest one gh call may take (gh sets no timeout of its own on GitHub's API).
    static let callLimit: Duration = .seconds(300)

    init(directory: String, environment: [String: String], started: @escaping @Sendable (Int32, UInt64) -> Void) {
        self.directory = directory
        var env = environment
        // Output for a pipe, whatever the user's terminal settings say: no colours, no prompts.
        for name in ["GH_FORCE_TTY", "CLICOLOR_FORCE"] { env[name] = nil }
        env["GH_PROMPT_DISABLED"] = "1"
        env["GH_NO_UPDATE_NOTIFIER"] = "1"
        env["NO_COLOR"] = "1"
        self.environment = env
        self.started = started
    }

    func run(_ args: [String]) async -> CommandRunner.Output {
        await CommandRunner.run(["gh"] + args, in: directory, environment: environment, stdoutLimit: 1 << 20,
                                timeout: GitHubCLI.callLimit, started: started)
    }

    /// gh is on PATH and logged in (`gh auth status`), or the item fails saying how to get there.
    func requireLogin() async throws(StageError) {
        guard ChildProcess.find("gh", path: environment["PATH"] ?? "") != nil else {
            throw StageError("merge: `via: pull-request` needs GitHub's CLI, `gh`, which is not on PATH: install it (https://cli.github.com; Debian and Ubuntu: `apt install gh`), log in with `gh auth login`, and run again; nothing was pushed")
        }
        let r = await run(["auth", "status"])
        guard r.succeeded else {
            let said = CommandRunner.tail(r.stderr.isEmpty ? r.stdout : r.stderr, lines: 4)
            throw StageError("merge: gh is not logged in to GitHub (`gh auth status` \(r.termination)\(said.isEmpty ? "" : ": " + said)); run `gh auth login` (or set GH_TOKEN), then run again; nothing was pushed")
        }
    }

    /// This repository's pull request from `head`, whatever its state: an open one before a merged
    /// one before a closed one, the newest of each, among those `accepting` takes. Pull requests
    /// from forks that happen to use the same branch name are not this item's, and are left alone.
    func pullRequest(head: String, accepting: (PullRequest) -> Bool = { _ in true }) async throws(StageError) -> PullRequest? {
        let args = ["pr", "list", "--head", head, "--state", "all", "--json", "number,url,state,isCrossRepository,headRefOid"]
        let r = await run(args)
        guard r.succeeded else { throw failure(args, r) }
        guard case .list(let items) = try parse(r.stdout, args) else { throw malformed(args, r.stdout, "not a JSON array") }
        var found: [PullRequest] = []
        for item in items {
            guard case .object(let o) = item, case .int(let number)? = o["number"], case .string(let url)? = o["url"],
                  case .string(let s)? = o["state"], let state = State(rawValue: s) else {
                throw malformed(args, r.stdout, "an entry without a number, url and state (OPEN, CLOSED or MERGED)")
            }
            if o["isCrossRepository"] == .bool(true) { continue }
            let head: String? = if case .string(let oid)? = o["headRefOid"] { oid } else { nil }
            let pr = PullRequest(number: number, url: url, state: state, headOid: head)
            if accepting(pr) { found.append(pr) }
        }
        func rank(_ s: State) -> Int { switch s { case .open: 0; case .merged: 1; case .closed: 2 } }
        return found.min { (rank($0.state), -$0.number) < (rank($1.state), -$1.number) }
    }

    /// `gh pr create`, which prints the new pull request's address. One that gh reports as failed
    /// may have been opened all the same (or by someone else meanwhile): looked for before failing.
    func create(base: String, head: String, title: String, bodyFile: String) async throws(StageError) -> PullRequest {
        let args = ["pr", "create", "--base", base, "--head", head, "--title", title, "--body-file", bodyFile]
        let r = await run(args)
        if r.succeeded, let url = r.stdout.split(separator: "\n").map({ String($0).trimming(" \t\r") }).last(where: { $0.contains("/pull/") }),
           let number = Int(url.lastComponent), number > 0 {
            return PullRequest(number: number, url: url, state: .open)
        }
        if let pr = try? await pullRequest(head: head), pr.state == .open { return pr }
        guard r.succeeded else { throw failure(args, r, "; no pull request was opened") }
        throw malformed(args, r.stdout, "no pull request address")
    }

    /// `gh pr merge N --auto` with the stage's strategy: GitHub merges it once its checks pass.
    /// GitHub refuses auto-merge for a pull request that can merge now ("clean status"): that
    /// one is merged now, as gh itself does when it sees the status first. Returns what was done.
    func enableAutoMerge(_ pr: PullRequest, strategy: String) async throws(StageError) -> String {
        let (flag, word) = switch strategy {
        case "squash": ("--squash", "squash")
        case "rebase": ("--rebase", "rebase")
        default: ("--merge", "merge commit")
        }
        let args = ["pr", "merge", String(pr.number), "--auto", flag]
        let r = await run(args)
        if r.succeeded { return "GitHub merges #\(pr.number) (\(word)) once its required checks pass" }
        if r.stderr.contains("clean status") || r.stderr.contains("unstable status") {
            let now = ["pr", "merge", String(pr.number), flag]
            let m = await run(now)
            if m.succeeded { return "#\(pr.number) could merge at once: merged (\(word))" }
            throw failure(now, m, "; pull request #\(pr.number) is still open: \(pr.url)")
        }
        throw failure(args, r, "; pull request #\(pr.number) is open, without auto-merge: \(pr.url)")
    }

    /// `gh pr view N --json state,mergedAt,mergeCommit`.
    func view(_ number: Int) async throws(StageError) -> Observation {
        let args = ["pr", "view", String(number), "--json", "state,mergedAt,mergeCommit"]
        let r = await run(args)
        guard r.succeeded else {
            if r.stderr.contains("Could not resolve to a PullRequest") {
                throw StageError("merge: pull request #\(number) does not exist on GitHub: \(CommandRunner.tail(r.stderr, lines: 2))")
            }
            if r.termination == .exited(4) {
                // gh's exit status when it has no credentials (any more).
                throw failure(args, r, "; run `gh auth login` (or set GH_TOKEN), then run again")
            }
            return .unavailable(r.timedOut ? "gh took longer than \(GitHubCLI.callLimit)" : CommandRunner.tail(r.stderr.isEmpty ? r.stdout : r.stderr, lines: 2))
        }
        guard case .object(let o) = try parse(r.stdout, args), case .string(let s)? = o["state"], let state = State(rawValue: s) else {
            throw malformed(args, r.stdout, "no state (OPEN, CLOSED or MERGED)")
        }
        switch state {
        case .open: return .open
        case .closed: return .closed
        case .merged:
            guard case .object(let commit)? = o["mergeCommit"], case .string(let oid)? = commit["oid"], !oid.isEmpty else { return .merged(commit: nil) }
            guard oid.count <= 64, oid.allSatisfy(\.isHexDigit) else { throw malformed(args, r.stdout, "a merge commit that is not a commit id") }
            return .merged(commit: oid)
        }
    }

    private func parse(_ text: String, _ args: [String]) throws(StageError) -> Value {
        do { return try JSONParser.parse(text) } catch {
            throw malformed(args, text, "not JSON (\(error))")
        }
    }

    private func malformed(_ args: [String], _ printed: String, _ why: String) -> StageError {
        let start = String(printed.trimming(" \t\r\n").prefix(200))
        return StageError("merge: `gh \(args.joined(separator: " "))` printed \(why)\(start.isEmpty ? "" : ": " + start)")
    }

    private func failure(_ args: [String], _ r: CommandRunner.Output, _ then: String = "") -> StageError {
        StageError("merge: " + r.failure(["gh"] + args) + then)
    }
}
