#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Sprof

/// Allocation budgets (issue 19): exact counts of the calling thread's allocator calls.
final class AllocationBudgetTests: XCTestCase {
    /// Skips, saying why, where uprobes cannot be opened (they need CAP_SYS_ADMIN).
    private func counting<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch SprofError.refused(let reason) where !HeapOptions.uprobesAllowed {
            throw XCTSkip(reason)
        } catch SprofError.unsupported(let reason) where Uprobes.pmuType == nil {
            throw XCTSkip(reason)
        }
    }

    /// A loop over memory that already exists allocates nothing: a zero budget passes. (Through
    /// an unsafe buffer: in a debug build `for v in array` mallocs a coroutine frame per element
    /// for the generic `subscript.read`, which the next test shows the counter sees.)
    func testLoopThatAllocatesNothingPassesAZeroBudget() throws {
        let values: [Int] = (0..<1000).map { $0 &* 7 }
        var sum = 0
        let count = try counting {
            try checkAllocationBudget(objects: 0, bytes: 0) {
                values.withUnsafeBufferPointer { p in
                    for i in 0..<p.count { sum &+= p[i] }
                }
            }
        }
        XCTAssertEqual(count.objects, 0, "\(count)")
        XCTAssertEqual(count.bytes, 0, "\(count)")
        XCTAssertTrue(count.complete)
        XCTAssertNotEqual(sum, 0)
    }

    /// An empty closure measures zero: the measurement itself allocates nothing.
    func testEmptyClosureMeasuresZero() throws {
        let count = try counting { try allocationCount {} }
        XCTAssertEqual(count.objects, 0, "\(count)")
        XCTAssertEqual(count.bytes, 0, "\(count)")
    }

    /// 1,000 allocations of 100 bytes fail a budget of 10 objects, and the failure reports them.
    func testThousandAllocationsFailABudgetOfTen() throws {
        do {
            _ = try counting {
                try checkAllocationBudget(objects: 10) { allocateAndFree(count: 1000, size: 100) }
            }
            XCTFail("1,000 allocations passed a budget of 10 objects")
        } catch let exceeded as AllocationBudgetExceeded {
            // Exact counting: the loop's calls and nothing else.
            XCTAssertEqual(exceeded.count.objects, 1000, "\(exceeded)")
            XCTAssertEqual(exceeded.count.bytes, 100_000, "\(exceeded)")
            XCTAssertTrue(exceeded.description.contains("budget is 10 objects"), exceeded.description)
            XCTAssertTrue(exceeded.description.contains("malloc=1000"), exceeded.description)
        }
    }

    /// Each entry point counts once with the size it was asked for; realloc(NULL, n), which
    /// glibc implements by calling malloc, counts once; realloc(p, 0) frees and does not count;
    /// free never counts.
    func testEachAllocatorEntryCountsOnceWithItsSize() throws {
        let count = try counting {
            try allocationCount(repetitions: 2) {
                let a = calloc(10, 8)             // 80
                let b = realloc(nil, 24)          // 24, once
                let c = realloc(b, 200)           // 200
                var d: UnsafeMutableRawPointer?
                _ = posix_memalign(&d, 64, 64)    // 64
                let e = aligned_alloc(64, 128)    // 128
                _ = realloc(a, 0)                 // a free
                free(c); free(d); free(e)
            }
        }
        XCTAssertEqual(count.objects, 5, "\(count)")
        XCTAssertEqual(count.bytes, 80 + 24 + 200 + 64 + 128, "\(count)")
    }

    /// Swift objects come from swift_allocObject → malloc, so they count: 100 class instances
    /// are at least 100 allocations.
    func testSwiftObjectsCount() throws {
        let count = try counting { try allocationCount { makeBoxes(100) } }
        XCTAssertGreaterThanOrEqual(count.objects, 100, "\(count)")
        XCTAssertLessThan(count.objects, 110, "\(count)")
    }

    /// Only the calling thread counts: a thread's allocations elsewhere do not.
    func testOtherThreadsDoNotCount() throws {
        let stop = Atomicish()
        let thread = Thread {
            while !stop.isSet { allocateAndFree(count: 10, size: 64); usleep(100) }
        }
        thread.start()
        defer { stop.set() }
        let count = try counting { try allocationCount { usleep(20_000) } }
        XCTAssertEqual(count.objects, 0, "\(count)")
    }

    func testBudgetArithmetic() {
        let count = AllocationCount(objects: 3, bytes: 300)
        XCTAssertTrue(count.isWithin(objects: 3))
        XCTAssertFalse(count.isWithin(objects: 2))
        XCTAssertFalse(count.isWithin(objects: 3, bytes: 299))
        XCTAssertLessThan(AllocationCount(objects: 2, bytes: 900), count)
    }
}

/// A flag set from one thread and read from another.
private final class Atomicish: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

@inline(never) func allocateAndFree(count: Int, size: Int) {
    for _ in 0..<count {
        let p = malloc(size)
        // Touch it so that the pair is not optimised away.
        p?.storeBytes(of: 1, as: UInt8.self)
        free(p)
    }
}

private final class Box {
    var value: Int
    init(_ value: Int) { self.value = value }
}

@inline(never) private func makeBoxes(_ n: Int) {
    var sum = 0
    for i in 0..<n {
        let box = Box(i)
        sum &+= withExtendedLifetime(box) { box.value }
    }
    if sum == -1 { print(sum) }
}
