import Foundation
import GRDB
import SiteSyncCore

/// A bulk import refused: every bad row, with its line number. Nothing was written.
public struct ImportError: Error, Sendable, CustomStringConvertible {
    /// One bad row.
    public struct Problem: Sendable, Equatable {
        /// The line of the file the row starts on.
        public var line: Int
        /// What is wrong with it.
        public var message: String

        /// Creates a problem.
        public init(line: Int, message: String) {
            self.line = line
            self.message = message
        }
    }

    /// Every bad row, in file order.
    public var problems: [Problem]

    /// Creates an error from its problems.
    public init(problems: [Problem]) {
        self.problems = problems
    }

    public var description: String {
        "Nothing was imported; fix these rows and import the file again:\n"
            + problems.map { "line \($0.line): \($0.message)" }.joined(separator: "\n")
    }
}

/// One row of a bulk import.
public struct ImportRow: Sendable {
    /// The line of the file the row starts on.
    public var line: Int
    /// The record to update, or nil to create one.
    public var id: String?
    /// The values, already read by the table's schema.
    public var values: [String: FieldValue]

    /// Creates a row.
    public init(line: Int, id: String?, values: [String: FieldValue]) {
        self.line = line
        self.id = id
        self.values = values
    }
}

extension Replica {
    /// Writes every row in one transaction, or none: each row is validated as `put` would, and when
    /// any row is refused, every refusal is reported with its line and nothing is written.
    ///
    /// - Parameters:
    ///   - table: the table the rows write.
    ///   - rows: the rows, each with the line it came from, for the report of refusals.
    ///   - reason: the reason for change of every synced value the rows change (see
    ///     ``put(_:id:_:reason:)``); nil when the rows change none.
    ///   - progress: called with the rows checked and written so far, every 100 rows and at the
    ///     end, for a progress display; they are committed together at the end, or none is.
    /// - Returns: the ids of the records written, in row order.
    @discardableResult
    public func importRecords(_ table: String, _ rows: [ImportRow], reason: String? = nil, progress: ((_ done: Int) -> Void)? = nil) throws -> [String] {
        let identity = try requireIdentity()
        _ = try schema.table(table)
        let reason = try reason.map(Self.checkedReason)
        return try trackedWrite { db in
            defer { db.boundStatementCache() }
            var ids: [String] = []
            var problems: [ImportError.Problem] = []
            for (index, row) in rows.enumerated() {
                defer { if let progress, (index + 1) % 100 == 0 || index + 1 == rows.count { progress(index + 1) } }
                do {
                    // A savepoint per row, so a refused row leaves the others' writes intact to check them all.
                    try db.inSavepoint {
                        ids.append(try write(db, identity: identity, table: table, id: row.id ?? RecordID.generate(), row.values, reason: reason))
                        return .commit
                    }
                } catch let error as ValidationError {
                    problems.append(.init(line: row.line, message: error.description))
                } catch let error as ReplicaError {
                    problems.append(.init(line: row.line, message: error.message))
                }
            }
            guard problems.isEmpty else { throw ImportError(problems: problems) }
            return ids
        }
    }
}
