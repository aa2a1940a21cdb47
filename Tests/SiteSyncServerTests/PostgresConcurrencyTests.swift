import Foundation
import PostgresNIO
import SiteSyncCore
import SiteSyncRules
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

@testable import SiteSyncPostgresStore
@testable import SiteSyncServer

/// A push of new subjects, checked as the server checks it.
private func checked(_ replica: String, site: String, ids: [String], principal: Principal) throws -> CheckedPush {
    try PushValidation.check(
        subjectPush(replica: replica, site: site, ids: ids), principal: principal, schema: TrialSchema.current,
        serverMilliseconds: HybridLogicalClock.systemMilliseconds(), maximumSkewMilliseconds: 60_000, receivedAt: Date().formatted(.iso8601)
    )
}

/// A push held open in its transaction until the test releases it, or rolls it back.
private final class Barrier: Sendable {
    private let state = Mutex<(entered: Bool, release: Bool?)>((false, nil))

    /// Called by the held push: says it is in, then waits for the verdict; throws to roll back.
    func hold() async throws {
        state.withLock { $0.entered = true }
        while true {
            switch state.withLock({ $0.release }) {
            case true?: return
            case false?: throw CancellationError()
            case nil: try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    func waitUntilEntered() async throws {
        for _ in 0..<2000 where !state.withLock({ $0.entered }) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(state.withLock { $0.entered }, "the held push reached its commit")
    }

    func release(commit: Bool) { state.withLock { $0.release = commit } }
}

/// What PostgreSQL's concurrency exposes and SQLite's single writer hides: a pull never skips a
/// late commit, pushes for different sites never wait on each other, and sequence numbers have no gaps.
@Suite("PostgreSQL under concurrent pushes", .enabled(if: StoreKind.all.contains(.postgres)))
struct PostgresConcurrencyTests {

    private func pulled(_ store: PostgresSyncStore, after cursor: Int64) async throws -> (ids: [String], cursor: Int64) {
        let batch = try await store.pull(
            PullRequest(cursor: ["S01": cursor], limit: 100, replica: "reader"), principal: Principal(role: .site, site: "S01", replica: "reader"),
            schema: TrialSchema.current
        )
        return (batch.groups.flatMap { $0.rows.map(\.id) }, batch.cursor["S01"] ?? -1)
    }

    @Test("A pull never passes a push still committing; a push for another site does not wait; a rollback leaves no gap")
    func lateCommit() async throws {
        let barrier = Barrier()
        let held = Mutex<Set<String>>([])
        let store = try PostgresSyncStore(
            url: try await PostgresTestDatabase.create(), schema: TrialSchema.current, maximumConnections: 6, logger: PostgresTestDatabase.quiet,
            beforeCommit: { writes in
                if writes.audit.contains(where: { held.withLock { $0 }.contains($0.recordID) }) { try await barrier.hold() }
            }
        )
        Task { try await store.run() }
        try await store.migrate()
        let s01 = Principal(role: .site, site: "S01", replica: "a")
        let s01b = Principal(role: .site, site: "S01", replica: "b")
        let s02 = Principal(role: .site, site: "S02", replica: "c")
        _ = try await store.push(checked("a", site: "S01", ids: ["first"], principal: s01), principal: s01)
        #expect(try await pulled(store, after: 0) == (["first"], 1))

        // A for S01 holds its transaction open at the commit; B for S01 waits on the site's head.
        held.withLock { $0 = ["held"] }
        let a = Task { try await store.push(checked("a", site: "S01", ids: ["held"], principal: s01), principal: s01) }
        try await barrier.waitUntilEntered()
        let b = Task { try await store.push(checked("b", site: "S01", ids: ["waiting"], principal: s01b), principal: s01b) }
        // C for S02 commits meanwhile: sites do not wait on each other.
        let c = try await store.push(checked("c", site: "S02", ids: ["other"], principal: s02), principal: s02)
        #expect(c.applied == 1)
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await pulled(store, after: 1) == ([], 1), "nothing past the previous head while A and B are open")
        barrier.release(commit: true)
        #expect(try await a.value.applied == 1)
        #expect(try await b.value.applied == 1)
        let after = try await pulled(store, after: 1)
        #expect(after.ids == ["held", "waiting"] && after.cursor == 3, "A's and B's changes, numbered 2 and 3")

        // The same with A rolled back: B takes the next number, no gap.
        let rollback = Barrier()
        let second = try PostgresSyncStore(
            url: try await PostgresTestDatabase.create(), schema: TrialSchema.current, maximumConnections: 6, logger: PostgresTestDatabase.quiet,
            beforeCommit: { writes in if writes.audit.contains(where: { $0.recordID == "doomed" }) { try await rollback.hold() } }
        )
        Task { try await second.run() }
        try await second.migrate()
        _ = try await second.push(checked("a", site: "S01", ids: ["first"], principal: s01), principal: s01)
        let doomed = Task { try await second.push(checked("a", site: "S01", ids: ["doomed"], principal: s01), principal: s01) }
        try await rollback.waitUntilEntered()
        let next = Task { try await second.push(checked("b", site: "S01", ids: ["next"], principal: s01b), principal: s01b) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await pulled(second, after: 1) == ([], 1))
        rollback.release(commit: false)
        await #expect(throws: (any Error).self) { try await doomed.value }
        #expect(try await next.value.applied == 1)
        #expect(try await pulled(second, after: 1) == (["next"], 2), "the next push takes number 2: no gap")
    }
}

/// Migrations on PostgreSQL: named, recorded, applied once when instances start together.
@Suite("PostgreSQL migrations", .enabled(if: StoreKind.all.contains(.postgres)))
struct PostgresMigrationTests {
    @Test("Instances starting at once apply each migration once; the audit trail's key leads with the site")
    func startingTogether() async throws {
        let url = try await PostgresTestDatabase.create()
        let stores = try (0..<4).map { _ in
            try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores { group.addTask { try await store.withRunning { try await store.migrate() } } }
            try await group.waitForAll()
        }
        let store = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        try await store.withRunning {
            let applied = try await store.appliedMigrations()
            #expect(applied.sorted() == store.migrations.map(\.name).sorted())
            #expect(Set(applied).count == applied.count, "no migration recorded twice")
            let key = try await store.rowsAsText(
                """
                SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM pg_index i
                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = 'audit'::regclass AND i.indisprimary
                """
            )
            #expect(key == ["site_id,id"])
        }
    }
}

/// The lookups of a push and of a pull page cost what the batch costs, not what the table holds.
@Suite("PostgreSQL lookups", .enabled(if: StoreKind.all.contains(.postgres)))
struct PostgresLookupTests {
    @Test("A push's and a page's lookups of 2,000 records of a 3,000-record table go through the keys")
    func lookupsUseKeys() async throws {
        let store = try PostgresSyncStore(
            url: try await PostgresTestDatabase.create(), schema: TrialSchema.current, maximumConnections: 2, logger: PostgresTestDatabase.quiet
        )
        try await store.withRunning {
            try await store.migrate()
            let principal = Principal(role: .site, site: "S01", replica: "r1")
            let ids = (0..<3000).map { "subject-\($0)" }
            for chunk in [ids[..<1500], ids[1500...]] {
                _ = try await store.push(checked("r1", site: "S01", ids: Array(chunk), principal: principal), principal: principal)
            }
            // The table just filled, as after a bulk push: the planner has no statistics yet, and
            // a page or a batch asks for most of the table.
            let some = Array(ids[500..<2500])
            let subjects = try TrialSchema.current.table("subjects")
            let lookups: [(name: String, query: PostgresQuery)] = [
                ("the records' sites", PostgresSyncStore.recordSites(some.map { RecordKey(table: "subjects", id: $0) })),
                ("the stored records", PostgresSyncStore.storedRecords(subjects, ids: some)),
                ("a page's values", PostgresSyncStore.pageValues(subjects, ids: some)),
            ]
            for lookup in lookups {
                let plan = try await store.plan(of: lookup.query)
                #expect(!plan.contains("Seq Scan"), "\(lookup.name) read a whole table:\n\(plan)")
                #expect(plan.contains("Index"), "\(lookup.name) used no index:\n\(plan)")
            }
            // And the lookups find what they look for.
            let rows = try await store.rowsAsText("SELECT count(*)::text FROM subjects")
            #expect(rows == ["3000"])
            let batch = try await store.pull(
                PullRequest(cursor: ["S01": 500], limit: 2000, replica: "reader"), principal: Principal(role: .site, site: "S01", replica: "reader"),
                schema: TrialSchema.current
            )
            #expect(batch.groups.flatMap { $0.rows.map(\.id) } == some)
            #expect(batch.groups.flatMap(\.rows).allSatisfy { $0.values.count == subjects.columns.count })
        }
    }
}

extension PostgresSyncStore {
    /// The plan PostgreSQL chooses for `query`, as `EXPLAIN` prints it.
    fileprivate func plan(of query: PostgresQuery) async throws -> String {
        try await transaction(readOnly: true) { connection in
            var lines: [String] = []
            let explain = PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds)
            for try await line in try await connection.query(explain).decode(String.self) { lines.append(line) }
            return lines.joined(separator: "\n")
        }
    }
}

/// A batch's columns reach PostgreSQL as binary arrays: every value must come back as it went.
@Suite("PostgreSQL batch columns", .enabled(if: StoreKind.all.contains(.postgres)))
struct PostgresColumnTests {
    @Test("Texts, integers and reals, NULLs among them, come back from unnest exactly; a value of another type is refused")
    func roundTrip() async throws {
        let texts: [String?] = ["plain", "quote \" ' and \\ backslash", "é 日本 🙂 \u{1}", "", nil, "{\"a\":[1,2]}"]
        let integers: [FieldValue] = [.integer(.min), .integer(.max), .integer(0), .integer(-1), .null, .integer(42)]
        let reals: [FieldValue] = [.real(0.1), .real(-0.0), .real(1e308), .real(5e-324), .null, .integer(3)]
        var rows = PostgresRows([.text, .bigint, .double])
        for index in texts.indices {
            rows[0].append(texts[index])
            try rows[1].append(integers[index])
            try rows[2].append(reals[index])
        }
        #expect(rows.count == texts.count)
        let batch = rows
        var wrong = PostgresColumn(.bigint)
        #expect(throws: StorageError.self) { try wrong.append(.text("12")) }
        #expect(throws: StorageError.self) { try wrong.append(.real(1.5)) }

        let store = try PostgresSyncStore(
            url: try await PostgresTestDatabase.create(), schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet
        )
        try await store.withRunning {
            try await store.transaction { connection in
                var statement = CombinedStatement()
                let unnest = batch.unnest(in: &statement)
                let query = PostgresQuery(unsafeSQL: "SELECT a, b, c FROM \(unnest) WITH ORDINALITY AS x(a, b, c, n) ORDER BY n", binds: statement.query.binds)
                var back: [(String?, Int64?, Double?)] = []
                for try await row in try await connection.query(query).decode((String?, Int64?, Double?).self) { back.append(row) }
                #expect(back.map(\.0) == texts)
                #expect(back.map { $0.1.map(FieldValue.integer) ?? .null } == integers)
                #expect(back.map { $0.2?.bitPattern } == [0.1, -0.0, 1e308, 5e-324, nil, 3.0].map { $0?.bitPattern })

                // Read back straight from the bytes, as the stores read their rows, against values
                // PostgreSQL writes itself; an int4 and a numeric take the library's decoding.
                let literal = PostgresQuery(
                    unsafeSQL:
                        "SELECT 'é 日本 🙂'::text, ''::text, NULL::text, (-9223372036854775808)::bigint, 42::int4, '-0'::float8, 0.1::float8, NULL::float8, 1.5::numeric::float8, 'a'::varchar"
                )
                for try await row in try await connection.query(literal) {
                    var cells = RowCells(row)
                    #expect(try cells.text() == "é 日本 🙂")
                    #expect(try cells.requiredText() == "")
                    #expect(try cells.text() == nil)
                    #expect(try cells.integer() == .min)
                    #expect(try cells.integer() == 42)
                    #expect(try cells.real()?.bitPattern == (-0.0).bitPattern)
                    #expect(try cells.value(ColumnSchema("r", .real())) == .real(0.1))
                    #expect(try cells.value(ColumnSchema("r", .real())) == .null)
                    #expect(try cells.real() == 1.5)
                    #expect(try cells.text() == "a")
                    #expect(throws: StorageError.self) { try cells.next() }
                }

                // An empty batch is an empty array: no rows.
                var empty = CombinedStatement()
                let none = PostgresRows([.text, .bigint]).unnest(in: &empty)
                let count = try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(none)", binds: empty.query.binds))
                for try await value in count.decode(Int64.self) { #expect(value == 0) }
            }
        }
    }
}
