import AmplifyEngine
import AmplifyWorkflow

/// The issue tracker a run claimed an item in, as far as giving a claim back goes.
public enum Tracker {
    /// Why a release did not happen.
    public struct Failure: Error, Sendable {
        public var message: String
    }

    /// Sets an item a run claimed back to open in that run's tracker. Returns what was done, in
    /// words; an item that is no longer in progress (closed by a person, say) is left as it is.
    public static func release(_ id: String, claim: Claims.Entry, repository: String, environment: [String: String]) async -> Result<String, Failure> {
        switch claim.source {
        case "file":
            guard let path = claim.path else { return .failure(Failure(message: "the claim of run \(claim.run) names no issues file")) }
            switch await IssuesFile.releaseIssue(id: id, path: path) {
            case .succeeded(let o):
                return .success(o["released"] == .bool(true) ? "open again in \(path)" : "not in progress in \(path) (left as it is)")
            case .failed(let why), .failedAs(_, let why):
                return .failure(Failure(message: why))
            }
        case "bd":
            let env = Git(repository, environment: environment).environment
            guard ChildProcess.find("bd", path: env["PATH"] ?? "/usr/bin:/bin") != nil else {
                return .failure(Failure(message: "run \(claim.run) claimed it with bd, which is not on PATH"))
            }
            let shown = await Exec.run(["bd", "show", id, "--json"], in: repository, environment: env)
            if let v = try? JSONParser.parse(shown.stdout) {
                let issue: Value? = if case .list(let l) = v { l.first } else { v }
                if let status = issue?["status"]?.renderedText, status != "in_progress" {
                    return .success("\(status) in bd, not in progress (left as it is)")
                }
            }
            let argv = ["bd", "update", id, "--status", "open", "--assignee", ""]
            let r = await Exec.run(argv, in: repository, environment: env)
            guard r.succeeded else { return .failure(Failure(message: r.failure(argv))) }
            return .success("open again in bd")
        default:
            return .failure(Failure(message: "run \(claim.run) claimed it in a `\(claim.source)` tracker, which amplify-run cannot change"))
        }
    }
}
