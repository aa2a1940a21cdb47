import GRDB
import SiteSyncCore

extension Replica {
    /// The records of `table`, delivered now and again after every commit that changes the table:
    /// for a screen that shows them.
    ///
    /// Built on GRDB's `ValueObservation`: the first element is the table as it is, and each later
    /// one follows a commit through this replica's connections that changed it, whether a write
    /// through this type, raw SQL on ``writer``, or a pull of live sync (``SyncEngine/run(_:)``)
    /// applying other laptops' changes. Commits close together may arrive as one element. Writes
    /// of other processes (the `sitesync` command, the `sqlite3` shell) reach it at the next commit
    /// made here, such as the next pull.
    ///
    /// ```swift
    /// for try await subjects in replica.observe("subjects") {
    ///     print("\(subjects.count) subjects")
    /// }
    /// ```
    ///
    /// The sequence ends when the task iterating it is cancelled.
    ///
    /// - Parameters:
    ///   - table: a table of the replica's schema.
    ///   - includeDeleted: whether soft-deleted records are included, as in ``list(_:includeDeleted:)``.
    /// - Throws: `ValidationError` naming the schema's tables when `table` is not one of them,
    ///   before anything is observed.
    public func observe(_ table: String, includeDeleted: Bool = false) throws -> TableObservation {
        let tableSchema = try schema.table(table)
        let filter = includeDeleted ? "" : " WHERE _deleted IS NULL"
        let sql = "\(tableSchema.selectSQL)\(filter) ORDER BY rowid"
        let observation = ValueObservation.tracking { [self] db in
            try Row.fetchAll(db, sql: sql).map { storedRecord($0, tableSchema) }
        }
        .removeDuplicates()
        return TableObservation(values: observation.values(in: writer, bufferingPolicy: .bufferingNewest(1)))
    }
}

/// A table's records as they change (``Replica/observe(_:includeDeleted:)``): the table now, then
/// again after each commit that changes it. It runs in the task that iterates it, and ends when
/// that task is cancelled.
public struct TableObservation: AsyncSequence, Sendable {
    public typealias Element = [StoredRecord]

    fileprivate let values: AsyncValueObservation<[StoredRecord]>

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate var values: AsyncValueObservation<[StoredRecord]>.Iterator

        public mutating func next() async throws -> [StoredRecord]? {
            try await values.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(values: values.makeAsyncIterator())
    }
}
