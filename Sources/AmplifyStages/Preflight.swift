import AmplifyEngine
import AmplifyWorkflow

/// What a run checks and prepares before anything is claimed or created: a problem that would
/// fail every item (a base branch that does not exist) is said once, up front, instead of each
/// dispatch claiming its item and then failing.
public enum Preflight {
    /// Problems that stop the run before it starts (each one sentence a person can act on).
    /// Also keeps the state directory and the worktrees folder out of `git status`, whatever
    /// happens next.
    public static func check(_ workflow: Workflow, repository: String, environment: [String: String]) async -> [String] {
        let git = Git(repository, environment: environment)
        let settings = workflow.settings
        for dir in [settings.state, settings.worktrees] {
            git.excludeFromStatus(dir.hasPrefix("/") ? dir : repository + "/" + dir)
        }
        guard workflow.stages.contains(where: { $0.kind == .dispatch || $0.kind == .merge }) else { return [] }
        guard await git.run(["rev-parse", "--git-dir"]).succeeded else {
            return ["\(repository) is not a git repository; dispatch and merge need one (run `git init`, or -C the repository)"]
        }
        if let version = await git.version(), version < (2, 38) {
            return ["amplify-run needs git 2.38 or later (merge builds commits with `git merge-tree --write-tree`, dispatch runs hooks with `git hook run`); this git is \(version.0).\(version.1); nothing was claimed"]
        }
        // A sandbox this machine cannot make would fail every dispatch: said once, up front.
        let sandboxed = workflow.stages.contains { stage in
            stage.kind == .dispatch && (stage.parameter(DispatchParameters.sandbox) == nil ? settings.sandbox == "bwrap" : stage.literal(DispatchParameters.sandbox) == "bwrap")
        }
        if sandboxed, let problem = await Bubblewrap.problem(environment: environment) {
            return [problem + "; nothing was claimed"]
        }
        // So would a Slurm cluster that cannot be reached.
        let onSlurm = workflow.stages.contains { stage in
            stage.kind == .dispatch && (stage.parameter(DispatchParameters.sessions) == nil ? settings.sessions == "slurm" : stage.literal(DispatchParameters.sessions) == "slurm")
        }
        if onSlurm, let problem = await Slurm.problem(environment: environment) {
            return [problem + "; nothing was claimed"]
        }
        if await git.commit("refs/heads/" + settings.base) != nil {
            // A sparse directory the base does not have would check out nothing, silently.
            let missing = await settings.sparse.asyncFilter { dir in
                (await git.run(["cat-file", "-t", "refs/heads/\(settings.base):\(dir)"])).stdout.trimming(" \t\r\n") != "tree"
            }
            guard missing.isEmpty else {
                return ["settings.sparse: \(missing.map { "'\($0)'" }.joined(separator: ", ")) \(missing.count == 1 ? "is not a directory" : "are not directories") on \(settings.base); nothing was claimed"]
            }
            return []
        }
        let branches = (try? await git.output(["for-each-ref", "--format=%(refname:short)", "refs/heads/"]))?
            .split(separator: "\n").map(String.init) ?? []
        var message = "settings.base: the base branch '\(settings.base)' does not exist in \(repository)"
        if branches.isEmpty {
            message += " (it has no commits yet: make a first commit)"
        } else {
            let likely = branches.first { ["main", "master", "trunk", "develop"].contains($0) } ?? branches[0]
            message += "; its branches: \(branches.prefix(8).joined(separator: ", "))\(branches.count > 8 ? ", …" : ""). Set `settings: {base: \(likely)}` in the workflow"
        }
        return [message + "; nothing was claimed"]
    }
}

extension Array {
    /// The elements for which `predicate`, awaited one at a time, holds.
    func asyncFilter(_ predicate: (Element) async -> Bool) async -> [Element] {
        var kept: [Element] = []
        for element in self where await predicate(element) { kept.append(element) }
        return kept
    }
}

extension Preflight {
    /// `settings.notify` targets that cannot be used once the environment and `--var`s are known
    /// (a webhook from `${{ env.HOOK }}` with HOOK unset, https:// without curl).
    public static func notifyProblems(_ workflow: Workflow, overrides: [String: String], environment: [String: String], repository: String) -> [String] {
        guard !workflow.settings.notify.isEmpty else { return [] }
        var vars = workflow.vars
        for (k, v) in overrides where vars[k] != nil { vars[k] = .string(v) }
        do throws(NotifyError) {
            _ = try NotificationDelivery(targets: workflow.settings.notify, vars: vars, environment: environment, directory: repository)
            return []
        } catch {
            return ["settings.notify: \(error.message); nothing was claimed"]
        }
    }

    /// Dispatch stages whose `agent` names a profile that does not exist, once `--var`s are
    /// known (`agent: ${{ vars.agent }}` with `--var agent=codx`): said before anything is claimed.
    public static func agentProblems(_ workflow: Workflow, overrides: [String: String]) -> [String] {
        var vars = workflow.vars
        for (k, v) in overrides where vars[k] != nil { vars[k] = .string(v) }
        let evaluator = ExpressionEvaluator(context: ExpressionContext(roots: ["vars": .object(vars), "settings": workflow.settings.value]))
        var problems: [String] = []
        for stage in workflow.stages where stage.kind == .dispatch {
            // Only what the variables decide; an `agent` that reads the item is checked per item.
            guard case .profile(let name)? = try? stage.value(DispatchParameters.agent, evaluator) else { continue }
            if let profile = workflow.agentProfile(name) {
                if let budget = try? stage.value(DispatchParameters.budget, evaluator), let why = WorkflowChecker.unkeptBudget(budget, profile: profile) {
                    problems.append("stage '\(stage.id)': `budget`: \(why); nothing was claimed")
                }
                continue
            }
            let known = Array(workflow.agents.keys) + AgentProfile.builtIn.keys
            problems.append("stage '\(stage.id)': unknown agent profile '\(name)'\(DidYouMean.hint(name, known)); profiles: \(known.sorted().joined(separator: ", ")) (declare your own under `agents:`); nothing was claimed")
        }
        return problems
    }
}
