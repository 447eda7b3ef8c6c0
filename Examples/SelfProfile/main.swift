// sprof-example: a program that profiles part of itself with `import Sprof`.
//
//   swift run sprof-example [OUTPUT-DIR]     writes self-profile.svg and self-profile.folded
//   swift run -c release sprof-example --bench   measures the profiler's overhead (bench/RESULTS.md (Library section))
//
// Build in debug mode, or pass `-Xswiftc -Xcc -Xswiftc -fno-omit-frame-pointer` in release mode:
// `swiftc -O` on Linux omits frame pointers, and the default call graph walks them.
#if canImport(Glibc)
import Glibc
#endif
import Sprof

/// Something recognisable to find in the flame graph: word counting over generated text.
@inline(never)
func makeText(words: Int) -> [String] {
    var generator = SystemRandomNumberGenerator()
    let vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return (0..<words).map { _ in vocabulary.randomElement(using: &generator)! }
}

@inline(never)
func countWords(_ words: [String]) -> [String: Int] {
    var counts: [String: Int] = [:]
    for word in words { counts[word, default: 0] += 1 }
    return counts
}

@inline(never)
func sortLetters(_ words: [String]) -> Int {
    words.reduce(0) { $0 &+ String($1.sorted()).utf8.count }
}

@inline(never)
func analyse(rounds: Int) -> Int {
    var total = 0
    for _ in 0..<rounds {
        let text = makeText(words: 20_000)
        total &+= countWords(text).count
        total &+= sortLetters(text)
    }
    return total
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--bench" {
    runBenchmarks()
    exit(0)
}
let directory = arguments.first ?? "."

do {
    // Profile only the interesting part of the program: start, work, stop.
    let profiler = Profiler(options: .init(rate: .frequency(999)))
    let t0 = nanoseconds(CLOCK_MONOTONIC)
    try profiler.start()
    let t1 = nanoseconds(CLOCK_MONOTONIC)
    let result = analyse(rounds: 20)
    let t2 = nanoseconds(CLOCK_MONOTONIC)
    let profile = try profiler.stop()
    let t3 = nanoseconds(CLOCK_MONOTONIC)
    print(String(format: "start %.3f s, work %.3f s, stop %.3f s", Double(t1 - t0) / 1e9, Double(t2 - t1) / 1e9, Double(t3 - t2) / 1e9))

    for notice in profile.notices { print("note: \(notice)") }
    print("result \(result): \(profile.statistics.samples) samples in \(String(format: "%.2f", profile.duration)) s")
    print(profile.topTable(8))
    try profile.write(folded: "\(directory)/self-profile.folded", svg: "\(directory)/self-profile.svg",
                      title: "sprof-example: analyse()")
    print("wrote \(directory)/self-profile.svg and \(directory)/self-profile.folded")

    // Counters around a closure: scaled values with their enabled and running times.
    let (_, counts) = try Counters.measure(["task-clock", "page-faults", "instructions:u"]) {
        analyse(rounds: 2)
    }
    print("counters: \(counts)")
} catch let error as SprofError {
    print(error)
    exit(1)
}
