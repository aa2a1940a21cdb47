import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SiteSyncClient
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

/// A pilot's SQLite server database copied into PostgreSQL, with laptops that keep syncing.
@Suite("Moving a pilot to PostgreSQL", .enabled(if: StoreKind.all.contains(.postgres)))
struct StoreCopyTests {
    @Test("After the copy, laptops pull nothing again, push only what was pending, and no conflict appears")
    func copyKeepsLaptopsWhereTheyWere() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sqlite = try SQLiteSyncStore(path: directory.appendingPathComponent("server.sqlite").path, schema: TrialSchema.current)
        let s01 = try await Tokens.create(in: sqlite, role: .site, site: "S01")
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.host = "127.0.0.1"
        configuration.port = try Commands.freePort()
        let url = URL(string: "http://127.0.0.1:\(configuration.port)")!
        func laptop(_ name: String) throws -> Laptop {
            let replica = try Replica.open(path: directory.appendingPathComponent("\(name).sqlite").path, schema: TrialSchema.current)
            if replica.identity == nil { try replica.initialize(site: "S01", user: name, serverURL: url, token: s01) }
            return Laptop(replica: replica, transport: try HTTPTransport(replica: replica))
        }

        // The pilot: records, a conflict and its resolution, a delete; then one change left pending.
        let a = try laptop("a")
        let b = try laptop("b")
        let kept = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
        let dropped = try a.replica.put("subjects", ["screening_no": .text("S01-002")])
        try await serving(configuration, store: sqlite) {
            try await a.sync()
            try await b.sync()
            try a.replica.put("subjects", id: kept, ["status": .text("enrolled")], reason: "Consent signed")
            try await Task.sleep(for: .milliseconds(5))
            try b.replica.put("subjects", id: kept, ["status": .text("screen_failed")], reason: "Platelets low")
            try await a.sync()
            try await b.sync()
            try await a.sync()
            let conflict = try #require(try a.replica.conflicts().first)
            try a.replica.resolve(conflict: conflict.id, .takeLoser, reason: "Recheck normal")
            try a.replica.delete("subjects", id: dropped, reason: "Entered twice")
            try await a.sync()
            try await b.sync()
        }
        try a.replica.put("subjects", id: kept, ["sex": .text("F")])
        // People, one of them deactivated: accounts and their events come along as they are.
        let hash = try PasswordHash(password: "a long pass phrase", cost: .init(logN: 4, blockSize: 8, parallelism: 1)).encoded
        _ = try await sqlite.changeAccount(
            "ana", .create(fullName: "Ana Lima", role: .coordinator, sites: ["S01"], passwordHash: hash), at: "2026-12-01T08:00:00Z", by: "root")
        _ = try await sqlite.changeAccount("ana", .deactivate(reason: "Left the team"), at: "2026-12-02T08:00:00Z", by: "root")
        let before = try await StoreContents.dump(sqlite)

        let database = try await PostgresTestDatabase.create()
        let target = try PostgresSyncStore(url: database, schema: TrialSchema.current, logger: PostgresTestDatabase.quiet)
        let (counts, laptops, activity) = try await target.withRunning {
            (
                try await StoreCopy.copy(from: sqlite, to: target), try await target.replicaFreshness(site: nil),
                try await target.siteActivity(site: "S01", from: "2000-01-01")
            )
        }
        #expect(counts.rows["audit"] == before["audit"]?.count && counts.rows["records"] == before["records"]?.count)
        // The laptops' last syncs and the daily counts of changes come along.
        #expect(laptops == (try await sqlite.replicaFreshness(site: nil)) && laptops.compactMap(\.report).count == 2)
        #expect(
            activity == (try await sqlite.siteActivity(site: "S01", from: "2000-01-01")) && activity.changesByDay.values.reduce(0, +) == before["audit"]?.count)
        #expect(counts.rows["conflicts"] == 1 && counts.rows["tokens"] == 3 && counts.rows["accounts"] == 1 && counts.rows["account_events"] == 2)
        // A second copy into a store that holds data is refused, and writes nothing.
        let again = try PostgresSyncStore(url: database, schema: TrialSchema.current, logger: PostgresTestDatabase.quiet)
        await #expect(throws: StoreCopyError.self) { try await again.withRunning { try await StoreCopy.copy(from: sqlite, to: again) } }

        let postgres = try PostgresSyncStore(url: database, schema: TrialSchema.current, logger: PostgresTestDatabase.quiet)
        try await serving(configuration, store: postgres, services: [postgres]) {
            // The chains come along whole: the copy verifies as the source does.
            let verified = try await AuditVerification.run(sqlite)
            #expect(verified.broken == nil && verified.verified == (before["audit"]?.count ?? 0) + 2)
            #expect(try await AuditVerification.run(postgres) == verified)
            let first = try await b.sync()
            #expect(first.pulled == 0 && first.pushed == 0, "b is where it was")
            let second = try await a.sync()
            #expect(second.pushed == 1 && second.pulled == 0, "a pushes its pending change only")
            #expect(second.conflicts == 0)
            let third = try await b.sync()
            #expect(third.pulled == 1 && third.conflicts == 0)
            #expect(try await StoreContents.count(postgres, "SELECT count(*) FROM conflicts") == 1)
            #expect(try await postgres.accounts() == sqlite.accounts())
            // The events keep their ids, and new ones follow them.
            _ = try await postgres.changeAccount("ana", .reactivate, at: "2026-12-03T08:00:00Z", by: "root")
            #expect(try await postgres.accountEvents().map(\.action) == [.created, .deactivated, .reactivated])
            #expect(try await AuditVerification.run(postgres).broken == nil, "the chains continue after the copy")
        }
        #expect(try a.contents() == b.contents())
        #expect(try a.replica.conflicts(includeResolved: true).count == 1)
    }

    /// A source file with a site of 30 subjects, written through the store.
    private func pilot(_ directory: URL) async throws -> (store: SQLiteSyncStore, path: String) {
        let path = directory.appendingPathComponent("server.sqlite").path
        let sqlite = try SQLiteSyncStore(path: path, schema: TrialSchema.current)
        let s01 = try await Tokens.create(in: sqlite, role: .site, site: "S01")
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.host = "127.0.0.1"
        configuration.port = try Commands.freePort()
        let replica = try Replica.open(path: directory.appendingPathComponent("a.sqlite").path, schema: TrialSchema.current)
        try replica.initialize(site: "S01", user: "a", serverURL: URL(string: "http://127.0.0.1:\(configuration.port)")!, token: s01)
        let laptop = Laptop(replica: replica, transport: try HTTPTransport(replica: replica))
        _ = try replica.importRecords("subjects", (0..<30).map { ImportRow(line: $0 + 2, id: nil, values: ["screening_no": .text("S01-\($0)")]) })
        try await serving(configuration, store: sqlite) { try await laptop.sync() }
        return (sqlite, path)
    }

    @Test("The copy reads one snapshot: a push landing in the file during the copy is not half in it")
    func oneSnapshot() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (sqlite, _) = try await pilot(directory)
        let before = try await StoreContents.dump(sqlite)
        let target = try PostgresSyncStore(url: try await PostgresTestDatabase.create(), schema: TrialSchema.current, logger: PostgresTestDatabase.quiet)
        let landed = Mutex(false)
        let (counts, heads, late) = try await target.withRunning {
            let counts = try await StoreCopy.copy(from: sqlite, to: target, pageSize: 7) {
                guard !landed.withLock({ $0 }) else { return }
                landed.withLock { $0 = true }
                // A push committing in the middle of the copy: a record, its shadow row, its site's head.
                try await sqlite.writer.write { db in
                    try db.execute(sql: "UPDATE sites SET seq = seq + 1 WHERE site_id = 'S01'")
                    try db.execute(sql: "INSERT INTO subjects (id, site_id, screening_no) VALUES ('late', 'S01', 'S01-late')")
                    try db.execute(
                        sql: """
                            INSERT INTO records (tbl, id, site_id, seq, hlc, replica, user)
                            SELECT 'subjects', 'late', 'S01', seq, 1, 'a', 'a' FROM sites WHERE site_id = 'S01'
                            """
                    )
                }
            }
            return (
                counts, try await target.rowsAsText("SELECT seq::text FROM sites"),
                try await target.rowsAsText("SELECT count(*)::text FROM subjects WHERE id = 'late'")
            )
        }
        #expect(landed.withLock { $0 })
        #expect(counts.rows["records"] == before["records"]?.count && counts.rows["subjects"] == 30, "\(counts)")
        #expect(heads == ["30"] && late == ["0"])
    }

    @Test("A source whose site sequence does not cover its records is refused after the copy, and nothing is written")
    func headsCoverRecords() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (sqlite, _) = try await pilot(directory)
        try await sqlite.writer.write { db in try db.execute(sql: "UPDATE sites SET seq = 12 WHERE site_id = 'S01'") }
        let url = try await PostgresTestDatabase.create()
        let target = try PostgresSyncStore(url: url, schema: TrialSchema.current, logger: PostgresTestDatabase.quiet)
        let error = await #expect(throws: StoreCopyError.self) { try await target.withRunning { try await StoreCopy.copy(from: sqlite, to: target) } }
        #expect(error?.description.contains("of site S01 do not cover its records") == true, "\(String(describing: error))")
        let check = try PostgresSyncStore(url: url, schema: TrialSchema.current, logger: PostgresTestDatabase.quiet)
        let held = try await check.withRunning {
            (try await StoreContents.count(check, "SELECT count(*) FROM records"), try await StoreContents.count(check, "SELECT count(*) FROM tokens"))
        }
        #expect(held == (0, 0), "nothing written")
    }

    @Test("store copy refuses a file a server is serving, and copies it once the server stopped")
    func refusedWhileServed() async throws {
        try await Commands.inTemporaryFolder { cli in
            let (server, _) = try await cli.startServer(database: "server.sqlite")
            _ = try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "server.sqlite"])
            let url = try await PostgresTestDatabase.create()
            let refused = try await cli.run("sitesync-server", ["store", "copy", "--from", "server.sqlite", "--to", url])
            #expect(refused.status != 0 && refused.stderr.contains("A server is serving server.sqlite"), "\(refused.stderr)")
            server.terminate()
            await server.exit()
            let copied = try await cli.run("sitesync-server", ["store", "copy", "--from", "server.sqlite", "--to", url])
            #expect(copied.status == 0, "\(copied.stderr)")
            // And a server does not start on a file being copied: the lock is the copy's while it runs.
        }
    }

    /// Runs a server on the configured port while `body` runs: both servers of the test answer at
    /// the one URL the laptops were set up with.
    private func serving(
        _ configuration: ServerConfiguration, store: some SyncStore, services: [any Service] = [], _ body: () async throws -> Void
    ) async throws {
        var configuration = configuration
        let (listening, continuation) = AsyncStream.makeStream(of: Int.self)
        configuration.onServerRunning = { continuation.yield($0) }
        let logger = Logger(label: "sitesync.test", factory: { _ in SwiftLogNoOpLogHandler() })
        let group = ServiceGroup(
            configuration: .init(services: [try buildApplication(configuration, store: store, logger: logger, services: services)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = listening.makeAsyncIterator()
            _ = await iterator.next()
            do {
                try await body()
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
