import GRDB
import SiteSyncCore
import SiteSyncRules

extension SQLiteSyncStore {
    public func account(username: String) async throws -> Account? {
        try await reading { db in try Self.account(db, username: username) }
    }

    public func accounts() async throws -> [Account] {
        try await reading { db in
            try Row.fetchAll(db, sql: "SELECT \(Account.columns) FROM accounts ORDER BY username").compactMap(Self.account)
        }
    }

    public func changeAccount(_ username: String, _ change: AccountChange, at time: String, by actor: String) async throws -> Account {
        try await writing { db in
            let (account, event) = try change.applied(to: try Self.account(db, username: username), username: username, at: time, by: actor)
            try db.execute(
                sql: """
                    INSERT INTO accounts (\(Account.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (username) DO UPDATE SET
                        full_name = excluded.full_name, role = excluded.role, sites = excluded.sites, state = excluded.state,
                        password_hash = excluded.password_hash, password_changed_at = excluded.password_changed_at,
                        last_sign_in_at = excluded.last_sign_in_at, deactivation_reason = excluded.deactivation_reason
                    """,
                arguments: StatementArguments(account.cells)
            )
            try db.execute(
                sql: "INSERT INTO account_events (\(AccountEvent.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: StatementArguments(event.cells)
            )
            return account
        }
    }

    public func accountEvents() async throws -> [AccountEvent] {
        try await reading { db in
            try Row.fetchAll(db, sql: "SELECT \(AccountEvent.columns) FROM account_events ORDER BY id").compactMap { row in
                AccountEvent(cells: (0..<row.count).map { row[$0] })
            }
        }
    }

    static func account(_ db: Database, username: String) throws -> Account? {
        try Row.fetchOne(db, sql: "SELECT \(Account.columns) FROM accounts WHERE username = ?", arguments: [username]).flatMap(account)
    }

    static func account(_ row: Row) -> Account? {
        Account(cells: (0..<row.count).map { row[$0] })
    }
}
