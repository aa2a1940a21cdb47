import Logging
import NIOCore
import PostgresNIO
import SiteSyncRules
import Synchronization

/// One transaction's connection: every statement of the PostgreSQL store runs through it.
///
/// postgres-nio answers a statement that returns rows as soon as their description arrives; an
/// error raised while the statement executes (a statement timeout, a unique violation, a
/// serialization failure, a terminated backend) arrives later, in the row stream. A statement whose
/// rows nobody reads would hide it, and the `COMMIT` that follows an aborted transaction is answered
/// `ROLLBACK`, without an error. So ``execute(_:)`` reads a statement to its end, and the store's
/// transaction checks that its `COMMIT` committed (docs/ARCHITECTURE.md, "Nothing acknowledged that
/// was not committed").
package struct PostgresTransaction: Sendable {
    let connection: PostgresConnection
    let logger: Logger
    /// Called before each statement with its position in the transaction: fault injection for tests.
    let faults: PostgresSyncStore.FaultHook?
    private let counter = StatementCounter()

    init(connection: PostgresConnection, logger: Logger, faults: PostgresSyncStore.FaultHook?) {
        self.connection = connection
        self.logger = logger
        self.faults = faults
    }

    /// Runs a statement and reads its rows, at most a page's worth (a pull page, a batch's
    /// lookups, a page of the audit trail), so that any error it raises is thrown here.
    package func query(_ query: PostgresQuery) async throws -> FetchedRows {
        try await beforeStatement(query)
        return FetchedRows(rows: try await Self.unlessClosed(connection, connection.query(query, logger: logger)).rows)
    }

    /// Runs a statement to its end, reading and dropping its rows, so that any error it raises is
    /// thrown here; returns its command tag.
    @discardableResult
    package func execute(_ query: PostgresQuery) async throws -> PostgresQueryMetadata {
        try await beforeStatement(query)
        return try await Self.unlessClosed(connection, connection.query(query, logger: logger)).metadata
    }

    /// The outcome of `future`, a statement sent on `connection`, or an error once the connection
    /// is closed.
    ///
    /// A statement written to a connection whose server closed it (a terminated backend, a
    /// restart) before the write reached it is dropped by postgres-nio without failing its
    /// future: it would wait for ever, holding its request and its pooled connection.
    static func unlessClosed<T: Sendable>(_ connection: PostgresConnection, _ future: EventLoopFuture<T>) async throws -> T {
        let outcome = future.eventLoop.makePromise(of: T.self)
        future.cascade(to: outcome)
        // Completing a completed promise does nothing: whichever comes first decides.
        connection.closeFuture.whenComplete { _ in outcome.fail(StorageError.connectionClosed) }
        return try await outcome.futureResult.get()
    }

    private func beforeStatement(_ query: PostgresQuery) async throws {
        guard let faults else { return }
        try await faults(PostgresSyncStore.FaultPoint(statement: counter.next(), sql: query.sql), connection)
    }
}

/// The rows of a statement, read to its end: iterated like postgres-nio's row sequence.
package struct FetchedRows: AsyncSequence, Sendable {
    package typealias Element = PostgresRow
    package let rows: [PostgresRow]

    package struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[PostgresRow]>
        package mutating func next() async throws -> PostgresRow? { base.next() }
    }

    package func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: rows.makeIterator()) }

    /// Each row decoded as a tuple of `columns`.
    package func decode<each Column: PostgresDecodable>(_ columns: (repeat each Column).Type) -> AsyncThrowingMapSequence<Self, (repeat each Column)> {
        map { try $0.decode(columns) }
    }
}

/// The statements run so far in one transaction.
private final class StatementCounter: Sendable {
    private let count = Mutex(0)

    func next() -> Int {
        count.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}

extension PostgresSyncStore {
    /// Where a test's fault may strike: before the statement at `statement` (0 is the first after
    /// `BEGIN`) of a transaction, whose text is `sql`.
    package struct FaultPoint: Sendable {
        package var statement: Int
        package var sql: String
    }

    /// A test's fault injection: runs before every statement of every transaction, on the
    /// transaction's own connection, and may break it (terminate its backend, say) or throw.
    package typealias FaultHook = @Sendable (FaultPoint, PostgresConnection) async throws -> Void

    /// SQLSTATEs after which a write transaction is run again from its start: a serialization
    /// failure, a deadlock, and a unique violation (two sites creating one record id at once: run
    /// again, the push finds the other site's record, and the sync rules refuse it by name).
    static let retriedStates: Set<String> = ["40001", "40P01", "23505"]

    /// How many times a write transaction runs at most.
    static let maximumAttempts = 3
}
