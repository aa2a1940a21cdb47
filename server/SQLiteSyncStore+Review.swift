import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension SQLiteSyncStore {
    public func conflicts(_ filter: ConflictFilter, principal: Principal) async throws -> ConflictPage {
        let site = try ReadScope.site(filter.site, principal: principal)
        let limit = min(max(filter.limit, 1), 1000)
        return try await reading { db in
            var clauses: [String] = []
            var arguments: [(any DatabaseValueConvertible)?] = []
            if let status = filter.status {
                clauses.append("status = ?")
                arguments.append(status)
            }
            if let site {
                clauses.append("site_id = ?")
                arguments.append(site)
            }
            if let table = filter.table {
                clauses.append("table_name = ?")
                arguments.append(table)
            }
            if let after = filter.after {
                guard let rowid = Int64(after) else { throw ServerError.validation("The page token \"\(after)\" is not one this server gave.") }
                clauses.append("rowid > ?")
                arguments.append(rowid)
            }
            let condition = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments.append(limit + 1)
            let rows = try Row.fetchAll(
                db, sql: "SELECT rowid AS _rowid, * FROM conflicts \(condition) ORDER BY rowid LIMIT ?", arguments: StatementArguments(arguments)
            )
            let page = rows.prefix(limit)
            return ConflictPage(
                conflicts: try page.map(conflict),
                next: rows.count > limit ? page.last.map { String($0["_rowid"] as Int64) } : nil
            )
        }
    }

    public func conflict(id: String, principal: Principal) async throws -> ConflictDetail? {
        try ReadScope.requireReader(principal)
        return try await reading { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM conflicts WHERE id = ?", arguments: [id]) else { return nil }
            let conflict = try self.conflict(row)
            guard principal.canAccess(site: conflict.site) else { return nil }
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

    public func history(table: String, id: String, principal: Principal) async throws -> RecordHistory? {
        try ReadScope.requireReader(principal)
        return try await reading { db in
            guard let site = try String.fetchOne(db, sql: "SELECT site_id FROM records WHERE tbl = ? AND id = ?", arguments: [table, id]),
                principal.canAccess(site: site)
            else { return nil }
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
            var entries: [HistoryEntry] = []
            for row in rows {
                let audit = try AuditRow(row, schema: schema)
                let values = Dictionary(uniqueKeysWithValues: zip(audit.fields, audit.newValues))
                if audit.table == TableSchema.conflicts.name, values["status"] == .text("resolved"), case .text(let decision)? = values["decision"] {
                    entries.append(.resolution(
                        at: values["resolved_at"]?.displayText ?? audit.receivedAt,
                        user: values["reviewer"]?.displayText ?? audit.user,
                        replica: audit.replica,
                        conflict: audit.recordID,
                        field: fieldsByConflict[audit.recordID] ?? "",
                        decision: decision,
                        reason: values["reason"]?.displayText ?? ""
                    ))
                } else if audit.table == table {
                    // A record's own changes; for a conflict record, also the ones that are no
                    // complete resolution (a conflict about its resolution, decided again).
                    entries.append(.change(
                        at: audit.receivedAt, user: audit.user, replica: audit.replica,
                        changes: audit.changes.map {
                            FieldHistory(field: $0.field, old: $0.old, new: $0.new, hlc: $0.hlc, outcome: $0.outcome, reason: $0.reason, conflict: $0.conflict)
                        }
                    ))
                }
            }
            return RecordHistory(source: "server", table: table, recordID: id, entries: entries)
        }
    }

    public func exportAudit(_ filter: AuditFilter, _ body: @escaping @Sendable (AuditFieldChange) throws -> Void) async throws {
        try await reading { db in
            var clauses: [String] = []
            var arguments: [(any DatabaseValueConvertible)?] = []
            if let site = filter.site {
                clauses.append("site_id = ?")
                arguments.append(site)
            }
            if let since = filter.since {
                clauses.append("received_at >= ?")
                arguments.append(since)
            }
            if let table = filter.table {
                clauses.append("tbl = ?")
                arguments.append(table)
            }
            if let record = filter.record {
                clauses.append("record_id = ?")
                arguments.append(record)
            }
            let condition = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM audit \(condition) ORDER BY id", arguments: StatementArguments(arguments))
            while let row = try rows.next() {
                let audit = try AuditRow(row, schema: schema)
                for change in audit.changes {
                    try body(AuditFieldChange(
                        receivedAt: audit.receivedAt, site: audit.site, replica: audit.replica, user: audit.user, table: audit.table,
                        recordID: audit.recordID, field: change.field, oldValue: change.old, newValue: change.new, reason: change.reason,
                        outcome: change.outcome, conflict: change.conflict, seq: audit.seq, hlc: change.hlc, base: change.base
                    ))
                }
            }
        }
    }

    private func conflict(_ row: Row) throws -> Conflict {
        var fields: [String: FieldValue] = [:]
        for name in TableSchema.conflicts.columnNames { fields[name] = FieldValue.fromDatabaseValue(row[name]) ?? .null }
        return try Conflict(id: row["id"], fields: fields).normalized(in: schema)
    }
}

/// One row of the audit trail, decoded.
struct AuditRow {
    struct Change {
        var field: String
        var old: FieldValue
        var new: FieldValue
        var hlc: HLC
        var base: Version?
        var outcome: String
        /// Why: the reason for change given, or for a delete the delete's own reason.
        var reason: String?
        /// The conflict the change caused.
        var conflict: String?
    }

    var receivedAt: String
    var site: String
    var table: String
    var recordID: String
    var replica: String
    var user: String
    var seq: HLC
    var fields: [String]
    var newValues: [FieldValue]
    var changes: [Change]

    /// Decodes an audit row, each value in its column's type: the row keeps values as JSON, where
    /// the real 68.0 reads back as the integer 68.
    init(_ row: Row, schema: Schema) throws {
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ column: String) throws -> T? {
            guard let text = row[column] as String? else { return nil }
            return try decoder.decode(T.self, from: Data(text.utf8))
        }
        receivedAt = row["received_at"]
        site = row["site_id"]
        table = row["tbl"]
        recordID = row["record_id"]
        replica = row["replica"]
        user = row["user"]
        seq = HLC(rawValue: row["seq"])
        fields = try decode([String].self, "fields") ?? []
        let columns = fields.map { (try? schema.table(row["tbl"]))?.column($0) }
        func typed(_ values: [FieldValue]?) -> [FieldValue]? {
            values.map { values in values.enumerated().map { index, value in index < columns.count ? columns[index]?.normalize(value) ?? value : value } }
        }
        newValues = typed(try decode([FieldValue].self, "new_values")) ?? []
        let old = typed(try decode([FieldValue].self, "old_values"))
        let hlcs = try decode([HLC].self, "hlcs")
        let bases = try decode([Version?].self, "bases")
        let outcomes = Array((row["outcomes"] as String?) ?? "")
        let reasons = try decode([String?].self, "reasons")
        let conflicts = try decode([String?].self, "conflicts")
        var changes: [Change] = []
        for (index, field) in fields.enumerated() where index < newValues.count {
            changes.append(Change(
                field: field,
                old: old?[index] ?? .null,
                new: newValues[index],
                hlc: hlcs?[index] ?? seq,
                base: bases?[index] ?? nil,
                outcome: index < outcomes.count ? AuditOutcome.name(outcomes[index]) : "unchanged",
                reason: Self.element(reasons, index) ?? (field == TableSchema.deletedColumn ? newValues[index].displayText : nil),
                conflict: Self.element(conflicts, index)
            ))
        }
        self.changes = changes
    }

    private static func element(_ array: [String?]?, _ index: Int) -> String? {
        guard let array, index < array.count else { return nil }
        return array[index]
    }
}
