internal import CCapstone

/// One decoded instruction.
struct Instruction {
    var address: UInt64
    var size: Int
    /// `mnemonic operands`, AT&T syntax as `perf annotate` and objdump print it.
    var text: String
}

/// x86-64 disassembly through Capstone. Other architectures are not decoded (nil).
enum Disassembler {
    /// Instructions of `code`, which starts at `address`; stops at the first undecodable byte.
    /// Nil when Capstone cannot be opened for x86-64.
    static func x86_64(_ code: [UInt8], address: UInt64) -> [Instruction]? {
        var handle: csh = 0
        guard cs_open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK else { return nil }
        defer { cs_close(&handle) }
        cs_option(handle, CS_OPT_SYNTAX, Int(CS_OPT_SYNTAX_ATT.rawValue))
        var decoded: UnsafeMutablePointer<cs_insn>?
        let count = code.withUnsafeBufferPointer { cs_disasm(handle, $0.baseAddress, $0.count, address, 0, &decoded) }
        guard let decoded else { return [] }
        defer { cs_free(decoded, count) }
        var out: [Instruction] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            var insn = decoded[i]
            let mnemonic = withUnsafeBytes(of: &insn.mnemonic) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            let operands = withUnsafeBytes(of: &insn.op_str) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            out.append(Instruction(address: insn.address, size: Int(insn.size),
                                   text: operands.isEmpty ? mnemonic : mnemonic.padding(toLength: 6) + " " + operands))
        }
        return out
    }
}

private extension String {
    func padding(toLength n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
