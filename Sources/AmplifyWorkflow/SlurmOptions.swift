/// Where a session's agent runs (`settings.sessions`, dispatch's `sessions`): on this machine, or
/// as a Slurm batch job (SPEC §14).
public enum SessionsBackend {
    public static let names = ["local", "slurm"]
}

/// `slurm:` (in `settings`, or on a dispatch, whose keys win): what each agent's batch job asks
/// Slurm for. Every key is optional; what is not given is the cluster's default.
public struct SlurmOptions: Sendable, Hashable, ParameterReading {
    public var partition: String?
    /// The job's time limit (`--time`, in whole minutes, rounded up).
    public var time: WorkflowDuration?
    public var cpus: Int?
    /// Memory in Slurm's form (`--mem`): a number, optionally K, M, G or T.
    public var mem: String?
    public var account: String?
    /// More sbatch options, as given (`["--qos=long", "--constraint=gpu"]`).
    public var extraArgs: [String] = []

    public init() {}

    public static let keys: [KeySpec] = [
        KeySpec("partition", .string, "The partition (`--partition`); default: the cluster's."),
        KeySpec("time", .duration, "The job's time limit (`--time`, rounded up to whole minutes); keep the wait-approved `timeout` too: Slurm enforces it late."),
        KeySpec("cpus", .integer(minimum: 1), "CPUs per agent (`--cpus-per-task`)."),
        KeySpec("mem", .string, "Memory per agent in Slurm's form (`--mem`): 4G, 512M."),
        KeySpec("account", .string, "The account charged (`--account`)."),
        KeySpec("extra-args", .argv, "More sbatch options, each one string (`--qos=long`); the runner's own (`--output`, `--chdir`, `--job-name`, `--export`, …) are refused."),
    ]

    /// sbatch options the runner sets itself: given in `extra-args`, they would break what it
    /// relies on (where the output goes, the job's name and directory, its environment).
    public static let reserved = ["--output", "-o", "--error", "-e", "--chdir", "-D", "--job-name", "-J", "--export", "--open-mode",
                                  "--wrap", "--array", "-a", "--comment", "--parsable", "--requeue", "--no-requeue", "--wait", "-W", "--test-only"]

    /// Why `arg` cannot be one of `extra-args`, or nil.
    public static func refusal(_ arg: String) -> String? {
        let name = arg.hasPrefix("--") ? String(arg.prefix { $0 != "=" }) : String(arg.prefix(2))
        guard arg.hasPrefix("-") else { return "'\(arg)' is not an sbatch option (write `--name=value` as one string)" }
        if reserved.contains(name) { return "'\(name)' is set by the runner for every agent's job" }
        // sbatch takes a long option's unambiguous abbreviation (`--out=` for `--output=`).
        if name.hasPrefix("--"), name.count > 3, let full = reserved.first(where: { $0.hasPrefix("--") && $0.hasPrefix(name) }) {
            return "'\(name)' is sbatch's abbreviation of '\(full)', which the runner sets for every agent's job"
        }
        return nil
    }

    /// Whether `text` is memory in Slurm's form.
    public static func isMemory(_ text: String) -> Bool {
        var digits = Substring(text)
        if let last = digits.last, "KMGTkmgt".contains(last) { digits = digits.dropLast() }
        return !digits.isEmpty && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber)
    }

    /// A partition's or an account's name: something Slurm could call one, never an option.
    public static func isName(_ text: String) -> Bool {
        !text.isEmpty && !text.hasPrefix("-") && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.,".unicodeScalars.contains($0)) }
    }

    /// `other`'s keys over these (a dispatch's over the settings').
    public func overridden(by other: SlurmOptions) -> SlurmOptions {
        var o = self
        if let v = other.partition { o.partition = v }
        if let v = other.time { o.time = v }
        if let v = other.cpus { o.cpus = v }
        if let v = other.mem { o.mem = v }
        if let v = other.account { o.account = v }
        if !other.extraArgs.isEmpty { o.extraArgs = other.extraArgs }
        return o
    }

    /// What sbatch is given for them.
    public var sbatchArguments: [String] {
        var a: [String] = []
        if let partition { a.append("--partition=" + partition) }
        if let time { a.append("--time=\(max(1, (time.milliseconds + 59_999) / 60_000))") }
        if let cpus { a.append("--cpus-per-task=\(cpus)") }
        if let mem { a.append("--mem=" + mem) }
        if let account { a.append("--account=" + account) }
        return a + extraArgs
    }

    /// As the record, the journal and expressions see them.
    public var value: Value {
        var o = OrderedObject()
        if let partition { o["partition"] = .string(partition) }
        if let time { o["time"] = .string(time.description) }
        if let cpus { o["cpus"] = .int(cpus) }
        if let mem { o["mem"] = .string(mem) }
        if let account { o["account"] = .string(account) }
        if !extraArgs.isEmpty { o["extra-args"] = .list(extraArgs.map(Value.string)) }
        return .object(o)
    }

    /// Read back from `value` (a record, or a dispatch's rendered `slurm:`); nil when it is not one.
    public static func read(_ value: Value, as type: ValueType = .slurm) -> SlurmOptions? {
        guard case .object(let o) = value else { return nil }
        var s = SlurmOptions()
        for (key, v) in o {
            switch (key, v) {
            case ("partition", .string(let t)) where isName(t): s.partition = t
            case ("account", .string(let t)) where isName(t): s.account = t
            case ("mem", .string(let t)) where isMemory(t): s.mem = t
            case ("mem", .int(let n)) where n > 0: s.mem = String(n)
            case ("time", .string(let t)):
                guard let d = WorkflowDuration(parsing: t) else { return nil }
                s.time = d
            case ("cpus", .int(let n)) where n >= 1: s.cpus = n
            case ("cpus", .string(let t)):
                guard let n = Int(t), n >= 1 else { return nil }
                s.cpus = n
            case ("extra-args", .list(let l)):
                s.extraArgs = l.map(\.renderedText)
                guard s.extraArgs.allSatisfy({ refusal($0) == nil }) else { return nil }
            case (_, .null): continue
            default: return nil
            }
        }
        return s
    }
}
