import Synchronization
import Testing

@testable import SiteSyncCore

/// A wall clock tests can set and move backwards.
final class ManualClock: Sendable {
    private let now: Mutex<Int64>
    init(_ start: Int64) { now = Mutex(start) }
    func set(_ value: Int64) { now.withLock { $0 = value } }
    var read: @Sendable () -> Int64 { { self.now.withLock { $0 } } }
}

@Suite("Hybrid logical clock")
struct HLCTests {
    @Test("Packs milliseconds and counter and orders by both")
    func packing() {
        let stamp = HLC(milliseconds: 1_764_000_000_000, counter: 7)
        #expect(stamp.milliseconds == 1_764_000_000_000)
        #expect(stamp.counter == 7)
        #expect(HLC(milliseconds: 10, counter: 9) < HLC(milliseconds: 11, counter: 0))
        #expect(HLC(milliseconds: 10, counter: 1) < HLC(milliseconds: 10, counter: 2))
    }

    @Test("A tick follows the wall clock and counts within one millisecond")
    func tickFollowsWallClock() {
        let wall = ManualClock(1000)
        let clock = HybridLogicalClock(wallClock: wall.read)
        let first = clock.tick()
        let second = clock.tick()
        #expect(first == HLC(milliseconds: 1000, counter: 0))
        #expect(second == HLC(milliseconds: 1000, counter: 1))
        wall.set(2000)
        #expect(clock.tick() == HLC(milliseconds: 2000, counter: 0))
    }

    @Test("Ticks stay monotonic when the wall clock steps back")
    func monotonicWhenWallClockStepsBack() {
        let wall = ManualClock(5000)
        let clock = HybridLogicalClock(wallClock: wall.read)
        let before = clock.tick()
        wall.set(1000)
        let after = clock.tick()
        #expect(after > before)
        #expect(after.milliseconds == 5000)
    }

    @Test("Receiving a timestamp moves the next tick past it")
    func receiveRule() {
        let wall = ManualClock(1000)
        let clock = HybridLogicalClock(wallClock: wall.read)
        let remote = HLC(milliseconds: 9000, counter: 4)
        clock.receive(remote)
        let next = clock.tick()
        #expect(next > remote)
        #expect(next == HLC(milliseconds: 9000, counter: 5))
        clock.receive(HLC(milliseconds: 10, counter: 0))
        #expect(clock.tick() > next, "an older timestamp never moves the clock back")
    }

    @Test("A clock restored from its persisted value stays ahead of what it issued")
    func restoredClock() {
        let wall = ManualClock(1000)
        let issued = HybridLogicalClock(wallClock: wall.read)
        let last = (0..<10).map { _ in issued.tick() }.last!
        let restored = HybridLogicalClock(start: last, wallClock: wall.read)
        #expect(restored.tick() > last)
    }

    @Test("Versions order by HLC, then replica, so every node picks the same winner")
    func versionOrder() {
        let early = Version(hlc: HLC(milliseconds: 1), replica: "zz")
        let late = Version(hlc: HLC(milliseconds: 2), replica: "aa")
        #expect(early < late)
        let tieA = Version(hlc: HLC(milliseconds: 5), replica: "a")
        let tieB = Version(hlc: HLC(milliseconds: 5), replica: "b")
        #expect(tieA < tieB)
        #expect([tieB, tieA, late, early].max() == tieB)
    }
}
