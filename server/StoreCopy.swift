import Foundation
import GRDB
import PostgresNIO
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLite
import SiteSyncSQLiteStore

/// Copies a pilot's SQLite server database into an empty PostgreSQL store: tokens, replica states,
/// site heads, records and their stamps, the conflict log, the audit trail with its daily counts,
/// the laptops' latest reports, and people's accounts with their events, all as they are (monitoring sessions are not copied), so
/// that laptops continue from where they were, without a re-pull and without a conflict.
///
/// The copy is one PostgreSQL transaction: it is there whole, or not at all. The SQLite database
/// must not be in use (stop its server first): it is read in pages, one read transaction each.
public enum StoreCopy {
    /// What was copied, table by table.
    public struct Counts: Sendable, Equatable, CustomStringConvertible {
        /// The tables, in the order copied.
        public var tables: [String] = []
        /// Rows copied, by table.
        public var rows: [String: Int] = [:]

        mutating func add(_ table: String, _ count: Int) {
            tables.append(table)
            rows[table] = count
        }

        public var description: String { tables.map { "\($0) \(rows[$0] ?? 0)" }.joined(separator: ", ") }
    }

    /// A table copied as it is: its columns, each with its PostgreSQL type, in key order.
    private struct Table {
        var name: String
        var columns: [(name: String, type: String)]
        var order: String
    }

    /// Copies `source` into `target`, which must hold nothing yet (it is migrated first).
    ///
    /// Every page is read from one snapshot of the source, taken before the first: a write to the
    /// source during the copy (which `sitesync-server store copy` prevents by taking the file's
    /// serving lock) is not half in it. After the copy, and before it commits, every site's
    /// sequence number must cover its records, or a later push would reuse a number a pull has
    /// passed: the copy is refused and nothing is written. `afterPage` runs after each page is
    /// written (tests write to the source there).
    public static func copy(
        from source: SQLiteSyncStore, to target: PostgresSyncStore, pageSize: Int = 5000, afterPage: (@Sendable () async throws -> Void)? = nil
    ) async throws -> Counts {
        guard let pool = source.writer as? DatabasePool else {
            throw StoreCopyError("The source must be an SQLite database file (a pool of connections), which a snapshot can be read from.")
        }
        let snapshot = try pool.makeSnapshot()
        try await target.migrate()
        let schema = target.schema
        var tables = [
            Table(
                name: "tokens",
                columns: [
                    ("hash", "text"), ("role", "text"), ("site_id", "text"), ("label", "text"), ("created_at", "text"), ("replica_id", "text"),
                    ("expires_at", "text"), ("revoked_at", "text"), ("last_used_at", "text"),
                ], order: "hash"),
            Table(name: "sites", columns: [("site_id", "text"), ("seq", "bigint"), ("audit_head", "text")], order: "site_id"),
            Table(
                name: "replicas",
                columns: [
                    ("replica_id", "text"), ("last_seq", "bigint"), ("last_applied", "bigint"), ("last_conflicts", "bigint"), ("user", "text"),
                    ("first_seen", "text"), ("last_seen", "text"), ("last_push", "text"),
                ],
                order: "replica_id"
            ),
            Table(
                name: "records",
                columns: [
                    ("tbl", "text"), ("id", "text"), ("site_id", "text"), ("seq", "bigint"), ("hlc", "bigint"), ("replica", "text"), ("user", "text"),
                    ("fields", "text"),
                ],
                order: "tbl, id"
            ),
        ]
        for table in schema.tables {
            tables.append(
                Table(
                    name: table.name, columns: [("id", "text")] + table.columns.map { ($0.name, PostgresSyncStore.sqlType($0.type).lowercased()) }, order: "id"
                ))
        }
        tables.append(
            Table(
                name: "audit",
                columns: [
                    ("id", "bigint"), ("received_at", "text"), ("site_id", "text"), ("tbl", "text"), ("record_id", "text"), ("replica", "text"),
                    ("user", "text"),
                    ("seq", "bigint"), ("fields", "text"), ("new_values", "text"), ("old_values", "text"), ("hlcs", "text"), ("bases", "text"),
                    ("outcomes", "text"), ("reasons", "text"), ("conflicts", "text"), ("authors", "text"), ("hash", "text"),
                ],
                order: "id"
            ))
        tables.append(Table(name: "site_days", columns: [("site_id", "text"), ("day", "text"), ("changes", "bigint")], order: "site_id, day"))
        tables.append(
            Table(
                name: "replica_reports",
                columns: [
                    ("site_id", "text"), ("replica_id", "text"), ("user", "text"), ("build", "text"), ("schema_version", "bigint"), ("pending", "bigint"),
                    ("clock_offset_ms", "bigint"), ("last_sync_at", "text"),
                ],
                order: "site_id, replica_id"
            ))
        tables.append(
            Table(
                name: "accounts",
                columns: Account.columns.split(separator: ", ").map { (String($0), "text") },
                order: "username"
            ))
        tables.append(
            Table(
                name: "account_events",
                columns: [("id", "bigint")] + AccountEvent.columns.split(separator: ", ").map { (String($0), "text") } + [("hash", "text")],
                order: "id"
            ))
        tables.append(Table(name: "person_keys", columns: PersonKey.columns.split(separator: ", ").map { (String($0), "text") }, order: "key_id"))
        let copied = tables
        return try await target.transaction { connection in
            for table in ["tokens", "records", "audit", "replicas", "accounts"] {
                let held = try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)")).decode(Int64.self)
                for try await count in held where count > 0 {
                    throw StoreCopyError("The PostgreSQL store is not empty (\(table) holds \(count) rows); copy into a new database.")
                }
            }
            var counts = Counts()
            for table in copied {
                var offset = 0
                var total = 0
                while true {
                    let start = offset
                    let page = try await snapshot.read { db in
                        var rows = JSONRows(capacity: pageSize * 128)
                        let names = table.columns.map { $0.name.quotedDatabaseIdentifier }.joined(separator: ", ")
                        let cursor = try Row.fetchCursor(
                            db, sql: "SELECT \(names) FROM \(table.name.quotedDatabaseIdentifier) ORDER BY \(table.order) LIMIT ? OFFSET ?",
                            arguments: [pageSize, start]
                        )
                        while let row = try cursor.next() {
                            rows.startRow()
                            for index in table.columns.indices { rows.add(row.fieldValue(atIndex: index)) }
                            rows.endRow()
                        }
                        return rows
                    }
                    guard page.count > 0 else { break }
                    let names = table.columns.map { PostgresSyncStore.quoted($0.name) }.joined(separator: ", ")
                    let cells = table.columns.enumerated().map { index, column in
                        column.type == "text" ? "x->>\(index)" : "(x->>\(index))::\(column.type)"
                    }.joined(separator: ", ")
                    try await connection.execute(
                        """
                        INSERT INTO \(unescaped: PostgresSyncStore.quoted(table.name)) (\(unescaped: names))
                        SELECT \(unescaped: cells) FROM jsonb_array_elements(\(page.text)::jsonb) AS x
                        """
                    )
                    total += page.count
                    offset += pageSize
                    try await afterPage?()
                }
                counts.add(table.name, total)
            }
            // Every site's head at or past its records' greatest sequence number.
            let behind = try await connection.query(
                """
                SELECT r.site_id FROM records r LEFT JOIN sites s ON s.site_id = r.site_id
                GROUP BY r.site_id, s.seq HAVING s.seq IS NULL OR max(r.seq) > s.seq ORDER BY 1
                """
            )
            let sites = try behind.rows.map { try $0.decode(String.self) }
            guard sites.isEmpty else {
                throw StoreCopyError(
                    "The copy's sequence numbers of site \(sites.joined(separator: ", ")) do not cover its records (was the file written during the copy?); nothing was copied."
                )
            }
            // The chains begin where they began in the source, and the accounts chain continues from its head.
            let chains = try await snapshot.read { db in
                try Row.fetchAll(db, sql: "SELECT tbl, last_unchained, head FROM audit_chains").map {
                    (table: $0["tbl"] as String, last: $0["last_unchained"] as Int64, head: $0["head"] as String?)
                }
            }
            for chain in chains {
                try await connection.execute(
                    "UPDATE audit_chains SET last_unchained = \(chain.last), head = \(chain.head) WHERE tbl = \(chain.table)")
            }
            // The audit trail keeps its ids; new rows continue after them.
            for table in ["audit", "account_events"] {
                try await connection.execute(
                    PostgresQuery(
                        unsafeSQL: "SELECT setval(pg_get_serial_sequence('\(table)', 'id'), coalesce((SELECT max(id) FROM \(table)), 0) + 1, false)")
                )
            }
            return counts
        }
    }
}

/// Why a copy was refused; nothing was written.
public struct StoreCopyError: Error, CustomStringConvertible, Sendable {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
