import AmplifyEngine
#if canImport(Glibc)
import Glibc
#endif

/// The runner's state directory (`settings.state`) and the worktrees folder, as a stage sees them.
enum StateDirectory {
    /// The runner never follows a symlink out of its state directory: its directories must be directories.
    static func requireReal(_ path: String) throws(StageError) {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw StageError("\(path) is not a directory (a symlink?); refusing to write through it")
        }
    }
}

extension StageJob {
    /// `settings.state`, absolute.
    var stateDirectory: String { settings.state.hasPrefix("/") ? settings.state : repository + "/" + settings.state }
    /// `settings.worktrees`, absolute.
    var worktreesDirectory: String { settings.worktrees.hasPrefix("/") ? settings.worktrees : repository + "/" + settings.worktrees }
}

extension String {
    /// The path without its last component.
    public var dropLastComponent: String {
        guard let slash = lastIndex(of: "/") else { return "." }
        return String(self[..<slash])
    }

    /// The path's last component.
    public var lastComponent: String {
        guard let slash = lastIndex(of: "/") else { return self }
        return String(self[index(after: slash)...])
    }
}
