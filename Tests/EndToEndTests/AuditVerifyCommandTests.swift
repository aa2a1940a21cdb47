import Foundation
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncTestSupport
import Testing
import TrialRecords

/// `sitesync-server audit verify`: the chains of a trail written by real laptops over HTTP hold,
/// and a row edited by hand with a database shell is named, with exit status 1.
@Suite("Audit verify command")
struct AuditVerifyCommandTests {
    @Test("audit verify counts the rows it verified, prints the heads, and names the first row edited by hand with exit status 1", arguments: StoreKind.all)
    func verify(kind: StoreKind) async throws {
        try await Commands.inTemporaryFolder { cli in
            let database = kind == .postgres ? try await PostgresTestDatabase.create() : cli.directory.appendingPathComponent("server.sqlite").path
            let (server, port) = try await cli.startServer(database: database, log: "server.log")
            defer { server.terminate() }
            let token = try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", database]).line
            try Data((token + "\n").utf8).write(to: cli.directory.appendingPathComponent("token.txt"))
            #expect(
                try await cli.sitesync("init", "--site", "S01", "--server", "http://127.0.0.1:\(port)", "--token-file", "token.txt", "--user", "A. Rivera")
                    .status == 0)
            try await cli.signIn(database: database)
            for number in 1...3 { #expect(try await cli.sitesync("put", "subjects", "screening_no=S01-00\(number)").status == 0) }
            #expect(try await cli.sitesync("sync").status == 0)
            let added = try await cli.run(
                "sitesync-server", ["user", "add", "ana", "--name", "Ana Lima", "--role", "coordinator", "--site", "S01", "--database", database],
                input: Data("a long enough password\n".utf8))
            #expect(added.status == 0, "\(added.stderr)")

            let intact = try await cli.run("sitesync-server", ["audit", "verify", "--database", database])
            #expect(intact.status == 0, "\(intact.stderr)")
            #expect(intact.stdout.contains("Verified 5 rows in 2 chains."), "\(intact.stdout)")
            #expect(intact.stdout.contains("site S01") && intact.stdout.contains("accounts"))
            let json = try await cli.run("sitesync-server", ["audit", "verify", "--json", "--database", database])
            let result = try JSONDecoder().decode(AuditVerification.self, from: Data(json.stdout.utf8))
            #expect(result.verified == 5 && result.broken == nil && result.chains.allSatisfy { $0.head?.count == 64 })

            // Someone with a database shell switches the trigger off and edits a row.
            let store: any SyncStore =
                kind == .sqlite
                ? try SQLiteSyncStore(path: database, schema: TrialSchema.current)
                : try PostgresSyncStore(url: database, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
            let edited = try await withRunning(store) {
                for statement in kind == .sqlite
                    ? ["DROP TRIGGER audit_append_only_update"] : ["ALTER TABLE audit DISABLE TRIGGER audit_append_only"]
                {
                    try await StoreContents.execute(store, statement)
                }
                let id = try await StoreContents.count(store, "SELECT min(id) FROM audit WHERE new_values LIKE '%S01-002%'")
                try await StoreContents.execute(store, "UPDATE audit SET new_values = replace(new_values, 'S01-002', 'S01-009') WHERE id = \(id)")
                return id
            }
            let broken = try await cli.run("sitesync-server", ["audit", "verify", "--database", database])
            #expect(broken.status == 1)
            #expect(broken.stderr.contains("The audit trail is broken: audit row \(edited) (chain site S01) does not match its chain"), "\(broken.stderr)")
        }
    }

    private func withRunning<T: Sendable>(_ store: any SyncStore, _ body: @Sendable () async throws -> T) async throws -> T {
        guard let postgres = store as? PostgresSyncStore else { return try await body() }
        return try await postgres.withRunning { try await body() }
    }
}
