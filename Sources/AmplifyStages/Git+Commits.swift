import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

// Commits made in the object store, without a checkout: a merge is `git merge-tree
// --write-tree` (milliseconds on a repository of any size, where checking out a worktree to
// merge in takes as long as the repository is large), then `git commit-tree`. A rebase replays
// each commit the same way.

extension Git {
    /// What `git merge-tree --write-tree` found.
    enum TreeMerge: Equatable {
        case clean(tree: String)
        case conflicts([String])
    }

    /// A git whose merges read `.gitattributes` (merge drivers: `merge=union`, `-merge`,
    /// `binary`) from `commit`'s tree — as `git merge` in a checkout of it would — and not from
    /// whatever the user's checkout holds (git 2.39's merge-tree reads them from the work tree):
    /// a work tree at `scratch` holding those files alone, and an index of none.
    func readingAttributes(of commit: String, scratch: String) async throws(StageError) -> Git {
        // The attributes files only, found by git (a listing of the whole tree is megabytes on a
        // large repository): the commit's tree against the empty tree, limited to them.
        let emptyTree = commit.count == 64 ? "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321" : "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        let args = ["diff-tree", "-r", "-z", "--no-commit-id", "--no-renames", "--abbrev=\(commit.count)", emptyTree, commit, "--", ".gitattributes", ":(glob)**/.gitattributes"]
        let r = await run(args)
        guard r.succeeded else { throw StageError("merge: \(r.failure(["git"] + args))") }
        // -z: ":<mode> <mode> <object> <object> <status>\0<path>\0" for each file.
        var files: [(path: String, blob: String)] = []
        let fields = r.stdout.split(separator: "\0", omittingEmptySubsequences: false)
        var i = 0
        while i + 1 < fields.count {
            let meta = fields[i].split(separator: " ")
            if meta.count == 5, meta[1] != "160000" { files.append((String(fields[i + 1]), String(meta[3]))) }
            i += 2
        }
        // A few small files of the runner's own: removed in-process, not by a spawned rm.
        try? FileManager.default.removeItem(atPath: scratch)
        do { try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true) } catch {
            throw StageError("merge: cannot create \(scratch): \(error)")
        }
        for file in files where !file.path.split(separator: "/").contains("..") {
            let blob = await run(["cat-file", "blob", file.blob], stdoutLimit: 1 << 20)
            guard blob.succeeded else { continue }
            let target = scratch + "/" + file.path
            try? FileManager.default.createDirectory(atPath: target.dropLastComponent, withIntermediateDirectories: true)
            try? RunStore.writeAtomically(Array(blob.stdout.utf8), to: target, mode: 0o644)
        }
        var g = at(scratch)
        g.environment["GIT_DIR"] = commonDirectory()
        g.environment["GIT_WORK_TREE"] = scratch
        g.environment["GIT_INDEX_FILE"] = scratch + "/.amplify-no-index"
        return g
    }

    /// The merge of `theirs` into `ours`, computed in the object store: the merged tree, or the
    /// paths that conflict. git 2.38 or later.
    func mergeTree(_ ours: String, _ theirs: String, allowUnrelatedHistories: Bool = false) async throws(StageError) -> TreeMerge {
        let args = ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z"]
            + (allowUnrelatedHistories ? ["--allow-unrelated-histories"] : []) + [ours, theirs]
        let r = await run(args)
        // -z: the tree, then each conflicting path, each ended by NUL. Exit 1 = conflicts.
        let fields = r.stdout.split(separator: "\0", omittingEmptySubsequences: true).map(String.init)
        switch r.termination {
        case .exited(0) where fields.count >= 1:
            return .clean(tree: fields[0].trimming(" \t\r\n"))
        case .exited(1) where fields.count >= 1:
            var seen = Set<String>()
            return .conflicts(fields.dropFirst().filter { seen.insert($0).inserted })
        default:
            if r.stderr.contains("unknown option") || r.stderr.contains("usage: git merge-tree") {
                throw StageError("merge: this git has no `git merge-tree --write-tree` (git 2.38 or later is needed): \(r.failure(["git", "merge-tree"]))")
            }
            throw StageError("merge: \(r.failure(["git"] + args))")
        }
    }

    /// A commit as `git cat-file commit` shows it: what a replay needs to make it again.
    struct CommitObject {
        var tree: String
        var parents: [String]
        /// `Name <email>` and git's own date (`<seconds> <zone>`): a replayed commit keeps its author.
        var authorName: String
        var authorEmail: String
        var authorDate: String
        /// The message (as UTF-8 text).
        var message: String
    }

    func readCommit(_ commit: String) async throws(StageError) -> CommitObject {
        let r = await run(["cat-file", "commit", commit])
        guard r.succeeded else { throw StageError("merge: \(r.failure(["git", "cat-file", "commit", commit]))") }
        // The header ends at the first empty line; the message is the rest, byte for byte.
        let bytes = Array(r.stdout.utf8)
        var split = bytes.count
        for i in 0..<max(0, bytes.count - 1) where bytes[i] == UInt8(ascii: "\n") && bytes[i + 1] == UInt8(ascii: "\n") {
            split = i
            break
        }
        let header = String(decoding: bytes[..<split], as: UTF8.self)
        let message = split + 2 <= bytes.count ? String(decoding: bytes[(split + 2)...], as: UTF8.self) : ""
        var object = CommitObject(tree: "", parents: [], authorName: "", authorEmail: "", authorDate: "", message: message)
        for line in header.split(separator: "\n") {
            if line.hasPrefix("tree ") { object.tree = String(line.dropFirst(5)) }
            if line.hasPrefix("parent ") { object.parents.append(String(line.dropFirst(7))) }
            if line.hasPrefix("author "), let open = line.firstIndex(of: "<"), let close = line.lastIndex(of: ">"), open < close {
                object.authorName = String(line[line.index(line.startIndex, offsetBy: 7)..<open]).trimming(" ")
                object.authorEmail = String(line[line.index(after: open)..<close])
                object.authorDate = String(line[line.index(after: close)...]).trimming(" ")
            }
        }
        guard !object.tree.isEmpty else { throw StageError("merge: cannot read commit \(commit)") }
        return object
    }

    /// `git commit-tree`: a commit of `tree` with `parents` and the message in `messageFile`,
    /// by `author` when given (a replayed commit keeps its own), else by whoever commits.
    /// `sign`: `-S`, as `commit.gpgsign` makes `git commit` sign (commit-tree does not read it).
    func commitTree(_ tree: String, parents: [String], messageFile: String, author: (name: String, email: String, date: String)? = nil,
                    sign: Bool) async throws(StageError) -> String {
        var g = self
        if let author {
            g.environment["GIT_AUTHOR_NAME"] = author.name
            g.environment["GIT_AUTHOR_EMAIL"] = author.email
            // git's own format (`<seconds> <zone>`), marked as such: a date before 1973 is
            // fewer digits than git would otherwise take for seconds.
            g.environment["GIT_AUTHOR_DATE"] = "@" + author.date
        }
        let args = ["commit-tree", tree] + parents.flatMap { ["-p", $0] } + ["-F", messageFile] + (sign ? ["-S"] : [])
        let r = await g.run(args)
        guard r.succeeded else { throw StageError("merge: git could not make the commit: \(r.failure(["git", "commit-tree"])); the base is unchanged") }
        return r.stdout.trimming(" \t\r\n")
    }

    /// Whether the repository asks for signed commits (`commit.gpgsign`).
    func signsCommits() async -> Bool {
        (await run(["config", "--type=bool", "--get", "commit.gpgsign"])).stdout.trimming(" \t\r\n") == "true"
    }

    /// A path as git prints one that needs quoting (core.quotePath): control characters, `"`
    /// and `\\` escaped inside double quotes, so a path cannot write to the terminal.
    static func quoted(_ path: String) -> String {
        guard path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\"" || $0 == "\\" }) else { return path }
        var out = "\""
        for scalar in path.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let octal = String(scalar.value, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// The commits `git rebase <onto>` would replay from `tip`, oldest first: those not in
    /// `onto`, merges left out, and those whose change `onto` has already (cherry-picked there).
    func commitsToReplay(onto: String, tip: String) async throws(StageError) -> [String] {
        let list = try await output(["rev-list", "--reverse", "--topo-order", "--no-merges", "--right-only", "--cherry-pick", onto + "..." + tip])
        return list.split(separator: "\n").map(String.init)
    }

    /// What replaying one commit gave.
    enum Replay {
        case applied(tree: String)
        /// Its change is in `head` already (a commit that became empty): dropped, as rebase does.
        case becameEmpty
        case conflicts([String])
    }

    /// `commit`'s change applied to a commit whose tree is `headTree`, in the object store. The
    /// three-way merge a cherry-pick makes — base `commit^`, ours the head, theirs `commit` — is
    /// what `git merge-tree` computes for `commit` and a stand-in for the head whose parent is
    /// `commit^` (their merge base then). The stand-in is an object no ref points at.
    func replay(_ commit: CommitObject, sha: String, onto headTree: String) async throws(StageError) -> Replay {
        let standIn = try await output(["commit-tree", headTree] + commit.parents.prefix(1).flatMap { ["-p", $0] } + ["-m", "amplify-run: a stand-in for a replay"])
        switch try await mergeTree(standIn, sha, allowUnrelatedHistories: commit.parents.isEmpty) {
        case .conflicts(let paths):
            return .conflicts(paths)
        case .clean(let tree):
            if tree == headTree {
                // A commit that was empty to begin with is kept (as rebase keeps it); one that
                // became empty is dropped.
                let parentTree = commit.parents.isEmpty ? nil : try await output(["rev-parse", commit.parents[0] + "^{tree}"])
                if parentTree != commit.tree { return .becameEmpty }
            }
            return .applied(tree: tree)
        }
    }
}

/// A commit message as `git commit` leaves one given with `-m` (its default `whitespace`
/// cleanup): trailing whitespace off every line, no leading or trailing blank lines, runs of
/// blank lines made one, and a final newline.
enum CommitMessage {
    static func cleanedUp(_ text: String) -> String {
        // On bytes: "\r\n" is one Character, so a String split on "\n" would not see its lines.
        var lines: [ArraySlice<UInt8>] = []
        var blank = false
        for raw in Array(text.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            var line = raw
            while let last = line.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") || last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.isEmpty {
                blank = !lines.isEmpty
                continue
            }
            if blank { lines.append([]) }
            blank = false
            lines.append(line)
        }
        return lines.isEmpty ? "" : lines.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n") + "\n"
    }
}
