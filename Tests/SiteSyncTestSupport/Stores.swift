import Foundation
import GRDB
import Logging
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLite
import SiteSyncSQLiteStore
import SiteSyncServer
import Testing
import TrialRecords

/// The stores the suites run against: SQLite always, and PostgreSQL when `SITESYNC_POSTGRES_URL`
/// names a cluster the tests may create databases in. In CI (`CI` set) PostgreSQL is always in the
/// list, so a missing cluster fails the tests instead of skipping them.
public enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    public static var all: [StoreKind] {
        let environment = ProcessInfo.processInfo.environment
        return environment["SITESYNC_POSTGRES_URL"].map { !$0.isEmpty } == true || environment["CI"] != nil ? [.sqlite, .postgres] : [.sqlite]
    }

    public var testDescription: String { rawValue }
}

/// Fresh PostgreSQL databases for tests, in the cluster `SITESYNC_POSTGRES_URL` names.
public enum PostgresTestDatabase {
    /// A migrated store on a new, empty database; its connection pool runs until the process ends.
    public static func store() async throws -> PostgresSyncStore {
        // Few connections each: the suites run many stores at once against one cluster.
        let store = try PostgresSyncStore(url: try await create(), schema: TrialSchema.current, maximumConnections: 3, logger: quiet)
        Task { try await store.run() }
        try await store.migrate()
        return store
    }

    /// Creates a new, empty database and returns its URL.
    public static func create() async throws -> String {
        let url = try #require(
            ProcessInfo.processInfo.environment["SITESYNC_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 },
            "SITESYNC_POSTGRES_URL must name a PostgreSQL cluster for the PostgreSQL store's tests (.ci/run starts one)"
        )
        let name = "sitesync_test_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        let admin = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: quiet)
        try await admin.withRunning { try await admin.execute("CREATE DATABASE \(name)") }
        return try databaseURL(url, name)
    }

    /// Errors only: a pool asked for a connection before its `run()` has started only says so.
    public static let quiet: Logger = {
        var logger = Logger(label: "sitesync.postgres.test")
        logger.logLevel = .error
        return logger
    }()

    /// `url` with its database replaced by `name`.
    public static func databaseURL(_ url: String, _ name: String) throws -> String {
        var components = try #require(URLComponents(string: url))
        components.path = "/\(name)"
        return try #require(components.string)
    }
}

/// What a store holds, read the same way from either store, to compare before and after.
public enum StoreContents {
    public static let tables = ["records", "audit", "replicas", "sites", "subjects", "adverse_events", "conflicts", "site_days", "replica_reports"]

    /// Every row of every table but the tokens, as text.
    public static func dump(_ store: any SyncStore) async throws -> [String: [String]] {
        var tables: [String: [String]] = [:]
        for table in Self.tables {
            tables[table] = try await rows(store, table)
        }
        return tables
    }

    private static func rows(_ store: any SyncStore, _ table: String) async throws -> [String] {
        switch store {
        case let sqlite as SQLiteSyncStore:
            try await sqlite.writer.read { db in try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY 1").map(\.description) }
        case let postgres as PostgresSyncStore:
            try await postgres.rowsAsText("SELECT t::text FROM \(table) t ORDER BY 1")
        default:
            preconditionFailure("no contents for \(type(of: store))")
        }
    }

    /// Every row a query selects, each cell as a value of its type, on either store: the query
    /// must be written in the SQL both understand.
    public static func select(_ store: any SyncStore, _ sql: String) async throws -> [[FieldValue]] {
        switch store {
        case let sqlite as SQLiteSyncStore:
            try await sqlite.writer.read { db in
                try Row.fetchAll(db, sql: sql).map { row in (0..<row.count).map { FieldValue.fromDatabaseValue(row[$0] as DatabaseValue) ?? .null } }
            }
        case let postgres as PostgresSyncStore:
            try await postgres.rows(sql)
        default:
            preconditionFailure("no contents for \(type(of: store))")
        }
    }

    /// The single number a `SELECT count(*) …` query answers.
    public static func count(_ store: any SyncStore, _ sql: String) async throws -> Int {
        switch store {
        case let sqlite as SQLiteSyncStore:
            try await sqlite.writer.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
        case let postgres as PostgresSyncStore:
            Int(try await postgres.rowsAsText("SELECT (\(sql))::text").first ?? "0") ?? 0
        default:
            preconditionFailure("no contents for \(type(of: store))")
        }
    }

    /// Runs a statement written in the SQL both stores understand, as someone with a database shell
    /// would: outside the store's rules.
    public static func execute(_ store: any SyncStore, _ sql: String) async throws {
        switch store {
        case let sqlite as SQLiteSyncStore:
            try await sqlite.writer.write { db in try db.execute(sql: sql) }
        case let postgres as PostgresSyncStore:
            try await postgres.execute(sql)
        default:
            preconditionFailure("no statements for \(type(of: store))")
        }
    }
}
