import Foundation
import GRDB
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLite

extension SQLiteSyncStore {
    public func conflicts(matching query: ConflictQuery) async throws -> [Conflict] {
        try await reading { db in
            var clauses: [String] = []
            var arguments: [(any DatabaseValueConvertible)?] = []
            if let status = query.status {
                clauses.append("status = ?")
                arguments.append(status.rawValue)
            }
            if let site = query.site {
                clauses.append("site_id = ?")
                arguments.append(site)
            }
            if let table = query.table {
                clauses.append("table_name = ?")
                arguments.append(table)
            }
            if let after = query.after {
                clauses.append("(detected_at, id) > (?, ?)")
                arguments += [after.detectedAt, after.id]
            }
            let condition = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments.append(query.limit + 1)
            return try Row.fetchAll(
                db, sql: "SELECT * FROM conflicts \(condition) ORDER BY detected_at, id LIMIT ?", arguments: StatementArguments(arguments)
            ).map(conflict)
        }
    }

    public func conflict(id: String) async throws -> ConflictDetail? {
        try await reading { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM conflicts WHERE id = ?", arguments: [id]) else { return nil }
            let conflict = try self.conflict(row)
            var current: FieldValue?
            if let table = try? schema.table(conflict.table), table.column(conflict.field) != nil {
                current = try Row.fetchOne(
                    db, sql: "SELECT \(conflict.field.quotedDatabaseIdentifier) FROM \(table.name.quotedDatabaseIdentifier) WHERE id = ?",
                    arguments: [conflict.recordID]
                )?.fieldValue(atIndex: 0)
            }
            return ConflictDetail(conflict: conflict, current: current)
        }
    }

    public func history(table: String, id: String) async throws -> (site: String, history: RecordHistory)? {
        try await reading { db in
            guard let site = try String.fetchOne(db, sql: "SELECT site_id FROM records WHERE tbl = ? AND id = ?", arguments: [table, id]) else {
                return nil
            }
            let fieldsByConflict = try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(
                    db, sql: "SELECT id, field FROM conflicts WHERE table_name = ? AND record_id = ?", arguments: [table, id]
                ).map { ($0["id"] as String, $0["field"] as String) }
            )
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM audit
                    WHERE (tbl = ? AND record_id = ?)
                       OR (tbl = 'conflicts' AND record_id IN (SELECT id FROM conflicts WHERE table_name = ? AND record_id = ?))
                    ORDER BY id
                    """,
                arguments: [table, id, table, id]
            )
            let audit = try rows.map { try AuditRow($0, schema: schema) }
            let entries = AuditRow.history(of: table, audit, fieldsByConflict: fieldsByConflict)
            return (site, RecordHistory(source: "server", table: table, recordID: id, entries: entries))
        }
    }

    /// The trail as it stood at the start is every row up to the greatest id then: rows are only
    /// ever appended, and SQLite's one writer gives them increasing ids in commit order. Each page
    /// is its own read, so a long export never holds a read transaction open.
    public func withAuditTrail<Result: Sendable>(
        _ filter: AuditFilter, _ body: @Sendable (AuditTrail) async throws -> Result
    ) async throws -> Result {
        let last = try await reading { db in try Int64.fetchOne(db, sql: "SELECT max(id) FROM audit") ?? 0 }
        // Only the conditions the filter sets, so that SQLite picks the index they allow.
        let conditions = [("site_id = ?", filter.site), ("received_at >= ?", filter.since), ("tbl = ?", filter.table), ("record_id = ?", filter.record)]
            .compactMap { clause, value in value.map { (clause, $0) } }
        let sql = (["id > ?", "id <= ?"] + conditions.map(\.0)).joined(separator: " AND ")
        let schema = schema
        return try await body(
            AuditTrail { after in
                guard after < last else { return nil }
                return try await self.reading { db in
                    let rows = try Row.fetchCursor(
                        db, sql: "SELECT * FROM audit WHERE \(sql) ORDER BY id LIMIT ?",
                        arguments: StatementArguments([after, last] + conditions.map(\.1) + [AuditTrail.pageRows])
                    )
                    var page = AuditTrail.Page(changes: [], last: last)
                    var count = 0
                    while let row = try rows.next() {
                        page.changes += try AuditRow(row, schema: schema).fieldChanges
                        page.last = row["id"]
                        count += 1
                    }
                    // A short page is the last one: the next read would find nothing.
                    if count < AuditTrail.pageRows { page.last = last }
                    return count == 0 ? nil : page
                }
            })
    }

    private func conflict(_ row: Row) throws -> Conflict {
        var fields: [String: FieldValue] = [:]
        for name in TableSchema.conflicts.columnNames { fields[name] = FieldValue.fromDatabaseValue(row[name]) ?? .null }
        return try Conflict(id: row["id"], fields: fields).normalized(in: schema)
    }
}

extension AuditRow {
    /// Decodes a row of the `audit` table.
    init(_ row: Row, schema: Schema) throws {
        try self.init(
            receivedAt: row["received_at"], site: row["site_id"], table: row["tbl"], recordID: row["record_id"], replica: row["replica"],
            user: row["user"], seq: HLC(rawValue: row["seq"]), fields: row["fields"], newValues: row["new_values"], oldValues: row["old_values"],
            hlcs: row["hlcs"], bases: row["bases"], outcomes: row["outcomes"], reasons: row["reasons"], conflicts: row["conflicts"],
            authors: row["authors"], schema: schema
        )
    }
}
