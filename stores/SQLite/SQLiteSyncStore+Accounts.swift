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
                        deactivation_reason = excluded.deactivation_reason
                    """,
                arguments: StatementArguments(account.cells)
            )
            let previous = try String.fetchOne(db, sql: "SELECT head FROM audit_chains WHERE tbl = 'account_events'") ?? AuditChain.genesis
            let hash = AuditChain.hash(previous: previous, cells: event.cells)
            try db.execute(
                sql: "INSERT INTO account_events (\(AccountEvent.columns), hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: StatementArguments(event.cells + [hash])
            )
            try db.execute(sql: "UPDATE audit_chains SET head = ? WHERE tbl = 'account_events'", arguments: [hash])
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

    public func recordSignIn(_ key: PersonKey, at time: String) async throws {
        try await writing { db in
            try db.execute(
                sql: "INSERT INTO person_keys (\(PersonKey.columns)) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING",
                arguments: StatementArguments(key.cells))
            if let stored = try Row.fetchOne(db, sql: "SELECT \(PersonKey.columns) FROM person_keys WHERE key_id = ?", arguments: [key.keyID])
                .flatMap(Self.personKey)
            {
                try key.check(against: stored)
            }
            try db.execute(sql: "UPDATE accounts SET last_sign_in_at = ? WHERE username = ?", arguments: [time, key.username])
        }
    }

    public func personKeys(replica: String) async throws -> [PersonKey] {
        try await reading { db in
            try Row.fetchAll(db, sql: "SELECT \(PersonKey.columns) FROM person_keys WHERE replica_id = ? ORDER BY registered_at, key_id", arguments: [replica])
                .compactMap(Self.personKey)
        }
    }

    public func personKeys() async throws -> [PersonKey] {
        try await reading { db in
            try Row.fetchAll(db, sql: "SELECT \(PersonKey.columns) FROM person_keys ORDER BY registered_at, key_id").compactMap(Self.personKey)
        }
    }

    public func personKeys(ids: [String]) async throws -> [PersonKey] {
        try await reading { db in
            try ids.compactMap { id in
                try Row.fetchOne(db, sql: "SELECT \(PersonKey.columns) FROM person_keys WHERE key_id = ?", arguments: [id]).flatMap(Self.personKey)
            }
        }
    }

    static func personKey(_ row: Row) -> PersonKey? {
        PersonKey(cells: (0..<row.count).map { row[$0] })
    }

    static func account(_ db: Database, username: String) throws -> Account? {
        try Row.fetchOne(db, sql: "SELECT \(Account.columns) FROM accounts WHERE username = ?", arguments: [username]).flatMap(account)
    }

    static func account(_ row: Row) -> Account? {
        Account(cells: (0..<row.count).map { row[$0] })
    }
}

extension SQLiteSyncStore {
    public func auditChainHeads() async throws -> AuditChainHeads {
        try await reading { db in
            let starts = try Row.fetchAll(db, sql: "SELECT tbl, last_unchained, head FROM audit_chains")
            var sites: [String: String?] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT site_id, audit_head FROM sites UNION SELECT DISTINCT site_id, NULL FROM audit ORDER BY 1, 2 DESC") {
                let site: String = row["site_id"]
                if sites[site] == nil { sites[site] = .some(row["audit_head"]) }
            }
            func start(_ table: String) -> Row? { starts.first { $0["tbl"] == table } }
            return AuditChainHeads(
                lastUnchainedAudit: start("audit")?["last_unchained"] ?? 0, lastUnchainedAccountEvent: start("account_events")?["last_unchained"] ?? 0,
                sites: sites, accounts: start("account_events")?["head"])
        }
    }

    public func auditChainRows(site: String, after id: Int64, limit: Int) async throws -> [ChainedRow] {
        try await reading { db in
            try Self.chainedRows(
                db, sql: "SELECT id, \(AuditChain.auditColumnsAsText), hash FROM audit WHERE site_id = ? AND id > ? ORDER BY id LIMIT ?",
                arguments: [site, id, limit])
        }
    }

    public func accountEventChainRows(after id: Int64, limit: Int) async throws -> [ChainedRow] {
        try await reading { db in
            try Self.chainedRows(
                db, sql: "SELECT id, \(AccountEvent.columns), hash FROM account_events WHERE id > ? ORDER BY id LIMIT ?", arguments: [id, limit])
        }
    }

    /// Rows selected as `id`, the chain's cells, `hash`.
    private static func chainedRows(_ db: Database, sql: String, arguments: StatementArguments) throws -> [ChainedRow] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            ChainedRow(id: row[0], cells: (1..<(row.count - 1)).map { row[$0] }, hash: row[row.count - 1])
        }
    }
}
