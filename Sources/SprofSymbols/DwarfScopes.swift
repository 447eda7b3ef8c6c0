internal import CSprof

// Finding the compile unit and the chain of inlined calls at an address, without the two libdw
// calls that lose frames:
//
// - `dwfl_module_addrdie` finds CUs through `.debug_aranges` only; elfutils 0.188 (and 0.189)
//   treats a missing section as "no address is covered". LLVM-based compilers (swiftc, clang,
//   rustc) emit no `.debug_aranges` by default, so Swift code got no inline frames or lines.
// - `dwarf_getscopes` lists the scopes out to the innermost inlined subroutine and then continues
//   with the scopes of that subroutine's *abstract definition* (what a debugger needs for name
//   lookup), not with the concrete callers it was inlined into. Only the innermost inlined call
//   survived, and when the definition could not be found (a Swift closure defined inside the
//   function it is inlined into) the call returned nothing at all.

/// Half-open address ranges with a value each, searched by binary search. Overlaps are allowed;
/// the range that starts last wins, which for properly nested ranges is the innermost.
struct AddressRanges<Value> {
    private var starts: [UInt64] = []
    private var ends: [UInt64] = []
    /// The largest end among entries 0...i: bounds the backward scan over overlapping ranges.
    private var maxEnds: [UInt64] = []
    private var values: [Value] = []

    init(_ entries: [(start: UInt64, end: UInt64, value: Value)]) {
        let sorted = entries.enumerated().sorted { a, b in
            a.element.start != b.element.start ? a.element.start < b.element.start : a.offset < b.offset
        }.map(\.element)
        starts = sorted.map(\.start)
        ends = sorted.map(\.end)
        values = sorted.map(\.value)
        var running: UInt64 = 0
        maxEnds = sorted.map { running = max(running, $0.end); return running }
    }

    var count: Int { starts.count }

    func lookup(_ address: UInt64) -> Value? {
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        var i = lo - 1
        while i >= 0, maxEnds[i] > address {
            if ends[i] > address { return values[i] }
            i -= 1
        }
        return nil
    }
}

/// A compile unit as libdwfl hands it out: the DIE lives as long as the module.
struct CompileUnit {
    let die: UnsafeMutablePointer<Dwarf_Die>
    let bias: Dwarf_Addr
}

enum DwarfScopes {
    /// Every CU's own ranges (`DW_AT_ranges`, or `DW_AT_low_pc`/`DW_AT_high_pc`), in libdwfl
    /// module addresses.
    static func compileUnitRanges(_ module: OpaquePointer) -> AddressRanges<CompileUnit> {
        var entries: [(start: UInt64, end: UInt64, value: CompileUnit)] = []
        var bias: Dwarf_Addr = 0
        var next = dwfl_module_nextcu(module, nil, &bias)
        while let die = next {
            let unit = CompileUnit(die: die, bias: bias)
            forEachRange(die) { start, end in entries.append((start &+ bias, end &+ bias, unit)) }
            next = dwfl_module_nextcu(module, die, &bias)
        }
        return AddressRanges(entries)
    }

    /// The concrete (code-bearing) functions of a CU by their ranges, in the CU's own addresses,
    /// that hold inlined calls (with every function nested inside such a function): the others
    /// have no inline chain to find, and a CU of 100,000 functions built without inlining would
    /// otherwise index them all. Nested concrete functions are found too; the innermost one wins
    /// a lookup.
    static func functionRanges(_ cu: UnsafeMutablePointer<Dwarf_Die>) -> AddressRanges<Dwarf_Die> {
        var entries: [(start: UInt64, end: UInt64, value: Dwarf_Die)] = []
        collectFunctions(under: cu.pointee, depth: 0, into: &entries)
        return AddressRanges(entries)
    }

    /// The inlined subroutines inside `function` that contain `pc`, innermost first.
    static func inlinedChain(in function: Dwarf_Die, pc: Dwarf_Addr) -> [Dwarf_Die] {
        var chain: [Dwarf_Die] = []
        var current = function
        descend: for _ in 0..<maxDepth {
            var child = Dwarf_Die()
            guard dwarf_child(&current, &child) == 0 else { break }
            while true {
                let tag = dwarf_tag(&child)
                if codeScopeTags.contains(tag), dwarf_haspc(&child, pc) > 0 {
                    if tag == Int32(DW_TAG_inlined_subroutine) { chain.append(child) }
                    current = child
                    continue descend
                }
                var sibling = Dwarf_Die()
                guard dwarf_siblingof(&child, &sibling) == 0 else { break descend }
                child = sibling
            }
        }
        return chain.reversed()
    }

    /// Scopes inside a function that carry code addresses and can hold inlined calls.
    private static let codeScopeTags: Set<Int32> = [
        Int32(DW_TAG_inlined_subroutine), Int32(DW_TAG_lexical_block), Int32(DW_TAG_try_block),
        Int32(DW_TAG_catch_block), Int32(DW_TAG_with_stmt),
    ]

    /// Tags without code of their own under which concrete functions are nested: Swift puts
    /// them in `DW_TAG_module`, C++ sometimes in namespaces and types.
    private static let containerTags: Set<Int32> = [
        Int32(DW_TAG_module), Int32(DW_TAG_namespace), Int32(DW_TAG_class_type),
        Int32(DW_TAG_structure_type), Int32(DW_TAG_union_type), Int32(DW_TAG_interface_type),
    ]

    /// Guards against malformed (cyclic or absurdly deep) DIE trees.
    private static let maxDepth = 256

    private static func collectFunctions(under parent: Dwarf_Die, depth: Int,
                                         into entries: inout [(start: UInt64, end: UInt64, value: Dwarf_Die)]) {
        guard depth < maxDepth else { return }
        var parent = parent
        var child = Dwarf_Die()
        guard dwarf_child(&parent, &child) == 0 else { return }
        while true {
            let tag = dwarf_tag(&child)
            if tag == Int32(DW_TAG_subprogram) {
                if containsInlinedCall(child, depth: depth + 1) {
                    let die = child
                    forEachRange(&child) { start, end in entries.append((start, end, die)) }
                    // Nested functions (GNU C) live inside their parent, possibly in blocks.
                    collectFunctions(under: child, depth: depth + 1, into: &entries)
                }
            } else if tag == Int32(DW_TAG_lexical_block) || containerTags.contains(tag) {
                collectFunctions(under: child, depth: depth + 1, into: &entries)
            } else if tag == Int32(DW_TAG_imported_unit) {
                // dwz moves shared subtrees into partial units that CUs import.
                var attr = Dwarf_Attribute()
                var unit = Dwarf_Die()
                if dwarf_attr(&child, UInt32(DW_AT_import), &attr) != nil, dwarf_formref_die(&attr, &unit) != nil {
                    collectFunctions(under: unit, depth: depth + 1, into: &entries)
                }
            }
            var sibling = Dwarf_Die()
            guard dwarf_siblingof(&child, &sibling) == 0 else { return }
            child = sibling
        }
    }

    /// Whether an inlined subroutine is anywhere below `parent` (nested functions included).
    private static func containsInlinedCall(_ parent: Dwarf_Die, depth: Int) -> Bool {
        guard depth < maxDepth else { return false }
        var parent = parent
        var child = Dwarf_Die()
        guard dwarf_child(&parent, &child) == 0 else { return false }
        while true {
            if dwarf_tag(&child) == Int32(DW_TAG_inlined_subroutine) { return true }
            if dwarf_haschildren(&child) > 0, containsInlinedCall(child, depth: depth + 1) { return true }
            var sibling = Dwarf_Die()
            guard dwarf_siblingof(&child, &sibling) == 0 else { return false }
            child = sibling
        }
    }

    /// Calls `body` with each non-empty address range of `die`.
    private static func forEachRange(_ die: UnsafeMutablePointer<Dwarf_Die>, _ body: (UInt64, UInt64) -> Void) {
        var base: Dwarf_Addr = 0, start: Dwarf_Addr = 0, end: Dwarf_Addr = 0
        var offset = dwarf_ranges(die, 0, &base, &start, &end)
        while offset > 0 {
            if end > start { body(start, end) }
            offset = dwarf_ranges(die, offset, &base, &start, &end)
        }
    }
}
