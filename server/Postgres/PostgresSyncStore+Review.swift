import PostgresNIO
import SiteSyncCore
import SiteSyncRules

extension PostgresSyncStore {
    public func conflicts(_ filter: ConflictFilter, principal: Principal) async throws -> ConflictPage {
        let site = try ReadScope.site(filter.site, principal: principal)
        let limit = min(max(filter.limit, 1), 1000)
        // Oldest detection first; the page token is the last conflict's detection time and id.
        var position: (detected: String, id: String)?
        if let token = filter.after {
            let parts = token.split(separator: "~", maxSplits: 1)
            guard parts.count == 2 else {
                throw ServerError.validation("The page token \"\(TextRules.quotable(token, maxBytes: 80))\" is not one this server gave.")
            }
            position = (String(parts[0]), String(parts[1]))
        }
        let after = position
        return try await transaction(readOnly: true) { connection in
            var query = PostgresQuery(unsafeSQL: "SELECT \(Self.conflictColumns) FROM conflicts WHERE true")
            var binds = PostgresBindings()
            var sql = query.sql
            func condition(_ clause: String, _ value: String) {
                binds.append(value)
                sql += " AND \(clause.replacingOccurrences(of: "?", with: "$\(binds.count)"))"
            }
            if let status = filter.status { condition("status = ?", status.rawValue) }
            if let site { condition("site_id = ?", site) }
            if let table = filter.table { condition("table_name = ?", table) }
            if let after {
                binds.append(after.detected)
                binds.append(after.id)
                sql += " AND (detected_at, id) > ($\(binds.count - 1), $\(binds.count))"
            }
            sql += " ORDER BY detected_at, id LIMIT \(limit + 1)"
            query = PostgresQuery(unsafeSQL: sql, binds: binds)
            var conflicts: [Conflict] = []
            for try await row in try await connection.query(query) { conflicts.append(try self.conflict(row)) }
            let page = Array(conflicts.prefix(limit))
            return ConflictPage(conflicts: page, next: conflicts.count > limit ? page.last.map { "\($0.detectedAt)~\($0.id)" } : nil)
        }
    }

    public func conflict(id: String, principal: Principal) async throws -> ConflictDetail? {
        try ReadScope.requireReader(principal)
        return try await transaction(readOnly: true) { connection in
            var found: Conflict?
            let rows = try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT \(Self.conflictColumns) FROM conflicts WHERE id = $1", binds: Self.binds([id])))
            for try await row in rows { found = try self.conflict(row) }
            guard let conflict = found, principal.canAccess(site: conflict.site) else { return nil }
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

    public func history(table: String, id: String, principal: Principal) async throws -> RecordHistory? {
        try ReadScope.requireReader(principal)
        return try await transaction(readOnly: true) { connection in
            var site: String?
            for try await found in try await connection.query("SELECT site_id FROM records WHERE tbl = \(table) AND id = \(id)").decode(String.self) {
                site = found
            }
            guard let site, principal.canAccess(site: site) else { return nil }
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
            return RecordHistory(source: "server", table: table, recordID: id, entries: AuditRow.history(of: table, audit, fieldsByConflict: fieldsByConflict))
        }
    }

    public func exportAudit(_ filter: AuditFilter, _ body: @escaping @Sendable (AuditFieldChange) throws -> Void) async throws {
        try await transaction(readOnly: true) { connection in
            var sql = "SELECT \(Self.auditColumns), id FROM audit WHERE true"
            var binds = PostgresBindings()
            for (column, comparison, value) in filter.conditions {
                binds.append(value)
                sql += " AND \(column) \(comparison) $\(binds.count)"
            }
            // A page at a time, in the one snapshot of the transaction: memory stays bounded by the
            // page, whatever the trail holds.
            var after: Int64 = 0
            while true {
                var page = binds
                page.append(after)
                let rows = try await connection.query(
                    PostgresQuery(unsafeSQL: sql + " AND id > $\(page.count) ORDER BY id LIMIT \(Self.exportPageSize)", binds: page)
                )
                for row in rows.rows {
                    for change in try self.auditRow(row).fieldChanges { try body(change) }
                    after = try PostgresRandomAccessRow(row)["id"].decode(Int64.self)
                }
                if rows.rows.count < Self.exportPageSize { return }
            }
        }
    }

    /// Audit rows read per statement of an export.
    static let exportPageSize = 2000

    private static let auditColumns =
        #"received_at, site_id, tbl, record_id, replica, "user", seq, fields, new_values, old_values, hlcs, bases, outcomes, reasons, conflicts"#

    private func auditRow(_ row: PostgresRow) throws -> AuditRow {
        let (received, site, table, record, replica, user, seq, fields, new, old, hlcs, bases, outcomes, reasons, conflicts) = try row.decode(
            (String, String, String, String, String, String, Int64, String, String, String?, String?, String?, String?, String?, String?).self
        )
        return try AuditRow(
            receivedAt: received, site: site, table: table, recordID: record, replica: replica, user: user, seq: HLC(rawValue: seq),
            fields: fields, newValues: new, oldValues: old, hlcs: hlcs, bases: bases, outcomes: outcomes, reasons: reasons, conflicts: conflicts,
            schema: schema
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

    static func binds(_ values: [String]) -> PostgresBindings {
        var binds = PostgresBindings()
        for value in values { binds.append(value) }
        return binds
    }
}
