import XCTest
@testable import SprofRecording
import SprofCore

/// The role table (issue 18): every event a session opens is one row with its role, and the
/// layout, the side-band records and the option checks follow the rows, not per-feature flags.
final class EventRoleTests: XCTestCase {
    private func settings(kernelAllowed: Bool) -> KernelSettings {
        KernelSettings(paranoid: kernelAllowed ? -1 : 2, privileged: kernelAllowed)
    }

    func testRowsFollowTheOptionsInOpeningOrder() {
        var options = SamplingOptions(event: .cpuClock)
        XCTAssertEqual(options.roleEvents.map(\.role), [.onCPU])
        XCTAssertEqual(SampleLayout.sampling(options).sampleType & SampleBits.identifier, 0, "one event per buffer needs no identifier")
        options.offCPU = true
        options.companions = [CompanionEvent(event: .cpuClock, role: .sampled), CompanionEvent(event: .contextSwitches, role: .entry(.product))]
        XCTAssertEqual(options.roleEvents.map(\.role), [.onCPU, .offCPU, .heapProbe(.sampled), .heapProbe(.entry(.product))], "each row carries its heap role")
        XCTAssertEqual(options.roleEvents[1].event.description, EventSpec.contextSwitches.description)
        XCTAssertNotEqual(SampleLayout.sampling(options).sampleType & SampleBits.identifier, 0, "events sharing a buffer are told apart")
        XCTAssertTrue(options.records(.offCPU))
        XCTAssertFalse(EventRole.heapProbe(.freed).opensSystemWide, "heap probes follow the preloaded command, not every process")
        XCTAssertTrue(EventRole.offCPU.opensSystemWide)
    }

    /// Heap probes are never inherited: the kernel copies a uprobe's path (config1, a pointer
    /// into sprof's memory) again in the forking task, and the fork failed with EFAULT.
    func testHeapProbesAreNotInherited() {
        var options = SamplingOptions(event: .cpuClock, callGraph: .dwarf(stackSize: 8192))
        options.companions = [CompanionEvent(event: EventSpec(name: "probe", type: 8, config: 0), role: .sampled)]
        let rows = options.roleEvents
        XCTAssertFalse(rows[1].role.inherits)
        XCTAssertTrue(rows[1].role.opensForEveryProcess)
        XCTAssertTrue(rows[0].role.inherits)
        XCTAssertEqual(AttrBuilder.attr(for: rows[1], options, enableOnExec: true, inherit: rows[1].role.inherits).inherit, 0)
        XCTAssertEqual(AttrBuilder.attr(for: rows[0], options, enableOnExec: true, inherit: rows[0].role.inherits).inherit, 1)
    }

    /// The heap probes read the allocator's arguments from user registers: the layout has them
    /// whatever the stack mode (`-g` recorded none, and every size read as 0), and only then.
    func testHeapProbesGetUserRegistersInEveryStackMode() {
        for callGraph: SamplingOptions.CallGraph in [.framePointer, .none, .dwarf(stackSize: 8192)] {
            var options = SamplingOptions(event: .cpuClock, callGraph: callGraph)
            XCTAssertEqual(SampleLayout.sampling(options).sampleType & SampleBits.regsUser != 0, callGraph != .framePointer && callGraph != .none)
            options.companions = [CompanionEvent(event: EventSpec(name: "probe", type: 8, config: 0), role: .sampled)]
            let layout = SampleLayout.sampling(options)
            XCTAssertNotEqual(layout.sampleType & SampleBits.regsUser, 0, "\(callGraph)")
            XCTAssertEqual(layout.regsUserMask, UserRegisters.mask)
            for row in options.roleEvents {
                let attr = AttrBuilder.attr(for: row, options, enableOnExec: true, inherit: false)
                XCTAssertEqual(attr.sample_regs_user, UserRegisters.mask, "\(row.role) \(callGraph)")
                XCTAssertEqual(attr.sample_type, layout.sampleType, "one layout per buffer")
            }
        }
    }

    /// Each row copies its own amount of user stack: the heap probes what
    /// `companionStackSize` says (their records come in bursts), the CPU events the stack mode's
    /// size (`--heap` once shrank it to 8 KiB for them too, and CPU stacks were cut), a probe that
    /// copies no stack 8 bytes, and nothing without DWARF stacks.
    func testEachRoleHasItsOwnStackCopy() {
        var noCopy = EventSpec(name: "entry", type: 8, config: 0)
        noCopy.copiesUserStack = false
        var options = SamplingOptions(event: .cpuClock, callGraph: .dwarf(stackSize: 32768))
        options.offCPU = true
        options.companions = [CompanionEvent(event: EventSpec(name: "probe", type: 8, config: 0), role: .sampled),
                              CompanionEvent(event: noCopy, role: .entry(.first))]
        options.companionStackSize = 8192
        XCTAssertEqual(options.roleEvents.map(\.stackSize), [32768, 32768, 8192, 8])
        for row in options.roleEvents {
            XCTAssertEqual(AttrBuilder.attr(for: row, options, enableOnExec: true, inherit: false).sample_stack_user, row.stackSize, "\(row.role)")
        }
        options.companionStackSize = nil
        XCTAssertEqual(options.roleEvents.map(\.stackSize), [32768, 32768, 32768, 8], "without a size of their own, the probes copy the mode's")
        options.callGraph = .framePointer
        XCTAssertEqual(options.roleEvents.map(\.stackSize), [0, 0, 0, 0])
        for row in options.roleEvents {
            XCTAssertEqual(AttrBuilder.attr(for: row, options, enableOnExec: true, inherit: false).sample_stack_user, 0, "\(row.role)")
        }
        XCTAssertEqual(SampleLayout.sampling(options).sampleType & SampleBits.stackUser, 0)
        // An entry probe that walks frame pointers needs the word at SP (its return address) in
        // frame-pointer mode too: every row of the buffer copies 8 bytes.
        options.companions[1].event.walksUserFramePointers = true
        XCTAssertEqual(options.roleEvents.map(\.stackSize), [8, 8, 8, 8])
        XCTAssertNotEqual(SampleLayout.sampling(options).sampleType & SampleBits.stackUser, 0)
        for row in options.roleEvents {
            XCTAssertEqual(AttrBuilder.attr(for: row, options, enableOnExec: true, inherit: false).sample_stack_user, 8, "\(row.role)")
        }
    }

    func testSideBandSwitchRecordsOnlyWithTheOffCPURole() {
        var options = SamplingOptions(event: .cpuClock)
        XCTAssertEqual(AttrBuilder.sampling(options, enableOnExec: true, inherit: true).context_switch, 0)
        options.offCPU = true
        XCTAssertEqual(AttrBuilder.sampling(options, enableOnExec: true, inherit: true).context_switch, 1)
        let row = options.roleEvents[1]
        let attr = AttrBuilder.attr(for: row, options, enableOnExec: true, inherit: true)
        XCTAssertEqual(attr.sample_period, 1, "every switch-out is sampled")
        XCTAssertEqual(attr.mmap, 0, "the sampled event alone delivers side-band records")
    }

    func testRolesAreCheckedBeforeOpening() throws {
        var options = SamplingOptions(event: .cpuClock)
        options.offCPU = true
        XCTAssertNoThrow(try options.checkRoles(settings: settings(kernelAllowed: true)))
        XCTAssertThrowsError(try options.checkRoles(settings: settings(kernelAllowed: false))) { error in
            XCTAssertEqual((error as? SyscallError)?.errno, EACCES)
        }
        options.event = .contextSwitches
        XCTAssertThrowsError(try options.checkRoles(settings: settings(kernelAllowed: true))) { error in
            XCTAssertEqual((error as? SyscallError)?.errno, EINVAL, "wall time needs a clock event")
        }
        options.offCPU = false
        XCTAssertNoThrow(try options.checkRoles(settings: settings(kernelAllowed: false)), "on-CPU sampling has no such condition")
    }
}
