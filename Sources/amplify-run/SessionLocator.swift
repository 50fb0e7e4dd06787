import AmplifyEngine
import AmplifyStages
import AmplifyWorkflow
import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Finding a session by the id a user typed (`status` and the run's output show them), in
/// whichever of the repository's state directories holds it.
enum SessionLocator {
    /// The session, and the store of its state directory; live sessions first, then archived ones when allowed.
    static func find(_ id: String, archived: Bool, in context: CommandContext) throws -> (SessionFiles, RunStore, directory: String) {
        guard SessionFiles.isValidId(id) else {
            context.error("'\(id)' is not a session id (they look like ITEM-20261124T101500Z)")
            throw ExitCode(2)
        }
        guard let states = StateDirectories.find(from: context.directory) else { throw ExitCode(4) }
        if let found = locate(id, in: states, archived: archived) { return found }
        let directories = states.stores.map { SessionFiles.sessionsDirectory($0.root) }
        let known = directories.flatMap { (try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? [] }.filter { !$0.hasSuffix(".json") }
        context.error("no \(archived ? "" : "live ")session '\(id)' in \(directories.joined(separator: " or "))\(DidYouMean.hint(id, known))")
        throw ExitCode(2)
    }

    /// The session `id` in the state directories: live sessions first, then archived ones when
    /// allowed; nil when there is none (what `find` and the dashboard share).
    static func locate(_ id: String, in states: StateDirectories, archived: Bool) -> (SessionFiles, RunStore, directory: String)? {
        let found = states.stores.map { ($0, SessionFiles(stateDirectory: $0.root, id: id)) }
        if let (store, session) = found.first(where: { StateDirectories.isDirectory($0.1.directory, following: false) }) {
            return (session, store, session.directory)
        }
        if archived, let (store, session) = found.first(where: { StateDirectories.isDirectory($0.1.archived, following: false) }) {
            return (session, store, session.archived)
        }
        return nil
    }

    /// The session was archived while we wrote to it (its item ended): say so, exit 2.
    static func archivedMeanwhile(_ session: SessionFiles, in context: CommandContext) throws {
        guard FileManager.default.fileExists(atPath: session.archived) else { return }
        context.error("no live session '\(session.id)': it has just been archived (its item has ended)")
        throw ExitCode(2)
    }

    /// A session a user may still act on: its run has not finished.
    static func live(_ id: String, in context: CommandContext) throws -> SessionFiles {
        let (session, store, _) = try find(id, archived: false, in: context)
        guard let record = session.readRecord() else {
            try archivedMeanwhile(session, in: context)
            context.error("session \(id) has no record of its run (\(session.recordPath))")
            throw ExitCode(4)
        }
        if let outcome = store.summary(of: record.run)?.outcome {
            context.error("the run of session \(id) (\(record.run)) has finished (\(outcome.rawValue)); its sessions take no more answers or decisions")
            throw ExitCode(2)
        }
        return session
    }
}
