import PostgresNIO
import SiteSyncCore
import SiteSyncRules

extension PostgresSyncStore {
    public func account(username: String) async throws -> Account? {
        try await transaction(readOnly: true) { connection in
            try await Self.accounts(connection.query("SELECT \(unescaped: Account.columns) FROM accounts WHERE username = \(username)")).first
        }
    }

    public func accounts() async throws -> [Account] {
        try await transaction(readOnly: true) { connection in
            try await Self.accounts(connection.query("SELECT \(unescaped: Account.columns) FROM accounts ORDER BY username"))
        }
    }

    public func changeAccount(_ username: String, _ change: AccountChange, at time: String, by actor: String) async throws -> Account {
        try await transaction { connection in
            // The row locked while the change is decided, so that two operators' changes apply one after the other.
            let current = try await Self.accounts(
                connection.query("SELECT \(unescaped: Account.columns) FROM accounts WHERE username = \(username) FOR UPDATE")
            ).first
            let (account, event) = try change.applied(to: current, username: username, at: time, by: actor)
            let a = account.cells
            try await connection.execute(
                """
                INSERT INTO accounts (\(unescaped: Account.columns))
                VALUES (\(a[0]), \(a[1]), \(a[2]), \(a[3]), \(a[4]), \(a[5]), \(a[6]), \(a[7]), \(a[8]), \(a[9]))
                ON CONFLICT (username) DO UPDATE SET
                    full_name = excluded.full_name, role = excluded.role, sites = excluded.sites, state = excluded.state,
                    password_hash = excluded.password_hash, password_changed_at = excluded.password_changed_at,
                    last_sign_in_at = excluded.last_sign_in_at, deactivation_reason = excluded.deactivation_reason
                """
            )
            let e = event.cells
            try await connection.execute(
                """
                INSERT INTO account_events (\(unescaped: AccountEvent.columns))
                VALUES (\(e[0]), \(e[1]), \(e[2]), \(e[3]), \(e[4]), \(e[5]), \(e[6]), \(e[7]))
                """
            )
            return account
        }
    }

    public func accountEvents() async throws -> [AccountEvent] {
        try await transaction(readOnly: true) { connection in
            var events: [AccountEvent] = []
            for try await row in try await connection.query("SELECT \(unescaped: AccountEvent.columns) FROM account_events ORDER BY id") {
                var cells = RowCells(row)
                if let event = AccountEvent(cells: try (0..<8).map { _ in try cells.text() }) { events.append(event) }
            }
            return events
        }
    }

    static func accounts(_ rows: FetchedRows) async throws -> [Account] {
        var accounts: [Account] = []
        for try await row in rows {
            var cells = RowCells(row)
            if let account = Account(cells: try (0..<10).map { _ in try cells.text() }) { accounts.append(account) }
        }
        return accounts
    }
}
