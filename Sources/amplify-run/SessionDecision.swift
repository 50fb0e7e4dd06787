import AmplifyEngine
import AmplifyStages
import ArgumentParser

/// What `approve` and `reject` share: `decision.json`, created exclusively, so the first decision stands.
enum SessionDecision {
    static func record(_ sessionId: String, approved: Bool, text: String?, in context: CommandContext) throws {
        let session = try SessionLocator.live(sessionId, in: context)
        let made: Bool
        do { made = try session.writeDecision(approved: approved, text: text) } catch {
            try SessionLocator.archivedMeanwhile(session, in: context)
            context.error("\(error)")
            throw ExitCode(4)
        }
        guard made else {
            let existing = (try? SessionFiles.readJSON(session.path("decision.json")))?["decision"]?.renderedText ?? "a decision"
            context.error("session \(sessionId) already has a decision (\(existing)); the first one stands")
            throw ExitCode(2)
        }
        context.out.line("\(approved ? "approved" : "rejected") session \(sessionId)")
    }
}
