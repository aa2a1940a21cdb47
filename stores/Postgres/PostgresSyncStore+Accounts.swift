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
            // The accounts chain's head, locked first: account changes apply one after the other, in
            // the chain's order, and each reads the account as the one before it left it (two
            // operators adding the same username: the second finds it taken).
            var previous = AuditChain.genesis
            let head = try await connection.query("SELECT head FROM audit_chains WHERE tbl = 'account_events' FOR UPDATE")
            for try await stored in head.decode(String?.self) { previous = stored ?? previous }
            let current = try await Self.accounts(
                connection.query("SELECT \(unescaped: Account.columns) FROM accounts WHERE username = \(username)")
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
                    deactivation_reason = excluded.deactivation_reason
                """
            )
            let e = event.cells
            let hash = AuditChain.hash(previous: previous, cells: e)
            try await connection.execute(
                """
                INSERT INTO account_events (\(unescaped: AccountEvent.columns), hash)
                VALUES (\(e[0]), \(e[1]), \(e[2]), \(e[3]), \(e[4]), \(e[5]), \(e[6]), \(e[7]), \(hash))
                """
            )
            try await connection.execute("UPDATE audit_chains SET head = \(hash) WHERE tbl = 'account_events'")
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

    public func recordSignIn(_ key: PersonKey, at time: String) async throws {
        try await transaction { connection in
            let c = key.cells
            try await connection.execute(
                """
                INSERT INTO person_keys (\(unescaped: PersonKey.columns)) VALUES (\(c[0]), \(c[1]), \(c[2]), \(c[3]), \(c[4]))
                ON CONFLICT (key_id) DO NOTHING
                """)
            for stored in try await Self.personKeys(connection.query("SELECT \(unescaped: PersonKey.columns) FROM person_keys WHERE key_id = \(key.keyID)")) {
                try key.check(against: stored)
            }
            try await connection.execute("UPDATE accounts SET last_sign_in_at = \(time) WHERE username = \(key.username)")
        }
    }

    public func personKeys(replica: String) async throws -> [PersonKey] {
        try await transaction(readOnly: true) { connection in
            try await Self.personKeys(
                connection.query("SELECT \(unescaped: PersonKey.columns) FROM person_keys WHERE replica_id = \(replica) ORDER BY registered_at, key_id"))
        }
    }

    public func personKeys() async throws -> [PersonKey] {
        try await transaction(readOnly: true) { connection in
            try await Self.personKeys(connection.query("SELECT \(unescaped: PersonKey.columns) FROM person_keys ORDER BY registered_at, key_id"))
        }
    }

    public func personKeys(ids: [String]) async throws -> [PersonKey] {
        try await transaction(readOnly: true) { connection in
            try await Self.personKeys(connection.query("SELECT \(unescaped: PersonKey.columns) FROM person_keys WHERE key_id = ANY(\(ids))"))
        }
    }

    static func personKeys(_ rows: FetchedRows) async throws -> [PersonKey] {
        var keys: [PersonKey] = []
        for try await row in rows {
            var cells = RowCells(row)
            if let key = PersonKey(cells: try (0..<5).map { _ in try cells.text() }) { keys.append(key) }
        }
        return keys
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

extension PostgresSyncStore {
    public func auditChainHeads() async throws -> AuditChainHeads {
        try await transaction(readOnly: true) { connection in
            var heads = AuditChainHeads(lastUnchainedAudit: 0, lastUnchainedAccountEvent: 0, sites: [:], accounts: nil)
            for try await (table, last, head) in try await connection.query("SELECT tbl, last_unchained, head FROM audit_chains").decode(
                (String, Int64, String?).self)
            {
                if table == "audit" { heads.lastUnchainedAudit = last }
                if table == "account_events" { (heads.lastUnchainedAccountEvent, heads.accounts) = (last, head) }
            }
            let sites = try await connection.query(
                "SELECT s.site_id, max(s.head) FROM (SELECT site_id, audit_head AS head FROM sites UNION ALL SELECT DISTINCT site_id, NULL FROM audit) AS s GROUP BY 1"
            )
            for try await (site, head) in sites.decode((String, String?).self) { heads.sites[site] = .some(head) }
            return heads
        }
    }

    public func auditChainRows(site: String, after id: Int64, limit: Int) async throws -> [ChainedRow] {
        try await transaction(readOnly: true) { connection in
            try await Self.chainedRows(
                connection.query(
                    """
                    SELECT id, \(unescaped: AuditChain.auditColumnsAsText), hash FROM audit
                    WHERE site_id = \(site) AND id > \(id) ORDER BY id LIMIT \(Int64(limit))
                    """),
                cells: AuditChain.auditColumnCount)
        }
    }

    public func accountEventChainRows(after id: Int64, limit: Int) async throws -> [ChainedRow] {
        try await transaction(readOnly: true) { connection in
            try await Self.chainedRows(
                connection.query(
                    "SELECT id, \(unescaped: AccountEvent.columns), hash FROM account_events WHERE id > \(id) ORDER BY id LIMIT \(Int64(limit))"),
                cells: 8)
        }
    }

    /// Rows selected as `id`, the chain's `cells` cells, `hash`.
    private static func chainedRows(_ rows: FetchedRows, cells count: Int) async throws -> [ChainedRow] {
        var chained: [ChainedRow] = []
        for try await row in rows {
            var cells = RowCells(row)
            let id = try cells.requiredInteger()
            let values = try (0..<count).map { _ in try cells.text() }
            chained.append(ChainedRow(id: id, cells: values, hash: try cells.text()))
        }
        return chained
    }
}
