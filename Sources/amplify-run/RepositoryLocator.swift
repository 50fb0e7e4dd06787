#if canImport(Glibc)
import Glibc
#endif

/// Finds the git top level of the current directory (where `.git` is), and paths relative to it.
enum RepositoryLocator {
    static func currentDirectory() -> String {
        guard let p = getcwd(nil, 0) else { return "." }
        defer { free(p) }
        return String(cString: p)
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The nearest directory at or above `start` holding `.git` (a directory, or a file in a
    /// linked worktree); nil outside a repository.
    static func topLevel(from start: String) -> String? {
        var dir = realPath(start) ?? start
        while true {
            if access(dir + "/.git", F_OK) == 0 { return dir }
            guard let slash = dir.lastIndex(of: "/"), dir != "/" else { return nil }
            dir = slash == dir.startIndex ? "/" : String(dir[..<slash])
        }
    }

    /// `file` relative to `repository`, or nil when it lies outside.
    static func relative(_ file: String, to repository: String) -> String? {
        guard let real = realPath(file) else { return nil }
        if real.hasPrefix(repository + "/") { return String(real.dropFirst(repository.count + 1)) }
        return nil
    }
}
