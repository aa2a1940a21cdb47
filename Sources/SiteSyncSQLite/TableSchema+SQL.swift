import GRDB
import SiteSyncCore

extension TableSchema {
    /// The `CREATE TABLE` statement of the table as it was at its `since` version.
    ///
    /// Synced tables have no foreign keys: records may arrive in any order.
    public var createTableSQL: String {
        let columns = self.columns.filter { $0.since == since }.map(\.definitionSQL)
        return "CREATE TABLE \(name.quotedDatabaseIdentifier) (id TEXT PRIMARY KEY NOT NULL, \(columns.joined(separator: ", ")))"
    }

    /// `SELECT id, <every column> FROM table`, to which callers append a `WHERE` clause.
    public var selectSQL: String {
        "SELECT \((["id"] + columnNames).map(\.quotedDatabaseIdentifier).joined(separator: ", ")) FROM \(name.quotedDatabaseIdentifier)"
    }

    /// `INSERT INTO table (id, columns…) VALUES (?, …)`, bound with the id first.
    public func insertSQL(columns: [String]) -> String {
        let names = (["id"] + columns).map(\.quotedDatabaseIdentifier).joined(separator: ", ")
        let marks = Array(repeating: "?", count: columns.count + 1).joined(separator: ", ")
        return "INSERT INTO \(name.quotedDatabaseIdentifier) (\(names)) VALUES (\(marks))"
    }
}

extension ColumnSchema {
    /// The column definition: name, SQLite type and default. Rules are enforced by validation, which
    /// names the field and the rule, rather than by CHECK constraints.
    public var definitionSQL: String {
        var sql = "\(name.quotedDatabaseIdentifier) \(type.sqlType)"
        if !defaultValue.isNull {
            sql += " DEFAULT \(defaultValue.sqlLiteral)"
        }
        return sql
    }
}

extension FieldValue {
    fileprivate var sqlLiteral: String {
        switch self {
        case .null: "NULL"
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .text(let value): "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
        }
    }
}

/// Registers, for every schema version, the migration that creates its tables and adds its columns.
///
/// Migrations stay append-only because schema definitions are: version N's migration only reads
/// the tables and columns tagged `since: N`, which never change once released.
///
/// - Parameters:
///   - afterEach: extra statements to run for each version, given the tables it created or altered
///     (the replica reinstalls its change-tracking triggers there).
public func registerSchemaMigrations(
    _ migrator: inout DatabaseMigrator,
    schema: Schema,
    prefix: String,
    afterEach: (@Sendable (Database, [TableSchema]) throws -> Void)? = nil
) {
    for version in 1...max(1, schema.version) {
        let atVersion = schema.restricted(to: version)
        migrator.registerMigration(schemaMigrationIdentifier(version, prefix: prefix)) { db in
            var touched: [TableSchema] = []
            for table in atVersion.tables {
                if table.since == version {
                    try db.execute(sql: table.createTableSQL)
                    touched.append(table)
                } else {
                    let added = table.columns.filter { $0.since == version }
                    for column in added {
                        try db.execute(sql: "ALTER TABLE \(table.name.quotedDatabaseIdentifier) ADD COLUMN \(column.definitionSQL)")
                    }
                    if !added.isEmpty { touched.append(table) }
                }
            }
            try afterEach?(db, touched)
        }
    }
}

/// The latest schema version whose migration, registered by ``registerSchemaMigrations(_:schema:prefix:afterEach:)``,
/// `db` has applied; nil when none has been.
public func appliedSchemaVersion(_ db: Database, schema: Schema, prefix: String) throws -> Int? {
    let applied = try DatabaseMigrator().appliedIdentifiers(db)
    return (1...max(1, schema.version)).last { applied.contains(schemaMigrationIdentifier($0, prefix: prefix)) }
}

private func schemaMigrationIdentifier(_ version: Int, prefix: String) -> String {
    "\(prefix)schema-v\(version)"
}
