import GRDB
import GRDBSQLite
import SiteSyncCore

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before the call returns.
private let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// Binds positional arguments straight into a prepared statement.
///
/// GRDB's `StatementArguments` boxes every value in an existential and then a `DatabaseValue`;
/// on the bulk paths (a push creating thousands of records, a pull inserting them) that boxing
/// cost more than SQLite's own work. This binder calls `sqlite3_bind_*` directly, and keeps the
/// first binding SQLite refused (a text over the connection's length limit, memory exhausted):
/// a refused binding leaves the parameter as it was, the previous row's value, so the statement
/// must not run.
public struct StatementBinder: ~Copyable {
    fileprivate let statement: SQLiteStatement
    fileprivate var index: CInt = 0
    /// The first refused binding: its result code and its parameter's position.
    fileprivate var refused: (code: CInt, index: CInt)?

    private mutating func check(_ code: CInt) {
        if code != SQLITE_OK, refused == nil { refused = (code, index) }
    }

    /// Binds the next parameter to a field value.
    public mutating func bind(_ value: FieldValue) {
        switch value {
        case .null: bindNull()
        case .integer(let integer): bind(integer)
        case .real(let real):
            index += 1
            check(sqlite3_bind_double(statement, index, real))
        case .text(let text): bind(text)
        }
    }

    /// Binds the next parameter to an integer.
    public mutating func bind(_ integer: Int64) {
        index += 1
        check(sqlite3_bind_int64(statement, index, integer))
    }

    /// Binds the next parameter to text.
    public mutating func bind(_ text: String) {
        index += 1
        var text = text
        let code = text.withUTF8 { utf8 in
            // An empty buffer may have no address, and a null pointer would bind NULL.
            if let base = utf8.baseAddress {
                sqlite3_bind_text(statement, index, base, CInt(clamping: utf8.count), transient)
            } else {
                sqlite3_bind_text(statement, index, "", 0, transient)
            }
        }
        check(code)
    }

    /// Binds the next parameter to text, or NULL.
    public mutating func bind(_ text: String?) {
        if let text { bind(text) } else { bindNull() }
    }

    /// Binds the next parameter to NULL.
    public mutating func bindNull() {
        index += 1
        check(sqlite3_bind_null(statement, index))
    }
}

extension Statement {
    /// Runs the statement once with the arguments `bind` binds, in order; every parameter must be bound.
    ///
    /// For statements that return no rows (INSERT, UPDATE, DELETE) inside a transaction GRDB opened.
    public func execute(binding bind: (inout StatementBinder) -> Void) throws {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        var binder = StatementBinder(statement: statement)
        bind(&binder)
        precondition(binder.index == sqlite3_bind_parameter_count(statement), "\(binder.index) arguments bound for \(sql)")
        if let refused = binder.refused {
            let message = String(cString: sqlite3_errstr(refused.code))
            sqlite3_reset(statement)
            throw DatabaseError(resultCode: ResultCode(rawValue: refused.code), message: "argument \(refused.index) was not bound: \(message)", sql: sql)
        }
        let code = sqlite3_step(statement)
        guard code == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(sqlite3_db_handle(statement)))
            sqlite3_reset(statement)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
        }
        sqlite3_reset(statement)
    }
}
