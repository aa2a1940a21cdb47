import GRDB
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLite

extension SQLiteSyncStore {
    /// Reads a pull page in one read transaction, doing the reads each step of ``PullTransaction`` asks for.
    public func pull(_ request: PullRequest, principal: Principal, schema: Schema, byteBudget: Int) async throws -> PullBatch {
        try await reading { db in
            var transaction = PullTransaction(request, principal: principal, schema: schema, byteBudget: byteBudget)
            var step = try transaction.next(nil)
            while true {
                switch step {
                case .readSites:
                    step = try transaction.next(.sites(try String.fetchAll(db, sql: "SELECT site_id FROM sites ORDER BY site_id")))
                case .readReplica(let replica):
                    step = try transaction.next(.replica(try Self.replicaState(db, replica)))
                case .readPage(let site, let after, let limit, let skipping):
                    step = try transaction.next(.page(try Self.page(db, site: site, after: after, limit: limit, skipping: skipping, schema: schema)))
                case .finished(let batch):
                    return batch
                }
            }
        }
    }

    /// The records of `site` after `after`, in sequence order, with their values in `schema`'s
    /// columns, fetched with one query per table for the whole page.
    private static func page(
        _ db: Database, site: String, after: Int64, limit: Int, skipping: String?, schema: Schema
    ) throws -> [PullTransaction.PulledRecord] {
        var records: [PullTransaction.PulledRecord] = []
        let shadows = try Row.fetchCursor(
            db.cachedStatement(sql: "SELECT tbl, id, seq, hlc, replica, user, fields FROM records WHERE site_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
            arguments: [site, after, limit]
        )
        var idsByTable: [String: [String]] = [:]
        while let shadow = try shadows.next() {
            let stamps = try FieldStamps(row: shadow, startingAt: 3)
            let record = PullTransaction.PulledRecord(seq: shadow[2], table: shadow[0], id: shadow[1], stamps: stamps, values: nil)
            // Records whose every field the pulling replica wrote are skipped: it holds them already.
            if !(stamps.overrides.isEmpty && stamps.base.version.replica == skipping) {
                idsByTable[record.table, default: []].append(record.id)
            }
            records.append(record)
        }
        var values: [RecordKey: [FieldValue]] = [:]
        for (tableName, ids) in idsByTable {
            // Tables the client's schema does not have yet are left out.
            guard let table = try? schema.table(tableName) else { continue }
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: "\(table.selectSQL) WHERE id IN (SELECT value FROM json_each(?))"),
                arguments: [JSONWriter.array(of: ids)]
            )
            while let row = try rows.next() {
                values[RecordKey(table: tableName, id: row[0])] = (1...table.columns.count).map { row.fieldValue(atIndex: $0) }
            }
        }
        for index in records.indices {
            records[index].values = values[RecordKey(table: records[index].table, id: records[index].id)]
        }
        return records
    }
}
