import Foundation
import Synchronization

/// A thread-safe hybrid logical clock: every ``tick()`` is greater than every timestamp it issued or received.
///
/// The clock itself keeps no storage; owners persist ``current`` (the client keeps it in its database
/// and restores it with ``receive(_:)`` on open) so it stays monotonic across restarts, even when the
/// wall clock steps back.
///
/// ```swift
/// let clock = HybridLogicalClock()
/// let a = clock.tick()
/// clock.receive(remoteStamp)   // advance past what a peer sent
/// let b = clock.tick()          // b > a and b > remoteStamp
/// ```
public final class HybridLogicalClock: Sendable {
    private let last: Mutex<HLC>
    private let wallClock: @Sendable () -> Int64

    /// Creates a clock that starts at `start` and reads wall time from `wallClock` (milliseconds since 1970).
    public init(start: HLC = .zero, wallClock: @escaping @Sendable () -> Int64 = HybridLogicalClock.systemMilliseconds) {
        self.last = Mutex(start)
        self.wallClock = wallClock
    }

    /// The system wall clock in milliseconds since 1970.
    @Sendable public static func systemMilliseconds() -> Int64 {
        // Read on every tracked write: clock_gettime directly, without a Date.
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// The wall clock this clock reads, in milliseconds since 1970.
    public var wallMilliseconds: Int64 { wallClock() }

    /// The greatest timestamp issued or received so far.
    public var current: HLC { last.withLock { $0 } }

    /// Issues a new timestamp for a local event (the HLC send rule).
    public func tick() -> HLC {
        let wall = HLC(milliseconds: wallClock())
        return last.withLock { last in
            // Saturating: a clock at the greatest HLC stays there rather than trapping. Replicas refuse
            // any reply that would carry them far ahead (SyncError.clockAhead), so only a corrupt
            // file could get here, and `sitesync clock reset` brings it back.
            let (successor, overflow) = last.rawValue.addingReportingOverflow(1)
            let next = HLC(rawValue: max(overflow ? Int64.max : successor, wall.rawValue))
            last = next
            return next
        }
    }

    /// Sets the clock back to `value`, for recovery only: the owner must have moved every timestamp
    /// it issued above `value` (see the replica's `resetClock()`), or the clock would repeat them.
    public func reset(to value: HLC) {
        last.withLock { $0 = value }
    }

    /// Advances the clock past a timestamp received from elsewhere (the HLC receive rule).
    ///
    /// The next ``tick()`` is then greater than `remote`.
    public func receive(_ remote: HLC) {
        last.withLock { last in
            if remote > last { last = remote }
        }
    }
}
