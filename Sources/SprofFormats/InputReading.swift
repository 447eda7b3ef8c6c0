#if canImport(Glibc)
import Glibc
#endif

extension ProfileReader {
    /// The most bytes read of one profile input (1 GiB), compressed or not: sprof's largest
    /// profiles are tens of MiB, and an endless input (`/dev/zero`, a pipe that never ends)
    /// must end in one line, not in memory running out. Gzip input also decompresses to at
    /// most 1 GiB (see ``PprofFormat/decode(_:)``).
    public static let maxInputBytes = 1 << 30

    /// How much of an input is read before it is checked that it can start a profile at all
    /// (``refusal(ofHead:source:)``): 64 KiB.
    public static let headBytes = 1 << 16

    /// Every byte of the open descriptor `fd` (a file, a pipe, standard input), read in
    /// 64 KiB chunks, of at most `limit` bytes. A regular file larger than `limit` is refused
    /// before anything is read; other input is refused once `limit` bytes have come, or once
    /// its first ``headBytes`` cannot start any format sprof reads (``refusal(ofHead:source:)``).
    /// - Parameters:
    ///   - source: names the input in messages (a path, `<stdin>`).
    ///   - checkHead: refuse early what starts no profile (false for other files, such as a memory timeline).
    /// - Throws: ``ProfileReadError``: `.tooLarge` past `limit`, `.unreadable` for a read error
    ///   (`cannot read SOURCE: strerror`) or a head that starts no profile.
    public static func readInput(fd: Int32, source: String, limit: Int = maxInputBytes, checkHead: Bool = true) throws -> [UInt8] {
        var st = stat()
        let regular = fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
        if regular && Int(st.st_size) > limit { throw tooLarge(source: source, limit: limit) }
        var bytes: [UInt8] = []
        if regular { bytes.reserveCapacity(Int(st.st_size) + 1) }
        var headChecked = !checkHead
        var chunk = [UInt8](repeating: 0, count: headBytes)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ProfileReadError(kind: .unreadable, message: "cannot read \(source): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            guard bytes.count + n <= limit else { throw tooLarge(source: source, limit: limit) }
            bytes.append(contentsOf: chunk[0..<n])
            if !headChecked && bytes.count >= headBytes {
                headChecked = true
                if let refused = refusal(ofHead: bytes, source: source) { throw refused }
            }
        }
        return bytes
    }

    /// `SOURCE: larger than 1 GiB, the most sprof reads of a profile (not a profile?)`.
    static func tooLarge(source: String, limit: Int) -> ProfileReadError {
        ProfileReadError(kind: .tooLarge, message: "\(source): larger than \(Gzip.sizeText(limit)), the most sprof reads of a profile (not a profile?); give a pprof file (.pb.gz) or folded stacks")
    }

    /// Why the first bytes of an input cannot start any format sprof reads, or nil when they
    /// can: bytes with a NUL that are not gzip must be a plain protobuf `Profile`, which they
    /// cannot be when ``PprofFormat/couldStartProfile(_:)`` says so. The message is the one
    /// the whole input would get (``decode(_:source:)``), so a refusal after the first bytes
    /// says the same as one after the last. Text (folded stacks) is never refused here.
    public static func refusal(ofHead head: [UInt8], source: String) -> ProfileReadError? {
        guard !Gzip.isGzip(head), sniff(head) == .pprof, !PprofFormat.couldStartProfile(head) else { return nil }
        return ProfileReadError(kind: .unreadable, message: pprofFailure(head, source: source, error: FormatError.malformed("the bytes are not protobuf data")))
    }
}
