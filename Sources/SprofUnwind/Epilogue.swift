/// Recognizes the rest of an x86-64 function epilogue from the bytes at a sampled pc, so that the
/// DWARF unwinder may answer the save slots below the stack pointer with the registers' current
/// values (see `UnwindContext.poppedSlots`).
///
/// Why that is sound: a register's save slot lies below rsp only once rsp has moved past it, that
/// is once the register was popped and holds its saved value again, or when a leaf saved it into
/// the red zone with `mov` (and will restore it with `mov`). So the code from the pc to its `ret`
/// may contain anything that does not write a callee-saved register (rbx, rbp, r12-r15) or rsp:
/// pops (they read at or above rsp), arithmetic on scratch registers, loads into scratch
/// registers, `vzeroupper`. GCC schedules such instructions between `pop %rbp` and `ret`
/// (`pop %rbp; add $0x2,%eax; ret`); LLVM puts the pops right before `ret`. Anything else (a
/// branch, a call, a write to a callee-saved register, an instruction this decoder does not
/// know) means "not an epilogue", and the unwinder keeps libdw's answer.
enum Epilogue {
    /// The most instructions looked at before the `ret`.
    static let maxInstructions = 12

    /// Whether `code` (bytes from the pc on) reaches a `ret` (`c3`, `c2 imm16`, `f3 c3`) through
    /// instructions that leave the callee-saved registers and rsp alone.
    static func reachesReturn(_ code: [UInt8]) -> Bool {
        var i = 0
        for _ in 0 ..< maxInstructions {
            guard i < code.count else { return false }
            switch code[i] {
            case 0xc3, 0xc2: return true
            case 0xf3 where i + 1 < code.count && code[i + 1] == 0xc3: return true
            default:
                guard let n = harmlessLength(code, at: i) else { return false }
                i += n
            }
        }
        return false
    }

    /// rbx, rbp, r12-r15 and rsp in the x86 register numbering (rax 0, rcx 1, rdx 2, rbx 3,
    /// rsp 4, rbp 5, rsi 6, rdi 7, r8-r15 8-15).
    private static let protected: Set<Int> = [3, 4, 5, 12, 13, 14, 15]

    /// The length of the instruction at `i` when it writes no protected register, else nil.
    static func harmlessLength(_ code: [UInt8], at start: Int) -> Int? {
        var i = start
        var operandSize16 = false
        if i < code.count, code[i] == 0x66 { operandSize16 = true; i += 1 }
        var rex: UInt8 = 0
        if i < code.count, (0x40 ... 0x4f).contains(code[i]) { rex = code[i]; i += 1 }
        guard i < code.count else { return nil }
        let op = code[i]
        let rexW = rex & 8 != 0, rexR = rex & 4 != 0 ? 8 : 0, rexB = rex & 1 != 0 ? 8 : 0
        func modrm(_ at: Int) -> (mod: UInt8, reg: Int, rm: Int, length: Int)? {
            guard at < code.count else { return nil }
            let m = code[at]
            let mod = m >> 6, rm = Int(m & 7)
            var length = 1
            if mod != 3 && rm == 4 {
                guard at + 1 < code.count else { return nil }
                length += 1
                if mod == 0 && code[at + 1] & 7 == 5 { length += 4 }
            }
            if mod == 0 && rm == 5 { length += 4 }
            if mod == 1 { length += 1 }
            if mod == 2 { length += 4 }
            return (mod, Int((m >> 3) & 7) + rexR, rm + rexB, length)
        }
        func safe(_ register: Int) -> Bool { !protected.contains(register) }
        let after = i + 1
        let imm32 = operandSize16 ? 2 : 4
        switch op {
        case 0x50 ... 0x57:
            return nil // push: moves rsp down over the slots to be read
        case 0x58 ... 0x5f:
            return after - start // pop: reads at rsp, which is at or above every slot below it
        case 0x90:
            return after - start
        case 0xc5 where i + 2 < code.count && code[i + 1] == 0xf8 && code[i + 2] == 0x77:
            return i + 3 - start // vzeroupper
        case 0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x89:
            // op r/m, reg: writes r/m (memory is fine).
            guard let m = modrm(after), m.mod != 3 || safe(m.rm) else { return nil }
            return after + m.length - start
        case 0x39, 0x85:
            // cmp/test r/m, reg: write no register.
            guard let m = modrm(after) else { return nil }
            return after + m.length - start
        case 0x03, 0x0b, 0x13, 0x1b, 0x23, 0x2b, 0x33, 0x8b, 0x8d, 0x63:
            // op reg, r/m (and lea, movsxd): writes reg.
            guard let m = modrm(after), safe(m.reg) else { return nil }
            return after + m.length - start
        case 0x3b:
            guard let m = modrm(after) else { return nil }
            return after + m.length - start
        case 0x83, 0xc1, 0x81:
            // group 1 with an immediate (cmp is /7), shifts by an immediate.
            guard let m = modrm(after) else { return nil }
            let writes = !(op != 0xc1 && m.reg & 7 == 7)
            if writes && m.mod == 3 && !safe(m.rm) { return nil }
            return after + m.length + (op == 0x81 ? imm32 : 1) - start
        case 0xd1, 0xd3:
            guard let m = modrm(after), m.mod != 3 || safe(m.rm) else { return nil }
            return after + m.length - start
        case 0xf7:
            // test (/0, /1: an immediate), not, neg (write r/m), mul, imul, div, idiv (rax, rdx).
            guard let m = modrm(after) else { return nil }
            let sub = m.reg & 7
            if (sub == 2 || sub == 3) && m.mod == 3 && !safe(m.rm) { return nil }
            return after + m.length + (sub <= 1 ? imm32 : 0) - start
        case 0xb8 ... 0xbf:
            guard safe(Int(op - 0xb8) + rexB) else { return nil }
            return after + (rexW ? 8 : imm32) - start
        case 0x98, 0x99:
            return after - start // cltq/cqto: rax, rdx
        case 0x0f:
            guard after < code.count else { return nil }
            let op2 = code[after]
            switch op2 {
            case 0x1f: // multi-byte nop
                guard let m = modrm(after + 1) else { return nil }
                return after + 1 + m.length - start
            case 0xaf, 0xb6, 0xb7, 0xbe, 0xbf, 0x40 ... 0x4f: // imul, movzx, movsx, cmovcc: write reg
                guard let m = modrm(after + 1), safe(m.reg) else { return nil }
                return after + 1 + m.length - start
            default:
                return nil
            }
        default:
            return nil
        }
    }
}
