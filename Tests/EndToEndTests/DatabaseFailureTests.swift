import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Testing
import TrialRecords

/// A laptop syncing with a server whose PostgreSQL fails, end to end over loopback HTTP: no change
/// leaves a laptop's outbox unless the database committed it, and the next sync delivers each
/// change exactly once (issue "Nothing lost when the database fails").
@Suite("Sync against a failing database", .enabled(if: StoreKind.all.contains(.postgres)))
struct DatabaseFailureTests {
    private static let records = 1500

    /// A migrated PostgreSQL database with `setup` run in it.
    private static func database(_ setup: [String]) async throws -> String {
        let url = try await PostgresTestDatabase.create()
        let admin = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        try await admin.withRunning {
            try await admin.migrate()
            for statement in setup { try await admin.execute(statement) }
        }
        return url
    }

    /// Runs `body` against a live server on the database at `url`.
    private static func serve(_ url: String, _ body: @Sendable (LiveServer, PostgresSyncStore) async throws -> Void) async throws {
        let store = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 4, logger: PostgresTestDatabase.quiet)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-dbfail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await store.withRunning {
            try await LiveServer.run(on: store, directory: directory) { server in try await body(server, store) }
        }
    }

    private static func subjects(_ count: Int) -> [ImportRow] {
        (0..<count).map { ImportRow(line: $0 + 2, id: nil, values: ["screening_no": .text(String(format: "S01-%05d", $0))]) }
    }

    @Test("A statement timeout on every push: the sync fails, the laptop keeps every change; lifted, the next sync delivers each once")
    func statementTimeout() async throws {
        let url = try await Self.database([
            "CREATE FUNCTION sitesync_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$",
            "CREATE TRIGGER sitesync_test_slow AFTER INSERT ON audit FOR EACH STATEMENT EXECUTE FUNCTION sitesync_test_slow()",
        ])
        let name = try #require(url.split(separator: "/").last)
        let admin = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        try await admin.withRunning { try await admin.execute("ALTER DATABASE \(name) SET statement_timeout = '100ms'") }
        try await Self.serve(url) { server, store in
            let laptop = try server.laptop("a")
            let ids = try laptop.replica.importRecords("subjects", Self.subjects(Self.records))
            let engine = laptop.engine { $0.attempts = 2 }
            await #expect(throws: SyncError.self) { try await engine.sync() }
            #expect(try laptop.replica.pendingCount() == Self.records, "every change still waits to be pushed")
            #expect(try await server.count("SELECT count(*) FROM subjects") == 0)
            #expect(try await server.count("SELECT count(*) FROM audit") == 0)
            // Lifted: on the same server, whose pool opens new connections.
            let lifting = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
            try await lifting.withRunning {
                try await lifting.execute("ALTER DATABASE \(name) RESET statement_timeout")
                try await lifting.execute("DROP TRIGGER sitesync_test_slow ON audit")
                try await lifting.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)' AND pid <> pg_backend_pid()")
            }
            let report = try await laptop.engine().sync()
            #expect(report.pushed == Self.records)
            #expect(try laptop.replica.pendingCount() == 0)
            let stored = try await store.rowsAsText("SELECT id FROM subjects ORDER BY id")
            #expect(stored == ids.sorted(), "each record stored once")
            let audited = try await store.rowsAsText("SELECT count(*)::text || ' ' || count(DISTINCT record_id)::text FROM audit WHERE tbl = 'subjects'")
            #expect(audited == ["\(Self.records) \(Self.records)"], "each record's creation audited once")
        }
    }

    @Test("Two sites' laptops pushing the same record ids at once: one site's push is applied, the other's refused naming a record, never both")
    func sameIDsTwoSites() async throws {
        let url = try await Self.database([])
        try await Self.serve(url) { server, _ in
            for round in 0..<5 {
                // Fresh laptops each round: the losing laptop keeps its refused records queued.
                let a = try server.laptop("a\(round)", site: "S01")
                let c = try server.laptop("c\(round)", site: "S02")
                // The same ids, written with plain SQL on two laptops of two sites.
                let ids = (0..<200).map { "shared-\(round)-\($0)" }
                for (laptop, site) in [(a, "S01"), (c, "S02")] {
                    try await laptop.replica.writer.write { db in
                        for id in ids {
                            try db.execute(sql: "INSERT INTO subjects (id, site_id, screening_no) VALUES (?, ?, ?)", arguments: [id, site, "\(site)-\(id)"])
                        }
                    }
                }
                async let first = Result(catching: { try await a.engine { $0.attempts = 1 }.sync() })
                async let second = Result(catching: { try await c.engine { $0.attempts = 1 }.sync() })
                let results = await [first, second]
                let refusals = results.compactMap { result -> SyncError? in
                    if case .failure(let error as SyncError) = result, error.status == 403 { return error }
                    return nil
                }
                #expect(results.filter { (try? $0.get()) != nil }.count == 1 && refusals.count == 1, "round \(round): \(results)")
                #expect(refusals.first?.message.contains("shared-\(round)-") == true, "the refusal names a record: \(String(describing: refusals.first))")
                #expect(try await server.count("SELECT count(DISTINCT site_id) FROM subjects WHERE id LIKE 'shared-\(round)-%'") == 1)
                #expect(try await server.count("SELECT count(*) FROM subjects WHERE id LIKE 'shared-\(round)-%'") == 200)
            }
        }
    }
}

extension Result where Failure == any Error {
    /// The outcome of `body`.
    fileprivate init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
