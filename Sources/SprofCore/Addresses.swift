/// An address in a profiled process's virtual address space, as the kernel reports it in samples
/// and callchains.
public struct ProcessAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw virtual address.
    public var rawValue: UInt64
    /// Wraps a raw virtual address.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// Orders by numeric value.
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    /// `0x`-prefixed hexadecimal.
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// An address relative to an ELF file's own link-time layout (the `st_value` / `p_vaddr` space),
/// obtained from a process address by subtracting the mapping's load bias.
public struct FileAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw file-relative address.
    public var rawValue: UInt64
    /// Wraps a raw file-relative address.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// Orders by numeric value.
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    /// `0x`-prefixed hexadecimal.
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// One frame of an unwound stack, before symbolization.
///
/// Every frame but the sampled one holds a return address, which points just past the call
/// instruction; looking it up unchanged can land in the next function or on the next source line.
/// `lookupAddress` applies the conventional `- 1`.
public struct StackFrame: Hashable, Sendable {
    /// The address as unwound.
    public var address: ProcessAddress
    /// True when `address` is a return address (every frame except the interrupted one).
    public var isReturnAddress: Bool
    /// True for kernel frames.
    public var isKernel: Bool

    /// Creates a frame.
    public init(address: ProcessAddress, isReturnAddress: Bool, isKernel: Bool) {
        self.address = address
        self.isReturnAddress = isReturnAddress
        self.isKernel = isKernel
    }

    /// The address to symbolize: inside the call instruction for return addresses.
    public var lookupAddress: ProcessAddress {
        isReturnAddress && address.rawValue > 0 ? ProcessAddress(address.rawValue - 1) : address
    }
}

/// The x86-64 `rt_sigreturn` trampoline (`mov $15, %rax; syscall`) the kernel returns to from a
/// signal handler: glibc's and musl's `__restore_rt`. A frame-pointer walk through a signal
/// handler passes its start, which is not a return address; stripped C libraries do not name it.
public let sigreturnTrampolineCode: [UInt8] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05]
