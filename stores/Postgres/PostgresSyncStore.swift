import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import SiteSyncCore
import SiteSyncRules

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
    package let schema: Schema
    let logger: Logger
    /// Runs in each push's transaction after its writes, before the commit; tests hold a push open
    /// there, or roll it back by throwing.
    let beforeCommit: (@Sendable (PushWrites) async throws -> Void)?
    /// Runs before every statement of every transaction, on its connection: tests break the
    /// connection or fail the statement there (``FaultHook``).
    let faults: FaultHook?

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

    /// A store whose every transaction runs `faults` before each statement: fault injection for
    /// the tests that make PostgreSQL fail in the middle of a request.
    package convenience init(url: String, schema: Schema, logger: Logger, faults: FaultHook?) throws {
        try self.init(url: url, schema: schema, maximumConnections: 4, logger: logger, beforeCommit: nil, faults: faults)
    }

    init(
        url: String, schema: Schema, maximumConnections: Int, logger: Logger, beforeCommit: (@Sendable (PushWrites) async throws -> Void)?,
        faults: FaultHook? = nil
    ) throws {
        var configuration = try Self.configuration(url)
        configuration.options.maximumConnections = maximumConnections
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.schema = schema
        self.logger = logger
        self.beforeCommit = beforeCommit
        self.faults = faults
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
    ///
    /// A transaction is acknowledged only when PostgreSQL answered its `COMMIT` with `COMMIT`: one
    /// that a failed statement aborted is answered `ROLLBACK`, which throws here. A write
    /// transaction that fails on a serialization failure, a deadlock or a unique violation runs
    /// again from the start (``retriedStates``), a few times, after a short random pause; it reads
    /// everything again, so a push that lost a race to another site's is refused by the sync rules.
    package func transaction<T: Sendable>(
        readOnly: Bool = false, _ body: @Sendable (PostgresTransaction) async throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await attemptTransaction(readOnly: readOnly, body)
            } catch let error as StorageError where !readOnly && attempt < Self.maximumAttempts && Self.retriedStates.contains(error.code) {
                logger.notice("transaction failed and runs again", metadata: ["sync.error": "\(error.code)", "sync.attempt": "\(attempt)"])
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 2...20) * attempt))
            }
        }
    }

    private func attemptTransaction<T: Sendable>(
        readOnly: Bool, _ body: @Sendable (PostgresTransaction) async throws -> T
    ) async throws -> T {
        do {
            return try await client.withConnection { connection in
                // A read sees one snapshot from its first statement to its last.
                let begin: PostgresQuery = readOnly ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN"
                _ = try await PostgresTransaction.unlessClosed(connection, connection.query(begin, logger: self.logger))
                do {
                    let value = try await body(PostgresTransaction(connection: connection, logger: self.logger, faults: self.faults))
                    let commit = try await PostgresTransaction.unlessClosed(connection, connection.query("COMMIT", logger: self.logger)).metadata
                    guard commit.command == "COMMIT" else { throw StorageError.rolledBack(commit.command) }
                    return value
                } catch {
                    _ = try? await PostgresTransaction.unlessClosed(connection, connection.query("ROLLBACK", logger: self.logger))
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
            try await self.tokens(connection.query("SELECT \(unescaped: StoredToken.columns) FROM tokens WHERE hash = \(hash)")).first
        }
    }

    public func createToken(hash: String, role: Role, site: String?, label: String?, expiresAt: String?) async throws {
        _ = try await transaction { connection in
            try await connection.execute(
                """
                INSERT INTO tokens (hash, role, site_id, label, created_at, expires_at)
                VALUES (\(hash), \(role.rawValue), \(site), \(label), \(Self.now()), \(expiresAt))
                """
            )
        }
    }

    public func tokens() async throws -> [StoredToken] {
        try await transaction(readOnly: true) { connection in
            try await self.tokens(connection.query("SELECT \(unescaped: StoredToken.columns) FROM tokens ORDER BY created_at, hash"))
        }
    }

    public func revokeTokens(hashes: [String], at time: String) async throws -> Int {
        try await transaction { connection in
            let rows = try await connection.query(
                "UPDATE tokens SET revoked_at = \(time) WHERE revoked_at IS NULL AND hash = ANY(\(hashes)) RETURNING hash"
            )
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    public func recordTokenUse(hash: String, at time: String) async throws {
        _ = try await transaction { connection in
            try await connection.execute("UPDATE tokens SET last_used_at = \(time) WHERE hash = \(hash)")
        }
    }

    func tokens(_ rows: FetchedRows) async throws -> [StoredToken] {
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

    public func enrolReplica(
        _ replica: String, tokenHash: String, principal: Principal, label: String, enrolledBy: String, limit: Int
    ) async throws -> Enrolment {
        try await transaction { connection in
            // The enrolling token's row, locked: its enrolments are counted one at a time.
            try await connection.execute("SELECT 1 FROM tokens WHERE hash = \(enrolledBy) FOR UPDATE")
            var owner: String??
            for try await owning in try await connection.query("SELECT replica_id FROM tokens WHERE hash = \(tokenHash)").decode(String?.self) {
                owner = .some(owning)
            }
            // Registered already: with this credential, a retry whose answer was lost; with another,
            // another laptop or a copy of this one's file.
            if let owner {
                guard owner == replica else { return .taken }
            } else {
                var enrolled: Int64 = 0
                for try await count in try await connection.query("SELECT count(*) FROM tokens WHERE enrolled_by = \(enrolledBy)").decode(Int64.self) {
                    enrolled = count
                }
                guard enrolled < limit else { return .limitReached(Int(enrolled)) }
                let inserted = try await connection.execute(
                    """
                    INSERT INTO tokens (hash, role, site_id, label, created_at, replica_id, enrolled_by)
                    VALUES (\(tokenHash), \(principal.role.rawValue), \(principal.site), \(label), \(Self.now()), \(replica), \(enrolledBy))
                    ON CONFLICT DO NOTHING
                    """
                )
                if inserted.rows != 1 {
                    // A retry of this very enrolment committed meanwhile, or another credential
                    // holds the replica id.
                    var owned = false
                    for try await owning in try await connection.query("SELECT replica_id FROM tokens WHERE hash = \(tokenHash)").decode(String?.self) {
                        owned = owning == replica
                    }
                    guard owned else { return .taken }
                }
            }
            let state = try await Self.replicaState(connection, replica, lock: false, logger: self.logger)
            return .enrolled(acked: state?.lastSeq ?? .zero)
        }
    }

    public func replicaState(_ replica: String) async throws -> StoredReplica? {
        try await transaction(readOnly: true) { connection in try await Self.replicaState(connection, replica, lock: false, logger: self.logger) }
    }

    static func replicaState(_ connection: PostgresTransaction, _ replica: String, lock: Bool, logger: Logger) async throws -> StoredReplica? {
        let rows = try await connection.query(
            "SELECT last_seq, last_applied, last_conflicts, last_push FROM replicas WHERE replica_id = \(replica)\(unescaped: lock ? " FOR UPDATE" : "")"
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
            // Read to its end: an error raised after the first row arrives in the rows.
            for try await _ in try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger) {}
        } catch let error as PSQLError {
            throw StorageError(error)
        }
    }

    /// The first column of every row of a query that selects text (NULL as `NULL`), read in one
    /// read-only transaction: for operators' checks and for tests.
    public func rowsAsText(_ sql: String) async throws -> [String] {
        try await transaction(readOnly: true) { connection in
            var rows: [String] = []
            for try await text in try await connection.query(PostgresQuery(unsafeSQL: sql)).decode(String?.self) {
                rows.append(text ?? "NULL")
            }
            return rows
        }
    }
}

extension StorageError {
    /// PostgreSQL's SQLSTATE and message; a lost connection, a shutdown, an overloaded server, a
    /// cancelled statement or a lost race is worth another try.
    init(_ error: PSQLError) {
        let state = error.serverInfo?[.sqlState] ?? ""
        let message = error.serverInfo?[.message] ?? "\(error.code)"
        // 08: connection exception; 53: insufficient resources (a full disk); 57: operator
        // intervention (a statement timeout, a terminated backend, a shutdown); 40: rollback
        // (serialization, deadlock); 23505: a unique violation, which a write runs again for.
        let transient = state.isEmpty || ["08", "53", "57", "40"].contains(String(state.prefix(2))) || state == "23505"
        self.init(transient ? .unavailable : .failed, code: state.isEmpty ? "\(error.code)" : state, message: message)
    }

    /// A transaction that PostgreSQL rolled back when asked to commit it (its `COMMIT` was answered
    /// `tag`): a statement of it failed, so nothing of it was written.
    /// The connection closed under a statement: the server terminated it, restarted or went away.
    static let connectionClosed = StorageError(.unavailable, code: "connection_closed", message: "the connection to the database closed")

    static func rolledBack(_ tag: String) -> StorageError {
        StorageError(
            .unavailable, code: "rolled_back",
            message: "the database answered the commit with \(tag): a statement of the transaction failed and nothing was written")
    }
}

extension PostgresSyncStore {
    /// Every row of a query, each cell as a value of its type (text, integer or real), read in one
    /// read-only transaction: for tests that compare the stores' contents, which must never depend
    /// on the store.
    package func rows(_ sql: String) async throws -> [[FieldValue]] {
        try await transaction(readOnly: true) { connection in
            var rows: [[FieldValue]] = []
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql)) {
                var cells = RowCells(row)
                var values: [FieldValue] = []
                for cell in row {
                    switch cell.dataType {
                    case .int2, .int4, .int8: values.append(try cells.integer().map(FieldValue.integer) ?? .null)
                    case .float4, .float8, .numeric: values.append(try cells.real().map(FieldValue.real) ?? .null)
                    default: values.append(try cells.text().map(FieldValue.text) ?? .null)
                    }
                }
                rows.append(values)
            }
            return rows
        }
    }
}
