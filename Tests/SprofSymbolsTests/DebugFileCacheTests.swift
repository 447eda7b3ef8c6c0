#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import SprofCore
@testable import SprofSymbols

/// The build-id cache of inflated debug files (``DebugFileCache``).
final class DebugFileCacheTests: XCTestCase {
    /// A stripped PIE whose debug file, zlib-compressed as Debian ships them, sits under
    /// `<root>/.build-id`; with its text mapping and the addresses of three functions.
    private struct Stripped {
        let exe: String, id: String, root: String, debugFile: String
        let mapping: Mapping
        let addresses: [ProcessAddress]
    }

    private func stripped(_ bench: Workbench, name: String = "cached", source: String = sampleSource) throws -> Stripped {
        let exe = try bench.compile(name, source: source, flags: ["-O2", "-g", "-fPIE", "-pie", "-Wl,--build-id"])
        let syms = try bench.symbols(exe)
        let id = try bench.buildID(exe)
        let root = bench.path(name + "-debugroot")
        let idDir = root + "/.build-id/" + id.prefix(2)
        try FileManager.default.createDirectory(atPath: idDir, withIntermediateDirectories: true)
        let debugFile = idDir + "/" + id.dropFirst(2) + ".debug"
        try bench.run("objcopy", ["--only-keep-debug", "--compress-debug-sections=zlib", exe, debugFile])
        try bench.run("strip", ["--strip-all", exe])
        let base: UInt64 = 0x5600_0000_0000
        var addresses: [ProcessAddress] = []
        for name in ["alpha", "beta", "outer", "main"] {
            let s = try XCTUnwrap(syms[name], name)
            addresses += (0..<s.size).map { ProcessAddress(base + s.address + $0) }
        }
        return Stripped(exe: exe, id: id, root: root, debugFile: debugFile,
                        mapping: try bench.textMapping(exe, base: base), addresses: addresses)
    }

    /// Every frame of every address, with what a profile shows of it.
    private func frames(_ s: Stripped, cache: DebugFileCache?) -> [String] {
        let symbolizer = Symbolizer(options: .init(debugDirectories: [s.root], debugCache: cache))
        return s.addresses.map { address in
            symbolizer.symbolize(address, in: s.mapping, pid: 1)
                .map { "\($0.name) \($0.kind) \($0.sourceFile ?? "-"):\($0.line.map(String.init) ?? "-")" }.joined(separator: "; ")
        }
    }

    /// The first address whose frames differ, for a short failure message.
    private func firstDifference(_ got: [String], _ expected: [String]) -> String? {
        guard got.count == expected.count else { return "\(got.count) addresses, expected \(expected.count)" }
        return zip(got, expected).enumerated().first { $0.element.0 != $0.element.1 }
            .map { "address #\($0.offset): \($0.element.0) instead of \($0.element.1)" }
    }

    private func inspect(_ path: String) throws -> (buildID: String, compressed: Bool, gnuCompressed: Bool)? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return DebugFileCache.inspect(fd)
    }

    func testCompressedDebugFileIsInflatedOnceThenOpenedFromTheCache() throws {
        let bench = try Workbench()
        let s = try stripped(bench)
        XCTAssertEqual(try inspect(s.debugFile)?.compressed, true, "objcopy did not compress the debug file")
        let cache = DebugFileCache(directory: bench.path("cache/sprof/debug"))
        let copy = cache.path(buildID: s.id)

        let reference = frames(s, cache: nil)
        XCTAssertTrue(reference.contains { $0.hasPrefix("helper inlined") && $0.contains("cached.c:") }, "no inline frame with a line: \(reference)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: copy))

        XCTAssertNil(firstDifference(frames(s, cache: cache), reference), "first run, which writes the copy")
        let written = try XCTUnwrap(try inspect(copy), "no copy at \(copy)")
        XCTAssertEqual(written.buildID, s.id)
        XCTAssertFalse(written.compressed, "the copy still has compressed sections")
        var st = stat()
        XCTAssertEqual(stat(bench.path("cache/sprof/debug"), &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)

        // Only the copy can name anything now.
        try FileManager.default.removeItem(atPath: s.debugFile)
        XCTAssertNil(firstDifference(frames(s, cache: cache), reference), "second run, from the copy")
        XCTAssertNotNil(firstDifference(frames(s, cache: nil), reference), "without the cache the names should be gone")
    }

    /// A copy whose build-id note is not the module's (a torn write, another file renamed) is not
    /// used, and is replaced.
    func testCopyWithAnotherBuildIDIsNotUsed() throws {
        let bench = try Workbench()
        let s = try stripped(bench)
        let other = try stripped(bench, name: "other", source: sampleSource + "\nint other_unit(void) { return 7; }\n")
        XCTAssertNotEqual(s.id, other.id)
        let cache = DebugFileCache(directory: bench.path("cache"))
        let reference = frames(s, cache: nil)
        try FileManager.default.createDirectory(atPath: cache.directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(atPath: other.debugFile, toPath: cache.path(buildID: s.id))
        XCTAssertNil(firstDifference(frames(s, cache: cache), reference))
        XCTAssertEqual(try inspect(cache.path(buildID: s.id))?.buildID, s.id, "the wrong copy was not replaced")
    }

    /// A cache that cannot be written (its path runs through a file; a directory of another user)
    /// costs nothing but the cache.
    func testUnusableCacheDirectoryFallsBackToTheDebugFile() throws {
        let bench = try Workbench()
        let s = try stripped(bench)
        let reference = frames(s, cache: nil)
        FileManager.default.createFile(atPath: bench.path("file"), contents: Data())
        XCTAssertNil(firstDifference(frames(s, cache: DebugFileCache(directory: bench.path("file/cache"))), reference))

        guard geteuid() == 0 else { return }
        let foreign = bench.path("foreign")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        XCTAssertEqual(chown(foreign, 65534, 65534), 0)
        XCTAssertNil(firstDifference(frames(s, cache: DebugFileCache(directory: foreign)), reference))
        XCTAssertFalse(FileManager.default.fileExists(atPath: foreign + "/" + s.id + ".debug"), "wrote into another user's directory")
    }

    /// Past the limit the least recently used copy goes; a copy larger than the limit is not kept.
    func testSizeLimitEvictsTheLeastRecentlyUsedCopy() throws {
        let bench = try Workbench()
        let first = try stripped(bench)
        let second = try stripped(bench, name: "second", source: sampleSource + "\nint second_unit(void) { return 2; }\n")
        let reference = frames(second, cache: nil)

        let tiny = DebugFileCache(directory: bench.path("tiny"), limit: 1024)
        XCTAssertNil(firstDifference(frames(second, cache: tiny), reference))
        XCTAssertFalse(FileManager.default.fileExists(atPath: tiny.path(buildID: second.id)), "a copy over the limit was kept")

        let probe = DebugFileCache(directory: bench.path("probe"))
        _ = frames(first, cache: probe)
        _ = frames(second, cache: probe)
        let sizes = try [first.id, second.id].map {
            try XCTUnwrap(FileManager.default.attributesOfItem(atPath: probe.path(buildID: $0))[.size] as? UInt64)
        }
        // Room for either copy, not both.
        let cache = DebugFileCache(directory: bench.path("cache"), limit: max(sizes[0], sizes[1]) + 1)
        _ = frames(first, cache: cache)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.path(buildID: first.id)))
        XCTAssertNil(firstDifference(frames(second, cache: cache), reference))
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.path(buildID: second.id)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache.path(buildID: first.id)), "the older copy was not evicted")
    }

    func testEnvironmentChoosesOrDisablesTheCache() throws {
        let names: [String] = ["SPROF_DEBUG_CACHE", "XDG_CACHE_HOME", "HOME"]
        let saved = names.map { ($0, getenv($0).map { String(cString: $0) }) }
        defer { for (name, value) in saved { if let value { setenv(name, value, 1) } else { unsetenv(name) } } }
        unsetenv("SPROF_DEBUG_CACHE"); unsetenv("XDG_CACHE_HOME"); setenv("HOME", "/home/u", 1)
        XCTAssertEqual(DebugFileCache.standard?.directory, "/home/u/.cache/sprof/debug")
        setenv("XDG_CACHE_HOME", "/xdg", 1)
        XCTAssertEqual(DebugFileCache.standard?.directory, "/xdg/sprof/debug")
        setenv("SPROF_DEBUG_CACHE", "/elsewhere", 1)
        XCTAssertEqual(DebugFileCache.standard?.directory, "/elsewhere")
        setenv("SPROF_DEBUG_CACHE", "0", 1)
        XCTAssertNil(DebugFileCache.standard)
    }

    /// The file the cache is for: Debian's libc6-dbg, whose DWARF is zlib-compressed. Names, inline
    /// frames and lines over libc's code are the same from the copy as from the original.
    func testLibcDebugFileFromTheCacheGivesTheSameFrames() throws {
        let address = UInt64(UInt(bitPattern: unsafeBitCast(dlsym(nil, "qsort"), to: UnsafeRawPointer?.self)))
        guard address != 0, let mapping = try selfMapping(containing: address) else { throw XCTSkip("qsort not found in this process") }
        let fd = open(mapping.path, O_RDONLY)
        guard fd >= 0, let id = DebugFileCache.inspect(fd)?.buildID else { throw XCTSkip("cannot read \(mapping.path)") }
        close(fd)
        let debugFile = "/usr/lib/debug/.build-id/\(id.prefix(2))/\(id.dropFirst(2)).debug"
        guard let facts = try inspect(debugFile) else { throw XCTSkip("no debug file for \(mapping.path) (install libc6-dbg)") }
        guard facts.compressed else { throw XCTSkip("\(debugFile) has no compressed sections: nothing to cache") }

        let bench = try Workbench()
        let cache = DebugFileCache(directory: bench.path("cache"))
        let step = max((mapping.end.rawValue - mapping.start.rawValue) / 3000, 1)
        let addresses = stride(from: mapping.start.rawValue, to: mapping.end.rawValue, by: Int(step)).map(ProcessAddress.init)
        func frames(_ cache: DebugFileCache?) -> [String] {
            let symbolizer = Symbolizer(options: .init(debugCache: cache))
            return addresses.map { address in
                symbolizer.symbolize(address, in: mapping, pid: getpid())
                    .map { "\($0.name) \($0.kind) \($0.sourceFile ?? "-"):\($0.line.map(String.init) ?? "-")" }.joined(separator: "; ")
            }
        }
        let reference = frames(nil)
        XCTAssertGreaterThan(reference.filter { $0.contains(" inlined ") }.count, 10, "libc's debug file gave no inline frames")
        XCTAssertNil(firstDifference(frames(cache), reference), "first run, which writes the copy")
        let copy = cache.path(buildID: id)
        XCTAssertEqual(try inspect(copy)?.compressed, false)
        // A hit sets the copy's modification time (the eviction order) and keeps the file (a new
        // copy would be another inode): it shows the copy was opened, not written again.
        var old = [timeval(tv_sec: 1000, tv_usec: 0), timeval(tv_sec: 1000, tv_usec: 0)]
        XCTAssertEqual(utimes(copy, &old), 0)
        var before = stat()
        XCTAssertEqual(stat(copy, &before), 0)
        XCTAssertNil(firstDifference(frames(cache), reference), "second run, from the copy")
        var after = stat()
        XCTAssertEqual(stat(copy, &after), 0)
        XCTAssertGreaterThan(after.st_mtim.tv_sec, 1000, "the copy was not opened")
        XCTAssertEqual(after.st_ino, before.st_ino, "the copy was written again instead of opened")
    }
}

/// Without `DEBUGINFOD_URLS`, a file with no debug file on disk does not make libdw load its
/// debuginfod client (libdebuginfod, libcurl, gnutls) only to learn that no server is set.
final class DebuginfodLoadingTests: XCTestCase {
    func testNoServersMeansNoDebuginfodClientLoaded() throws {
        let saved = getenv("DEBUGINFOD_URLS").map { String(cString: $0) }
        unsetenv("DEBUGINFOD_URLS")
        defer { if let saved { setenv("DEBUGINFOD_URLS", saved, 1) } }
        let library = "libdebuginfod.so.1"
        if let loaded = dlopen(library, RTLD_LAZY | RTLD_NOLOAD) {
            dlclose(loaded)
            throw XCTSkip("\(library) is loaded in this test process already (by an earlier test)")
        }
        guard ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"]
            .contains(where: { access("\($0)/\(library)", F_OK) == 0 }) else { throw XCTSkip("\(library) is not installed") }

        let bench = try Workbench()
        let exe = try bench.compile("bare", source: sampleSource, flags: ["-O2", "-g", "-fPIE", "-pie", "-Wl,--build-id"])
        let beta = try XCTUnwrap(try bench.symbols(exe)["beta"])
        try bench.run("strip", ["--strip-all", exe])
        let base: UInt64 = 0x5600_0000_0000
        let frames = Symbolizer(options: .init(debugDirectories: [bench.path("none")], debugCache: nil))
            .symbolize(ProcessAddress(base + beta.address), in: try bench.textMapping(exe, base: base), pid: 1)
        XCTAssertEqual(frames.last?.name, "[bare+0x\(String(beta.address, radix: 16))]")
        let loaded = dlopen(library, RTLD_LAZY | RTLD_NOLOAD)
        if let loaded { dlclose(loaded) }
        XCTAssertNil(loaded, "libdw loaded \(library) with no server set")
    }
}
