import PostgresNIO
import SiteSyncCore
import SiteSyncRules

extension PostgresSyncStore {
    public func conflicts(matching query: ConflictQuery) async throws -> [Conflict] {
        let (status, site, table, limit) = (query.status?.rawValue, query.site, query.table, query.limit)
        let (afterDetected, afterID) = (query.after?.detectedAt, query.after?.id)
        return try await transaction(readOnly: true) { connection in
            // A filter left out binds NULL, and its condition holds.
            let select: PostgresQuery = """
                SELECT \(unescaped: Self.conflictColumns) FROM conflicts
                WHERE (\(status)::text IS NULL OR status = \(status))
                  AND (\(site)::text IS NULL OR site_id = \(site))
                  AND (\(table)::text IS NULL OR table_name = \(table))
                  AND (\(afterDetected)::text IS NULL OR (detected_at, id) > (\(afterDetected), \(afterID)))
                ORDER BY detected_at, id LIMIT \(limit + 1)
                """
            var conflicts: [Conflict] = []
            for try await row in try await connection.query(select) { conflicts.append(try self.conflict(row)) }
            return conflicts
        }
    }

    public func conflict(id: String) async throws -> ConflictDetail? {
        try await transaction(readOnly: true) { connection in
            var found: Conflict?
            let rows = try await connection.query("SELECT \(unescaped: Self.conflictColumns) FROM conflicts WHERE id = \(id)")
            for try await row in rows { found = try self.conflict(row) }
            guard let conflict = found else { return nil }
            var current: FieldValue?
            if let table = try? self.schema.table(conflict.table), let column = table.column(conflict.field) {
                let values = try await connection.query(
                    "SELECT \(unescaped: Self.quoted(column.name)) FROM \(unescaped: Self.quoted(table.name)) WHERE id = \(conflict.recordID)"
                )
                for try await row in values {
                    var cells = RowCells(row)
                    current = try cells.value(column)
                }
            }
            return ConflictDetail(conflict: conflict, current: current)
        }
    }

    public func history(table: String, id: String) async throws -> (site: String, history: RecordHistory)? {
        try await transaction(readOnly: true) { connection in
            var site: String?
            for try await found in try await connection.query("SELECT site_id FROM records WHERE tbl = \(table) AND id = \(id)").decode(String.self) {
                site = found
            }
            guard let site else { return nil }
            var fieldsByConflict: [String: String] = [:]
            let conflicts = try await connection.query("SELECT id, field FROM conflicts WHERE table_name = \(table) AND record_id = \(id)")
            for try await (conflict, field) in conflicts.decode((String, String).self) { fieldsByConflict[conflict] = field }
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.auditColumns) FROM audit
                WHERE (tbl = \(table) AND record_id = \(id))
                   OR (tbl = 'conflicts' AND record_id IN (SELECT c.id FROM conflicts c WHERE c.table_name = \(table) AND c.record_id = \(id)))
                ORDER BY id
                """
            )
            var audit: [AuditRow] = []
            for try await row in rows { audit.append(try self.auditRow(row)) }
            return (
                site,
                RecordHistory(source: "server", table: table, recordID: id, entries: AuditRow.history(of: table, audit, fieldsByConflict: fieldsByConflict))
            )
        }
    }

    /// Every page is read in the one snapshot of a read-only transaction held for the call: ids
    /// come from a sequence, not in commit order, so no bound on them would do.
    public func withAuditTrail<Result: Sendable>(
        _ filter: AuditFilter, _ body: @Sendable (AuditTrail) async throws -> Result
    ) async throws -> Result {
        try await transaction(readOnly: true) { connection in
            let (site, since, table, record) = (filter.site, filter.since, filter.table, filter.record)
            // A filter left out binds NULL, and its condition holds.
            return try await body(
                AuditTrail { after in
                    let rows = try await connection.query(
                        """
                        SELECT \(unescaped: Self.auditColumns), id FROM audit
                        WHERE (\(site)::text IS NULL OR site_id = \(site))
                          AND (\(since)::text IS NULL OR received_at >= \(since))
                          AND (\(table)::text IS NULL OR tbl = \(table))
                          AND (\(record)::text IS NULL OR record_id = \(record))
                          AND id > \(after)
                        ORDER BY id LIMIT \(AuditTrail.pageRows)
                        """
                    )
                    guard !rows.rows.isEmpty else { return nil }
                    var page = AuditTrail.Page(changes: [], last: after)
                    for row in rows.rows {
                        page.changes += try self.auditRow(row).fieldChanges
                        page.last = try PostgresRandomAccessRow(row)["id"].decode(Int64.self)
                    }
                    return page
                })
        }
    }

    private static let auditColumns =
        #"received_at, site_id, tbl, record_id, replica, "user", seq, fields, new_values, old_values, hlcs, bases, outcomes, reasons, conflicts, authors"#

    private func auditRow(_ row: PostgresRow) throws -> AuditRow {
        let (received, site, table, record, replica, user, seq, fields, new, old, hlcs, bases, outcomes, reasons, conflicts, authors) = try row.decode(
            (String, String, String, String, String, String, Int64, String, String, String?, String?, String?, String?, String?, String?, String?).self
        )
        return try AuditRow(
            receivedAt: received, site: site, table: table, recordID: record, replica: replica, user: user, seq: HLC(rawValue: seq),
            fields: fields, newValues: new, oldValues: old, hlcs: hlcs, bases: bases, outcomes: outcomes, reasons: reasons, conflicts: conflicts,
            authors: authors, schema: schema
        )
    }

    private static var conflictColumns: String { (["id"] + TableSchema.conflicts.columnNames).map(quoted).joined(separator: ", ") }

    private func conflict(_ row: PostgresRow) throws -> Conflict {
        var cells = RowCells(row)
        let id = try cells.requiredText()
        var fields: [String: FieldValue] = [:]
        for column in TableSchema.conflicts.columns { fields[column.name] = try cells.value(column) }
        return try Conflict(id: id, fields: fields).normalized(in: schema)
    }
}
