import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

/// What ``Replica/resetClock()`` did.
public struct ClockReset: Codable, Sendable, Equatable {
    /// Whether the clock was ahead and has been set back.
    public var wasAhead: Bool
    /// The clock after the reset (ISO 8601).
    public var clock: String
    /// Pending records whose changes were stamped again at the corrected time.
    public var restamped: Int
}

extension Replica {
    /// Brings back a replica whose clock ran ahead of the wall clock by more than the skew bound:
    /// the clock is set back, and every pending change stamped beyond the bound is stamped again, in
    /// order, at the corrected time, so the server accepts it. Nothing pending is lost; the changes
    /// keep their values and bases.
    ///
    /// Only this replica's own unpushed stamps move: every other stamp is a version the server holds.
    /// When the server itself acknowledged changes stamped beyond the bound, setting the clock back
    /// would reuse its sequence numbers, so the replica is refused and must rejoin instead
    /// (`sitesync init --rejoin`).
    public func resetClock() throws -> ClockReset {
        let identity = try requireIdentity()
        let limit = HLC(milliseconds: state.clock.wallMilliseconds + state.maximumClockSkewMilliseconds, counter: 0xFFFF)
        return try writer.write { db in
            let stored = try ClockSQL.read(db)
            state.clock.receive(stored)
            let acked = HLC(rawValue: try Int64.fetchOne(db, sql: "SELECT acked FROM _sitesync_meta") ?? 0)
            if acked > limit {
                throw ReplicaError.invalidArgument(
                    "The server acknowledged changes this replica stamped \(acked.iso8601), beyond the wall clock; its sequence numbers cannot be set back. Run `sitesync init --rejoin`, which enrols this file as a new replica and pushes its pending changes under it."
                )
            }
            let future = try Row.fetchAll(
                db,
                sql: """
                    SELECT \(ShadowRow.columns)
                    FROM _sitesync_outbox AS o
                    JOIN _sitesync_shadows AS s ON s.tbl = o.tbl AND s.id = o.id
                    JOIN _sitesync_actors AS a ON a.actor = s.actor
                    WHERE o.seq > ? ORDER BY o.seq
                    """,
                arguments: [limit.rawValue]
            ).map(ShadowRow.init)
            guard stored > limit || state.clock.current > limit || !future.isEmpty else {
                return ClockReset(wasAhead: false, clock: state.clock.current.iso8601, restamped: 0)
            }
            // The clock restarts above everything this replica must stay ahead of that is not in the future.
            let floor =
                try [
                    Int64.fetchOne(db, sql: "SELECT max(seq) FROM _sitesync_outbox WHERE seq <= ?", arguments: [limit.rawValue]),
                    Int64.fetchOne(db, sql: "SELECT max(hlc) FROM _sitesync_shadows WHERE hlc <= ?", arguments: [limit.rawValue]),
                    acked.rawValue,
                ].compactMap { $0 }.max() ?? 0
            state.clock.reset(to: HLC(rawValue: floor))
            var actors = Actors()
            for shadow in future {
                let seq = state.clock.tick()
                func corrected(_ stamp: Stamp) -> Stamp {
                    stamp.version.hlc > limit && stamp.version.replica == identity.replicaID
                        ? Stamp(hlc: seq, replica: identity.replicaID, user: stamp.user) : stamp
                }
                var stamps = shadow.stamps
                stamps.base = corrected(stamps.base)
                stamps.overrides = stamps.overrides.mapValues(corrected)
                var held = try shadow.held()
                for (field, kept) in held { held[field]!.stamp = corrected(kept.stamp) }
                let (table, id) = (shadow.table, shadow.id)
                try db.execute(sql: "UPDATE _sitesync_outbox SET seq = ? WHERE seq = ?", arguments: [seq.rawValue, shadow.pending?.rawValue])
                try db.execute(
                    sql: "UPDATE _sitesync_shadows SET hlc = ?, actor = ?, fields = ?, pending = ?, held = ? WHERE tbl = ? AND id = ?",
                    arguments: [
                        stamps.base.version.hlc.rawValue, actors.actor(db, replica: stamps.base.version.replica, user: stamps.base.user),
                        stamps.overridesJSON, seq.rawValue, held.isEmpty ? nil : ShadowJSON.encode(held), table, id,
                    ]
                )
            }
            try db.execute(sql: "UPDATE _sitesync_clock SET hlc = ?", arguments: [state.clock.current.rawValue])
            return ClockReset(wasAhead: true, clock: state.clock.current.iso8601, restamped: future.count)
        }
    }
}
