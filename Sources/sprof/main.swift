import ArgumentParser
import Sprof

/// The `sprof` command: subcommands in their own files.
struct SprofCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sprof",
        abstract: "A sampling profiler for Linux: perf_event_open, complete stacks, flame graphs.",
        discussion: """
            Exit statuses: 0 success; with a command (run, stat), the command's own status \
            (128+N when it was killed by signal N); 1 sprof failed (events refused, output not \
            written, input unreadable); 2 usage error (unknown option, bad value; nothing was run) \
            or a failed gate ('stat --baseline' found a regression, 'diff --fail-above', \
            '--min-samples'); 126 the command cannot be executed; 127 the command was not found. \
            A command that itself exits 1, 2, 126 or 127 looks the same: \
            the error line on stderr (prefixed 'sprof: ') tells them apart.
            """,
        version: sprofVersionString,
        subcommands: [RunCommand.self, StatCommand.self, ReportCommand.self, AnnotateCommand.self, DiffCommand.self, FlamegraphCommand.self, ConvertCommand.self, ListCommand.self, ServeCommand.self]
    )
}

// Signals, descriptors and argv are put in order before the parser runs (Arguments.swift).
SprofCLI.runMain()
