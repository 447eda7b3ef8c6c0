// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for the parsers that read outside data. A package of its own because the
// whole build needs `-sanitize=fuzzer` and `-parse-as-library` (libFuzzer provides main), which
// the main package's executables cannot take. Sources/Sprof* are symlinks to the real targets, so
// the fuzzed code is the shipped code. Build and run with fuzz/run.sh (see README.md).
let package = Package(
    name: "sprof-fuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(name: "CSprof", path: "include"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(name: "SprofCore", dependencies: ["CSprof"]),
        .target(name: "SprofRecording", dependencies: ["SprofCore", "CSprof"]),
        .target(name: "SprofSymbols", dependencies: ["SprofCore", "SprofProfile", "CSprof"]),
        .target(name: "SprofProfile"),
        .target(name: "SprofOutput", dependencies: ["SprofProfile"]),
        .target(
            name: "SprofFormats",
            dependencies: ["SprofProfile", "SprofOutput", "CZlib", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["profile.proto", "README.md"]
        ),
        // Folded stacks text → FoldedStacks → serialized folded text and the SVG.
        .executableTarget(name: "FuzzFolded", dependencies: ["SprofOutput"]),
        // Raw ring-buffer bytes → RingBuffer.drain → RecordParser, in the three sample layouts.
        .executableTarget(name: "FuzzRecords", dependencies: ["SprofRecording"]),
        // /tmp/perf-PID.map text → JitMap.parse → SymbolTable lookups.
        .executableTarget(name: "FuzzJitMap", dependencies: ["SprofSymbols"]),
        // pprof files (gzip or plain profile.proto) → PprofFormat.decode → folded view → encode.
        .executableTarget(name: "FuzzPprof", dependencies: ["SprofFormats", "SprofProfile", "SprofOutput"]),
    ],
    swiftLanguageModes: [.v5]
)
