// The one page of memory sprof shares with its preload library (`SPROF_HEAP_FLOW`) so that a
// program never writes heap records faster than the reader drains them. All unsafe code for that
// page lives in this file; its layout is `struct sprof_flow` in Sources/SprofHeap/heap.c.
#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore

/// Back-pressure for heap records (`sprof run --heap`): a page shared with the preload library.
///
/// Why: a heap probe's record carries a stack copy (8 KiB by default), and at `--heap-rate 1` a
/// program that allocates in a loop writes them far faster than any reader drains them; the kernel
/// then drops records, and a lost allocation is a leak missed, a lost free a false one (a
/// new user measured 82% of 1.2 million records lost). The library announces the bytes of each
/// record before it calls the probed function (`produced`); the reader, each round, marks
/// everything announced before the round as drained (`consumed`). A call that finds more than
/// ``limit`` bytes outstanding waits (50 µs sleeps) until a round has passed; once the reader
/// has stopped (`closed`) or not run for two seconds (sprof stopped or killed), the process
/// never waits again and goes on as without sprof. The program runs at the reader's speed instead of
/// losing records; the waits are counted (``waits``, ``waitedNanoseconds``).
///
/// The page is an unlinked file in /dev/shm (else `$TMPDIR`, else /tmp), open in sprof only
/// (close-on-exec); the library opens it as `/proc/<sprof's pid>/fd/<n>`, so a command's children
/// and exec'd programs find it while sprof runs, and nothing is left behind if sprof is killed.
public final class HeapFlow: @unchecked Sendable {
    /// What the command's environment gets as `SPROF_HEAP_FLOW`.
    public let path: String
    private let fd: Int32
    private let page: UnsafeMutablePointer<UInt64>
    private static let length = 4096
    // Word offsets, as struct sprof_flow in heap.c.
    private static let magicWord = 0, limitWord = 1, allocationWord = 2, freeWord = 3, producedWord = 4,
                       consumedWord = 5, heartbeatWord = 6, closedWord = 7, waitsWord = 8, waitedWord = 9
    /// "SPRFFLW1", little-endian.
    static let magic: UInt64 = 0x3157_4C46_4652_5053

    /// Bytes of records that may be outstanding before an announcing call waits.
    public let limit: UInt64

    /// Creates the page.
    /// - Parameters:
    ///   - limit: bytes of heap records outstanding (announced, not yet drained) before the
    ///     program waits: half of one CPU's ring buffer leaves the other half for CPU samples and
    ///     side-band records, and stays above the reader's wake-up mark (a quarter).
    ///   - allocationRecord: the most bytes an allocation record takes in the ring (its stack
    ///     copy, registers and header).
    ///   - freeRecord: the same for a free.
    /// - Throws: `SyscallError` when no directory takes the file or it cannot be mapped.
    public init(limit: UInt64, allocationRecord: UInt64, freeRecord: UInt64) throws(SyscallError) {
        var candidates = ["/dev/shm"]
        if let tmp = getenv("TMPDIR") { candidates.append(String(cString: tmp)) }
        candidates.append("/tmp")
        var opened: Int32 = -1
        var lastErrno: Int32 = ENOENT
        for directory in candidates where !directory.isEmpty {
            let name = "\(directory)/sprof-heap-flow.\(getpid()).\(UInt64.random(in: 1...UInt64.max))"
            let fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd < 0 { lastErrno = errno; continue }
            unlink(name)
            if ftruncate(fd, off_t(Self.length)) != 0 {
                lastErrno = errno
                Glibc.close(fd)
                continue
            }
            opened = fd
            break
        }
        guard opened >= 0 else { throw SyscallError(call: "open", errno: lastErrno, hint: "no directory of /dev/shm, $TMPDIR or /tmp takes sprof's heap flow-control page") }
        let fd = opened
        let pointer: UnsafeMutableRawPointer
        do {
            pointer = try sysCallPointer("mmap", failure: MAP_FAILED) {
                mmap(nil, Self.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        self.page = pointer.assumingMemoryBound(to: UInt64.self)
        self.path = "/proc/\(getpid())/fd/\(fd)"
        self.limit = limit
        page[Self.limitWord] = limit
        page[Self.allocationWord] = allocationRecord
        page[Self.freeWord] = freeRecord
        csprof_atomic_store_u64(page + Self.heartbeatWord, Self.monotonicNow())
        // Last: the library reads nothing else until the magic is there.
        csprof_atomic_store_u64(page + Self.magicWord, Self.magic)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(page), Self.length)
        Glibc.close(fd)
    }

    /// Bytes the library has announced so far: read at the start of a reader's round.
    func announced() -> UInt64 { csprof_atomic_load_u64(page + Self.producedWord) }

    /// Everything announced before `upTo` (a value of ``announced()`` read before the buffers
    /// were drained) is drained; `now` (CLOCK_MONOTONIC ns) says the reader is alive.
    func drained(upTo: UInt64, now: UInt64) {
        csprof_atomic_store_u64(page + Self.consumedWord, upTo)
        csprof_atomic_store_u64(page + Self.heartbeatWord, now)
    }

    /// The reader has stopped: no call waits from now on.
    public func close() { csprof_atomic_store_u64(page + Self.closedWord, 1) }

    /// Calls that waited for the reader.
    public var waits: UInt64 { csprof_atomic_load_u64(page + Self.waitsWord) }
    /// Their total wait, nanoseconds.
    public var waitedNanoseconds: UInt64 { csprof_atomic_load_u64(page + Self.waitedWord) }

    /// Test hook: plays the library's part, announcing `bytes` as one record would.
    func announce(_ bytes: UInt64) -> UInt64 { csprof_atomic_add_u64(page + Self.producedWord, bytes) }

    static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
