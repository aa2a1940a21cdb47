import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import SiteSyncCore

/// The central store on PostgreSQL, for several server instances behind a load balancer.
///
/// Its `PostgresClient` (a connection pool) runs as a service: the application runs it beside the
/// HTTP server; a command runs it for its own duration (``withRunning(_:)``). Every method is one
/// transaction; the sync rules above it (``PushTransaction``, ``PullTransaction``) decide what to
/// read and write, and the locks they ask for are row locks (`SELECT … FOR UPDATE`), held until
/// commit (docs/ARCHITECTURE.md, "The sync rules and the stores").
///
/// ```swift
/// let store = try PostgresSyncStore(url: "postgres://sitesync@127.0.0.1:5432/sitesync", schema: TrialSchema.current)
/// try await store.withRunning { try await store.migrate() }
/// ```
public final class PostgresSyncStore: SyncStore, Service {
    let client: PostgresClient
    let schema: Schema
    let logger: Logger
    /// Runs in each push's transaction after its writes, before the commit; tests hold a push open
    /// there, or roll it back by throwing.
    let beforeCommit: (@Sendable (PushWrites) async throws -> Void)?

    /// Connects to the database a `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` URL names
    /// (`?sslmode=require` asks for TLS), with at most `maximumConnections` connections; nothing is
    /// opened until the client runs.
    public convenience init(url: String, schema: Schema, maximumConnections: Int = 20, logger: Logger = Logger(label: "sitesync.postgres")) throws {
        try self.init(url: url, schema: schema, maximumConnections: maximumConnections, logger: logger, beforeCommit: nil)
    }

    /// A store that runs `beforeCommit` in each push's transaction, before the commit: fault
    /// injection for the tests that run the `sitesync-server` executable.
    package convenience init(url: String, schema: Schema, logger: Logger, beforeCommit: (@Sendable () async throws -> Void)?) throws {
        var hook: (@Sendable (PushWrites) async throws -> Void)?
        if let beforeCommit { hook = { _ in try await beforeCommit() } }
        try self.init(url: url, schema: schema, maximumConnections: 20, logger: logger, beforeCommit: hook)
    }

    init(
        url: String, schema: Schema, maximumConnections: Int, logger: Logger, beforeCommit: (@Sendable (PushWrites) async throws -> Void)?
    ) throws {
        var configuration = try Self.configuration(url)
        configuration.options.maximumConnections = maximumConnections
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.schema = schema
        self.logger = logger
        self.beforeCommit = beforeCommit
    }

    /// Whether `database` names a PostgreSQL database rather than an SQLite file.
    public static func isURL(_ database: String) -> Bool {
        database.hasPrefix("postgres://") || database.hasPrefix("postgresql://")
    }

    static func configuration(_ text: String) throws -> PostgresClient.Configuration {
        guard isURL(text), let url = URLComponents(string: text), let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty else {
            throw StorageError(.failed, code: "url", message: "a PostgreSQL database is named postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let tls: PostgresClient.Configuration.TLS =
            url.queryItems?.first(where: { $0.name == "sslmode" })?.value == "require" ? .require(.makeClientConfiguration()) : .disable
        return PostgresClient.Configuration(
            host: host, port: url.port ?? 5432, username: user, password: url.password, database: database.isEmpty ? nil : database, tls: tls
        )
    }

    /// Runs the connection pool until the service group shuts down.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.client.run() }
    }

    /// Runs the connection pool while `body` runs: for commands, which are not services. A store's
    /// pool runs once: by this, or by ``run()``.
    public func withRunning<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    // MARK: Transactions

    /// Runs `body` in a transaction on one pooled connection: committed when it returns, rolled
    /// back when it throws. The database's errors become ``StorageError``s; the rules' refusals
    /// pass through unchanged.
    func transaction<T: Sendable>(
        readOnly: Bool = false, _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        do {
            return try await client.withConnection { connection in
                // A read sees one snapshot from its first statement to its last.
                try await connection.query(readOnly ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN", logger: self.logger)
                do {
                    let value = try await body(connection)
                    try await connection.query("COMMIT", logger: self.logger)
                    return value
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: self.logger)
                    throw error
                }
            }
        } catch let error as PSQLError {
            throw StorageError(error)
        }
    }

    // MARK: Tokens and replicas

    public func token(hash: String) async throws -> StoredToken? {
        try await transaction(readOnly: true) { connection in
            try await self.tokens(connection.query("SELECT \(unescaped: StoredToken.columns) FROM tokens WHERE hash = \(hash)", logger: self.logger)).first
        }
    }

    public func createToken(hash: String, role: Role, site: String?, label: String?, expiresAt: String?) async throws {
        _ = try await transaction { connection in
            try await connection.query(
                """
                INSERT INTO tokens (hash, role, site_id, label, created_at, expires_at)
                VALUES (\(hash), \(role.rawValue), \(site), \(label), \(Self.now()), \(expiresAt))
                """,
                logger: self.logger
            )
        }
    }

    public func tokens() async throws -> [StoredToken] {
        try await transaction(readOnly: true) { connection in
            try await self.tokens(connection.query("SELECT \(unescaped: StoredToken.columns) FROM tokens ORDER BY created_at, hash", logger: self.logger))
        }
    }

    public func revokeTokens(hashes: [String], at time: String) async throws -> Int {
        try await transaction { connection in
            let rows = try await connection.query(
                "UPDATE tokens SET revoked_at = \(time) WHERE revoked_at IS NULL AND hash = ANY(\(hashes)) RETURNING hash", logger: self.logger
            )
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    public func recordTokenUse(hash: String, at time: String) async throws {
        _ = try await transaction { connection in
            try await connection.query("UPDATE tokens SET last_used_at = \(time) WHERE hash = \(hash)", logger: self.logger)
        }
    }

    func tokens(_ rows: PostgresRowSequence) async throws -> [StoredToken] {
        var tokens: [StoredToken] = []
        for try await (hash, role, site, replica, label, created, expires, revoked, used) in rows.decode(
            (String, String, String?, String?, String?, String, String?, String?, String?).self
        ) {
            guard let role = Role(rawValue: role) else { continue }
            tokens.append(
                StoredToken(
                    hash: hash, role: role, site: site, replica: replica, label: label, createdAt: created, expiresAt: expires, revokedAt: revoked,
                    lastUsedAt: used
                )
            )
        }
        return tokens
    }

    public func enrolReplica(_ replica: String, tokenHash: String, principal: Principal, label: String) async throws -> HLC? {
        try await transaction { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO tokens (hash, role, site_id, label, created_at, replica_id)
                VALUES (\(tokenHash), \(principal.role.rawValue), \(principal.site), \(label), \(Self.now()), \(replica))
                ON CONFLICT DO NOTHING RETURNING hash
                """,
                logger: self.logger
            )
            var added = false
            for try await _ in inserted { added = true }
            // Registered already: with this credential, a retry whose answer was lost; with another,
            // another laptop or a copy of this one's file.
            if !added {
                let owner = try await connection.query("SELECT replica_id FROM tokens WHERE hash = \(tokenHash)", logger: self.logger)
                var owned = false
                for try await (owning) in owner.decode(String?.self) { owned = owning == replica }
                guard owned else { return nil }
            }
            let state = try await Self.replicaState(connection, replica, lock: false, logger: self.logger)
            return state?.lastSeq ?? .zero
        }
    }

    public func replicaState(_ replica: String) async throws -> StoredReplica? {
        try await transaction(readOnly: true) { connection in try await Self.replicaState(connection, replica, lock: false, logger: self.logger) }
    }

    static func replicaState(_ connection: PostgresConnection, _ replica: String, lock: Bool, logger: Logger) async throws -> StoredReplica? {
        let rows = try await connection.query(
            "SELECT last_seq, last_applied, last_conflicts, last_push FROM replicas WHERE replica_id = \(replica)\(unescaped: lock ? " FOR UPDATE" : "")",
            logger: logger
        )
        for try await (seq, applied, conflicts, push) in rows.decode((Int64, Int64, Int64, String?).self) {
            return StoredReplica(lastSeq: HLC(rawValue: seq), lastApplied: Int(applied), lastConflicts: Int(conflicts), lastPush: push)
        }
        return nil
    }

    static func now() -> String { Date().formatted(.iso8601) }

    /// Runs one statement outside any transaction (`CREATE DATABASE` cannot run inside one).
    public func execute(_ sql: String) async throws {
        do {
            try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        } catch let error as PSQLError {
            throw StorageError(error)
        }
    }

    /// The first column of every row of a query that selects text (NULL as `NULL`), read in one
    /// read-only transaction: for operators' checks and for tests.
    public func rowsAsText(_ sql: String) async throws -> [String] {
        try await transaction(readOnly: true) { connection in
            var rows: [String] = []
            for try await text in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: self.logger).decode(String?.self) {
                rows.append(text ?? "NULL")
            }
            return rows
        }
    }
}

extension StorageError {
    /// PostgreSQL's SQLSTATE and message; a lost connection, a shutdown or an overloaded server is
    /// worth another try.
    init(_ error: PSQLError) {
        let state = error.serverInfo?[.sqlState] ?? ""
        let message = error.serverInfo?[.message] ?? "\(error.code)"
        // 08: connection exception; 53: insufficient resources; 57P: operator intervention; 40: rollback (serialization, deadlock).
        let transient = state.isEmpty || ["08", "53", "57", "40"].contains(String(state.prefix(2)))
        self.init(transient ? .unavailable : .failed, code: state.isEmpty ? "\(error.code)" : state, message: message)
    }
}
