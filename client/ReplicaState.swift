import SiteSyncCore
import Synchronization

/// What a replica keeps in memory beside its file: the identity, the wall clock it reads, and the
/// clock it merges a server's timestamps with.
///
/// The clock of record is the file's `_sitesync_clock` row, which the change-tracking triggers
/// advance in pure SQL on every tracked write, whoever makes it (``Replica/installTracking(_:table:)``).
final class ReplicaState: Sendable {
    let clock: HybridLogicalClock
    /// How far ahead of this laptop's wall clock a server's reply may be before it is refused.
    let maximumClockSkewMilliseconds: Int64
    /// Whether the wall clock is one the caller gave (a test's or a simulation's) rather than the
    /// system's, which the triggers read themselves: the library's writes then hand it to them.
    let hasOwnWallClock: Bool
    /// The turns of this replica's syncs.
    let syncLock: SyncLock
    private let identity = Mutex<ReplicaIdentity?>(nil)
    /// The replica's database file; empty for one in memory.
    let path: String

    /// - Parameter path: the replica's database file; empty for one in memory.
    init(wallClock: (@Sendable () -> Int64)?, maximumClockSkew: Duration, path: String) {
        self.path = path
        self.syncLock = SyncLock(databasePath: path)
        self.clock = HybridLogicalClock(wallClock: wallClock ?? HybridLogicalClock.systemMilliseconds)
        self.hasOwnWallClock = wallClock != nil
        self.maximumClockSkewMilliseconds = maximumClockSkew.wholeMilliseconds
    }

    /// Refuses a timestamp from a server reply that is further ahead of the wall clock than the bound.
    func checkServerClock(_ hlc: HLC) throws {
        try refuse(hlc, aheadBy: maximumClockSkewMilliseconds)
    }

    /// Refuses a stamp of pulled data beyond any the server could have accepted: it accepts stamps
    /// up to the bound ahead of its clock, and a server clock more than the bound ahead of this
    /// laptop's is refused, so a genuine stamp is at most twice the bound ahead of the wall clock.
    func checkPulledStamp(_ hlc: HLC) throws {
        try refuse(hlc, aheadBy: 2 * maximumClockSkewMilliseconds)
    }

    private func refuse(_ hlc: HLC, aheadBy limit: Int64) throws {
        let ahead = hlc.milliseconds - clock.wallMilliseconds
        if ahead > limit { throw SyncError.clockAhead(aheadBy: ahead, limit: limit) }
    }

    var current: ReplicaIdentity? {
        get { identity.withLock { $0 } }
        set { identity.withLock { $0 = newValue } }
    }
}
