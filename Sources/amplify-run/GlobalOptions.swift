import ArgumentParser

/// Options every subcommand takes, before or after its name.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customShort("C"), help: ArgumentHelp("Act as if started in DIR (like git -C); files are relative to it.", valueName: "DIR"))
    var directory: String?
}
