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
        if workflow.stages.contains(where: { $0.kind == .merge }), let version = await git.version(), version < (2, 38) {
            return ["merge builds its commits with `git merge-tree --write-tree`, which needs git 2.38 or later; this git is \(version.0).\(version.1); nothing was claimed"]
        }
        guard await git.commit("refs/heads/" + settings.base) == nil else { return [] }
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
