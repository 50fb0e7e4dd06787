// The top level of a workflow file: its keys, `settings` and `vars`, and the names they allow.

extension WorkflowChecker {
    static func stem(of file: String) -> String {
        var base = Substring(file.split(separator: "/").last ?? Substring(file))
        for ext in [".yaml", ".yml"] where base.hasSuffix(ext) { base = base.dropLast(ext.count) }
        return String(base)
    }

    /// Reports unknown keys (with a suggestion) and missing required ones.
    mutating func checkKeys(_ pairs: [YAMLPair], allowed: [KeySpec], in what: String, at location: SourcePosition, extraHint: (String) -> String? = { _ in nil }) {
        let names = allowed.map(\.name)
        for pair in pairs where !names.contains(pair.key) {
            let hint = extraHint(pair.key) ?? DidYouMean.hint(pair.key, names)
            error(pair.keyLocation, "unknown key '\(pair.key)' in \(what)\(hint)")
        }
        for spec in allowed where spec.required && !pairs.contains(where: { $0.key == spec.name }) {
            error(location, "\(what) is missing the required key '\(spec.name)'")
        }
    }

    mutating func plainString(_ node: YAMLNode, key: String) -> String? {
        guard let s = node.scalar, s.resolved != .null else {
            error(node.location, "`\(key)` must be a string, not \(node.kindDescription)")
            return nil
        }
        if s.text.contains("${{") {
            error(node.location, "expressions are not evaluated in `\(key)`; write a plain value")
            return nil
        }
        return s.text
    }

    mutating func checkSettings(_ node: YAMLNode) -> Settings {
        var settings = Settings()
        guard let pairs = node.mapping else {
            if node.scalar?.resolved != .null {
                error(node.location, "`settings` must be a mapping, not \(node.kindDescription)")
            }
            return settings
        }
        checkKeys(pairs, allowed: WorkflowLanguage.settingsKeys, in: "settings", at: node.location)
        for pair in pairs {
            let v = pair.value
            switch pair.key {
            case "base":
                if let s = plainString(v, key: "settings.base") {
                    if WorkflowChecker.isValidBranchName(s) { settings.base = s } else { error(v.location, "'\(s)' is not a valid git branch name") }
                }
            case "worktrees", "state":
                if let s = plainString(v, key: "settings.\(pair.key)") {
                    if s.isEmpty || s.hasPrefix("/") || s.split(separator: "/").contains("..") {
                        error(v.location, "settings.\(pair.key) must be a path inside the repository (relative, without '..'), not '\(s)'")
                    } else if pair.key == "worktrees" { settings.worktrees = s } else { settings.state = s }
                }
            case "concurrency":
                if let n = integer(v, minimum: 1, key: "settings.concurrency") { settings.concurrency = n }
            case "max-processes":
                if let n = integer(v, minimum: 1, key: "settings.max-processes") { settings.maxProcesses = n }
            case "poll":
                if let d = duration(v, key: "settings.poll") { settings.poll = d }
            case "sparse":
                settings.sparse = sparseDirectories(v)
            case "budget":
                settings.budget = budget(v, key: "settings.budget", turnsAllowed: false)
            case "notify":
                settings.notify = notifyTargets(v)
            case "sandbox":
                if let s = plainString(v, key: "settings.sandbox") {
                    if ["none", "bwrap"].contains(s) { settings.sandbox = s } else { error(v.location, "settings.sandbox must be `none` or `bwrap`, not '\(s)'\(DidYouMean.hint(s, ["none", "bwrap"]))") }
                }
            case "sandbox-writable":
                settings.sandboxWritable = sandboxPaths(v, key: "settings.sandbox-writable")
            case "sessions":
                if let s = plainString(v, key: "settings.sessions") {
                    if SessionsBackend.names.contains(s) { settings.sessions = s } else { error(v.location, "settings.sessions must be `local` or `slurm`, not '\(s)'\(DidYouMean.hint(s, SessionsBackend.names))") }
                }
            case "slurm":
                if let o = slurmOptions(v, key: "settings.slurm") { settings.slurm = o }
            default: break
            }
        }
        return settings
    }

    /// Paths a sandboxed agent may write: absolute, or `~/…` (the agent's home directory).
    mutating func sandboxPaths(_ node: YAMLNode, key: String) -> [String] {
        var paths: [String] = []
        for n in node.sequence ?? [node] {
            guard let s = plainString(n, key: key) else { continue }
            guard WorkflowChecker.isSandboxPath(s) else {
                error(n.location, "`\(key)` takes absolute paths or `~/…` (the home directory), without '..', not '\(s)'")
                continue
            }
            paths.append(s)
        }
        return paths
    }

    static func isSandboxPath(_ s: String) -> Bool {
        (s.hasPrefix("/") || s.hasPrefix("~/")) && s != "/" && !s.split(separator: "/").contains("..") && !s.contains("\0")
    }

    /// `settings.sparse`: a directory or a list of them, each inside the repository — what git's
    /// cone mode takes (directories, not patterns).
    mutating func sparseDirectories(_ node: YAMLNode) -> [String] {
        let nodes = node.sequence ?? [node]
        var directories: [String] = []
        for n in nodes {
            guard let s = plainString(n, key: "settings.sparse") else { continue }
            let trimmed = s.hasSuffix("/") ? String(s.dropLast()) : s
            if trimmed.isEmpty || trimmed.hasPrefix("/") || trimmed.hasPrefix("-") || trimmed.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) {
                error(n.location, "settings.sparse takes directories inside the repository (relative, without '.', '..' or a leading '-'), not '\(s)'")
            } else if trimmed.unicodeScalars.contains(where: { "*?[]!\\".unicodeScalars.contains($0) || $0.value < 0x20 }) {
                error(n.location, "settings.sparse takes directories, not patterns: '\(s)' (git's cone mode checks out whole directories)")
            } else {
                directories.append(trimmed)
            }
        }
        return directories
    }

    static func isValidBranchName(_ s: String) -> Bool {
        guard !s.isEmpty, !s.hasPrefix("-"), !s.hasPrefix("/"), !s.hasSuffix("/"), !s.hasSuffix(".lock"), !s.hasSuffix(".") else { return false }
        if s.contains("..") || s.contains("//") || s.contains("@{") || s == "@" { return false }
        return !s.unicodeScalars.contains { $0.value < 0x21 || $0 == "\u{7F}" || "~^:?*[\\".unicodeScalars.contains($0) }
    }

    mutating func checkVars(_ node: YAMLNode) -> OrderedObject {
        var vars = OrderedObject()
        guard let pairs = node.mapping else {
            if node.scalar?.resolved != .null {
                error(node.location, "`vars` must be a mapping of names to values, not \(node.kindDescription)")
            }
            return vars
        }
        for pair in pairs {
            if !WorkflowChecker.isName(pair.key) {
                error(pair.keyLocation, "'\(pair.key)' is not a valid variable name (letters, digits, '_' and '-', starting with a letter or '_')")
                continue
            }
            guard let s = pair.value.scalar else {
                error(pair.value.location, "vars.\(pair.key) must be a string, number or boolean, not \(pair.value.kindDescription)")
                continue
            }
            if s.text.contains("${{") {
                error(pair.value.location, "expressions are not evaluated in `vars`; write a plain value (or pass --var \(pair.key)=…)")
                continue
            }
            vars[pair.key] = s.resolved
        }
        return vars
    }

    static func isName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || $0 == "-" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    static func isEnvironmentName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

}

extension WorkflowChecker {
    /// `slurm: {partition, time, cpus, mem, account, extra-args}`: plain values, each checked
    /// here, so a job sbatch would refuse is said at its line, not when an item is dispatched.
    mutating func slurmOptions(_ node: YAMLNode, key: String) -> SlurmOptions? {
        guard let pairs = node.mapping else {
            error(node.location, "`\(key)` must be \(ValueType.slurm.expectation), not \(describe(node))")
            return nil
        }
        checkKeys(pairs, allowed: SlurmOptions.keys, in: "`\(key)`", at: node.location)
        var o = SlurmOptions()
        for p in pairs {
            let v = p.value, k = "\(key).\(p.key)"
            switch p.key {
            case "partition", "account":
                guard let s = plainString(v, key: k) else { continue }
                guard SlurmOptions.isName(s) else {
                    error(v.location, "`\(k)` must be a \(p.key)'s name (letters, digits, '_', '-', '.'), not '\(s)'")
                    continue
                }
                if p.key == "partition" { o.partition = s } else { o.account = s }
            case "time":
                o.time = duration(v, key: k)
            case "cpus":
                o.cpus = integer(v, minimum: 1, key: k)
            case "mem":
                guard let s = plainString(v, key: k) else { continue }
                if SlurmOptions.isMemory(s) { o.mem = s } else { error(v.location, "`\(k)` must be memory in Slurm's form (a number, optionally K, M, G or T: 4G, 512M), not '\(s)'") }
            case "extra-args":
                guard let items = v.sequence else {
                    error(v.location, "`\(k)` must be a list of strings, each one sbatch option (\"--qos=long\"), not \(describe(v))")
                    continue
                }
                for item in items {
                    guard let s = plainString(item, key: k) else { continue }
                    if let why = SlurmOptions.refusal(s) { error(item.location, "`\(k)`: \(why)") } else { o.extraArgs.append(s) }
                }
            default: break
            }
        }
        return o
    }
}
