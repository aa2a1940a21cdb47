import Foundation
import Logging
import PostgresNIO
import SiteSyncCore
import SiteSyncRules

extension PostgresSyncStore {
    /// Applies a push in one transaction, doing the I/O each step of ``PushTransaction`` asks for.
    ///
    /// The locks are row locks held to the commit: the replica's row, then its sites' heads in
    /// site order. Writes are set-based: each kind of row goes to the database as one array
    /// parameter per column, unnested by one statement, so a batch takes a handful of round trips
    /// whatever its size.
    public func push(_ push: CheckedPush, principal: Principal) async throws -> PushOutcome {
        try await transaction { connection in
            var storage = PushSteps(store: self, connection: connection, receivedAt: push.receivedAt)
            return try await PushTransaction.run(push, principal: principal, in: &storage)
        }
    }

    /// The statements of a push's steps, on the transaction's connection.
    private struct PushSteps: AsyncPushStorage {
        let store: PostgresSyncStore
        let connection: PostgresTransaction
        let receivedAt: String
        /// The sites whose heads the push locked, with their sequence numbers and audit chain
        /// heads as they were: the heads it writes.
        var locked: [String: LockedSite] = [:]

        func lockReplica(_ replica: String) async throws -> StoredReplica? {
            try await store.lockReplica(connection, replica, at: receivedAt)
        }

        func sites(of keys: [RecordKey]) async throws -> [RecordKey: String] { try await store.sites(connection, keys) }

        mutating func lockHeads(_ sites: [String]) async throws -> [String: Int64] {
            locked = try await store.lockHeads(connection, sites)
            return locked.mapValues(\.seq)
        }

        func records(_ keys: [RecordKey]) async throws -> [RecordKey: ServerRecord] { try await store.readRecords(connection, keys) }

        func writtenValues(_ keys: [WrittenValueKey]) async throws -> [WrittenValueKey: FieldValue] {
            try await store.writtenValues(connection, keys)
        }

        func loggedConflicts(_ ids: [String]) async throws -> Set<String> {
            var logged = Set<String>()
            for try await id in try await connection.query("SELECT id FROM conflicts WHERE id = ANY(\(ids))").decode(String.self) {
                logged.insert(id)
            }
            return logged
        }

        func write(_ writes: PushWrites) async throws {
            try await store.write(connection, writes, locked: locked)
            try await store.beforeCommit?(writes)
        }
    }

    /// Locks the replica's row, creating an empty one first: a row that does not exist cannot be
    /// locked, and two first pushes of a replica racing on two instances must still serialise.
    /// The empty row is rolled back with a push that applies nothing.
    private func lockReplica(_ connection: PostgresTransaction, _ replica: String, at time: String) async throws -> StoredReplica? {
        try await connection.execute(
            """
            INSERT INTO replicas (replica_id, last_seq, last_applied, last_conflicts, "user", first_seen, last_seen)
            VALUES (\(replica), 0, 0, 0, '', \(time), \(time)) ON CONFLICT DO NOTHING
            """
        )
        let state = try await Self.replicaState(connection, replica, lock: true, logger: logger)
        return state?.lastSeq == .zero ? nil : state
    }

    private func sites(_ connection: PostgresTransaction, _ keys: [RecordKey]) async throws -> [RecordKey: String] {
        var sites: [RecordKey: String] = [:]
        for try await row in try await connection.query(Self.recordSites(keys)) {
            var cells = RowCells(row)
            let key = RecordKey(table: try cells.requiredText(), id: try cells.requiredText())
            sites[key] = try cells.requiredText()
        }
        return sites
    }

    /// The sites of the stored records among `keys`, each looked up by the records' key.
    static func recordSites(_ keys: [RecordKey]) -> PostgresQuery {
        """
        SELECT k.tbl, k.id, r.site_id FROM unnest(\(keys.map(\.table)), \(keys.map(\.id))) AS k(tbl, id)
        CROSS JOIN LATERAL (SELECT site_id FROM records WHERE tbl = k.tbl AND id = k.id LIMIT 1) AS r
        """
    }

    /// A site's head row as a push locked it.
    struct LockedSite {
        /// The last sequence number given to a change of the site.
        var seq: Int64
        /// The hash of the last row of the site's audit chain; nil before the first.
        var auditHead: String?
    }

    /// Locks the sites' head rows in site order, creating missing ones first.
    private func lockHeads(_ connection: PostgresTransaction, _ sites: [String]) async throws -> [String: LockedSite] {
        try await connection.execute("INSERT INTO sites (site_id, seq) SELECT unnest(\(sites)), 0 ON CONFLICT DO NOTHING")
        var heads: [String: LockedSite] = [:]
        let rows = try await connection.query(
            "SELECT site_id, seq, audit_head FROM sites WHERE site_id = ANY(\(sites)) ORDER BY site_id FOR UPDATE")
        for try await (site, seq, head) in rows.decode((String, Int64, String?).self) { heads[site] = LockedSite(seq: seq, auditHead: head) }
        return heads
    }

    private func readRecords(_ connection: PostgresTransaction, _ keys: [RecordKey]) async throws -> [RecordKey: ServerRecord] {
        var records: [RecordKey: ServerRecord] = [:]
        var byTable: [String: [String]] = [:]
        for key in keys { byTable[key.table, default: []].append(key.id) }
        for (tableName, ids) in byTable {
            let table = try schema.table(tableName)
            for try await row in try await connection.query(Self.storedRecords(table, ids: ids)) {
                var cells = RowCells(row)
                let base = Stamp(hlc: HLC(rawValue: try cells.requiredInteger()), replica: try cells.requiredText(), user: try cells.requiredText())
                let stamps = FieldStamps(base: base, overrides: try FieldStamps.overrides(fromJSON: try cells.text()))
                let (site, id) = (try cells.requiredText(), try cells.requiredText())
                var values: [String: FieldValue] = [:]
                for column in table.columns { values[column.name] = try cells.value(column) }
                records[RecordKey(table: table.name, id: id)] = ServerRecord(site: site, stamps: stamps, values: values)
            }
        }
        return records
    }

    /// The stamps and values of the stored records of `table` among `ids`: the stamps' five
    /// columns, the id, then the table's columns.
    static func storedRecords(_ table: TableSchema, ids: [String]) -> PostgresQuery {
        let columns = table.columnNames.map { "t.\(quoted($0))" }.joined(separator: ", ")
        return """
            SELECT r.hlc, r.replica, r."user", r.fields, r.site_id, k.id, \(unescaped: columns) FROM unnest(\(ids)) AS k(id)
            CROSS JOIN LATERAL (SELECT hlc, replica, "user", fields, site_id FROM records WHERE tbl = \(table.name) AND id = k.id LIMIT 1) AS r
            \(unescaped: rowByID(table, as: "t"))
            """
    }

    /// A join to the row of `table` whose id is `k.id`, found through the table's key.
    ///
    /// The lookups of a batch or a page go through the key one id at a time, whatever the
    /// statistics say: with `id = ANY(…)` or a plain join, the planner of a table just filled (not
    /// yet analysed), or of one of a few hundred thousand rows, reads the whole table for a couple
    /// of thousand ids, a cost that grows with the table (docs/BENCHMARKS.md). A subquery with a
    /// `LIMIT` is never merged into the join, so it is run per id, through the key.
    static func rowByID(_ table: TableSchema, as alias: String) -> String {
        let columns = table.columnNames.map(quoted).joined(separator: ", ")
        return "CROSS JOIN LATERAL (SELECT \(columns) FROM \(quoted(table.name)) WHERE id = k.id LIMIT 1) AS \(alias)"
    }

    private func writtenValues(_ connection: PostgresTransaction, _ keys: [WrittenValueKey]) async throws -> [WrittenValueKey: FieldValue] {
        var values: [WrittenValueKey: FieldValue] = [:]
        for key in keys {
            let rows = try await connection.query(
                """
                SELECT (a.new_values::jsonb -> (f.ord - 1)::int)::text
                FROM audit a CROSS JOIN LATERAL jsonb_array_elements_text(a.fields::jsonb) WITH ORDINALITY AS f(name, ord)
                WHERE a.tbl = \(key.record.table) AND a.record_id = \(key.record.id) AND a.replica = \(key.version.replica) AND f.name = \(key.field)
                  AND coalesce((a.hlcs::jsonb ->> (f.ord - 1)::int)::bigint, a.seq) = \(key.version.hlc.rawValue)
                ORDER BY a.id DESC LIMIT 1
                """
            )
            var value = FieldValue.null
            for try await json in rows.decode(String?.self) { value = try FieldValue(json: json) }
            values[key] = value
        }
        return values
    }

    /// Writes a push in one statement and one round trip: each kind of row goes as one array
    /// parameter per column (``PostgresRows``), unnested by one data-modifying part of the
    /// statement. The parts touch different rows, as they must (they all see the snapshot the
    /// statement starts with): new records, changed records (one part per table and set of fields,
    /// a record in one of them only), conflicts, the records' stamps, audit rows, the sites' heads
    /// and the replica's row. The statement ends by notifying every instance's listener of the
    /// sites written, which PostgreSQL delivers at the commit, never before and not at all on a
    /// rollback: it wakes their pulls waiting for these sites.
    private func write(_ connection: PostgresTransaction, _ writes: PushWrites, locked: [String: LockedSite]) async throws {
        var statement = CombinedStatement()
        let shadowCount = writes.created.reduce(0) { $0 + $1.records.count } + writes.changed.count + writes.conflicts.count
        var shadows = PostgresRows([.text, .text, .text, .bigint, .bigint, .text, .text, .text], rows: shadowCount)
        func shadow(_ table: String, _ id: String, _ site: String, _ seq: Int64, _ stamps: FieldStamps) {
            shadows[0].append(table)
            shadows[1].append(id)
            shadows[2].append(site)
            shadows[3].append(seq)
            shadows[4].append(stamps.base.version.hlc.rawValue)
            shadows[5].append(stamps.base.version.replica)
            shadows[6].append(stamps.base.user)
            shadows[7].append(stamps.overridesJSON)
        }
        for group in writes.created {
            var rows = PostgresRows([.text] + (try PostgresColumn.Element.of(group.columns, in: group.table)), rows: group.records.count)
            for record in group.records {
                rows[0].append(record.id)
                for (offset, value) in record.values.enumerated() { try rows[offset + 1].append(value) }
                shadow(group.table.name, record.id, record.site, record.seq, record.stamps)
            }
            let names = (["id"] + group.columns).map(Self.quoted).joined(separator: ", ")
            statement.add("INSERT INTO \(Self.quoted(group.table.name)) (\(names)) SELECT * FROM \(rows.unnest(in: &statement))")
        }
        // Changed values: one part per table and set of fields changed.
        var changedGroups: [String: (table: TableSchema, fields: [String], rows: PostgresRows)] = [:]
        for record in writes.changed {
            // The site is the record's already; the upsert below leaves it.
            shadow(record.table.name, record.id, "", record.seq, record.stamps)
            guard !record.writes.isEmpty else { continue }
            let fields = record.writes.map(\.field)
            let key = ([record.table.name] + fields).joined(separator: "\u{1F}")
            if changedGroups[key] == nil {
                changedGroups[key] = (record.table, fields, PostgresRows([.text] + (try PostgresColumn.Element.of(fields, in: record.table))))
            }
            changedGroups[key]!.rows[0].append(record.id)
            for (offset, write) in record.writes.enumerated() { try changedGroups[key]!.rows[offset + 1].append(write.value) }
        }
        for (table, fields, rows) in changedGroups.values {
            let assignments = fields.enumerated().map { "\(Self.quoted($1)) = x.c\($0 + 1)" }.joined(separator: ", ")
            let names = (["id"] + fields.indices.map { "c\($0 + 1)" }).joined(separator: ", ")
            statement.add(
                """
                UPDATE \(Self.quoted(table.name)) AS t SET \(assignments)
                FROM \(rows.unnest(in: &statement)) AS x(\(names)) WHERE t.id = x.id
                """
            )
        }
        if !writes.conflicts.isEmpty {
            let table = TableSchema.conflicts
            var rows = PostgresRows([.text] + table.columns.map { PostgresColumn.Element($0.type) }, rows: writes.conflicts.count)
            for conflict in writes.conflicts {
                let values = conflict.values(detectedAt: writes.receivedAt)
                rows[0].append(conflict.entry.id)
                for (offset, column) in table.columnNames.enumerated() { try rows[offset + 1].append(values[column] ?? .null) }
                shadow(table.name, conflict.entry.id, conflict.entry.site, conflict.seq, conflict.stamps)
            }
            let names = (["id"] + table.columnNames).map(Self.quoted).joined(separator: ", ")
            statement.add("INSERT INTO conflicts (\(names)) SELECT * FROM \(rows.unnest(in: &statement)) ON CONFLICT (id) DO NOTHING")
        }
        if shadows.count > 0 {
            // New records and conflicts are inserted; changed ones keep their site and take the rest.
            statement.add(
                """
                INSERT INTO records (tbl, id, site_id, seq, hlc, replica, "user", fields) SELECT * FROM \(shadows.unnest(in: &statement))
                ON CONFLICT (tbl, id) DO UPDATE SET
                    seq = excluded.seq, hlc = excluded.hlc, replica = excluded.replica, "user" = excluded."user", fields = excluded.fields
                """
            )
        }
        var auditHeads = locked.compactMapValues(\.auditHead)
        if !writes.audit.isEmpty {
            var rows = PostgresRows(
                [.text, .text, .text, .text, .bigint, .text, .text, .text, .text, .text, .text, .text, .text, .text, .text], rows: writes.audit.count
            )
            var fields = AuditFieldsText()
            for row in writes.audit {
                guard locked[row.site] != nil else {
                    throw StorageError(.failed, code: "audit_chain", message: "an audit row of a site whose head the push did not lock")
                }
                let cells = AuditChain.cells(row, receivedAt: writes.receivedAt, replica: writes.replicaID, fields: fields.text(of: row.fields))
                let hash = AuditChain.auditHash(previous: auditHeads[row.site] ?? AuditChain.genesis, cells: cells)
                auditHeads[row.site] = hash
                rows[0].append(row.site)
                rows[1].append(row.table)
                rows[2].append(row.recordID)
                rows[3].append(row.user)
                rows[4].append(row.seq.rawValue)
                for index in 7..<16 { rows[index - 2].append(cells[index]) }
                rows[14].append(hash)
            }
            // In the batch's order, so that the audit ids follow it and each site's chain.
            statement.add(
                """
                INSERT INTO audit (received_at, replica, site_id, tbl, record_id, "user", seq, fields, new_values, old_values, hlcs, bases, outcomes, reasons, conflicts, authors, hash)
                SELECT \(statement.bind(writes.receivedAt)), \(statement.bind(writes.replicaID)),
                    a.site_id, a.tbl, a.record_id, a."user", a.seq, a.fields, a.new_values, a.old_values, a.hlcs, a.bases, a.outcomes, a.reasons, a.conflicts,
                    a.authors, a.hash
                FROM \(rows.unnest(in: &statement))
                    WITH ORDINALITY AS a(site_id, tbl, record_id, "user", seq, fields, new_values, old_values, hlcs, bases, outcomes, reasons, conflicts, authors, hash, n)
                ORDER BY a.n
                """
            )
        }
        let days = writes.changesBySite.sorted { $0.key < $1.key }
        if !days.isEmpty {
            statement.add(
                """
                INSERT INTO site_days (site_id, day, changes)
                SELECT d.site_id, \(statement.bind(writes.day)), d.changes FROM unnest(\(statement.bind(days.map(\.key))), \(statement.bind(days.map { Int64($0.value) }))) AS d(site_id, changes)
                ON CONFLICT (site_id, day) DO UPDATE SET changes = site_days.changes + excluded.changes
                """
            )
        }
        // Every locked site's row once: a statement may change a row only once.
        let sites = locked.keys.sorted()
        let seqs = sites.map { writes.heads[$0] ?? locked[$0]!.seq }
        let chainHeads = sites.map { auditHeads[$0] ?? "" }
        statement.add(
            """
            UPDATE sites SET seq = h.seq, audit_head = nullif(h.audit_head, '')
            FROM unnest(\(statement.bind(sites)), \(statement.bind(seqs)), \(statement.bind(chainHeads))) AS h(site_id, seq, audit_head)
            WHERE sites.site_id = h.site_id
            """
        )
        statement.add(
            """
            UPDATE replicas SET last_seq = \(statement.bind(writes.replica.lastSeq.rawValue)), last_applied = \(statement.bind(Int64(writes.replica.lastApplied))),
                last_conflicts = \(statement.bind(Int64(writes.replica.lastConflicts))), "user" = \(statement.bind(writes.user)),
                last_seen = \(statement.bind(writes.receivedAt)), last_push = \(statement.bind(writes.replica.lastPush))
            WHERE replica_id = \(statement.bind(writes.replicaID))
            """
        )
        let notice = CommittedPush(replica: writes.replicaID, sites: Set(locked.keys)).payload
        statement.finish("SELECT pg_notify(\(statement.bind(Self.commitChannel)), \(statement.bind(notice)))")
        try await connection.execute(statement.query)
    }
}

/// One SQL statement made of data-modifying parts (`WITH w0 AS (INSERT ...), w1 AS (UPDATE ...)
/// SELECT 1`), each run once and to completion, all in the snapshot the statement starts with.
struct CombinedStatement {
    private var binds = PostgresBindings()
    private var parts: [String] = []
    private var final = "SELECT 1"

    /// The placeholder of a new parameter holding `value`.
    mutating func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }

    /// The placeholder of a new parameter holding `value` or NULL.
    mutating func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value?) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }

    mutating func add(_ sql: String) { parts.append(sql) }

    /// The statement's final query, after every part (`SELECT 1` unless set).
    mutating func finish(_ sql: String) { final = sql }

    var query: PostgresQuery {
        let sql = "WITH " + parts.enumerated().map { "w\($0) AS (\($1))" }.joined(separator: ",\n") + "\n" + final
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}
