import XCTest
import SprofRecording

/// Sampling options with one companion uprobe, on libc's `getppid` (a function the tests' commands
/// rarely call: the probe is there to be opened and released, not to fire). Skips, saying why,
/// without a uprobe PMU.
func optionsWithAUprobe() throws -> SamplingOptions {
    guard Uprobes.pmuType != nil else { throw XCTSkip("this kernel has no uprobe PMU") }
    let libc = "/lib/x86_64-linux-gnu/libc.so.6"
    guard let offset = Uprobes.fileOffset(ofSymbol: "getppid", in: libc) else { throw XCTSkip("no getppid in \(libc)") }
    var options = SamplingOptions()
    options.companions = [CompanionEvent(event: try Uprobes.event(path: libc, offset: offset, name: "getppid", copiesUserStack: false), role: .freed)]
    return options
}
