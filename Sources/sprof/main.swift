import ArgumentParser

/// The `sprof` command: subcommands in their own files.
struct SprofCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sprof",
        abstract: "A sampling profiler for Linux: perf_event_open, complete stacks, flame graphs.",
        subcommands: [RunCommand.self, StatCommand.self, FlamegraphCommand.self, ListCommand.self, ServeCommand.self]
    )
}

SprofCLI.main()
