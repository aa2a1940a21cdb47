import Logging
import NIOCore
import PostgresNIO
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization

/// What PostgreSQL does to the statements of a history on that store, drawn from the history's
/// seeded generator before each statement of every transaction (``PostgresSyncStore/FaultHook``).
///
/// Each fault is a real failure of the transaction's own connection, raised by PostgreSQL itself:
/// the backend terminated, a statement cancelled by its timeout, a serialization failure, a
/// deadlock, a unique violation, a full disk; or, armed for the transaction, a failure raised
/// inside the push's own write statement, behind the row it returns (``setup``), where an unread
/// error used to hide. The store must answer none of them with success for what it did not commit,
/// and run again what is worth running again.
final class DatabaseFaults: Sendable {
    enum Kind: String, CaseIterable, Sendable {
        case terminated, timeout, serialization, deadlock, uniqueViolation, diskFull, failingWrite
    }

    /// What a history's database needs for ``Kind/failingWrite``: a trigger on the audit trail
    /// that raises the SQLSTATE the transaction's `sitesync.fail` setting names, after the
    /// statement that writes a push.
    static let setup = [
        """
        CREATE FUNCTION sitesync_test_fail_armed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF coalesce(current_setting('sitesync.fail', true), '') <> '' THEN
                RAISE EXCEPTION 'injected failure of the write' USING ERRCODE = current_setting('sitesync.fail');
            END IF;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER sitesync_test_fail_armed AFTER INSERT ON audit FOR EACH STATEMENT EXECUTE FUNCTION sitesync_test_fail_armed()",
    ]

    private let state: Mutex<(generator: SeededGenerator, enabled: Bool, injected: [Kind: Int])>
    /// Percent of statements that fail.
    let rate: Int

    /// Faults drawn from `seed`, none until ``enable()``: a history sets its server up first.
    init(seed: UInt64, rate: Int = 2) {
        state = Mutex((SeededGenerator(seed: seed), false, [:]))
        self.rate = rate
    }

    func enable() { state.withLock { $0.enabled = true } }

    func disable() { state.withLock { $0.enabled = false } }

    /// How many of each kind were injected.
    var injected: [Kind: Int] { state.withLock { $0.injected } }

    /// The hook to give the store.
    var hook: PostgresSyncStore.FaultHook {
        { [self] _, connection in
            guard let kind = draw() else { return }
            try await Self.inject(kind, on: connection)
        }
    }

    private func draw() -> Kind? {
        state.withLock { state in
            guard state.enabled, Int.random(in: 0..<100, using: &state.generator) < rate else { return nil }
            let kind = Kind.allCases[Int.random(in: 0..<Kind.allCases.count, using: &state.generator)]
            state.injected[kind, default: 0] += 1
            return kind
        }
    }

    private static let logger = Logger(label: "sitesync.convergence.faults", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Makes PostgreSQL fail the transaction running on `connection`; each statement is read to its
    /// end, so its error is thrown here.
    static func inject(_ kind: Kind, on connection: PostgresConnection) async throws {
        switch kind {
        case .terminated:
            _ = try await connection.query("SELECT pg_terminate_backend(pg_backend_pid())", logger: logger).get()
        case .timeout:
            _ = try await connection.query("SET LOCAL statement_timeout = 1", logger: logger).get()
            _ = try await connection.query("SELECT pg_sleep(0.05)", logger: logger).get()
        case .serialization: try await raise("40001", on: connection)
        case .deadlock: try await raise("40P01", on: connection)
        case .uniqueViolation: try await raise("23505", on: connection)
        case .diskFull: try await raise("53100", on: connection)
        case .failingWrite:
            // Armed for this transaction only: a push's write statement fails; a pull is untouched.
            _ = try await connection.query("SELECT set_config('sitesync.fail', '53100', true)", logger: logger).get()
        }
    }

    private static func raise(_ state: String, on connection: PostgresConnection) async throws {
        let sql = "DO $$ BEGIN RAISE EXCEPTION 'injected failure' USING ERRCODE = '\(state)'; END $$"
        _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).get()
    }
}
