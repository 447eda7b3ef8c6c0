import Foundation
import SprofProfile
import XCTest

/// Profiles with every shape the formats must carry: inline chains, kernel frames (with and
/// without a mapping), an unsymbolized address, `[truncated]` and `[unknown]` markers, several
/// threads and processes, two sample types and full provenance.
enum Synthetic {
    static let period: Int64 = 1_001_001

    static func profile() -> Profile {
        let samples = Profile.ValueType(type: "samples", unit: "count")
        let cpu = Profile.ValueType(type: "cpu", unit: "nanoseconds")
        var b = ProfileBuilding(sampleTypes: [samples, cpu], defaultSampleType: 1, periodType: cpu, period: period)
        let exe = b.mapping(Profile.Mapping(start: 0x40_0000, limit: 0x50_0000, fileOffset: 0x1000, path: "/usr/bin/app",
                                            buildID: "0123456789abcdef0123456789abcdef01234567", hasFunctions: true,
                                            hasFilenames: true, hasLineNumbers: true, hasInlineFrames: true))
        let libc = b.mapping(Profile.Mapping(start: 0x7f00_0000_0000, limit: 0x7f00_0020_0000, fileOffset: 0x28000,
                                             path: "/usr/lib/x86_64-linux-gnu/libc.so.6", buildID: "feedface"))
        let kernel = b.mapping(Profile.Mapping(start: 0xffff_ffff_8100_0000, limit: 0xffff_ffff_8200_0000, path: "[kernel.kallsyms]"))

        let main = b.function(Profile.Function(name: "main", systemName: "main", file: "/src/app/main.c", startLine: 10))
        let compute = b.function(Profile.Function(name: "compute(_:)", fullName: "app.compute(_: Swift.Int) -> Swift.Int",
                                                  systemName: "$s3app7computeyS2iF", file: "/src/app/compute.swift", startLine: 20))
        let square = b.function(Profile.Function(name: "square(_:)", systemName: "$s3app6squareyS2iF", file: "/src/app/compute.swift", startLine: 40))
        let helper = b.function(Profile.Function(name: "helper", file: "/src/app/main.c", startLine: 60))
        let memcpy = b.function(Profile.Function(name: "__memcpy_avx_unaligned_erms", systemName: "__memcpy_avx_unaligned_erms"))
        let syscall = b.function(named: "do_syscall_64")
        let fault = b.function(named: "asm_exc_page_fault")

        let lMain = b.location(Profile.Location(address: 0x40_1234, mapping: exe, lines: [.init(function: main, line: 14)]))
        // square and helper inlined into compute at one address: innermost first.
        let lInline = b.location(Profile.Location(address: 0x40_2345, mapping: exe,
                                                  lines: [.init(function: square, line: 42), .init(function: helper, line: 61),
                                                          .init(function: compute, line: 25)]))
        let lCompute = b.location(Profile.Location(address: 0x40_2400, mapping: exe, lines: [.init(function: compute, line: 27)]))
        let lMemcpy = b.location(Profile.Location(address: 0x7f00_0001_0000, mapping: libc, lines: [.init(function: memcpy)]))
        let lUnsymbolized = b.location(Profile.Location(address: 0x7f00_0001_5678, mapping: libc, lines: []))
        let lSyscall = b.location(Profile.Location(address: 0xffff_ffff_8100_1000, mapping: kernel, lines: [.init(function: syscall)], kind: .kernel))
        // A kernel frame whose mapping the recorder did not know: the writer still gives it one.
        let lFault = b.location(Profile.Location(address: 0xffff_ffff_8100_2000, lines: [.init(function: fault)], kind: .kernel))
        let lTruncated = b.marker("[truncated]")
        let lUnknown = b.marker("[unknown]")

        let t1 = b.thread(Profile.Thread(pid: 100, tid: 100, name: "app", processName: "app"))
        let t2 = b.thread(Profile.Thread(pid: 100, tid: 101, name: "worker 1", processName: "app"))
        let t3 = b.thread(Profile.Thread(pid: 200, tid: 200, name: "other", processName: "other"))

        func add(_ stack: [Int], _ thread: Int?, _ n: Int64) {
            b.add(stack: b.stack(stack), thread: thread, values: [n, n * period])
        }
        add([lInline, lMain], t1, 50)
        add([lCompute, lMain], t1, 20)
        add([lMemcpy, lCompute, lMain], t1, 10)
        add([lSyscall, lMemcpy, lMain], t2, 8)
        add([lFault, lInline, lMain], t2, 6)
        add([lUnsymbolized, lMain], t2, 4)
        add([lCompute, lTruncated], t2, 3)
        add([lUnknown], t3, 2)
        add([lCompute, lMain], t3, 7)
        add([lInline, lMain], t2, 5)

        var m = ProfileMetadata()
        m.sprofVersion = "0.9.0-test"
        m.command = ["./app", "--size", "two words"]
        m.event = "cpu-clock"
        m.rate = .frequency(999)
        m.callGraph = "dwarf"
        m.stackSize = 8192
        m.statistics.samples = 115
        m.statistics.lostRecords = 1
        m.statistics.lostSamples = 2
        m.statistics.truncated = 3
        m.statistics.processes = 2
        m.statistics.threads = 3
        m.startTime = 1_764_000_000_123_456_789
        m.duration = 2_500_000_000
        m.exitStatus = "exit 0"
        m.system.kernelRelease = "6.1.0-test"
        m.system.cpuModel = "Test CPU @ 2.00GHz"
        m.system.cores = 2
        m.system.memoryBytes = 8 << 30
        m.system.perfEventParanoid = 2
        m.notices = ["a notice"]
        return b.build(metadata: m)
    }

    /// A profile with `count` distinct stacks over `threads` threads (for size and speed).
    static func large(stacks count: Int, threads: Int = 8, depth: Int = 24, functions: Int = 5000) -> Profile {
        let samples = Profile.ValueType(type: "samples", unit: "count")
        let cpu = Profile.ValueType(type: "cpu", unit: "nanoseconds")
        var b = ProfileBuilding(sampleTypes: [samples, cpu], defaultSampleType: 1, periodType: cpu, period: period)
        let exe = b.mapping(Profile.Mapping(start: 0x40_0000, limit: 0x4000_0000, path: "/usr/bin/big", buildID: "ab"))
        var locations: [Int] = []
        for i in 0..<functions {
            let f = b.function(Profile.Function(name: "function_\(i)", file: "/src/file\(i % 97).swift", startLine: i))
            locations.append(b.location(Profile.Location(address: 0x40_0000 + UInt64(i) * 64, mapping: exe, lines: [.init(function: f, line: i + 1)])))
        }
        let threadIDs = (0..<threads).map { b.thread(Profile.Thread(pid: 1000, tid: 1000 + Int32($0), name: "thread-\($0)", processName: "big")) }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for i in 0..<count {
            // Distinct by construction: the leaf-most entries encode i.
            var stack = [locations[i % functions], locations[(i / functions) % functions]]
            for _ in 2..<depth { stack.append(locations[next() % functions]) }
            let n = Int64(1 + next() % 50)
            b.add(stack: b.stack(stack), thread: threadIDs[i % threads], values: [n, n * period])
        }
        var m = ProfileMetadata()
        m.sprofVersion = "bench"
        m.event = "cpu-clock"
        return b.build(metadata: m)
    }
}

/// Runs external tools (`go tool pprof`, Debian's python3 with jsonschema) with a private HOME and
/// Go caches in a temporary directory, as CI machines give no writable home for them.
enum Tools {
    /// A fresh directory per test (``setUp()``), removed by ``cleanUp()`` in tearDown.
    nonisolated(unsafe) static var scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-formats-tests")

    static func setUp() {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-formats-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") + ["/usr/bin", "/usr/lib/go/bin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The `go` binary, or a skip naming what is missing.
    static func go() throws -> String {
        guard let go = find("go") else { throw XCTSkip("go is not installed (apt-get install golang-go); go tool pprof checks skipped") }
        return go
    }

    static func write(_ bytes: [UInt8], name: String) throws -> URL {
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let url = scratch.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Runs `executable args`, returning (status, stdout, stderr).
    static func run(_ executable: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        let home = scratch.appendingPathComponent("home").path
        env["HOME"] = home
        env["GOCACHE"] = home + "/gocache"
        env["GOPATH"] = home + "/gopath"
        env["PPROF_TMPDIR"] = home + "/pprof"
        env["GOFLAGS"] = "-mod=mod"
        env["GOTOOLCHAIN"] = "local"
        process.environment = env
        // stderr goes to a file so that only one pipe needs draining while the child runs.
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let errURL = scratch.appendingPathComponent("stderr-\(UInt64.random(in: 0...UInt64.max))")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = errHandle
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? errHandle.close()
        let errData = (try? Data(contentsOf: errURL)) ?? Data()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// `go tool pprof ARGS FILE`; fails the test when pprof rejects the file.
    static func pprof(_ args: [String], _ file: URL, file testFile: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try run(try go(), ["tool", "pprof"] + args + [file.path])
        XCTAssertEqual(result.status, 0, "go tool pprof \(args.joined(separator: " ")) failed: \(result.err)", file: testFile, line: line)
        return result.out
    }

    /// Removes the scratch directory (each test's tearDown).
    static func cleanUp() {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// The fixtures directory copied into the test bundle.
    static func fixture(_ name: String) throws -> URL {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent(name)
        return url
    }
}
