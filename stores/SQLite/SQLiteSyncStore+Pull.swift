import GRDB
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLite

extension SQLiteSyncStore {
    /// Reads a pull page in one read transaction, doing the reads each step of ``PullTransaction`` asks for.
    public func pull(_ request: PullRequest, principal: Principal, schema: Schema, byteBudget: Int) async throws -> PullBatch {
        try await reading { db in
            var storage = PullSteps(db: db)
            return try PullTransaction.run(request, principal: principal, schema: schema, byteBudget: byteBudget, in: &storage)
        }
    }

    /// The reads of a pull page's steps, in the read transaction open on `db`.
    private struct PullSteps: PullStorage {
        let db: Database

        func sites() throws -> [String] { try String.fetchAll(db, sql: "SELECT site_id FROM sites ORDER BY site_id") }
        func replicaState(_ replica: String) throws -> StoredReplica? { try SQLiteSyncStore.replicaState(db, replica) }
        func records(site: String, after: Int64, limit: Int) throws -> [PullTransaction.PulledRecord] {
            try SQLiteSyncStore.records(db, site: site, after: after, limit: limit)
        }
        func values(_ tables: [(table: TableSchema, ids: [String])]) throws -> [RecordKey: [FieldValue]] { try SQLiteSyncStore.values(db, tables) }
    }

    /// The records of `site` after `after`, in sequence order, with their stamps.
    private static func records(_ db: Database, site: String, after: Int64, limit: Int) throws -> [PullTransaction.PulledRecord] {
        var records: [PullTransaction.PulledRecord] = []
        let shadows = try Row.fetchCursor(
            db.cachedStatement(sql: "SELECT \(StoredRecordRow.columns) FROM records r WHERE r.site_id = ? AND r.seq > ? ORDER BY r.seq LIMIT ?"),
            arguments: [site, after, limit]
        )
        while let row = try shadows.next() {
            let stored = try StoredRecordRow(row)
            records.append(PullTransaction.PulledRecord(seq: stored.seq, table: stored.table, id: stored.id, stamps: stored.stamps, values: nil))
        }
        return records
    }

    /// The values of the records `ids` of each table, with one query per table.
    private static func values(_ db: Database, _ tables: [(table: TableSchema, ids: [String])]) throws -> [RecordKey: [FieldValue]] {
        var values: [RecordKey: [FieldValue]] = [:]
        for (table, ids) in tables {
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: "\(table.selectSQL) WHERE id IN (SELECT value FROM json_each(?))"),
                arguments: [JSONWriter.array(of: ids)]
            )
            while let row = try rows.next() {
                values[RecordKey(table: table.name, id: row[0])] = (1...table.columns.count).map { row.fieldValue(atIndex: $0) }
            }
        }
        return values
    }
}
