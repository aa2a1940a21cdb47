import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import SiteSyncTestSupport
import Testing
import TrialRecords

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Credentials over their life: created with an expiry, read without argv, listed without their
/// secret, revoked everywhere at once; never written to a log.
@Suite("Credential lifecycle", .serialized)
struct CredentialTests {
    /// The status and error message of a pull made with `token`.
    private func pull(_ port: Int, token: String) async throws -> (status: Int, message: String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(SyncProtocol.pullPath)")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue(String(SyncProtocol.version), forHTTPHeaderField: SyncProtocol.protocolHeader)
        request.setValue(String(TrialSchema.current.version), forHTTPHeaderField: SyncProtocol.schemaHeader)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(#"{"cursor":{},"limit":10}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: [String: Any]]
        return ((response as! HTTPURLResponse).statusCode, (body?["error"]?["message"] as? String) ?? "")
    }

    @Test("token list and replicas list align their columns by the width text takes on a terminal: wide characters take two, combining marks none")
    func wideTextAligned() async throws {
        try await Commands.inTemporaryFolder { cli in
            for label in ["検査チーム 東京", "Zoe\u{301} lab", "plain"] {
                let created = try await cli.run(
                    "sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--label", label, "--database", "server.sqlite"])
                #expect(created.status == 0, "\(created.stderr)")
            }
            let list = try await cli.run("sitesync-server", ["token", "list", "--database", "server.sqlite"])
            let lines = list.stdout.split(separator: "\n").map(String.init).filter { $0.contains(" active ") || $0.hasPrefix("id ") }
            #expect(lines.count == 4, "\(list.stdout)")
            // The column after the label starts at the same terminal column on every line.
            let starts = lines.map { line -> Int in
                let marker = line.hasPrefix("id ") ? " state " : " active "
                return TextRules.displayWidth(String(line[..<line.range(of: marker)!.lowerBound]))
            }
            #expect(Set(starts).count == 1, "\(starts): \(list.stdout)")
        }
    }

    @Test("Listed without secrets, with last use; revoked on every instance; expired; read from a file; never logged", arguments: StoreKind.all)
    func lifecycle(kind: StoreKind) async throws {
        try await Commands.inTemporaryFolder { cli in
            let database = kind == .postgres ? try await PostgresTestDatabase.create() : cli.directory.appendingPathComponent("server.sqlite").path
            let (first, firstPort) = try await cli.startServer(database: database, log: "server.log")
            defer { first.terminate() }
            // Two instances on PostgreSQL, to show a revocation reaches both; SQLite has one.
            let second = kind == .postgres ? try await cli.startServer(database: database, log: "server-2.log") : (first, firstPort)
            defer { second.0.terminate() }

            let create = try await cli.run(
                "sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--label", "S01 enrolment", "--database", database])
            #expect(create.status == 0, "\(create.stderr)")
            let enrolment = create.line
            try Data((enrolment + "\n").utf8).write(to: cli.directory.appendingPathComponent("token.txt"))
            let initialised = try await cli.sitesync(
                "init", "--site", "S01", "--server", "http://127.0.0.1:\(firstPort)", "--token-file", "token.txt", "--user", "A. Rivera")
            #expect(initialised.status == 0, "\(initialised.stderr)")
            try await cli.signIn(database: database)
            #expect(try await cli.sitesync("put", "subjects", "screening_no=S01-001").status == 0)
            #expect(try await cli.sitesync("sync").status == 0)
            let identity = try #require(
                try Replica.open(path: cli.directory.appendingPathComponent("sitesync.sqlite").path, schema: TrialSchema.current).identity)
            #expect(identity.isEnrolled && identity.token != enrolment, "the laptop holds its own credential")

            // Listed: ids, roles, labels, the replica, its last use; no secret.
            let list = try await cli.run("sitesync-server", ["token", "list", "--database", database])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains("S01 enrolment") && list.stdout.contains(identity.replicaID) && list.stdout.contains("2 tokens"))
            #expect(!list.stdout.contains(enrolment) && !list.stdout.contains(identity.token) && !list.stdout.contains("sst_") && !list.stdout.contains("ssr_"))
            let json = try await cli.run("sitesync-server", ["token", "list", "--json", "--database", database])
            let rows = json.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            let laptop = try #require(rows.first { $0["replica"] as? String == identity.replicaID })
            #expect(laptop["state"] as? String == "active" && (laptop["last_used_at"] as? String)?.hasPrefix("20") == true, "its last use is recorded")
            #expect(rows.first { $0["label"] as? String == "S01 enrolment" }?["expires_at"] is NSNull)

            // Revoked: refused at the next request, on every instance, with a message that says so.
            let revoke = try await cli.run("sitesync-server", ["token", "revoke", "--replica", identity.replicaID, "--database", database])
            #expect(revoke.status == 0 && revoke.stdout.contains("Revoked token"), "\(revoke.stderr)")
            for port in [firstPort, second.1] {
                let refused = try await pull(port, token: identity.token)
                #expect(refused.status == 401 && refused.message.contains("revoked"))
            }
            let sync = try await cli.sitesync("sync")
            #expect(sync.status != 0 && sync.stderr.contains("revoked"))
            let again = try await cli.run("sitesync-server", ["token", "revoke", "--replica", identity.replicaID, "--database", database])
            #expect(again.status == 0 && again.stdout.contains("revoked already"))
            let unknown = try await cli.run("sitesync-server", ["token", "revoke", "0000000000", "--database", database])
            #expect(unknown.status != 0 && unknown.stderr.contains("No token has ID 0000000000"))
            let short = try await cli.run("sitesync-server", ["token", "revoke", "abc", "--database", database])
            #expect(short.status != 0 && short.stderr.contains("at least 8 hex digits"))

            // Expired: created with a lifetime, refused after it.
            let expiring = try await cli.run("sitesync-server", ["token", "create", "--role", "reviewer", "--expires-in", "1d", "--database", database]).line
            // Accepted as a credential (an enrolment token does not pull: 403, not 401).
            #expect(try await pull(firstPort, token: expiring).status == 403)
            let expiringList = try await cli.run("sitesync-server", ["token", "list", "--json", "--database", database]).stdout
            #expect(expiringList.contains("\"role\":\"reviewer\"") && expiringList.contains("\"expires_at\":\"20"))
            let lapsed = try await withStore(kind, database) { store in
                try await Tokens.create(in: store, role: .reviewer, site: nil, expiresAt: Date().addingTimeInterval(-1))
            }
            let expired = try await pull(second.1, token: lapsed)
            #expect(expired.status == 401 && expired.message.contains("expired"))
            #expect(try await cli.run("sitesync-server", ["token", "create", "--role", "admin", "--expires-in", "soon", "--database", database]).status != 0)

            // From standard input, on a second laptop.
            let other = Commands(directory: cli.directory, environment: ["SITESYNC_DB": cli.directory.appendingPathComponent("b.sqlite").path])
            let fromInput = try await other.run(
                "sitesync", ["init", "--site", "S01", "--server", "http://127.0.0.1:\(second.1)", "--token-file", "-", "--user", "B. Chen"],
                input: Data((enrolment + "\n").utf8)
            )
            #expect(fromInput.status == 0, "\(fromInput.stderr)")
            #expect(try await other.sitesync("sync").line.contains("pulled 1"), "the other laptop's credential still works")

            // Files readable by their owner only, from the first byte; no token in any log line.
            for name in ["sitesync.sqlite", "b.sqlite"] + (kind == .sqlite ? ["server.sqlite", "server.sqlite-wal"] : []) {
                let mode = try FileManager.default.attributesOfItem(atPath: cli.directory.appendingPathComponent(name).path)[.posixPermissions] as? Int
                #expect(mode == 0o600, "\(name) has mode \(String(mode ?? 0, radix: 8))")
            }
            first.terminate()
            second.0.terminate()
            await first.exit()
            await second.0.exit()
            let log = ["server.log", "server-2.log"].compactMap { try? String(contentsOf: cli.directory.appendingPathComponent($0), encoding: .utf8) }.joined()
            #expect(log.contains("push applied"), "the log was captured")
            for secret in [enrolment, identity.token, expiring, lapsed] {
                #expect(!log.contains(secret) && !log.contains(String(secret.suffix(64))), "a token in the server's log")
            }
        }
    }

    private func withStore<T: Sendable>(_ kind: StoreKind, _ database: String, _ body: @Sendable (any SyncStore) async throws -> T) async throws -> T {
        if kind == .sqlite { return try await body(try SQLiteSyncStore(path: database, schema: TrialSchema.current)) }
        let store = try PostgresSyncStore(url: database, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        return try await store.withRunning { try await body(store) }
    }
}
