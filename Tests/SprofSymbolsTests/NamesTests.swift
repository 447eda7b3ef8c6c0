import Foundation
import XCTest
import SprofCore
@testable import SprofSymbols

/// One demangling path for every name: C++ (generic lambdas included), Rust (legacy and v0,
/// without hash) and Swift (short by default, the full name alongside).
final class NamesTests: XCTestCase {
    func testRustLegacyNamesLoseTheirHash() {
        XCTAssertEqual(Demangler.names(of: "_ZN3std2rt10lang_start17h0123456789abcdefE").name, "std::rt::lang_start")
        XCTAssertEqual(Demangler.names(of: "_ZN5hello4main28_$u7b$$u7b$closure$u7d$$u7d$17h6f7d7c0e4b8e3a1cE").name,
                       "hello::main::{{closure}}")
    }

    func testRustV0Names() {
        XCTAssertEqual(Demangler.names(of: "_RNvCs1234_7mycrate3foo").name, "mycrate::foo")
        XCTAssertEqual(Demangler.names(of: "_RNvNtCs1234_7mycrate5inner3bar").name, "mycrate::inner::bar")
    }

    func testGenericLambdaClosureNames() {
        // libstdc++ 12's __cxa_demangle rejects these; c++filt (libiberty) reads them.
        XCTAssertEqual(Demangler.names(of: "_ZZ4mainENKUlDpOT_E_clIJiEEEDaS1_").name,
                       "auto main::{lambda((auto:1&&)...)#1}::operator()<int>(int&&) const")
    }

    func testSwiftShortNameByDefaultAndFullOnRequest() throws {
        let names = Demangler.names(of: "$sSi1poiyS2i_SitFZ")
        let full = "static Swift.Int.+ infix(Swift.Int, Swift.Int) -> Swift.Int"
        if Demangler.hasSimplifiedSwiftNames {
            XCTAssertEqual(names.name, "static Int.+ infix(_:_:)")
            XCTAssertEqual(names.fullName, full)
        } else {
            // Without the toolchain's libswiftDemangle.so: the full name, cleanly.
            XCTAssertEqual(names.name, full)
            XCTAssertNil(names.fullName)
        }
        XCTAssertEqual(Demangler.names(of: "$sSi1poiyS2i_SitFZ", fullNames: true).name, full)
        XCTAssertNil(Demangler.names(of: "$sSi1poiyS2i_SitFZ", fullNames: true).fullName)
        XCTAssertEqual(Demangler.names(of: "main").name, "main")
        XCTAssertNil(Demangler.names(of: "main").fullName)
    }

    /// Specializations (the linkage names of inlined stdlib generics in every optimized Swift
    /// program) read short too: `specialized Array.append(_:)`, not the full type signature.
    func testSwiftSpecializationsAreShort() throws {
        guard Demangler.hasSimplifiedSwiftNames else { throw XCTSkip("no libswiftDemangle.so: full Swift names only") }
        let cases = [
            "$sSa21_makeMutableAndUniqueyyF9qsl_bench12RestingOrderV_Tg5": "specialized Array._makeMutableAndUnique()",
            "$sSayxSiciM9qsl_bench12RestingOrderV_Tg5": "specialized Array.subscript.modify",
        ]
        for (mangled, short) in cases {
            XCTAssertEqual(Demangler.names(of: mangled).name, short)
            XCTAssertTrue(Demangler.names(of: mangled).fullName?.hasPrefix("generic specialization <qsl_bench.RestingOrder>") ?? false)
        }
    }

    // MARK: - No mangled name reaches a frame

    private static let mangledPrefixes = ["_Z", "_R", "$s", "$S", "_$s", "$e", "_$e", "_T0"]

    /// Symbolizes a few addresses inside every function of `exe` (so that inline chains are
    /// visited too) and fails on any name, full name or inline frame that is still mangled, or
    /// a Rust name that kept its `::h<hash>`.
    private func assertNoMangledNames(in exe: String, bench: Workbench, file: StaticString = #filePath, line: UInt = #line) throws {
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let symbolizer = Symbolizer()
        var checked = 0
        var bad = Set<String>()
        for row in try bench.run("nm", ["-S", "--defined-only", exe]).split(separator: "\n") {
            let f = row.split(separator: " ")
            guard f.count == 4, "TtWw".contains(f[2]), let a = UInt64(f[0], radix: 16), let s = UInt64(f[1], radix: 16), s > 0 else { continue }
            for offset in Set([0, s / 3, s / 2, s - 1]) {
                let address = base + a + offset
                guard mapping.contains(ProcessAddress(address)) else { continue }
                for frame in symbolizer.symbolize(ProcessAddress(address), in: mapping, pid: 1) {
                    checked += 1
                    for name in [frame.name, frame.fullName].compactMap({ $0 }) {
                        if Self.mangledPrefixes.contains(where: { name.hasPrefix($0) }) || name.range(of: "::h[0-9a-f]{16}", options: .regularExpression) != nil {
                            bad.insert(name)
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 10, file: file, line: line)
        XCTAssertEqual(bad.sorted().prefix(10).map { $0 }, [], "\(bad.count) names left mangled", file: file, line: line)
    }

    private static let cxxSource = """
    #include <cstdio>
    #include <vector>
    #include <algorithm>
    namespace qsl { namespace engine {
    struct OrderBook {
        std::vector<long> levels;
        template <typename F> long dispatch_storage(F&& f) { long s = 0; for (auto v : levels) s += f(v); return s; }
    };
    } }
    int main(int argc, char **) {
        qsl::engine::OrderBook book{std::vector<long>(1000, argc)};
        auto generic = [&](auto&&... xs) { long s = 0; ((s += xs * argc), ...); return s; };
        auto plain = [](long v) { return v * 3; };
        long total = 0;
        for (int i = 0; i < 100; i++) total += book.dispatch_storage(generic) + book.dispatch_storage(plain);
        std::sort(book.levels.begin(), book.levels.end(), [](auto a, auto b) { return a > b; });
        std::printf("%ld\\n", total + book.levels[0]);
    }
    """

    func testNoMangledNamesFromCxxFixtures() throws {
        let bench = try Workbench()
        for compiler in ["clang++", "g++"] {
            let exe: String
            do {
                exe = try bench.compile("cxx-\(compiler.filter(\.isLetter))", source: Self.cxxSource,
                                        flags: ["-std=c++17", "-O2", "-g"], compiler: compiler, ext: "cpp")
            } catch {
                print("skipping \(compiler): \(error)")
                continue
            }
            try assertNoMangledNames(in: exe, bench: bench)
        }
    }

    /// GCC gives inlined template instances no linkage name, only `dispatch_storage<…>`: the
    /// frame is qualified from the enclosing namespace and class DIEs.
    func testInlinedFramesWithoutLinkageNameAreQualified() throws {
        let bench = try Workbench()
        let exe: String
        do {
            exe = try bench.compile("cxx-gcc-inline", source: Self.cxxSource, flags: ["-std=c++17", "-O2", "-g"], compiler: "g++", ext: "cpp")
        } catch {
            throw XCTSkip("g++ unavailable: \(error)")
        }
        let main = try XCTUnwrap(try bench.symbols(exe)["main"])
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let symbolizer = Symbolizer()
        var names = Set<String>()
        for offset in 0..<main.size {
            for frame in symbolizer.symbolize(ProcessAddress(base + main.address + offset), in: mapping, pid: 1) where frame.kind == .inlined {
                names.insert(frame.name)
            }
        }
        let dispatch = names.filter { $0.contains("dispatch_storage<") }
        XCTAssertFalse(dispatch.isEmpty, "no inlined dispatch_storage frame in \(names.sorted())")
        for name in dispatch {
            XCTAssertTrue(name.hasPrefix("qsl::engine::OrderBook::dispatch_storage<"), name)
        }
    }

    func testNoMangledNamesFromSwiftFixture() throws {
        let bench = try Workbench()
        let exe: String
        do {
            exe = try bench.compile("swiftnames", source: """
            struct MatchingEngine {
                var book: [UInt64] = Array(repeating: 1, count: 100)
                @inline(never) mutating func sweepBestAsk(takerId: UInt64, remaining: UInt32) -> UInt32 {
                    var left = remaining
                    for i in book.indices where left > 0 { book[i] &+= takerId; left &-= 1 }
                    return left
                }
            }
            var engine = MatchingEngine()
            print(engine.sweepBestAsk(takerId: UInt64(CommandLine.arguments.count), remaining: 50))
            """, flags: ["-O", "-g", "-module-name", "qsl_bench"], compiler: "swiftc", ext: "swift")
        } catch {
            throw XCTSkip("swiftc unavailable: \(error)")
        }
        try assertNoMangledNames(in: exe, bench: bench)
    }

    func testNoMangledNamesFromRustFixtures() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/rustc") || (ProcessInfo.processInfo.environment["PATH"] ?? "")
            .split(separator: ":").contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/rustc") }) else {
            throw XCTSkip("rustc is not installed")
        }
        let bench = try Workbench()
        let source = """
        fn work(v: &[u64]) -> u64 { v.iter().map(|x| x * 3).filter(|x| x % 2 == 1).sum() }
        fn main() { let v: Vec<u64> = (0..std::env::args().count() as u64 * 1000).collect(); println!("{}", work(&v)); }
        """
        // Legacy mangling is rustc's default; v0 is asked for.
        for (name, flags) in [("rust-legacy", [String]()), ("rust-v0", ["-C", "symbol-mangling-version=v0"])] {
            let exe = try bench.compile(name, source: source, flags: ["-O", "-g"] + flags, compiler: "rustc", ext: "rs")
            try assertNoMangledNames(in: exe, bench: bench)
        }
    }
}
