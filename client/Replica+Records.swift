import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension Replica {
    /// Creates a record, or changes fields of an existing one, in one transaction; returns its id.
    ///
    /// Values are validated against the schema first; a new record at a site laptop gets the laptop's
    /// site. Nothing is written when any value breaks a rule.
    ///
    /// Changing a value that was synced already, in a table that requires one (`TableSchema.requiresReason`),
    /// needs a `reason` (`ReasonForChange`); it is kept with each pending field it explains and
    /// pushed with it. A reason given for a field already pending replaces the one it had, so
    /// putting a pending field again with a reason explains a change that a server refused for
    /// lack of one.
    ///
    /// - Parameters:
    ///   - table: the table, for example `adverse_events`.
    ///   - id: the record to change; nil creates a record with a new id (`RecordID`).
    ///   - values: the fields to write.
    ///   - reason: why synced values change; nil when none is needed.
    /// - Throws: `ValidationError` naming each bad field and rule, or ``ReplicaError``
    ///   (``ReplicaError/reasonRequired`` naming the fields that need a reason).
    @discardableResult
    public func put(_ table: String, id: String? = nil, _ values: [String: FieldValue], reason: String? = nil) throws -> String {
        let identity = try requireIdentity()
        let id = id ?? RecordID.generate()
        let reason = try reason.map(Self.checkedReason)
        return try trackedWrite { db in
            defer { db.boundStatementCache() }
            return try write(db, identity: identity, table: table, id: id, values, reason: reason)
        }
    }

    /// A reason for change trimmed, or the error naming what is wrong with it.
    static func checkedReason(_ reason: String) throws -> String {
        switch ReasonForChange.checked(reason) {
        case .success(let text): return text
        case .failure(let problem): throw ReplicaError.invalidArgument(problem.message)
        }
    }

    /// Validates and writes one record inside the caller's transaction; the triggers track it.
    ///
    /// `reason` is checked already (``checkedReason(_:)``).
    func write(
        _ db: Database, identity: ReplicaIdentity, table: String, id: String, _ values: [String: FieldValue], reason: String? = nil
    ) throws -> String {
        let tableSchema = try schema.table(table)
        try tableSchema.validate(id: id)
        let existing: String? = try Row.fetchOne(
            db, sql: "SELECT site_id FROM \(table.quotedDatabaseIdentifier) WHERE id = ?", arguments: [id]
        ).map { $0["site_id"] ?? "" }
        if existing == nil, !tableSchema.clientCreatable { throw ReplicaError.readOnlyTable(table) }
        if existing != nil, let field = values.keys.sorted().first(where: { tableSchema.column($0) != nil && !tableSchema.isWritable($0) }) {
            throw ReplicaError.readOnlyTable("\(table).\(field)")
        }
        var values = values
        if let derive = tableSchema.derive {
            values.merge(derive(values)) { given, _ in given }
        }
        if existing == nil, values[TableSchema.siteColumn] == nil {
            guard !identity.isReviewer else {
                throw ReplicaError.invalidArgument("A reviewer replica records every site: give site_id for a new record.")
            }
            values[TableSchema.siteColumn] = .text(identity.site)
        }
        let normalized = try tableSchema.validate(values, creating: existing == nil)
        if case .text(let site)? = normalized[TableSchema.siteColumn] {
            if let existing, existing != site {
                throw ReplicaError.outsideSite("Record \(id) belongs to site \(existing); a record cannot move to another site.")
            }
            if !identity.isReviewer, site != identity.site {
                throw ReplicaError.outsideSite("This laptop records site \(identity.site); it cannot write a record of site \(site).")
            }
        }
        // The record as stored, read when a rule needs it.
        let checksReason = existing != nil && tableSchema.requiresReason && reason == nil
        let hasChecks = !tableSchema.checks.isEmpty || !tableSchema.crossChecks.isEmpty
        let stored = try existing == nil || !(checksReason || hasChecks) ? ["id": .text(id)] : fields(db, tableSchema, id: id)
        if checksReason {
            let synced = try SyncedFields(db, code: tableCodes.code(table), id: id)
            let unexplained = tableSchema.columnNames.filter { field in
                guard let value = normalized[field], synced.contains(field) else { return false }
                return ReasonForChange.isRequired(table: tableSchema, field: field, previous: stored[field] ?? .null, new: value)
            }
            guard unexplained.isEmpty else { throw ReplicaError.reasonRequired(table: table, id: id, fields: unexplained) }
        }
        if hasChecks {
            var record = stored
            record.merge(normalized) { $1 }
            try tableSchema.validateRecord(record)
            let problems = try tableSchema.crossChecks.compactMap { check in
                try check.check(record) { table, id in
                    let found = try fields(db, schema.table(table), id: id)
                    return found.isEmpty || found[TableSchema.deletedColumn]?.isNull == false ? nil : found
                }
            }
            guard problems.isEmpty else {
                throw ValidationError(problems: problems.map { .init(table: table, field: $0.field, message: $0.message) })
            }
        }
        let columns = tableSchema.columnNames.filter { normalized[$0] != nil }
        if existing == nil {
            try db.cachedStatement(sql: tableSchema.insertSQL(columns: columns))
                .execute(arguments: StatementArguments([id] + columns.map { normalized[$0]! }))
        } else if !columns.isEmpty {
            let assignments = columns.map { "\($0.quotedDatabaseIdentifier) = ?" }.joined(separator: ", ")
            try db.cachedStatement(sql: "UPDATE \(table.quotedDatabaseIdentifier) SET \(assignments) WHERE id = ?")
                .execute(arguments: StatementArguments(columns.map { normalized[$0]! } + [id]))
        }
        if let reason {
            try recordReason(db, reason, table: table, id: id, fields: columns)
        }
        return id
    }

    /// Keeps `reason` with those of `fields` of the record that wait to be pushed, replacing the
    /// reason each had; fields already synced (a value written again unchanged) keep none.
    ///
    /// A record that waited for a reason because plain SQL changed it (``unexplainedChanges()``)
    /// moves to the outbox's end (``requeue(_:code:id:)``), above what the server acknowledged
    /// while it waited.
    func recordReason(_ db: Database, _ reason: String, table: String, id: String, fields: [String]) throws {
        let code = try tableCodes.code(table)
        guard
            let shadow = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT base, reasons FROM _sitesync_shadows WHERE tbl = ? AND id = ? AND pending IS NOT NULL"),
                arguments: [code, id]
            )
        else { return }
        let base = try ShadowJSON.decode([String: Stamp?].self, shadow["base"])
        var reasons = try ShadowJSON.decode([String: String].self, shadow["reasons"]) ?? [:]
        let waited = reasons.values.contains(ReasonForChange.writtenOutsideLibrary)
        for field in fields where base == nil || base?[field] != nil {
            reasons[field] = reason
        }
        try db.cachedStatement(sql: "UPDATE _sitesync_shadows SET reasons = ? WHERE tbl = ? AND id = ?")
            .execute(arguments: [reasons.isEmpty ? nil : ShadowJSON.encode(reasons), code, id])
        if waited {
            try Self.requeue(db, code: code, id: id)
        }
    }

    /// Soft-deletes a record: its `_deleted` field takes the reason, and the delete syncs like any edit.
    public func delete(_ table: String, id: String, reason: String) throws {
        _ = try requireIdentity()
        let tableSchema = try schema.table(table)
        guard tableSchema.isWritable(TableSchema.deletedColumn) else { throw ReplicaError.readOnlyTable(table) }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw ReplicaError.invalidArgument("A reason is required to delete a record.") }
        let reason = try tableSchema.column(TableSchema.deletedColumn)!.validate(.text(trimmed), table: table)
        try trackedWrite { db in
            guard let deleted = try Row.fetchOne(db, sql: "SELECT _deleted FROM \(table.quotedDatabaseIdentifier) WHERE id = ?", arguments: [id])
            else { throw ReplicaError.recordNotFound(table: table, id: id) }
            guard (deleted["_deleted"] as String?) == nil else {
                throw ReplicaError.invalidArgument("Record \(id) in \(table) is already deleted.")
            }
            try db.execute(sql: "UPDATE \(table.quotedDatabaseIdentifier) SET _deleted = ? WHERE id = ?", arguments: [reason, id])
        }
    }

    /// The record `id` of `table`, deleted or not; nil if there is none.
    public func get(_ table: String, id: String) throws -> StoredRecord? {
        let tableSchema = try schema.table(table)
        return try writer.read { db in
            try Row.fetchOne(db, sql: "\(tableSchema.selectSQL) WHERE id = ?", arguments: [id])
                .map { storedRecord($0, tableSchema) }
        }
    }

    /// The records of `table`, oldest first; soft-deleted ones only when asked.
    public func list(_ table: String, includeDeleted: Bool = false) throws -> [StoredRecord] {
        let tableSchema = try schema.table(table)
        return try writer.read { db in
            let filter = includeDeleted ? "" : " WHERE _deleted IS NULL"
            return try Row.fetchAll(db, sql: "\(tableSchema.selectSQL)\(filter) ORDER BY rowid")
                .map { storedRecord($0, tableSchema) }
        }
    }

    /// Every field of a stored record, by name, `id` included.
    func fields(_ db: Database, _ table: TableSchema, id: String) throws -> [String: FieldValue] {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "\(table.selectSQL) WHERE id = ?"), arguments: [id]) else { return [:] }
        var record: [String: FieldValue] = ["id": .text(id)]
        for (index, name) in table.columnNames.enumerated() { record[name] = row.fieldValue(atIndex: index + 1) }
        return record
    }

    func storedRecord(_ row: Row, _ table: TableSchema) -> StoredRecord {
        StoredRecord(
            table: table.name,
            id: row[0],
            fields: table.columns.enumerated().map { (name: $1.name, value: row.fieldValue(atIndex: $0 + 1)) }
        )
    }
}
