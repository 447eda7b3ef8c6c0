/// Why a profile could not be read or written. ``description`` is one line naming the problem, so
/// that the CLI can print `FILE: description` and exit; nothing in the formats traps on bad input.
public enum FormatError: Error, Equatable, CustomStringConvertible, Sendable {
    /// gzip data that zlib could not decompress (corrupt or truncated), or a zlib failure.
    case compression(String)
    /// Bytes that do not parse as a protobuf `Profile` message.
    case malformed(String)
    /// A `Profile` message that parses but breaks the schema's rules: an id that is zero,
    /// duplicated or refers to nothing, a string index outside `string_table`, a sample whose
    /// value count differs from `sample_type`'s.
    case invalid(String)
    /// A ``Profile`` value whose indices do not hold together (a writer's input error).
    case inconsistent(String)

    /// One line: what is wrong and what it means for the file.
    public var description: String {
        switch self {
        case .compression(let what): return "not a readable pprof file: \(what)"
        case .malformed(let what): return "not a pprof profile: \(what)"
        case .invalid(let what): return "invalid pprof profile: \(what)"
        case .inconsistent(let what): return "inconsistent profile: \(what)"
        }
    }
}
