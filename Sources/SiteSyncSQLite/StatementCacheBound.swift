import GRDB
import GRDBSQLite

extension Database {
    /// The most prepared statements a connection keeps before its statement cache is emptied.
    ///
    /// GRDB caches a statement per distinct SQL text and never frees it. Inserts and updates are
    /// written for the set of columns a change carries, and a laptop (or an attacker holding a
    /// laptop's token) chooses that set: 40,000 distinct sets once took a server from 47 to 297 MB.
    /// A connection's usual statements number a few dozen, so the bound is reached only by that
    /// churn, and emptying the cache then costs a few re-preparations.
    public static let preparedStatementLimit = 256

    /// The statements prepared on this connection and not yet finalized, cached or not.
    public var preparedStatementCount: Int {
        guard let sqliteConnection else { return 0 }
        var count = 0
        var statement = sqlite3_next_stmt(sqliteConnection, nil)
        while statement != nil {
            count += 1
            statement = sqlite3_next_stmt(sqliteConnection, statement)
        }
        return count
    }

    /// Empties the statement cache when the connection holds more than ``preparedStatementLimit``
    /// statements. Call it at the end of a write whose statements depend on its input.
    public func boundStatementCache() {
        if preparedStatementCount > Self.preparedStatementLimit { releaseMemory() }
    }
}
