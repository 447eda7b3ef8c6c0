import XCTest
import SprofRecording
@testable import SprofCounting

final class EventListTests: XCTestCase {
    func testDefaultSetIsPerfStatsEightEventsEachInItsOwnGroup() {
        let groups = CounterEvents.defaultGroups
        XCTAssertEqual(groups.flatMap(\.events).map(\.name),
                       ["task-clock", "context-switches", "cpu-migrations", "page-faults", "cycles", "instructions", "branches", "branch-misses"])
        XCTAssertTrue(groups.allSatisfy { $0.events.count == 1 && !$0.isExplicit })
    }

    func testListWithModifiersRawAndGroups() throws {
        let groups = try CounterEvents.parse("instructions:u, r00c0,{cycles,instructions}:u,page-faults")
        XCTAssertEqual(groups.count, 4)
        XCTAssertEqual(groups[0].events[0].description, "instructions:u")
        XCTAssertTrue(groups[0].events[0].excludeKernel)
        XCTAssertEqual(groups[1].events[0].config, 0xc0)
        XCTAssertTrue(groups[2].isExplicit)
        XCTAssertEqual(groups[2].events.map(\.description), ["cycles:u", "instructions:u"])
        XCTAssertTrue(groups[2].events.allSatisfy { $0.excludeKernel && !$0.excludeUser })
        XCTAssertEqual(groups[3].events[0].name, "page-faults")
    }

    func testCommasInsidePMUSlashesBelongToTheEvent() throws {
        // A fake sysfs tree so that the test does not depend on this machine's PMUs.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-pmu-\(getpid())")
        let format = root.appendingPathComponent("cpu/format")
        try FileManager.default.createDirectory(at: format, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try "4\n".write(to: root.appendingPathComponent("cpu/type"), atomically: true, encoding: .utf8)
        try "config:0-7\n".write(to: format.appendingPathComponent("event"), atomically: true, encoding: .utf8)
        try "config:8-15\n".write(to: format.appendingPathComponent("umask"), atomically: true, encoding: .utf8)
        let saved = PMUEvents.sysfsRoot
        PMUEvents.sysfsRoot = root.path
        defer { PMUEvents.sysfsRoot = saved }

        let groups = try CounterEvents.parse("cpu/event=0xc0,umask=0x1/u,{cpu/event=0x3c,umask=0x0/,instructions}")
        XCTAssertEqual(groups.count, 2)
        XCTAssertEqual(groups[0].events[0].type, 4)
        XCTAssertEqual(groups[0].events[0].config, 0x1c0)
        XCTAssertTrue(groups[0].events[0].excludeKernel)
        XCTAssertEqual(groups[1].events.count, 2)
        XCTAssertEqual(groups[1].events[0].config, 0x3c)
    }

    func testBadListsFailWithOneUsefulLine() {
        func message(_ text: String) -> String {
            do { _ = try CounterEvents.parse(text); return "" } catch { return error.description }
        }
        XCTAssertTrue(message("cycles,bogus").contains("unknown event 'bogus'"))
        XCTAssertTrue(message("cycles,bogus").contains("instructions"), "lists valid events")
        XCTAssertTrue(message("{cycles,instructions").contains("unclosed '{'"))
        XCTAssertTrue(message("cycles}").contains("without '{'"))
        XCTAssertTrue(message("cycles,,instructions").contains("empty event name"))
        XCTAssertTrue(message("{cycles,{instructions}}").contains("nested"))
        XCTAssertTrue(message("cycles:z").contains("unknown modifier"))
        for text in ["cycles,bogus", "{cycles", "cycles,,x"] { XCTAssertFalse(message(text).contains("\n")) }
    }

    func testParanoidTwoWithoutPrivilegeAddsUserOnlyWithANotice() {
        let groups = [CounterGroup(events: [EventCatalog.named("cycles")!]), CounterGroup(events: [try! EventCatalog.parse("instructions:k")])]
        var restricted = KernelSettings.current()
        restricted.paranoid = 2
        restricted.privileged = false
        let (adjusted, notice) = CounterEvents.restrictedToUserSpace(groups, settings: restricted)
        XCTAssertEqual(adjusted[0].events[0].description, "cycles:u")
        XCTAssertTrue(adjusted[0].events[0].excludeKernel)
        XCTAssertEqual(adjusted[1].events[0].description, "instructions:k", "explicit modifiers are kept")
        XCTAssertNotNil(notice)
        XCTAssertTrue(notice!.contains("perf_event_paranoid is 2"))

        var root = restricted
        root.privileged = true
        XCTAssertNil(CounterEvents.restrictedToUserSpace(groups, settings: root).notice)
    }
}
