import ArgumentParser
import Sprof

/// `sprof list`: the events `-e` accepts.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the events that -e accepts."
    )

    func run() throws {
        var out = ""
        for kind in ["Hardware event", "Software event"] {
            out += "\(kind)s:\n"
            for e in EventCatalog.entries where e.kind == kind {
                let names = ([e.name] + e.aliases).joined(separator: " OR ")
                out += "  " + names.padding(toLength: 44) + e.summary + "\n"
            }
            out += "\n"
        }
        out += "Raw and PMU events:\n"
        out += "  " + "rNNNN".padding(toLength: 44) + "raw PMU event (event | umask << 8), e.g. r00c0\n"
        out += "  " + "pmu/term=value,.../".padding(toLength: 44) + "sysfs PMU event, e.g. cpu/event=0xc0,umask=0x0/\n"
        let pmus = PMUEvents.available()
        if !pmus.isEmpty { out += "  PMUs on this machine: \(pmus.joined(separator: ", "))\n" }
        out += "\nModifiers: :u user space only, :k kernel only (e.g. cycles:u)\n"
        try writeStandardOutput(out)
    }
}

extension String {
    func padding(toLength n: Int) -> String {
        count >= n ? self + " " : self + String(repeating: " ", count: n - count)
    }
}
