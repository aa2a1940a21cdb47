import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension SQLiteSyncStore {
    /// The replica id and user the server stamps its own writes (the conflict log) with.
    static let serverReplica = "server"
    static let serverUser = "sitesync-server"

    public func push(_ push: CheckedPush, principal: Principal) async throws -> PushOutcome {
        try await writer.write { db in
            let replica = try Row.fetchOne(
                db, sql: "SELECT last_seq, last_applied, last_conflicts, last_push FROM replicas WHERE replica_id = ?", arguments: [push.replica]
            )
            let lastSeq = HLC(rawValue: replica?["last_seq"] ?? 0)
            // The server applied more under this id than the replica knows of: that is the replica's
            // own push whose answer it lost (it names it in `sent`), or another copy of its file.
            if let acked = push.acked, acked < lastSeq, !push.sent.contains(replica?["last_push"] ?? "") {
                throw ServerError.replicaDiverged
            }
            var sequences = SiteSequences()
            var outcome = PushOutcome(acked: lastSeq, applied: 0, conflicts: 0)
            var user: String?
            var unexplained: [UnexplainedChange] = []
            for checked in push.groups {
                let plan = try GroupPlan(db, checked, after: lastSeq)
                for (index, row) in checked.group.rows.enumerated() where row.seq > lastSeq {
                    outcome.conflicts += try apply(
                        db, plan, index: index, row: row, push: push, principal: principal, sequences: &sequences, unexplained: &unexplained
                    )
                    outcome.applied += 1
                    outcome.acked = max(outcome.acked, row.seq)
                    user = checked.group.user
                }
            }
            // Every change lacking a reason is named at once; throwing rolls the whole push back.
            guard unexplained.isEmpty else { throw ServerError.reasonRequired(unexplained) }
            guard outcome.applied > 0 else {
                // A retried batch: nothing new to apply; answer as the first time.
                if let replica, lastSeq >= push.groups.lazy.flatMap(\.group.rows).map(\.seq).max() ?? .zero {
                    outcome.applied = replica["last_applied"]
                    outcome.conflicts = replica["last_conflicts"]
                }
                return outcome
            }
            try sequences.save(db)
            try db.execute(
                sql: """
                    INSERT INTO replicas (replica_id, last_seq, last_applied, last_conflicts, user, first_seen, last_seen, last_push)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (replica_id) DO UPDATE SET
                        last_seq = excluded.last_seq, last_applied = excluded.last_applied,
                        last_conflicts = excluded.last_conflicts, user = excluded.user, last_seen = excluded.last_seen,
                        last_push = excluded.last_push
                    """,
                arguments: [push.replica, outcome.acked.rawValue, outcome.applied, outcome.conflicts, user, push.receivedAt, push.receivedAt, push.fingerprint]
            )
            return outcome
        }
    }

    /// A pushed change of a synced value that needed a reason for change and carried none.
    typealias UnexplainedChange = (table: String, field: String, record: String)

    /// Statements shared by every row of a pushed group, prepared once per push.
    private struct GroupPlan {
        let checked: PushValidation.CheckedGroup
        /// Fields a created record is inserted with, in table order: the group's and those with a
        /// default, each with where its value comes from.
        let created: [(column: String, source: CreatedValue)]
        /// Required fields without a default that the group does not write: it cannot create records.
        let missingRequired: [String]
        let insert: Statement
        let auditCreated: Statement
        let auditChanged: Statement
        let load: Statement
        let insertShadow: Statement
        let updateShadow: Statement
        /// Ids of the group's records the server already holds.
        let existing: Set<String>

        enum CreatedValue {
            /// The pushed value at this index of the group's fields.
            case pushed(Int)
            /// The column's default.
            case fixed(FieldValue)
        }

        init(_ db: Database, _ checked: PushValidation.CheckedGroup, after lastSeq: HLC) throws {
            self.checked = checked
            let table = checked.table
            let given = Dictionary(uniqueKeysWithValues: checked.group.columns.enumerated().map { ($1, $0) })
            created = table.columns.compactMap { column in
                if let index = given[column.name] { return (column.name, .pushed(index)) }
                return column.defaultValue.isNull ? nil : (column.name, .fixed(column.defaultValue))
            }
            missingRequired = table.columns.filter { $0.required && $0.defaultValue.isNull && given[$0.name] == nil }.map(\.name)
            insert = try db.cachedStatement(sql: table.insertSQL(columns: created.map(\.column)))
            let array = "json_array(\(Array(repeating: "?", count: checked.group.columns.count).joined(separator: ", ")))"
            func audit(_ old: String) throws -> Statement {
                try db.cachedStatement(sql: """
                    INSERT INTO audit (
                        received_at, site_id, tbl, record_id, replica, user, seq, fields, new_values, old_values, hlcs, bases, outcomes,
                        reasons, conflicts
                    )
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, \(array), \(old), ?, ?, ?, ?, ?)
                    """)
            }
            auditCreated = try audit("NULL")
            auditChanged = try audit(array)
            let columns = table.columnNames.map { "t.\($0.quotedDatabaseIdentifier)" }.joined(separator: ", ")
            load = try db.cachedStatement(sql: """
                SELECT r.hlc, r.replica, r.user, r.fields, r.site_id, \(columns)
                FROM records r JOIN \(table.name.quotedDatabaseIdentifier) t ON t.id = r.id
                WHERE r.tbl = ? AND r.id = ?
                """)
            insertShadow = try db.cachedStatement(
                sql: "INSERT INTO records (tbl, id, site_id, seq, hlc, replica, user, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            )
            updateShadow = try db.cachedStatement(
                sql: "UPDATE records SET seq = ?, hlc = ?, replica = ?, user = ?, fields = ? WHERE tbl = ? AND id = ?"
            )
            // One lookup for the whole group: records created by this push skip the point lookup.
            let ids = checked.group.rows.filter { $0.seq > lastSeq }.map(\.id)
            existing = ids.isEmpty ? [] : try Set(String.fetchAll(
                db,
                sql: "SELECT id FROM records WHERE tbl = ? AND id IN (SELECT value FROM json_each(?))",
                arguments: [table.name, JSONWriter.array(of: ids)]
            ))
        }
    }

    /// Merges one pushed record; returns the number of conflicts it logged.
    private func apply(
        _ db: Database,
        _ plan: GroupPlan,
        index: Int,
        row: ChangeRow,
        push: CheckedPush,
        principal: Principal,
        sequences: inout SiteSequences,
        unexplained: inout [UnexplainedChange]
    ) throws -> Int {
        if plan.existing.contains(row.id), let current = try loadRecord(table: plan.checked.table, id: row.id, plan.load) {
            return try applyToExisting(
                db, plan, current, index: index, row: row, push: push, principal: principal, sequences: &sequences, unexplained: &unexplained
            )
        }
        try create(db, plan, index: index, row: row, push: push, sequences: &sequences)
        return 0
    }

    /// Inserts a record the server does not hold yet: every pushed field is applied, nothing can conflict.
    private func create(_ db: Database, _ plan: GroupPlan, index: Int, row: ChangeRow, push: CheckedPush, sequences: inout SiteSequences) throws {
        let checked = plan.checked
        let table = checked.table
        let group = checked.group
        let values = checked.values[index]
        guard table.clientCreatable else {
            throw ServerError.forbidden("\(table.name) records are created by the server only; no record \(row.id).")
        }
        guard plan.missingRequired.isEmpty else {
            throw ServerError.validation(ValidationError(problems: plan.missingRequired.map {
                .init(table: table.name, field: $0, message: "is required for a new record")
            }))
        }
        guard let site = checked.sites[index] else {
            throw ServerError.validation("\(table.name).site_id: is required for a new record")
        }
        func value(_ source: GroupPlan.CreatedValue) -> FieldValue {
            switch source {
            case .pushed(let position): values[position]
            case .fixed(let value): value
            }
        }
        if !table.checks.isEmpty {
            var record: [String: FieldValue] = ["id": .text(row.id)]
            record.reserveCapacity(plan.created.count + 1)
            for (column, source) in plan.created { record[column] = value(source) }
            do {
                try table.validateRecord(record)
            } catch {
                throw ServerError.validation(error)
            }
        }
        try plan.insert.execute { arguments in
            arguments.bind(row.id)
            for (_, source) in plan.created { arguments.bind(value(source)) }
        }
        // Every field stamped by this replica; one base stamp unless the fields were written at different times.
        var stamps = FieldStamps(base: Stamp(hlc: row.seq, replica: push.replica, user: group.user))
        if row.hlcs != nil {
            for (offset, column) in group.columns.enumerated() {
                stamps[column] = Stamp(hlc: row.hlc(at: offset), replica: push.replica, user: group.user)
            }
            stamps.compact(fields: table.columnNames)
        }
        let seq = try sequences.next(db, site: site)
        try plan.insertShadow.execute { arguments in
            arguments.bind(table.name)
            arguments.bind(row.id)
            arguments.bind(site)
            arguments.bind(seq)
            arguments.bind(stamps.base.version.hlc.rawValue)
            arguments.bind(stamps.base.version.replica)
            arguments.bind(stamps.base.user)
            arguments.bind(stamps.overridesJSON)
        }
        let hlcs = try row.hlcs.map(Self.json)
        let bases = try row.bases.map(Self.json)
        try plan.auditCreated.execute { arguments in
            arguments.bind(push.receivedAt)
            arguments.bind(site)
            arguments.bind(table.name)
            arguments.bind(row.id)
            arguments.bind(push.replica)
            arguments.bind(group.user)
            arguments.bind(row.seq.rawValue)
            arguments.bind(checked.fieldsJSON)
            for value in values { arguments.bind(value) }
            arguments.bind(hlcs)
            arguments.bind(bases)
            arguments.bind(String(repeating: FieldOutcome.applied.rawValue, count: values.count))
            arguments.bind(checked.reasons[index])
            arguments.bindNull()
        }
    }

    private static func json(_ value: some Encodable) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    /// Merges a pushed row into a record the server holds; returns the number of conflicts it logged.
    private func applyToExisting(
        _ db: Database,
        _ plan: GroupPlan,
        _ current: ServerRecord,
        index: Int,
        row pushed: ChangeRow,
        push: CheckedPush,
        principal: Principal,
        sequences: inout SiteSequences,
        unexplained: inout [UnexplainedChange]
    ) throws -> Int {
        let checked = plan.checked
        let table = checked.table
        let group = checked.group
        var row = pushed
        row.values = checked.values[index]
        let site = current.site
        guard principal.canAccess(site: site) else {
            throw ServerError.forbidden("This token may not write records of site \(site); nothing was written.")
        }
        if let moved = checked.sites[index], moved != site {
            throw ServerError.validation("\(table.name).site_id: record \(row.id) belongs to site \(site) and cannot move to \(moved).")
        }
        if table.requiresReason, row.bases != nil {
            for (offset, field) in group.columns.enumerated() where row.reason(at: offset) == nil {
                // A change based on a version the server holds replaces a synced value: the current
                // one, or for a concurrent change the one that version wrote.
                guard let base = row.base(at: offset) else { continue }
                let previous =
                    base == current.stamps[field].version
                    ? current.values[field] ?? .null
                    : try value(db, table: table, id: row.id, field: field, writtenBy: base)
                if ReasonForChange.isRequired(table: table, field: field, previous: previous, new: row.values[offset]) {
                    unexplained.append((table.name, field, row.id))
                }
            }
        }
        let result = RecordMerge.merge(current: current, table: table.name, site: site, group: group, row: row, replica: push.replica)
        if !table.checks.isEmpty {
            var record = current.values
            for (field, value) in result.writes { record[field] = value }
            record["id"] = .text(row.id)
            do {
                try table.validateRecord(record, written: Set(group.columns))
            } catch {
                throw ServerError.validation(error)
            }
        }
        if !result.writes.isEmpty {
            let assignments = result.writes.map { "\($0.field.quotedDatabaseIdentifier) = ?" }.joined(separator: ", ")
            try db.cachedStatement(sql: "UPDATE \(table.name.quotedDatabaseIdentifier) SET \(assignments) WHERE id = ?")
                .execute(arguments: StatementArguments(result.writes.map(\.value) + [row.id]))
        }
        if result.changesRecord {
            var stamps = result.stamps
            stamps.compact(fields: table.columnNames)
            let seq = try sequences.next(db, site: site)
            plan.updateShadow.setUncheckedArguments(StatementArguments([seq] + stamps.storedValues + [table.name, row.id]))
            try plan.updateShadow.execute()
        }
        var conflicts: [String?]?
        for conflict in result.conflicts {
            try logConflict(db, conflict, detectedAt: push.receivedAt, sequences: &sequences)
            if conflicts == nil { conflicts = Array(repeating: nil, count: group.columns.count) }
            if let offset = group.columns.firstIndex(of: conflict.field) { conflicts?[offset] = conflict.id }
        }
        var audit: [(any DatabaseValueConvertible)?] = [push.receivedAt, site, table.name, row.id, push.replica, group.user, row.seq.rawValue, checked.fieldsJSON]
        audit += row.values.map { $0 }
        audit += result.previous.map { $0 }
        audit += [try row.hlcs.map(Self.json), try row.bases.map(Self.json), String(result.outcomes.map(\.rawValue))]
        audit += [checked.reasons[index], try conflicts.map(Self.json)]
        plan.auditChanged.setUncheckedArguments(StatementArguments(audit))
        try plan.auditChanged.execute()
        return result.conflicts.count
    }

    /// The value `version` wrote to `field` of a record, read from the audit trail; null when it
    /// wrote none there (the field is newer than the write).
    private func value(_ db: Database, table: TableSchema, id: String, field: String, writtenBy version: Version) throws -> FieldValue {
        let written = try Row.fetchOne(
            db.cachedStatement(sql: """
                SELECT json_extract(a.new_values, '$[' || f.key || ']')
                FROM audit AS a, json_each(a.fields) AS f
                WHERE a.tbl = ? AND a.record_id = ? AND a.replica = ? AND f.value = ?
                  AND coalesce(json_extract(a.hlcs, '$[' || f.key || ']'), a.seq) = ?
                ORDER BY a.id DESC LIMIT 1
                """),
            arguments: [table.name, id, version.replica, field, version.hlc.rawValue]
        )?.fieldValue(atIndex: 0)
        return table.column(field).map { $0.normalize(written ?? .null) } ?? .null
    }

    /// The stored record with its stamps, or nil when the server has none.
    private func loadRecord(table: TableSchema, id: String, _ statement: Statement) throws -> ServerRecord? {
        guard let row = try Row.fetchOne(statement, arguments: [table.name, id]) else { return nil }
        var values: [String: FieldValue] = [:]
        for (offset, name) in table.columnNames.enumerated() {
            values[name] = row.fieldValue(atIndex: offset + 5)
        }
        return ServerRecord(site: row[4], stamps: try FieldStamps(row: row, startingAt: 0), values: values)
    }

    private func writeShadow(_ db: Database, table: String, id: String, site: String, seq: Int64, stamps: FieldStamps) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO records (tbl, id, site_id, seq, hlc, replica, user, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (tbl, id) DO UPDATE SET
                    seq = excluded.seq, hlc = excluded.hlc, replica = excluded.replica, user = excluded.user, fields = excluded.fields
                """
        ).execute(arguments: StatementArguments([table, id, site, seq] + stamps.storedValues))
    }

    private func logConflict(_ db: Database, _ conflict: ConflictEntry, detectedAt: String, sequences: inout SiteSequences) throws {
        let id = conflict.id
        let values: [String: FieldValue] = [
            TableSchema.siteColumn: .text(conflict.site),
            "table_name": .text(conflict.table),
            "record_id": .text(conflict.recordID),
            "field": .text(conflict.field),
            "winner_value": .text(conflict.winner.value.json),
            "winner_hlc": .integer(conflict.winner.hlc.rawValue),
            "winner_replica": .text(conflict.winner.replica),
            "winner_user": conflict.winner.user.map(FieldValue.text) ?? .null,
            "loser_value": .text(conflict.loser.value.json),
            "loser_hlc": .integer(conflict.loser.hlc.rawValue),
            "loser_replica": .text(conflict.loser.replica),
            "loser_user": conflict.loser.user.map(FieldValue.text) ?? .null,
            "detected_at": .text(detectedAt),
            "status": .text("open"),
        ]
        let table = TableSchema.conflicts
        let columns = table.columnNames.filter { values[$0] != nil }
        // The id is derived from the two writes, so logging the same pair again is a no-op.
        try db.cachedStatement(sql: table.insertSQL(columns: columns) + " ON CONFLICT (id) DO NOTHING")
            .execute(arguments: StatementArguments([id] + columns.map { values[$0]! }))
        guard db.changesCount > 0 else { return }
        // Stamped with the server's clock at detection, which is after both sides.
        let hlc = max(conflict.winner.hlc, conflict.loser.hlc)
        let stamps = FieldStamps(base: Stamp(hlc: hlc, replica: Self.serverReplica, user: Self.serverUser))
        try writeShadow(db, table: table.name, id: id, site: conflict.site, seq: sequences.next(db, site: conflict.site), stamps: stamps)
    }
}

/// Per-site sequence numbers handed out in one push transaction, saved with it.
struct SiteSequences {
    private var last: [String: Int64] = [:]

    mutating func next(_ db: Database, site: String) throws -> Int64 {
        let current = try last[site] ?? Int64.fetchOne(db, sql: "SELECT seq FROM sites WHERE site_id = ?", arguments: [site]) ?? 0
        last[site] = current + 1
        return current + 1
    }

    func save(_ db: Database) throws {
        for (site, seq) in last {
            try db.execute(
                sql: "INSERT INTO sites (site_id, seq) VALUES (?, ?) ON CONFLICT (site_id) DO UPDATE SET seq = excluded.seq",
                arguments: [site, seq]
            )
        }
    }
}
