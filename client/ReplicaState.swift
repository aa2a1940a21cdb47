import SiteSyncCore
import Synchronization

/// State the replica's SQL functions read: the identity, the clock, and whether local writes are tracked.
///
/// The change-tracking triggers call `sitesync_tick()`, `sitesync_replica()`, `sitesync_user()` and
/// `sitesync_tracking()`; those functions live on every connection the library opens and read this.
final class ReplicaState: Sendable {
    let clock: HybridLogicalClock
    /// How far ahead of this laptop's wall clock a server's reply may be before it is refused.
    let maximumClockSkewMilliseconds: Int64
    private let identity = Mutex<ReplicaIdentity?>(nil)
    // Off only while the sync engine applies pulled changes, inside the writer's transaction.
    private let tracking = Mutex(true)

    init(wallClock: @escaping @Sendable () -> Int64, maximumClockSkew: Duration) {
        self.clock = HybridLogicalClock(wallClock: wallClock)
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

    var isTracking: Bool { tracking.withLock { $0 } }

    /// Whether the replica has an identity, without copying it.
    var isInitialized: Bool { identity.withLock { $0 != nil } }

    /// Runs `body` with tracking off; the caller holds the writer, so no local write can interleave.
    func untracked<T>(_ body: () throws -> T) rethrows -> T {
        tracking.withLock { $0 = false }
        defer { tracking.withLock { $0 = true } }
        return try body()
    }
}
