import Foundation
import SprofCore
internal import CSprof

/// Kernel text symbols from `/proc/kallsyms`.
///
/// The kernel lists module symbols as `addr t name\t[module]`; those frames get the module name
/// in brackets as their module, core kernel frames `[kernel.kallsyms]`.
///
/// kallsyms has over 100k symbols and a profile needs a handful, so parsing records each symbol
/// as (start, name offset, length) into one byte buffer of names, without creating a String; a
/// name is decoded only when a lookup hits it. (Building a String per symbol and sorting them
/// through SymbolTable cost ~80 ms per `sprof run`, more than everything else sprof does for a
/// short profile.) The file is parsed as it is read, keeping only the names: holding its ~5 MB of
/// text (and the copies an array makes while growing to that) was most of sprof's heap peak.
/// The alias and extent rules are SymbolTable's for symbols without sizes.
struct KernelSymbols {
    static let kernelModule = "[kernel.kallsyms]"
    /// Kernel symbols carry no sizes; a gap of more than this after the last one is not it.
    static let openEndedReach: UInt64 = 0x10000

    var modules: [String] = [kernelModule]
    /// False when the file was unreadable or `kptr_restrict` hid the addresses (all zero).
    var usable = false

    private var names: [UInt8] = []
    private var starts: [UInt64] = []
    private var ends: [UInt64] = []
    private var nameOffsets: [Int32] = []
    private var nameLengths: [Int32] = []
    /// Per symbol: the module it belongs to (index into `modules`), 0 for the core kernel.
    private var moduleIndex: [Int32] = []

    init() {}

    /// Parses kallsyms text held in memory (tests, synthetic tables).
    init(parsing bytes: [UInt8]) {
        var parser = Parser()
        bytes.withUnsafeBufferPointer { parser.feed($0) }
        self = parser.finish()
    }

    /// Reads and parses `path` (normally /proc/kallsyms) 4 KiB at a time: the kernel generates
    /// the file inside read(2) without preemption, so small reads keep each one short. Nil when
    /// the file cannot be opened or read.
    init?(contentsOf path: String) {
        var parser = Parser()
        guard readFileInChunks(path, chunkSize: 4096, { parser.feed($0) }) else { return nil }
        self = parser.finish()
    }

    private struct Entry {
        var start: UInt64
        var name: Int32
        var length: Int32
        var rank: Int8
        var module: Int32
    }

    /// Line-by-line kallsyms parser fed with arbitrary chunks. Only text symbols (`t`/`T`, and
    /// weak `w`/`W`) are kept: data symbols never hold a sampled instruction pointer and would
    /// only cut text ranges short.
    private struct Parser {
        var entries: [Entry] = []
        var names: [UInt8] = []
        var moduleOf: [String: Int32] = [KernelSymbols.kernelModule: 0]
        var moduleList = [KernelSymbols.kernelModule]
        var nonZero = false
        var sorted = true
        /// The unfinished last line of the previous chunk.
        var carry: [UInt8] = []

        mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>) {
            var lineStart = 0
            var i = 0
            while i < chunk.count {
                if chunk[i] == 0x0A {
                    if carry.isEmpty {
                        line(UnsafeBufferPointer(rebasing: chunk[lineStart..<i]))
                    } else {
                        carry.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[lineStart..<i]))
                        let whole = carry
                        whole.withUnsafeBufferPointer { line($0) }
                        carry.removeAll(keepingCapacity: true)
                    }
                    lineStart = i + 1
                }
                i += 1
            }
            if lineStart < chunk.count { carry.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[lineStart...])) }
        }

        /// One line: ADDR TYPE NAME [MODULE...], separated by blanks.
        private mutating func line(_ b: UnsafeBufferPointer<UInt8>) {
            @inline(__always) func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D }
            let lineEnd = b.count
            var i = 0
            func field() -> Range<Int> {
                while i < lineEnd && isBlank(b[i]) { i += 1 }
                let s = i
                while i < lineEnd && !isBlank(b[i]) { i += 1 }
                return s..<i
            }
            let a = field(), t = field(), name = field()
            guard !name.isEmpty, t.count == 1, let addr = parseHex(UnsafeBufferPointer(rebasing: b[a])) else { return }
            let rank: Int8
            switch b[t.lowerBound] {
            case UInt8(ascii: "T"): rank = 3
            case UInt8(ascii: "t"): rank = 2
            case UInt8(ascii: "W"), UInt8(ascii: "w"): rank = 1
            default: return
            }
            if addr != 0 { nonZero = true }
            var module: Int32 = 0
            while i < lineEnd && isBlank(b[i]) { i += 1 }
            if i < lineEnd {
                var end = lineEnd
                while end > i && isBlank(b[end - 1]) { end -= 1 }
                let m = String(decoding: UnsafeBufferPointer(rebasing: b[i..<end]), as: UTF8.self)
                if let known = moduleOf[m] { module = known } else {
                    module = Int32(moduleList.count)
                    moduleOf[m] = module
                    moduleList.append(m)
                }
            }
            if let last = entries.last, last.start > addr { sorted = false }
            entries.append(Entry(start: addr, name: Int32(names.count), length: Int32(name.count), rank: rank, module: module))
            names.append(contentsOf: UnsafeBufferPointer(rebasing: b[name]))
        }

        mutating func finish() -> KernelSymbols {
            if !carry.isEmpty {
                let last = carry
                carry = []
                last.withUnsafeBufferPointer { line($0) }
            }
            var table = KernelSymbols()
            guard nonZero else { return table }
            table.usable = true
            table.modules = moduleList
            table.names = names
            names = []
            // /proc/kallsyms is sorted by address except for module symbols; sort only when needed.
            if !sorted { entries.sort { $0.start < $1.start } }
            // One symbol per start address, the best alias (SymbolTable.isBetter's rules),
            // compacted in place.
            var kept = 0
            for j in entries.indices {
                let e = entries[j]
                if kept > 0, entries[kept - 1].start == e.start {
                    if table.isBetter(e, than: entries[kept - 1]) { entries[kept - 1] = e }
                    continue
                }
                entries[kept] = e
                kept += 1
            }
            let chosen = entries[0..<kept]
            table.starts = chosen.map(\.start)
            table.nameOffsets = chosen.map(\.name)
            table.nameLengths = chosen.map(\.length)
            table.moduleIndex = chosen.map(\.module)
            table.ends = chosen.indices.map { i in
                let end = i + 1 < kept ? chosen[i + 1].start : chosen[i].start &+ KernelSymbols.openEndedReach
                return end <= chosen[i].start ? chosen[i].start &+ 1 : end
            }
            entries = []
            return table
        }
    }

    /// SymbolTable.isBetter on raw names: higher rank, fewer leading underscores, shorter, then
    /// byte order (kallsyms names are ASCII).
    private func isBetter(_ a: Entry, than b: Entry) -> Bool {
        if a.rank != b.rank { return a.rank > b.rank }
        return names.withUnsafeBufferPointer { t in
            let na = UnsafeBufferPointer(rebasing: t[Int(a.name)..<Int(a.name + a.length)])
            let nb = UnsafeBufferPointer(rebasing: t[Int(b.name)..<Int(b.name + b.length)])
            let ua = na.prefix { $0 == UInt8(ascii: "_") }.count, ub = nb.prefix { $0 == UInt8(ascii: "_") }.count
            if ua != ub { return ua < ub }
            if na.count != nb.count { return na.count < nb.count }
            return na.lexicographicallyPrecedes(nb)
        }
    }

    /// Name and module of the symbol containing `address`, or nil.
    func lookup(_ address: UInt64) -> (name: String, module: String)? {
        guard usable else { return nil }
        guard let i = containingIndex(starts: starts, ends: ends, address) else { return nil }
        let o = Int(nameOffsets[i])
        let name = String(decoding: names[o..<o + Int(nameLengths[i])], as: UTF8.self)
        return (name, modules[Int(moduleIndex[i])])
    }
}

/// One kallsyms read on a background thread; ``wait()`` hands the table over.
final class KernelSymbolsLoader: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var table: KernelSymbols?
    /// The loading thread's kernel id while it loads (0 before and after), under `lock`: the
    /// thread cannot end, and its id be reused, while ``wait()`` holds the lock.
    private var loaderThread: pid_t = 0
    private let lock = NSLock()

    init(path: String) {
        // Not waited for here: a thread started at SCHED_IDLE on a busy machine may not run for
        // a long time, and the caller would wait with it.
        let thread = Thread { [self] in
            lock.lock()
            loaderThread = csprof_gettid()
            lock.unlock()
            let loaded = KernelSymbols(contentsOf: path) ?? KernelSymbols()
            lock.lock()
            table = loaded
            loaderThread = 0
            lock.unlock()
            done.signal()
        }
        thread.name = "sprof-kallsyms"
        thread.start()
    }

    /// The loading thread's kernel id while it loads, 0 once it is done. Exposed for tests.
    var threadID: pid_t {
        lock.lock()
        defer { lock.unlock() }
        return loaderThread
    }

    /// Blocks until the table is read (once; later calls return at once). The loader inherits its
    /// creator's policy, SCHED_IDLE when the consumer started it while the command ran: a caller
    /// at normal priority sets it back first, or on a busy machine it would wait for an idle CPU
    /// after the command had exited.
    func wait() -> KernelSymbols {
        if csprof_thread_is_idle() == 0 {
            // The loader may not have run yet to publish its id: tried again until it has.
            while true {
                lock.lock()
                let tid = loaderThread, finished = table != nil
                if tid > 0 { _ = csprof_set_task_idle(tid, 0) }
                lock.unlock()
                if tid > 0 || finished { break }
                if done.wait(timeout: .now() + .milliseconds(10)) == .success {
                    done.signal()
                    break
                }
            }
        }
        done.wait()
        done.signal()
        return table ?? KernelSymbols()
    }
}
