import ArgumentParser

/// `sprof stat`: counters like perf stat (being built).
struct StatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stat", abstract: "Count events for a command, like perf stat.")
    func run() throws { throw fail("sprof stat is not available yet") }
}
