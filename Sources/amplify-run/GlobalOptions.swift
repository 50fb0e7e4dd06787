import ArgumentParser

/// Options every subcommand takes, before or after its name.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customShort("C", allowingJoined: true), help: ArgumentHelp("Act as if started in DIR (like git -C); files are relative to it.", valueName: "DIR"))
    var shortDirectory: String?

    /// `--directory DIR`, the long spelling of `-C`, kept out of the usage line so that it shows `-C`.
    @Option(name: .customLong("directory"), help: .hidden)
    var longDirectory: String?

    /// The directory to act in (`-C DIR`), nil for where the command was started.
    var directory: String? { shortDirectory ?? longDirectory }
}
