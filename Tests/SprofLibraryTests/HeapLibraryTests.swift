#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// `Profiler.Options.heap` (issue 19): the heap profile of part of this process.
final class HeapLibraryTests: XCTestCase {
    private func requireUprobes() throws {
        if let reason = perfEventAvailable() { throw XCTSkip(reason) }
        guard HeapOptions.uprobesAllowed else { throw XCTSkip("uprobes need CAP_SYS_ADMIN, which this test process lacks") }
        guard Uprobes.pmuType != nil else { throw XCTSkip("this kernel has no uprobe PMU") }
    }

    /// Sum of `type` over the stacks with a frame whose name contains `name`.
    private func total(_ profile: Profile, _ type: String, containing name: String) throws -> Int64 {
        let index = try XCTUnwrap(profile.sampleTypeIndex(type))
        return profile.aggregatedStacks(valueIndex: index).filter { $0.frames.contains { $0.contains(name) } }.reduce(0) { $0 + $1.value }
    }

    /// Every allocation recorded (rate 1): 1,500 allocations of 100 bytes, 1,000 kept until after
    /// stop(): alloc and in-use objects and bytes at the allocating function, in Go's four types.
    func testHeapProfileAtRateOneCountsAllocationsAndWhatIsInUse() throws {
        try requireUprobes()
        var kept: [UnsafeMutableRawPointer?] = []
        kept.reserveCapacity(1000)
        let (_, heap) = try Profiler.profileHeap(rate: 1) {
            heapLibraryAllocate(kept: &kept, keep: 1000, freed: 500, size: 100)
        }
        defer { kept.forEach { free($0) } }
        XCTAssertEqual(heap.sampleTypes.map(\.description), ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"])
        XCTAssertEqual(heap.periodType.description, "space/bytes")
        let name = "heapLibraryAllocate"
        XCTAssertEqual(Double(try total(heap, "alloc_objects", containing: name)), 1500, accuracy: 15, heap.metadata.notices.joined(separator: "\n"))
        XCTAssertEqual(Double(try total(heap, "alloc_space", containing: name)), 150_000, accuracy: 1500)
        XCTAssertEqual(Double(try total(heap, "inuse_objects", containing: name)), 1000, accuracy: 10)
        XCTAssertEqual(Double(try total(heap, "inuse_space", containing: name)), 100_000, accuracy: 1000)
    }

    /// Beside CPU sampling: stop() returns the CPU profile and heapProfile holds the heap one.
    func testHeapBesideCPUSampling() throws {
        try requireUprobes()
        var options = Profiler.Options(callGraph: .dwarf(stackSize: 8192))
        options.heap = HeapOptions(rate: 4096)
        let profiler = Profiler(options: options)
        try profiler.start()
        var kept: [UnsafeMutableRawPointer?] = []
        heapLibraryAllocate(kept: &kept, keep: 0, freed: 2000, size: 4096)
        let cpu = try profiler.stop()
        let heap = try XCTUnwrap(profiler.heapProfile)
        XCTAssertEqual(cpu.sampleTypes.first?.type, "samples")
        // 2,000 × 4 KiB = 8 MiB at one sample per 4 KiB: the estimate is within a few percent.
        XCTAssertEqual(Double(try total(heap, "alloc_space", containing: "heapLibraryAllocate")), 8_192_000, accuracy: 8_192_000 * 0.15)
        XCTAssertFalse(profiler.heapTimeline.isEmpty)
    }

    /// Frame-pointer stacks (the library's default) stay frame-pointer stacks with `heap`: the
    /// probes' registers are recorded in every stack mode, and `start()` no longer turns the
    /// recording into DWARF stacks (it did, with a notice). The counts at the allocating function
    /// are exact at rate 1 as with DWARF.
    func testHeapKeepsFramePointerStacks() throws {
        try requireUprobes()
        var options = Profiler.Options(callGraph: .framePointer)
        options.heap = HeapOptions(rate: 1)
        let profiler = Profiler(options: options)
        try profiler.start()
        var kept: [UnsafeMutableRawPointer?] = []
        kept.reserveCapacity(500)
        heapLibraryAllocate(kept: &kept, keep: 500, freed: 1000, size: 256)
        let cpu = try profiler.stop()
        kept.forEach { free($0) }
        let heap = try XCTUnwrap(profiler.heapProfile)
        let index = try XCTUnwrap(heap.sampleTypeIndex("alloc_objects"))
        let notes = heap.metadata.notices.joined(separator: "\n") + "\n" + heap.metadata.summaryLine + "\n"
            + heap.aggregatedStacks(valueIndex: index).sorted { $0.value > $1.value }.prefix(3).map { "\($0.value) \($0.frames.suffix(6))" }.joined(separator: "\n")
        XCTAssertEqual(cpu.metadata.callGraph, "fp", notes)
        XCTAssertEqual(heap.metadata.callGraph, "fp", notes)
        XCTAssertFalse(notes.contains("DWARF"), notes)
        XCTAssertEqual(Double(try total(heap, "alloc_objects", containing: "heapLibraryAllocate")), 1500, accuracy: 15, notes)
        XCTAssertEqual(Double(try total(heap, "inuse_space", containing: "heapLibraryAllocate")), 500 * 256, accuracy: 256 * 5, notes)
    }

    /// While this process is heap-profiled, a program it starts can still fork: the probes are
    /// inherited by its threads and forked copies, where their path (sprof's memory) is valid, and
    /// removed at exec, after which the kernel would read it again from the new program's memory
    /// at each fork (EFAULT: `sh: Cannot fork`).
    func testChildrenThatExecCanStillFork() throws {
        try requireUprobes()
        let (result, _) = try Profiler.profileHeap(rate: 1 << 20) {
            try TestFixtures.run("/bin/sh", ["-c", "true; /bin/true; echo forked"])
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "forked\n", result.stderr)
    }

    /// Without heap options there is no heap profile.
    func testNoHeapProfileWithoutTheOption() throws {
        let profiler = Profiler()
        XCTAssertNil(profiler.heapProfile)
    }
}

/// Allocates `keep + freed` blocks of `size` bytes, keeping `keep` of them in `kept`.
@inline(never) func heapLibraryAllocate(kept: inout [UnsafeMutableRawPointer?], keep: Int, freed: Int, size: Int) {
    for _ in 0..<keep {
        let p = malloc(size)
        p?.storeBytes(of: 1, as: UInt8.self)
        kept.append(p)
    }
    for _ in 0..<freed {
        let p = malloc(size)
        p?.storeBytes(of: 1, as: UInt8.self)
        free(p)
    }
}
