#if canImport(Glibc)
import Glibc
#endif
import SprofCore

/// The records the reader thread has released (in timestamp order) and the consumer has not yet
/// taken, kept within a memory budget: records go to the ``Mailbox`` while the bytes held there,
/// here and in the reader's sorting window stay under the budget, and to an unlinked temporary
/// file once they would not, to be read back, in order, when the consumer catches up. Owned by the
/// reader thread; the consumer only sees the mailbox.
///
/// Records are kept as raw perf records (``RecordParser/compacted(_:stack:)``), concatenated into
/// chunks: the raw form is what the file holds, and is far smaller than parsed values with arrays.
final class PendingRecords {
    /// The most bytes of records waiting for the consumer (mailbox, outbox, sorting window, the
    /// batch the consumer is working on).
    let budget: Int
    /// Bytes per chunk handed to the consumer at once, and read back from the file at once.
    let chunkBytes: Int
    private let directory: String
    private var outbox: [[UInt8]] = []
    private var outboxBytes = 0
    /// The mailbox's bytes as of the last hand-off; it only shrinks meanwhile (the consumer
    /// takes), so using it never lets memory pass the budget.
    private var knownHeld = 0
    private var file: SpillFile?
    /// Set when the file could not be created or written: the reason, for the notice.
    private(set) var spillError: String?
    /// Bytes written to the temporary file so far.
    private(set) var spilledBytes = 0
    /// Records that fitted neither the budget nor the temporary file: counted as lost.
    private(set) var dropped: UInt64 = 0 {
        didSet { undeliveredLost += dropped - oldValue }
    }
    /// Lost records the consumer has not been told of yet (it gets them as one LOST record).
    private var undeliveredLost: UInt64 = 0
    /// The most bytes held in memory at once, as this side counts them (outbox, sorting window and
    /// the mailbox as last seen).
    private(set) var peakBytes = 0

    /// `budget` in bytes; the temporary file goes to `directory` (`$TMPDIR`, else /tmp).
    init(budget: Int, directory: String? = nil) {
        self.budget = max(budget, 1 << 16)
        self.chunkBytes = max(1 << 16, min(self.budget / 8, 8 << 20))
        self.directory = directory ?? Self.temporaryDirectory()
    }

    static func temporaryDirectory() -> String {
        if let dir = getenv("TMPDIR").map({ String(cString: $0) }), !dir.isEmpty { return dir }
        return "/tmp"
    }

    /// The capacity of the outbox's chunk that records are appended to (for tests); 0 when none.
    var openChunkCapacity: Int { outbox.last?.capacity ?? 0 }

    /// Whether records are waiting in the file or the outbox.
    var isEmpty: Bool { outbox.isEmpty && (file?.isEmpty ?? true) }

    /// Adds one whole record, released in order. `window` is the bytes still in the reader's
    /// sorting window, which count against the budget too.
    func append(_ record: [UInt8], window: Int) {
        let inMemory = knownHeld + outboxBytes + window
        peakBytes = max(peakBytes, inMemory)
        // Once anything is in the file, everything after it goes there too, to keep the order.
        if !(file?.isEmpty ?? true) || inMemory + record.count > budget {
            spill(record)
            return
        }
        if let last = outbox.indices.last, outbox[last].count + record.count <= chunkBytes {
            outbox[last].append(contentsOf: record)
        } else {
            // A chunk with room for all it will hold: one started as the record's array grew by
            // doubling up to chunkBytes, copying each byte about twice more and faulting in fresh
            // pages at each step (a fifth of sprof's CPU on bench/heap/run's malloc loop).
            // Reserved pages untouched cost no memory.
            var chunk: [UInt8] = []
            chunk.reserveCapacity(max(chunkBytes, record.count))
            chunk.append(contentsOf: record)
            outbox.append(chunk)
        }
        outboxBytes += record.count
        peakBytes = max(peakBytes, inMemory + record.count)
    }

    private func spill(_ record: [UInt8]) {
        if file == nil, spillError == nil {
            do { file = try SpillFile(directory: directory, flushBytes: chunkBytes) } catch { spillError = "\(error)" }
        }
        guard let file, spillError == nil else {
            dropped += 1
            return
        }
        do {
            try file.append(record)
            spilledBytes += record.count
        } catch {
            spillError = "\(error)"
            dropped += file.discardUnwritten() + 1
        }
    }

    /// Records lost beyond those the LOST records tell (the events' own counts at the end): the
    /// consumer gets them with the next hand-over.
    func addLost(_ count: UInt64) { undeliveredLost += count }

    /// Moves records to the mailbox: what the outbox holds, then what the file holds, as far as the
    /// budget allows. Without `finishing` it never waits for the consumer (which may run at
    /// SCHED_IDLE and hold the mailbox); with it, it waits until everything is handed over and
    /// marks the mailbox finished. `statistics` and the records lost beyond the LOST records in
    /// the chunks go along.
    func handOver(to mailbox: Mailbox, statistics: RecordingSession.Statistics, finishing: Bool) {
        var stats = statistics
        let droppedBefore = dropped
        while true {
            readBack(finishing: finishing)
            let last = finishing && isEmpty
            stats.lost = statistics.lost + (dropped - droppedBefore)
            stats.dropped = dropped
            stats.spilledBytes = spilledBytes
            stats.peakPendingBytes = peakBytes
            guard let held = mailbox.offer(&outbox, bytes: outboxBytes, statistics: stats, lost: undeliveredLost,
                                           finished: last, wait: finishing) else { return }
            outboxBytes = 0
            undeliveredLost = 0
            knownHeld = held
            if !finishing || last { return }
            // Wait for the consumer to make room before reading more back.
            knownHeld = mailbox.waitForRoom(below: budget - chunkBytes)
        }
    }

    /// Reads records back from the file into the outbox while they fit.
    private func readBack(finishing: Bool) {
        guard let file else { return }
        while !file.isEmpty, outbox.isEmpty, knownHeld + chunkBytes <= budget {
            do {
                let chunk = try file.read(upTo: chunkBytes)
                guard !chunk.isEmpty else { break }
                outbox.append(chunk)
                outboxBytes += chunk.count
                peakBytes = max(peakBytes, knownHeld + outboxBytes)
            } catch {
                spillError = "\(error)"
                dropped += file.discardAll()
                break
            }
        }
    }
}

/// An unlinked temporary file holding whole perf records back to back, written at its end and
/// read from its start; emptied (truncated) whenever everything written has been read.
final class SpillFile {
    /// The open file; internal so a test can see how it was made (`/proc/self/fd`).
    let fd: Int32
    private var writeOffset = 0
    private var readOffset = 0
    /// Records appended but not yet written: one write(2) per MiB, not one per record.
    private var buffer: [UInt8] = []
    private var bufferedRecords: UInt64 = 0
    /// Records on disk not yet read back.
    private var unreadRecords: UInt64 = 0
    /// The write buffer's size before it is written out; also the most ``read(upTo:)`` returns
    /// from it, so it stays at most one chunk.
    private let flushBytes: Int

    /// Creates the file in `directory`: O_TMPFILE (never visible by name), else mkstemp and
    /// unlink at once. Close-on-exec, so the profiled command never inherits it.
    init(directory: String, flushBytes: Int = 1 << 20) throws(SyscallError) {
        self.flushBytes = flushBytes
        var fd = open(directory, Self.oTmpfile | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            var template = Array((directory + "/sprof-spill-XXXXXX").utf8CString)
            fd = try sysCall("mkstemp", hint: { _ in "cannot create a temporary file in \(directory); set TMPDIR to a writable directory" }) {
                template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// O_TMPFILE, which glibc declares only under _GNU_SOURCE: its generic Linux value (every
    /// architecture sprof builds for), `__O_TMPFILE | O_DIRECTORY`. Kernels or filesystems without
    /// it fail the open (EOPNOTSUPP, EISDIR or EINVAL), and the caller falls back to mkstemp.
    static let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY

    /// Whether every record appended has been read back.
    var isEmpty: Bool { readOffset == writeOffset && buffer.isEmpty }

    func append(_ record: [UInt8]) throws(SyscallError) {
        buffer.append(contentsOf: record)
        bufferedRecords += 1
        if buffer.count >= flushBytes { try flush() }
    }

    private func flush() throws(SyscallError) {
        var done = 0
        while done < buffer.count {
            let n = try sysCall("write (temporary file)", hint: { _ in "free space in the temporary directory or raise --max-memory" }) {
                buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(writeOffset + done)) }
            }
            guard n > 0 else { throw SyscallError(call: "write (temporary file)", errno: ENOSPC, hint: "") }
            done += n
        }
        writeOffset += buffer.count
        unreadRecords += bufferedRecords
        buffer.removeAll(keepingCapacity: true)
        bufferedRecords = 0
    }

    /// Whole records from the start, at most `limit` bytes (but at least one record).
    func read(upTo limit: Int) throws(SyscallError) -> [UInt8] {
        if readOffset == writeOffset {
            // Nothing on disk unread: hand over the write buffer itself.
            var chunk: [UInt8] = []
            swap(&chunk, &buffer)
            bufferedRecords = 0
            readOffset = 0
            writeOffset = 0
            _ = ftruncate(fd, 0)
            return chunk
        }
        // A sample and the live-stack pieces after it (up to ~600 KiB, appended as one) come back
        // together: when none whole fits in `limit`, read more.
        var want = min(max(limit, 1 << 16), writeOffset - readOffset)
        while true {
            var chunk = [UInt8](repeating: 0, count: want)
            var got = 0
            while got < want {
                let n = try sysCall("read (temporary file)") {
                    chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, want - got, off_t(readOffset + got)) }
                }
                guard n > 0 else { throw SyscallError(call: "read (temporary file)", errno: EIO, hint: "") }
                got += n
            }
            // Cut at the last whole record (the header's u16 size at byte 6), never between a
            // sample and its pieces.
            var end = 0, at = 0, records = 0, endRecords = 0
            let allRead = readOffset + want == writeOffset
            chunk.withUnsafeBytes { bytes in
                while at + 8 <= bytes.count {
                    let size = Int(bytes[at + 6]) | Int(bytes[at + 7]) << 8
                    guard size >= 8, at + size <= bytes.count else { break }
                    if !RecordParser.isLiveStackRecord(bytes, at: at) { records += 1 }
                    at += size
                    if at + 8 <= bytes.count ? !RecordParser.isLiveStackRecord(bytes, at: at) : (allRead && at == bytes.count) {
                        end = at
                        endRecords = records
                    }
                }
            }
            if end == 0 && !allRead {
                want = min(want * 4, writeOffset - readOffset)
                continue
            }
            unreadRecords -= UInt64(endRecords)
            chunk.removeSubrange(end...)
            readOffset += end
            if readOffset == writeOffset, buffer.isEmpty {
                readOffset = 0
                writeOffset = 0
                _ = ftruncate(fd, 0)
            }
            return chunk
        }
    }

    /// Forgets the records not yet written (a write failed); returns how many.
    func discardUnwritten() -> UInt64 {
        defer { buffer.removeAll(); bufferedRecords = 0 }
        return bufferedRecords
    }

    /// Forgets everything unread (a read failed); returns how many records that was.
    func discardAll() -> UInt64 {
        let lost = discardUnwritten() + unreadRecords
        unreadRecords = 0
        readOffset = 0
        writeOffset = 0
        _ = ftruncate(fd, 0)
        return lost
    }
}
