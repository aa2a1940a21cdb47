import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

/// What a reviewer decides for a conflict.
public enum ResolutionChoice: Sendable, Equatable {
    /// Keep the winning value (written again with a fresh HLC, so it wins everywhere).
    case keepWinner
    /// Restore the overwritten value.
    case takeLoser
    /// Write another value.
    case value(FieldValue)

    var decision: Conflict.Decision {
        switch self {
        case .keepWinner: .keepWinner
        case .takeLoser: .takeLoser
        case .value: .value
        }
    }
}

extension Replica {
    /// The conflicts this replica has pulled (and resolved locally), newest first.
    ///
    /// - Parameters:
    ///   - includeResolved: also list resolved conflicts.
    ///   - site: only this site.
    ///   - table: only conflicts on records of this table.
    public func conflicts(includeResolved: Bool = false, site: String? = nil, table: String? = nil) throws -> [Conflict] {
        try list(TableSchema.conflicts.name)
            .map { record in
                try Conflict(id: record.id, fields: Dictionary(uniqueKeysWithValues: record.fields.map { ($0.name, $0.value) })).normalized(in: schema)
            }
            .filter { (includeResolved || $0.isOpen) && (site == nil || $0.site == site) && (table == nil || $0.table == table) }
            .sorted { $0.detectedAt != $1.detectedAt ? $0.detectedAt > $1.detectedAt : $0.id < $1.id }
    }

    /// One conflict with the current local value of its field.
    public func conflict(id: String) throws -> ConflictDetail {
        try writer.read { db in
            let fields = try fields(db, TableSchema.conflicts, id: id)
            guard !fields.isEmpty else { throw ReplicaError.recordNotFound(table: TableSchema.conflicts.name, id: id) }
            let conflict = try Conflict(id: id, fields: fields).normalized(in: schema)
            let current = try (try? schema.table(conflict.table)).map { table in try self.fields(db, table, id: conflict.recordID)[conflict.field] } ?? nil
            return ConflictDetail(conflict: conflict, current: current)
        }
    }

    /// Resolves a conflict: writes the decided value as an ordinary change with a fresh HLC, and marks
    /// the conflict resolved with this replica's user, the decision and the reason, in one transaction.
    ///
    /// Both changes sync like any other; a resolution made offline is pushed at the next sync.
    /// - Throws: ``ReplicaError`` when the conflict is unknown, already resolved or of another site,
    ///   or the reason is missing; `ValidationError` for a value that breaks the field's rules.
    @discardableResult
    public func resolve(conflict id: String, _ choice: ResolutionChoice, reason: String) throws -> Conflict {
        let identity = try requireIdentity()
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else { throw ReplicaError.invalidArgument("A reason is required to resolve a conflict; it stays in the audit trail.") }
        return try trackedWrite { db in
            let stored = try fields(db, TableSchema.conflicts, id: id)
            guard !stored.isEmpty else { throw ReplicaError.recordNotFound(table: TableSchema.conflicts.name, id: id) }
            let conflict = try Conflict(id: id, fields: stored).normalized(in: schema)
            if let resolution = conflict.resolution, !conflict.isOpen {
                throw ReplicaError.alreadyResolved(
                    "Conflict \(id) is already resolved (\(resolution.decision.rawValue) by \(resolution.reviewer) at \(resolution.resolvedAt): \(resolution.reason)); nothing was written."
                )
            }
            guard identity.isReviewer || conflict.site == identity.site else {
                throw ReplicaError.outsideSite("Conflict \(id) belongs to site \(conflict.site); this laptop resolves site \(identity.site) only.")
            }
            let table = try schema.table(conflict.table)
            guard let column = table.column(conflict.field) else {
                throw ReplicaError.invalidArgument("This build does not know the field \(conflict.table).\(conflict.field); upgrade sitesync to resolve it.")
            }
            let value: FieldValue =
                switch choice {
                // Both sides are in the column's type (Conflict.normalized), so they compare equal to
                // the value the record holds whatever JSON made of a whole-number real.
                case .keepWinner: conflict.winner.value
                case .takeLoser: conflict.loser.value
                case .value(let value): try column.validate(value, table: table.name)
                }
            let record = try fields(db, table, id: conflict.recordID)
            guard !record.isEmpty else { throw ReplicaError.recordNotFound(table: table.name, id: conflict.recordID) }
            // The decided value's reason for change, in the record's audit trail.
            let why = ReasonForChange.resolution(conflict: id, decision: choice.decision.rawValue, reason: reason)
            if record[conflict.field] != value {
                _ = try write(db, identity: identity, table: table.name, id: conflict.recordID, [conflict.field: value], reason: why)
            } else {
                // The value is already there: stamp it afresh so the decision wins over older writes everywhere.
                let deleted = "(SELECT \(TableSchema.deletedColumn.quotedDatabaseIdentifier) FROM \(table.name.quotedDatabaseIdentifier) WHERE id = :id)"
                try db.execute(
                    sql: Replica.restampSQL(
                        table: tableCodes.code(table.name), field: conflict.field, id: ":id", stamp: StampSQL(db),
                        live: Replica.livenessSQL(table, field: conflict.field, deleted: deleted)
                    ),
                    arguments: ["id": conflict.recordID]
                )
                try recordReason(db, why, table: table.name, id: conflict.recordID, fields: [conflict.field])
            }
            let resolution = Conflict.Resolution(decision: choice.decision, reviewer: identity.user, reason: reason, resolvedAt: state.clock.now)
            _ = try write(
                db, identity: identity, table: TableSchema.conflicts.name, id: id,
                [
                    "status": .text(ConflictStatus.resolved.rawValue),
                    "decision": .text(resolution.decision.rawValue),
                    "reviewer": .text(resolution.reviewer),
                    "reason": .text(resolution.reason),
                    "resolved_at": .text(resolution.resolvedAt),
                ], reason: why)
            var resolved = conflict
            resolved.status = .resolved
            resolved.resolution = resolution
            return resolved
        }
    }

    /// What this laptop knows of a record's history without the server: each field's last write
    /// (value, user, replica, time) and the resolutions of its conflicts.
    public func localHistory(_ table: String, id: String) throws -> RecordHistory {
        let tableSchema = try schema.table(table)
        let resolved = try conflicts(includeResolved: true, table: table).filter { $0.recordID == id }
        return try writer.read { db in
            let record = try fields(db, tableSchema, id: id)
            guard !record.isEmpty,
                let shadow = try Row.fetchOne(
                    db, sql: "SELECT \(ShadowRow.columns) FROM \(ShadowRow.source) WHERE s.tbl = ? AND s.id = ?",
                    arguments: [tableCodes.code(table), id]
                ).map(ShadowRow.init)
            else { throw ReplicaError.recordNotFound(table: table, id: id) }
            let stamps = shadow.stamps
            let reasons = try shadow.reasons() ?? [:]
            let synced = try SyncedFields(db, code: tableCodes.code(table), id: id)
            var byStamp: [Stamp: [FieldHistory]] = [:]
            for field in tableSchema.columnNames {
                let stamp = stamps[field]
                byStamp[stamp, default: []].append(
                    FieldHistory(
                        field: field, old: .null, new: record[field] ?? .null, hlc: stamp.version.hlc,
                        outcome: synced.contains(field) ? "applied" : "pending", reason: reasons[field]
                    ))
            }
            var entries = byStamp.sorted { $0.key.version < $1.key.version }.map { stamp, changes in
                HistoryEntry.change(at: stamp.version.hlc.iso8601, user: stamp.user, replica: stamp.version.replica, changes: changes)
            }
            for conflict in resolved {
                guard let resolution = conflict.resolution else { continue }
                entries.append(
                    .resolution(
                        at: resolution.resolvedAt, user: resolution.reviewer, replica: "", conflict: conflict.id, field: conflict.field,
                        decision: resolution.decision.rawValue, reason: resolution.reason
                    ))
            }
            return RecordHistory(source: "replica", table: table, recordID: id, entries: entries)
        }
    }
}
