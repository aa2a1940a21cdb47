import Foundation
import GRDB
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLite

extension SQLiteSyncStore {
    /// Applies a push in one write transaction, doing the I/O each step of ``PushTransaction`` asks for.
    ///
    /// SQLite has one writer, so the locks the steps ask for are held by the write transaction itself.
    public func push(_ push: CheckedPush, principal: Principal) async throws -> PushOutcome {
        try await writing { db in
            var storage = PushSteps(store: self, db: db)
            return try PushTransaction.run(push, principal: principal, in: &storage)
        }
    }

    /// The reads and writes of a push's steps, in the write transaction open on `db`.
    private struct PushSteps: PushStorage {
        let store: SQLiteSyncStore
        let db: Database

        func lockReplica(_ replica: String) throws -> StoredReplica? { try SQLiteSyncStore.replicaState(db, replica) }
        func sites(of keys: [RecordKey]) throws -> [RecordKey: String] { try SQLiteSyncStore.sites(db, keys) }
        func lockHeads(_ sites: [String]) throws -> [String: Int64] { try SQLiteSyncStore.heads(db, sites) }
        func records(_ keys: [RecordKey]) throws -> [RecordKey: ServerRecord] { try store.readRecords(db, keys) }
        func writtenValues(_ keys: [WrittenValueKey]) throws -> [WrittenValueKey: FieldValue] { try store.writtenValues(db, keys) }
        func loggedConflicts(_ ids: [String]) throws -> Set<String> { try SQLiteSyncStore.loggedConflicts(db, ids) }

        func write(_ writes: PushWrites) throws {
            try store.write(db, writes)
            db.boundStatementCache()
        }
    }

    public func replicaState(_ replica: String) async throws -> StoredReplica? {
        try await reading { db in try Self.replicaState(db, replica) }
    }

    static func replicaState(_ db: Database, _ replica: String) throws -> StoredReplica? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT last_seq, last_applied, last_conflicts, last_push FROM replicas WHERE replica_id = ?"),
            arguments: [replica]
        ).map {
            StoredReplica(
                lastSeq: HLC(rawValue: $0["last_seq"]), lastApplied: $0["last_applied"], lastConflicts: $0["last_conflicts"], lastPush: $0["last_push"])
        }
    }

    /// The sites of the records the server holds among `keys`: one query per table.
    private static func sites(_ db: Database, _ keys: [RecordKey]) throws -> [RecordKey: String] {
        var sites: [RecordKey: String] = [:]
        for (table, ids) in byTable(keys) {
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT id, site_id FROM records WHERE tbl = ? AND id IN (SELECT value FROM json_each(?))"),
                arguments: [table, JSONWriter.array(of: ids)]
            )
            while let row = try rows.next() { sites[RecordKey(table: table, id: row["id"])] = row["site_id"] }
        }
        return sites
    }

    private static func byTable(_ keys: [RecordKey]) -> [String: [String]] {
        var ids: [String: [String]] = [:]
        for key in keys { ids[key.table, default: []].append(key.id) }
        return ids
    }

    private static func heads(_ db: Database, _ sites: [String]) throws -> [String: Int64] {
        var heads: [String: Int64] = [:]
        let statement = try db.cachedStatement(sql: "SELECT seq FROM sites WHERE site_id = ?")
        for site in sites { heads[site] = try Int64.fetchOne(statement, arguments: [site]) ?? 0 }
        return heads
    }

    /// The stored records among `keys`, with their stamps: one query per table.
    private func readRecords(_ db: Database, _ keys: [RecordKey]) throws -> [RecordKey: ServerRecord] {
        var records: [RecordKey: ServerRecord] = [:]
        records.reserveCapacity(keys.count)
        for (tableName, ids) in Self.byTable(keys) {
            let table = try schema.table(tableName)
            let columns = table.columnNames.map { "t.\($0.quotedDatabaseIdentifier)" }.joined(separator: ", ")
            let rows = try Row.fetchCursor(
                db.cachedStatement(
                    sql: """
                        SELECT \(StoredRecordRow.columns), \(columns)
                        FROM records r JOIN \(table.name.quotedDatabaseIdentifier) t ON t.id = r.id
                        WHERE r.tbl = ? AND r.id IN (SELECT value FROM json_each(?))
                        """),
                arguments: [table.name, JSONWriter.array(of: ids)]
            )
            while let row = try rows.next() {
                var values: [String: FieldValue] = [:]
                values.reserveCapacity(table.columnNames.count)
                for (offset, name) in table.columnNames.enumerated() { values[name] = row.fieldValue(atIndex: StoredRecordRow.following + offset) }
                let stored = try StoredRecordRow(row)
                records[RecordKey(table: table.name, id: stored.id)] = ServerRecord(site: stored.site, stamps: stored.stamps, values: values)
            }
        }
        return records
    }

    /// The value each version wrote to each field, read from the audit trail; null when it wrote
    /// none there (the field is newer than the write).
    private func writtenValues(_ db: Database, _ keys: [WrittenValueKey]) throws -> [WrittenValueKey: FieldValue] {
        var values: [WrittenValueKey: FieldValue] = [:]
        let statement = try db.cachedStatement(
            sql: """
                SELECT json_extract(a.new_values, '$[' || f.key || ']')
                FROM audit AS a, json_each(a.fields) AS f
                WHERE a.tbl = ? AND a.record_id = ? AND a.replica = ? AND f.value = ?
                  AND coalesce(json_extract(a.hlcs, '$[' || f.key || ']'), a.seq) = ?
                ORDER BY a.id DESC LIMIT 1
                """)
        for key in keys {
            values[key] =
                try Row.fetchOne(
                    statement, arguments: [key.record.table, key.record.id, key.version.replica, key.field, key.version.hlc.rawValue]
                )?.fieldValue(atIndex: 0) ?? .null
        }
        return values
    }

    private static func loggedConflicts(_ db: Database, _ ids: [String]) throws -> Set<String> {
        try Set(
            String.fetchAll(
                db, sql: "SELECT id FROM conflicts WHERE id IN (SELECT value FROM json_each(?))", arguments: [JSONWriter.array(of: ids)]
            ))
    }

    /// Writes a push: records, shadow rows, conflicts, audit rows, site heads, the replica's state.
    private func write(_ db: Database, _ writes: PushWrites) throws {
        let insertShadow = try db.cachedStatement(
            sql: "INSERT INTO records (tbl, id, site_id, seq, hlc, replica, user, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for group in writes.created {
            let insert = try db.cachedStatement(sql: group.table.insertSQL(columns: group.columns))
            for record in group.records {
                try insert.execute { arguments in
                    arguments.bind(record.id)
                    for value in record.values { arguments.bind(value) }
                }
                try insertShadow.execute { arguments in
                    arguments.bind(group.table.name)
                    arguments.bind(record.id)
                    arguments.bind(record.site)
                    arguments.bind(record.seq)
                    arguments.bind(record.stamps.base.version.hlc.rawValue)
                    arguments.bind(record.stamps.base.version.replica)
                    arguments.bind(record.stamps.base.user)
                    arguments.bind(record.stamps.overridesJSON)
                }
            }
        }
        let updateShadow = try db.cachedStatement(sql: "UPDATE records SET seq = ?, hlc = ?, replica = ?, user = ?, fields = ? WHERE tbl = ? AND id = ?")
        for record in writes.changed {
            if !record.writes.isEmpty {
                let assignments = record.writes.map { "\($0.field.quotedDatabaseIdentifier) = ?" }.joined(separator: ", ")
                try db.cachedStatement(sql: "UPDATE \(record.table.name.quotedDatabaseIdentifier) SET \(assignments) WHERE id = ?")
                    .execute(arguments: StatementArguments(record.writes.map(\.value) + [record.id]))
            }
            updateShadow.setUncheckedArguments(StatementArguments([record.seq] + record.stamps.storedValues + [record.table.name, record.id]))
            try updateShadow.execute()
        }
        for conflict in writes.conflicts {
            let values = conflict.values(detectedAt: writes.receivedAt)
            let table = TableSchema.conflicts
            let columns = table.columnNames.filter { values[$0] != nil }
            try db.cachedStatement(sql: table.insertSQL(columns: columns) + " ON CONFLICT (id) DO NOTHING")
                .execute(arguments: StatementArguments([conflict.entry.id] + columns.map { values[$0]! }))
            try db.cachedStatement(
                sql: """
                    INSERT INTO records (tbl, id, site_id, seq, hlc, replica, user, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (tbl, id) DO UPDATE SET
                        seq = excluded.seq, hlc = excluded.hlc, replica = excluded.replica, user = excluded.user, fields = excluded.fields
                    """
            ).execute(arguments: StatementArguments([table.name, conflict.entry.id, conflict.entry.site, conflict.seq] + conflict.stamps.storedValues))
        }
        try writeAudit(db, writes)
        for (site, count) in writes.changesBySite {
            try db.cachedStatement(
                sql:
                    "INSERT INTO site_days (site_id, day, changes) VALUES (?, ?, ?) ON CONFLICT (site_id, day) DO UPDATE SET changes = changes + excluded.changes"
            ).execute(arguments: [site, writes.day, count])
        }
        for (site, seq) in writes.heads {
            try db.cachedStatement(sql: "INSERT INTO sites (site_id, seq) VALUES (?, ?) ON CONFLICT (site_id) DO UPDATE SET seq = excluded.seq")
                .execute(arguments: [site, seq])
        }
        try db.cachedStatement(
            sql: """
                INSERT INTO replicas (replica_id, last_seq, last_applied, last_conflicts, user, first_seen, last_seen, last_push)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (replica_id) DO UPDATE SET
                    last_seq = excluded.last_seq, last_applied = excluded.last_applied,
                    last_conflicts = excluded.last_conflicts, user = excluded.user, last_seen = excluded.last_seen,
                    last_push = excluded.last_push
                """
        ).execute(arguments: [
            writes.replicaID, writes.replica.lastSeq.rawValue, writes.replica.lastApplied, writes.replica.lastConflicts, writes.user,
            writes.receivedAt, writes.receivedAt, writes.replica.lastPush,
        ])
    }

    /// Appends the audit rows, each hashed onto its site's chain (``AuditChain``), and moves the
    /// sites' chain heads.
    private func writeAudit(_ db: Database, _ writes: PushWrites) throws {
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO audit (\(AuditChain.auditColumns), hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let readHead = try db.cachedStatement(sql: "SELECT audit_head FROM sites WHERE site_id = ?")
        var heads: [String: String] = [:]
        var fields = AuditFieldsText()
        for row in writes.audit {
            let previous = try heads[row.site] ?? String.fetchOne(readHead, arguments: [row.site]) ?? AuditChain.genesis
            let cells = AuditChain.cells(row, receivedAt: writes.receivedAt, replica: writes.replicaID, fields: fields.text(of: row.fields))
            let hash = AuditChain.auditHash(previous: previous, cells: cells)
            heads[row.site] = hash
            try insert.execute { arguments in
                for cell in cells { arguments.bind(cell) }
                arguments.bind(hash)
            }
        }
        let writeHead = try db.cachedStatement(
            sql: "INSERT INTO sites (site_id, seq, audit_head) VALUES (?, 0, ?) ON CONFLICT (site_id) DO UPDATE SET audit_head = excluded.audit_head")
        for (site, head) in heads { try writeHead.execute(arguments: [site, head]) }
    }
}
