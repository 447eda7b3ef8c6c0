#if canImport(Glibc)
import Glibc
#endif
internal import CSprof

/// A build-id cache of separate debug files with their compressed sections inflated, as perf
/// keeps `~/.debug`. Debian's debug packages (`libc6-dbg`) and debuginfod servers ship
/// zlib-compressed DWARF (`SHF_COMPRESSED`), and libdw inflates every debug section of such a
/// file each time it opens it: for libc, a 4.2 MB file becomes 10.4 MB, some 40 ms of CPU on every
/// profile whose stacks pass through libc. The first profile that needs such a file writes an
/// inflated copy, `<directory>/<build-id>.debug`; later profiles open the copy, which libdw maps
/// as it is.
///
/// A copy is used only when its build-id note matches the module's. Copies are written to a
/// temporary file in the directory and renamed into place, so concurrent runs see either no copy
/// or a whole one. Every failure (an unwritable or foreign directory, a full disk, a file libelf
/// cannot rewrite) only means the original file is used, as without the cache.
public struct DebugFileCache: Sendable, Equatable {
    /// Where the copies are: `<directory>/<build-id as lowercase hex>.debug`.
    public var directory: String
    /// The most bytes the copies may take together. Before a copy is added, the least recently
    /// used ones are removed until it fits; a copy larger than this on its own is not kept.
    public var limit: UInt64

    /// 1 GiB: libc's inflated debug file (Debian 12) is 10.4 MB.
    public static let defaultLimit: UInt64 = 1 << 30

    /// A cache in `directory`, created (mode 0700) on the first copy.
    public init(directory: String, limit: UInt64 = DebugFileCache.defaultLimit) {
        self.directory = directory
        self.limit = limit
    }

    /// The cache the environment asks for: `SPROF_DEBUG_CACHE=0` turns it off, another non-empty
    /// value is the directory; else `$XDG_CACHE_HOME/sprof/debug`, else `$HOME/.cache/sprof/debug`;
    /// nil when none of these is set.
    public static var standard: DebugFileCache? {
        let env = { (name: String) -> String? in getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        if let chosen = env("SPROF_DEBUG_CACHE") { return chosen == "0" ? nil : DebugFileCache(directory: chosen) }
        if let xdg = env("XDG_CACHE_HOME"), xdg.hasPrefix("/") { return DebugFileCache(directory: xdg + "/sprof/debug") }
        if let home = env("HOME"), home.hasPrefix("/") { return DebugFileCache(directory: home + "/.cache/sprof/debug") }
        return nil
    }

    /// The path of `buildID`'s copy (whether or not it exists).
    public func path(buildID: String) -> String { directory + "/" + buildID + ".debug" }

    /// The copy for `buildID`, opened read-only, when there is one and its build-id note matches.
    /// Its modification time is set to now: the eviction order is by last use.
    func open(buildID: String) -> (fd: Int32, path: String)? {
        let path = path(buildID: buildID)
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard Self.inspect(fd)?.buildID == buildID else {
            close(fd)
            if usableDirectory() { unlink(path) }  // torn or foreign: let the next run write it anew
            return nil
        }
        _ = futimens(fd, nil)
        return (fd, path)
    }

    /// Writes the inflated copy of the debug file open on `source` (for `buildID`) when it has
    /// compressed sections, and returns the copy opened read-only; nil when there is nothing to
    /// gain or the copy could not be made. `source` is left open and its offset unchanged.
    func store(from source: Int32, buildID: String) -> (fd: Int32, path: String)? {
        guard let facts = Self.inspect(source), facts.compressed, !facts.gnuCompressed, facts.buildID == buildID,
              ensureDirectory() else { return nil }
        let temporary = directory + "/.tmp-\(buildID)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let out = Glibc.open(temporary, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard out >= 0 else { return nil }
        var kept = false
        defer {
            close(out)
            if !kept { unlink(temporary) }
        }
        guard Self.copy(source, to: out), Self.inflate(out), let written = Self.inspect(out),
              written.buildID == buildID, !written.compressed else { return nil }
        var st = stat()
        guard fstat(out, &st) == 0, UInt64(st.st_size) <= limit else { return nil }
        makeRoom(for: UInt64(st.st_size))
        let path = path(buildID: buildID)
        guard rename(temporary, path) == 0 else { return nil }
        kept = true
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        return fd >= 0 ? (fd, path) : nil
    }

    /// What the cache needs to know of an ELF file: its GNU build-id as hex, whether it has
    /// `SHF_COMPRESSED` sections, and whether it has GNU-style `.zdebug_*` ones (not rewritten:
    /// inflating them would also mean renaming the sections).
    static func inspect(_ fd: Int32) -> (buildID: String, compressed: Bool, gnuCompressed: Bool)? {
        _ = elf_version(UInt32(EV_CURRENT))
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else { return nil }
        defer { elf_end(elf) }
        guard elf_kind(elf) == ELF_K_ELF else { return nil }
        var bits: UnsafeRawPointer?
        let n = dwelf_elf_gnu_build_id(elf, &bits)
        guard n > 0, let bits else { return nil }
        let id = hex(UnsafeRawBufferPointer(start: bits, count: n))
        var shstrndx = 0
        guard elf_getshdrstrndx(elf, &shstrndx) == 0 else { return nil }
        var compressed = false, gnu = false
        var scn = elf_nextscn(elf, nil)
        while let section = scn {
            scn = elf_nextscn(elf, section)
            var shdr = GElf_Shdr()
            guard gelf_getshdr(section, &shdr) != nil else { return nil }
            if shdr.sh_flags & UInt64(SHF_COMPRESSED) != 0 { compressed = true }
            if let name = elf_strptr(elf, shstrndx, Int(shdr.sh_name)), strncmp(name, ".zdebug", 7) == 0 { gnu = true }
        }
        return (id, compressed, gnu)
    }

    /// Inflates every `SHF_COMPRESSED` section of the file open read-write on `fd` in place;
    /// libelf lays the sections out anew (the program headers, which a debug file keeps for
    /// libdwfl's address checks, are kept as they are).
    private static func inflate(_ fd: Int32) -> Bool {
        guard let elf = elf_begin(fd, ELF_C_RDWR, nil) else { return false }
        defer { elf_end(elf) }
        var scn = elf_nextscn(elf, nil)
        while let section = scn {
            scn = elf_nextscn(elf, section)
            var shdr = GElf_Shdr()
            guard gelf_getshdr(section, &shdr) != nil else { return false }
            if shdr.sh_flags & UInt64(SHF_COMPRESSED) != 0, elf_compress(section, 0, 0) < 0 { return false }
        }
        return elf_update(elf, ELF_C_WRITE) >= 0
    }

    /// All of `source` (from offset 0, without moving its offset) into the empty `out`.
    private static func copy(_ source: Int32, to out: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(source, $0.baseAddress, $0.count, offset) }
            if n < 0 { if errno == EINTR { continue }; return false }
            if n == 0 { return true }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { write(out, $0.baseAddress! + done, n - done) }
                if w < 0 { if errno == EINTR { continue }; return false }
                done += w
            }
            offset += off_t(n)
        }
    }

    /// The directory exists (created 0700 with its missing parents), is a directory owned by this
    /// user and is writable by no one else: copies in a directory others can write to could be
    /// planted, and a cache in another user's directory (a root run under `sudo -E`) would leave
    /// files that user cannot remove.
    private func ensureDirectory() -> Bool {
        if usableDirectory() { return true }
        var prefix = ""
        for part in directory.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { return false }
        }
        return usableDirectory()
    }

    private func usableDirectory() -> Bool {
        var st = stat()
        return lstat(directory, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR && st.st_uid == geteuid()
            && st.st_mode & (S_IWGRP | S_IWOTH) == 0
    }

    /// Removes the least recently used copies until `incoming` more bytes fit under ``limit``, and
    /// temporary files an interrupted run left (older than an hour).
    private func makeRoom(for incoming: UInt64) {
        guard let dir = opendir(directory) else { return }
        var copies: [(path: String, size: UInt64, used: Int)] = []
        let now = time(nil)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if name.hasPrefix(".tmp-") {
                if now - st.st_mtim.tv_sec > 3600 { unlink(path) }
            } else if name.hasSuffix(".debug") {
                copies.append((path, UInt64(st.st_size), st.st_mtim.tv_sec))
            }
        }
        closedir(dir)
        var total = copies.reduce(0) { $0 + $1.size }
        for copy in copies.sorted(by: { $0.used < $1.used }) where total + incoming > limit {
            if unlink(copy.path) == 0 { total -= copy.size }
        }
    }
}
