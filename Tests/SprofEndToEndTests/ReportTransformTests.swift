import Foundation
import XCTest

/// `sprof report --transform`: the stacks rewritten before the table, in the order given; a
/// transform that does not parse is a usage error (status 2, one line).
final class ReportTransformTests: XCTestCase {
    func testTransformsRewriteTheStacksBeforeTheTable() throws {
        let file = NSTemporaryDirectory() + "sprof-report-transform-\(UUID().uuidString).folded"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "app;main;work;lex 30\napp;main;idle 10\napp;main;parse;lex 5\n".write(toFile: file, atomically: true, encoding: .utf8)
        func report(_ extra: [String]) throws -> [String: Any] {
            let r = try SprofCLI.run(["report", file, "--format", "json", "--limit", "0"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        XCTAssertEqual(try report([])["total"] as? Int, 45)
        XCTAssertEqual(try report(["--transform", "focus:lex"])["total"] as? Int, 35)
        let merged = try report(["--transform", "merge:lex", "--transform", "ignore:idle"])
        XCTAssertEqual(merged["total"] as? Int, 35)
        let rows = try XCTUnwrap(merged["functions"] as? [[String: Any]])
        XCTAssertEqual(rows.first { ($0["key"] as? [String]) == ["work"] }?["selfValue"] as? Int, 30)
        XCTAssertNil(rows.first { ($0["key"] as? [String]) == ["lex"] })
        let bad = try SprofCLI.run(["report", file, "--transform", "zoom:main"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.hasPrefix("sprof: --transform zoom:main: unknown transform"), bad.stderr)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
    }
}
