#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: which call, the errno it left, and what the user can do about it.
///
/// Every syscall sprof makes goes through ``sysCall(_:hint:_:)`` so that errno is read at once
/// (before anything else can overwrite it) and EINTR is retried in one place.
public struct SyscallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The system call's name, e.g. `perf_event_open`.
    public var call: String
    /// The errno value.
    public var errno: Int32
    /// An actionable explanation, or the empty string when there is nothing better than strerror.
    public var hint: String

    /// Creates an error.
    public init(call: String, errno: Int32, hint: String = "") {
        self.call = call
        self.errno = errno
        self.hint = hint
    }

    /// `strerror(errno)`.
    public var reason: String { String(cString: strerror(errno)) }

    /// One line: `call: reason (hint)`.
    public var description: String {
        hint.isEmpty ? "\(call): \(reason)" : "\(call): \(reason). \(hint)"
    }
}

/// Runs a syscall-style function that returns -1 (or any negative value) on failure, reads errno
/// at once, retries EINTR, and throws a ``SyscallError``.
///
/// - Parameters:
///   - name: the call's name for the error.
///   - hint: builds an actionable message from errno; return "" when there is none.
@inline(__always)
public func sysCall<T: BinaryInteger>(
    _ name: String,
    hint: (Int32) -> String = { _ in "" },
    _ body: () -> T
) throws(SyscallError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let err = Glibc.errno
        if err == EINTR { continue }
        throw SyscallError(call: name, errno: err, hint: hint(err))
    }
}

/// Like ``sysCall(_:hint:_:)`` for calls that return a pointer and signal failure with a sentinel
/// (`mmap`'s `MAP_FAILED`, or nil).
@inline(__always)
public func sysCallPointer(
    _ name: String,
    failure: UnsafeMutableRawPointer?,
    hint: (Int32) -> String = { _ in "" },
    _ body: () -> UnsafeMutableRawPointer?
) throws(SyscallError) -> UnsafeMutableRawPointer {
    while true {
        let result = body()
        if let result, result != failure { return result }
        let err = Glibc.errno
        if err == EINTR { continue }
        throw SyscallError(call: name, errno: err, hint: hint(err))
    }
}
