import Foundation
import GRDB
import SiteSyncCore

/// A change written with plain SQL over a synced value, held back from the server until a person
/// gives its reason for change (``Replica/explain(_:id:reason:)``).
public struct UnexplainedChange: Codable, Sendable, Equatable {
    /// The record's table.
    public var table: String
    /// The record's id.
    public var id: String
    /// The fields changed without a reason, in table order.
    public var fields: [String]
    /// When the latest of those fields was written here (ISO 8601).
    public var changedAt: String

    enum CodingKeys: String, CodingKey {
        case table, id, fields
        case changedAt = "changed_at"
    }
}

extension Replica {
    /// Changes written with plain SQL (the `sqlite3` shell, a site's script) over synced values,
    /// oldest first. The triggers track them like any write but cannot ask why a value changed, so
    /// pushes leave them in the outbox until a person gives the reason (``explain(_:id:reason:)``);
    /// the server would refuse them without one.
    public func unexplainedChanges() throws -> [UnexplainedChange] {
        try writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT \(ShadowRow.columns) FROM _sitesync_outbox AS o
                    JOIN _sitesync_shadows AS s ON s.tbl = o.tbl AND s.id = o.id
                    JOIN _sitesync_actors AS a ON a.actor = s.actor
                    WHERE \(Self.isUnexplained) ORDER BY o.seq
                    """,
                arguments: [ReasonForChange.writtenOutsideLibrary]
            ).map { row in
                let shadow = try ShadowRow(row)
                let table = tableCodes.name(shadow.table) ?? "table \(shadow.table)"
                let reasons = try shadow.reasons() ?? [:]
                let order = (try? schema.table(table).columnNames) ?? reasons.keys.sorted()
                let fields = order.filter { reasons[$0] == ReasonForChange.writtenOutsideLibrary }
                let stamps = shadow.stamps
                let latest = fields.map { stamps[$0].version.hlc }.max() ?? stamps.base.version.hlc
                return UnexplainedChange(table: table, id: shadow.id, fields: fields, changedAt: latest.iso8601)
            }
        }
    }

    /// Gives the reason for the changes of `id` of `table` written with plain SQL, and queues them
    /// for the next push. Returns the fields it explained, in table order.
    ///
    /// The record moves to the outbox's end: the server has acknowledged pushes past its place
    /// meanwhile, and takes only sequence numbers above those. Its fields keep the stamps of when
    /// they were written.
    ///
    /// - Throws: ``ReplicaError/invalidArgument(_:)`` when the reason is not one, or the record has
    ///   no change waiting for a reason; nothing is written then.
    @discardableResult
    public func explain(_ table: String, id: String, reason: String) throws -> [String] {
        _ = try requireIdentity()
        let reason = try Self.checkedReason(reason)
        let columns = try schema.table(table).columnNames
        return try trackedWrite { db in
            let code = try tableCodes.code(table)
            let stored = try String.fetchOne(
                db, sql: "SELECT reasons FROM _sitesync_shadows WHERE tbl = ? AND id = ? AND pending IS NOT NULL", arguments: [code, id]
            )
            let reasons = try ShadowJSON.decode([String: String].self, stored) ?? [:]
            let fields = columns.filter { reasons[$0] == ReasonForChange.writtenOutsideLibrary }
            guard !fields.isEmpty else {
                throw ReplicaError.invalidArgument("Record \(id) of \(table) has no change written outside SiteSync waiting for a reason.")
            }
            try recordReason(db, reason, table: table, id: id, fields: fields)
            return fields
        }
    }

    /// Number of records held back for a reason (``unexplainedChanges()``).
    public func unexplainedCount() throws -> Int {
        try writer.read(Replica.unexplainedCount)
    }

    static func unexplainedCount(_ db: Database) throws -> Int {
        try Int.fetchOne(
            db,
            sql: """
                SELECT count(*) FROM _sitesync_outbox AS o JOIN _sitesync_shadows AS s ON s.tbl = o.tbl AND s.id = o.id
                WHERE \(isUnexplained)
                """,
            arguments: [ReasonForChange.writtenOutsideLibrary]
        ) ?? 0
    }

    /// The SQL condition on a shadow row `s` that one of its pending reasons is the placeholder of
    /// plain SQL, given as the statement's argument.
    private static let isUnexplained = "s.reasons IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(s.reasons) AS r WHERE r.value = ?)"

    /// Moves the pending record `id` to the outbox's end, at a fresh sequence number past every
    /// one this replica issued or the server acknowledged.
    static func requeue(_ db: Database, code: Int64, id: String) throws {
        try db.execute(
            sql: """
                INSERT INTO _sitesync_outbox (seq, tbl, id) VALUES (\(ClockSQL.next), ?, ?);
                DELETE FROM _sitesync_outbox WHERE seq = (SELECT pending FROM _sitesync_shadows WHERE tbl = ? AND id = ?);
                UPDATE _sitesync_shadows SET pending = last_insert_rowid() WHERE tbl = ? AND id = ?;
                """,
            arguments: [code, id, code, id, code, id]
        )
    }
}
