import Foundation
import GRDB
import SiteSyncCore

/// What `sitesync status` shows: who this replica is and what waits to sync.
public struct ReplicaStatus: Codable, Sendable, Equatable {
    /// The site recorded, or `*`.
    public var site: String
    /// The replica id.
    public var replica: String
    /// The user recorded on changes.
    public var user: String
    /// The server URL.
    public var server: String
    /// Whether the server has registered this replica with its own credential.
    public var enrolled: Bool
    /// Records changed here and not yet pushed.
    public var pendingChanges: Int
    /// Of those, the records changed with plain SQL that wait for a person's reason for change
    /// before they are pushed (``Replica/unexplainedChanges()``).
    public var awaitingReason: Int
    /// Open conflicts of this replica's sites, as last pulled.
    public var openConflicts: Int
    /// When the last complete sync ended (ISO 8601), if ever.
    public var lastSync: String?
    /// The server's clock minus this laptop's at the last reply, in milliseconds.
    public var clockOffsetMilliseconds: Int64?

    enum CodingKeys: String, CodingKey {
        case site, replica, user, server, enrolled
        case pendingChanges = "pending_changes"
        case awaitingReason = "awaiting_reason"
        case openConflicts = "open_conflicts"
        case lastSync = "last_sync"
        case clockOffsetMilliseconds = "clock_offset_ms"
    }
}

extension Replica {
    /// The replica's status.
    public func status() throws -> ReplicaStatus {
        let identity = try requireIdentity()
        return try writer.read { db in
            let meta = try Row.fetchOne(db, sql: "SELECT last_sync, clock_offset_ms FROM _sitesync_meta")
            return ReplicaStatus(
                site: identity.site,
                replica: identity.replicaID,
                user: identity.user,
                server: identity.serverURL.absoluteString,
                enrolled: identity.isEnrolled,
                pendingChanges: try Replica.pendingCount(db),
                awaitingReason: try Replica.unexplainedCount(db),
                openConflicts: try Int.fetchOne(db, sql: "SELECT count(*) FROM conflicts WHERE status = ?", arguments: [ConflictStatus.open.rawValue]) ?? 0,
                lastSync: meta?["last_sync"],
                clockOffsetMilliseconds: meta?["clock_offset_ms"]
            )
        }
    }
}

extension ReplicaSync {
    /// What a completed sync still has to do, read in the transaction that records it.
    package struct SyncCompletion: Sendable {
        /// The changes still waiting for a reason (``Replica/unexplainedChanges()``).
        package var awaitingReason: Int
        /// Whether people signed in on this laptop, whose state the sync then asks the server for.
        package var hasPeople: Bool
    }

    /// Records that a sync round completed now; returns what it still has to do, read in the same transaction.
    package func recordSyncCompleted() async throws -> SyncCompletion {
        try await writer.write(recordSyncCompleted)
    }

    /// Records that a sync completed now, in `db`'s transaction; returns what it still has to do.
    func recordSyncCompleted(_ db: Database) throws -> SyncCompletion {
        try db.execute(sql: "UPDATE _sitesync_meta SET last_sync = ?", arguments: [state.clock.now])
        return SyncCompletion(
            awaitingReason: try Replica.unexplainedCount(db),
            hasPeople: try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM _sitesync_people)") ?? false)
    }

    /// A pull of at most `limit` records from the cursor of the last pulled batch, with what this
    /// laptop tells the server about itself (``ReplicaReport``: its changes not yet pushed, `build`,
    /// its wall clock now and its user), and, with `acked`, the greatest sequence number the server
    /// acknowledged, by which it tells this file from a copy: all read in one transaction.
    package func pullRequest(limit: Int, wait: Int? = nil, acked: Bool, build: String) async throws -> PullRequest {
        let identity = identity
        let (cursor, known, pending) = try await writer.read { db in
            let acked = try Int64.fetchOne(db, sql: "SELECT acked FROM _sitesync_meta").map(HLC.init(rawValue:))
            return (try Self.cursor(db), acked, try Replica.pendingCount(db))
        }
        let report = identity.map { ReplicaReport(pending: pending, build: build, clock: state.clock.wallMilliseconds, user: $0.user) }
        return PullRequest(cursor: cursor, limit: limit, replica: identity?.replicaID, acked: acked ? known : nil, wait: wait, report: report)
    }
}
