// swift-tools-version:6.0
import PackageDescription

// Fixtures and the demo benchmark keep frame pointers so that `--call-graph fp` stacks are whole:
// `swiftc -O` on Linux x86_64 omits them otherwise.
let framePointers: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-fno-omit-frame-pointer"])]

let package = Package(
    name: "sprof",
    products: [
        .library(name: "Sprof", targets: ["Sprof"]),
        .executable(name: "sprof", targets: ["sprof"]),
        // The web UI (`sprof serve` execs it): a product of its own so that `swift build --product
        // sprof` and scripts/demo.sh never build Hummingbird and SwiftNIO.
        .executable(name: "sprof-serve", targets: ["sprof-serve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // Only `sprof-serve` and its tests depend on it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // Header-only C shim: perf_event_open, ioctls, ring-buffer atomics, fork/exec, libdw/libelf.
        .systemLibrary(name: "CSprof", path: "include"),
        // zlib (zlib1g-dev), through its own API: gzip for pprof files.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Capstone (libcapstone-dev), the disassembler behind `sprof annotate --asm`.
        .systemLibrary(name: "CCapstone", path: "Sources/CCapstone"),

        // Shared vocabulary: address kinds, the one syscall helper, file reading, the load-bias
        // rule and the vdso image (the last needs the shim's ELF types).
        .target(name: "SprofCore", dependencies: ["CSprof"]),
        // Stage 1: attr builder, ring buffer, pure record parser, launching, per-CPU sessions.
        .target(name: "SprofRecording", dependencies: ["SprofCore", "CSprof"]),
        // Counting (`sprof stat`, library counters): same events and shim, no ring buffer.
        .target(name: "SprofCounting", dependencies: ["SprofCore", "SprofRecording", "CSprof"]),
        // Stage 2: process/thread model, frame-pointer and DWARF (libdw) unwinding.
        .target(name: "SprofUnwind", dependencies: ["SprofCore", "SprofRecording", "CSprof"]),
        // Stage 3: ELF symbols, kallsyms, vdso, inline frames, source lines, demangling.
        .target(name: "SprofSymbols", dependencies: ["SprofCore", "SprofProfile", "CSprof"]),
        // The profile model every view reads (pprof-shaped; pure Swift, no I/O).
        .target(name: "SprofProfile"),
        // Profile formats: pprof (profile.proto, gzip through zlib) written and read, speedscope written;
        // the one reader of profile files (pprof or folded) and the registry of output formats.
        .target(
            name: "SprofFormats",
            dependencies: ["SprofProfile", "SprofOutput", "CZlib", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["profile.proto", "README.md"]
        ),
        // Stage 4: folded stacks, then the SVG flame graph (reads only folded data).
        .target(name: "SprofOutput", dependencies: ["SprofProfile"]),
        // The preload library's C code (see Sources/SprofHeap/heap.c). Compiled here only to check
        // it; nothing links this target (it would interpose sprof's own malloc). The library
        // `sprof run --heap` preloads, libsprof-heap.so, is built from the same source by the
        // PlainCLibrary plugin as a plain C shared object (libc and libm only): a SwiftPM dynamic
        // product is linked by swiftc against libswiftCore, which would load the Swift runtime
        // and libstdc++ into every profiled program.
        .target(name: "SprofHeap", cSettings: [.unsafeFlags(["-O2", "-fvisibility=hidden", "-fno-optimize-sibling-calls"])],
                linkerSettings: [.linkedLibrary("m")]),
        .plugin(name: "PlainCLibrary", capability: .buildTool()),
        // `sprof annotate`: per-line and per-instruction costs, sources (disk, debuginfod), disassembly.
        .target(name: "SprofAnnotate", dependencies: ["SprofProfile", "SprofSymbols", "SprofCore", "CCapstone"]),
        // Public facade: one engine for `sprof run`, `sprof stat` and in-process use.
        // Its resource bundle (sprof_Sprof.resources, beside the binaries) holds libsprof-heap.so.
        .target(
            name: "Sprof",
            dependencies: ["SprofCore", "SprofRecording", "SprofCounting", "SprofUnwind", "SprofSymbols", "SprofProfile", "SprofOutput", "SprofFormats"],
            plugins: ["PlainCLibrary"]
        ),
        // Thin CLI: one file per subcommand.
        .executableTarget(
            name: "sprof",
            dependencies: ["Sprof", "SprofOutput", "SprofFormats", "SprofAnnotate", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // `sprof serve`: job store, queue (runs the `sprof` binary), views, HTTP API and pages.
        .target(
            name: "SprofServe",
            dependencies: ["Sprof", "SprofProfile", "SprofOutput", "SprofFormats", "SprofRecording", "SprofAnnotate", .product(name: "Hummingbird", package: "hummingbird")],
            // The pages' script and style, compiled into the binary: nothing is fetched from elsewhere.
            resources: [.embedInCode("Web/app.js"), .embedInCode("Web/flame.js"), .embedInCode("Web/transforms.js"), .embedInCode("Web/timeline.js"), .embedInCode("Web/source.js"), .embedInCode("Web/memory.js"), .embedInCode("Web/app.css")]
        ),
        .executableTarget(name: "sprof-serve", dependencies: ["SprofServe"]),

        // Test support: fakes, synthetic ring-buffer builders, recognisable workload chains.
        .target(name: "SprofTestSupport", dependencies: ["SprofCore", "SprofRecording", "SprofOutput"]),
        // Workloads profiled by the end-to-end tests (known call chains, threads, fork+exec, exit codes).
        .executableTarget(name: "sprof-fixtures", swiftSettings: framePointers),
        // The library in use: a program that profiles part of itself and writes a flame graph.
        .executableTarget(name: "sprof-example", dependencies: ["Sprof"], path: "Examples/SelfProfile"),
        // The demo target: an order-book replay benchmark.
        .executableTarget(name: "qsl-bench", path: "bench/qsl-bench", swiftSettings: framePointers),
        // Offline throughput of each pipeline stage (bench/run).
        .executableTarget(name: "sprof-stage-bench", dependencies: ["Sprof", "SprofRecording", "SprofUnwind", "SprofSymbols", "SprofOutput", "SprofProfile", "SprofFormats", "SprofTestSupport"], path: "bench/stages"),

        .testTarget(name: "SprofProfileTests", dependencies: ["SprofProfile"]),
        .testTarget(name: "SprofAnnotateTests", dependencies: ["SprofAnnotate", "SprofProfile"]),
        .testTarget(name: "SprofRecordingTests", dependencies: ["SprofRecording", "SprofTestSupport"]),
        .testTarget(name: "SprofOutputTests", dependencies: ["SprofOutput", "SprofTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "SprofFormatsTests", dependencies: ["SprofFormats", "SprofProfile"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "SprofSymbolsTests", dependencies: ["SprofSymbols", "SprofTestSupport"]),
        .testTarget(name: "SprofUnwindTests", dependencies: ["SprofUnwind", "SprofTestSupport"]),
        .testTarget(name: "SprofCountingTests", dependencies: ["SprofCounting", "SprofTestSupport"]),
        .testTarget(name: "SprofEndToEndTests", dependencies: ["Sprof", "SprofTestSupport"]),
        .testTarget(name: "SprofLibraryTests", dependencies: ["Sprof", "SprofTestSupport"]),
        .testTarget(name: "SprofServeTests", dependencies: [
            "SprofServe", .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)
