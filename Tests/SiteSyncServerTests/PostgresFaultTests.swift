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

/// PostgreSQL made to fail at every step of a push and a pull: nothing the database did not commit
/// is ever acknowledged, nothing of a failed transaction stays, and the same request sent again is
/// applied exactly once.
@Suite("PostgreSQL failures", .enabled(if: StoreKind.all.contains(.postgres)))
struct PostgresFaultTests {
    private let principal = Principal(role: .site, site: "S01", replica: "r1")
    private let ids = ["a1", "a2", "a3"]

    private func checked(_ replica: String = "r1", site: String = "S01", ids: [String], principal: Principal? = nil) throws -> CheckedPush {
        try PushValidation.check(
            subjectPush(replica: replica, site: site, ids: ids), principal: principal ?? self.principal, schema: TrialSchema.current,
            serverMilliseconds: HybridLogicalClock.systemMilliseconds(), maximumSkewMilliseconds: 60_000, receivedAt: Date().formatted(.iso8601)
        )
    }

    /// A new, migrated database with `setup` run in it; its URL.
    private func database(_ setup: [String] = []) async throws -> String {
        let url = try await PostgresTestDatabase.create()
        try await Self.admin(url) { store in
            try await store.migrate()
            for statement in setup { try await store.execute(statement) }
        }
        return url
    }

    /// Runs `body` with a store of one connection on `url`, for statements outside the store's rules.
    private static func admin(_ url: String, _ body: @Sendable (PostgresSyncStore) async throws -> Void) async throws {
        let store = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        try await store.withRunning { try await body(store) }
    }

    private func makeStore(
        _ url: String, connections: Int = 2, beforeCommit: (@Sendable (PushWrites) async throws -> Void)? = nil,
        faults: PostgresSyncStore.FaultHook? = nil
    ) throws -> PostgresSyncStore {
        try PostgresSyncStore(
            url: url, schema: TrialSchema.current, maximumConnections: connections, logger: PostgresTestDatabase.quiet, beforeCommit: beforeCommit,
            faults: faults
        )
    }

    /// What a failed push must leave: no record, no audit row, no replica state, no site head moved.
    private func expectNothingWritten(_ store: PostgresSyncStore, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for table in ["subjects", "records", "audit", "replicas"] {
            let rows = try await StoreContents.count(store, "SELECT count(*) FROM \(table)")
            #expect(rows == 0, "\(context): \(table) holds \(rows) rows", sourceLocation: sourceLocation)
        }
        let heads = try await store.rowsAsText("SELECT coalesce(max(seq), 0)::text FROM sites")
        #expect(heads == ["0"], "\(context): a site's head moved", sourceLocation: sourceLocation)
    }

    /// What a push of `ids` applied once leaves.
    private func expectAppliedOnce(_ store: PostgresSyncStore, ids: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let stored = try await store.rowsAsText("SELECT id FROM subjects ORDER BY id")
        #expect(stored == ids.sorted(), sourceLocation: sourceLocation)
        let audited = try await StoreContents.count(store, "SELECT count(*) FROM audit WHERE tbl = 'subjects'")
        #expect(audited == ids.count, "one audit row per record received", sourceLocation: sourceLocation)
        let head = try await store.rowsAsText("SELECT seq::text FROM sites WHERE site_id = 'S01'")
        #expect(head == ["\(ids.count)"], "one sequence number per record", sourceLocation: sourceLocation)
    }

    /// A trigger on the audit trail that raises SQLSTATE `state`, before each row or after the
    /// statement: after the statement, the error arrives behind the push's one result row.
    private static func failing(_ state: String, when: String) -> [String] {
        [
            """
            CREATE FUNCTION sitesync_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected failure' USING ERRCODE = TG_ARGV[0]; END $$
            """,
            "CREATE TRIGGER sitesync_test_fail \(when) INSERT ON audit FOR EACH \(when == "BEFORE" ? "ROW" : "STATEMENT") EXECUTE FUNCTION sitesync_test_fail('\(state)')",
        ]
    }

    @Test(
        "A statement of a push's write that fails is never acknowledged, and nothing of the push stays",
        arguments: [("53100", "BEFORE"), ("53100", "AFTER"), ("23514", "AFTER"), ("57014", "AFTER")]
    )
    func failedWrite(state: String, when: String) async throws {
        let url = try await database(Self.failing(state, when: when))
        let store = try makeStore(url)
        try await store.withRunning {
            let error = await #expect(throws: StorageError.self) { try await store.push(try checked(ids: ids), principal: principal) }
            #expect(error?.code == state, "the database's own code: \(String(describing: error))")
            try await expectNothingWritten(store, "SQLSTATE \(state) \(when)")
            try await store.execute("DROP TRIGGER sitesync_test_fail ON audit")
            let outcome = try await store.push(try checked(ids: ids), principal: principal)
            #expect(outcome.applied == 3)
            try await expectAppliedOnce(store, ids: ids)
        }
    }

    @Test("A push that runs past the database's statement timeout is not acknowledged; after the timeout is lifted it applies once")
    func statementTimeout() async throws {
        let url = try await database([
            "CREATE FUNCTION sitesync_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$",
            "CREATE TRIGGER sitesync_test_slow AFTER INSERT ON audit FOR EACH STATEMENT EXECUTE FUNCTION sitesync_test_slow()",
        ])
        let name = try #require(url.split(separator: "/").last)
        try await Self.admin(url) { try await $0.execute("ALTER DATABASE \(name) SET statement_timeout = '150ms'") }
        let store = try makeStore(url)
        try await store.withRunning {
            let error = await #expect(throws: StorageError.self) { try await store.push(try checked(ids: ids), principal: principal) }
            #expect(error?.code == "57014" && error?.kind == .unavailable, "a cancelled statement is worth another try: \(String(describing: error))")
            try await expectNothingWritten(store, "statement timeout")
        }
        try await Self.admin(url) { try await $0.execute("ALTER DATABASE \(name) RESET statement_timeout") }
        let lifted = try makeStore(url)
        try await lifted.withRunning {
            #expect(try await lifted.push(try checked(ids: ids), principal: principal).applied == 3)
            try await expectAppliedOnce(lifted, ids: ids)
        }
    }

    /// A trigger that raises `state` on its first `times` calls, counted by a sequence, which a
    /// rollback does not take back.
    private static func failingFirst(_ state: String, times: Int) -> [String] {
        [
            "CREATE SEQUENCE sitesync_test_calls",
            """
            CREATE FUNCTION sitesync_test_fail_first() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('sitesync_test_calls') <= \(times) THEN RAISE EXCEPTION 'injected failure' USING ERRCODE = '\(state)'; END IF;
                RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER sitesync_test_fail_first AFTER INSERT ON audit FOR EACH STATEMENT EXECUTE FUNCTION sitesync_test_fail_first()",
        ]
    }

    @Test("A serialization failure or a deadlock runs the push again; one that keeps failing is not acknowledged", arguments: ["40001", "40P01"])
    func retried(state: String) async throws {
        let once = try await database(Self.failingFirst(state, times: 1))
        let store = try makeStore(once)
        try await store.withRunning {
            #expect(try await store.push(try checked(ids: ids), principal: principal).applied == 3)
            try await expectAppliedOnce(store, ids: ids)
            #expect(try await store.rowsAsText("SELECT last_value::text FROM sitesync_test_calls") == ["2"], "failed once, then applied")
        }
        let always = try await database(Self.failingFirst(state, times: 1000))
        let failing = try makeStore(always)
        try await failing.withRunning {
            let error = await #expect(throws: StorageError.self) { try await failing.push(try checked(ids: ids), principal: principal) }
            #expect(error?.kind == .unavailable)
            try await expectNothingWritten(failing, "SQLSTATE \(state) every time")
            let attempts = try await failing.rowsAsText("SELECT last_value::text FROM sitesync_test_calls")
            #expect(attempts == ["\(PostgresSyncStore.maximumAttempts)"])
        }
    }

    @Test("Two sites creating one record id at once: one is applied, the other refused naming the record, never both")
    func sameRecordTwoSites() async throws {
        let url = try await database()
        let entered = Mutex(false)
        let released = Mutex(false)
        let store = try makeStore(
            url, connections: 4,
            beforeCommit: { writes in
                guard writes.replicaID == "held" else { return }
                entered.withLock { $0 = true }
                while !released.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            }
        )
        let s02 = Principal(role: .site, site: "S02", replica: "other")
        try await store.withRunning {
            let held = Principal(role: .site, site: "S01", replica: "held")
            let first = Task { try await store.push(try checked("held", ids: ["shared"], principal: held), principal: held) }
            while !entered.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            // S02's push waits on the uncommitted key, then meets it.
            let second = Task { try await store.push(try checked("other", site: "S02", ids: ["shared"], principal: s02), principal: s02) }
            try await Task.sleep(for: .milliseconds(200))
            released.withLock { $0 = true }
            #expect(try await first.value.applied == 1)
            let refusal = await #expect(throws: SyncRefusal.self) { try await second.value }
            #expect(refusal?.code == .forbidden)
            #expect(refusal?.message.contains("Record shared of subjects belongs to site S01") == true, "\(String(describing: refusal))")
            #expect(try await store.rowsAsText("SELECT site_id FROM subjects") == ["S01"])
            #expect(try await StoreContents.count(store, "SELECT count(*) FROM replicas WHERE replica_id = 'other'") == 0)

            // And unsynchronised, over and over: the two sites push the same 200 new ids at once.
            let racing = try makeStore(url, connections: 4)
            try await racing.withRunning {
                for round in 0..<10 {
                    let ids = (0..<200).map { "race-\(round)-\($0)" }
                    let sites = [("S01", "x\(round)"), ("S02", "y\(round)")]
                    let results = await withTaskGroup(of: Result<PushOutcome, any Error>.self) { group in
                        for (site, replica) in sites {
                            group.addTask {
                                let principal = Principal(role: .site, site: site, replica: replica)
                                do {
                                    return .success(
                                        try await racing.push(try checked(replica, site: site, ids: ids, principal: principal), principal: principal))
                                } catch {
                                    return .failure(error)
                                }
                            }
                        }
                        return await group.reduce(into: []) { $0.append($1) }
                    }
                    let applied = results.filter { (try? $0.get())?.applied == 200 }.count
                    let refused = results.compactMap { result -> SyncRefusal? in
                        if case .failure(let refusal as SyncRefusal) = result, refusal.code == .forbidden { return refusal }
                        return nil
                    }
                    #expect(applied == 1 && refused.count == 1, "round \(round): \(results)")
                    let stored = try await racing.rowsAsText(
                        "SELECT count(DISTINCT site_id)::text || ' ' || count(*)::text FROM subjects WHERE id LIKE 'race-\(round)-%'")
                    #expect(stored == ["1 200"], "round \(round): every id stored once, all for one site")
                }
            }
        }
    }

    /// How many statements a push, or a pull, runs inside its transaction.
    private func statements(_ url: String, _ body: @Sendable (PostgresSyncStore) async throws -> Void) async throws -> Int {
        let seen = Mutex(0)
        let counting = try makeStore(url, faults: { point, _ in seen.withLock { $0 = max($0, point.statement + 1) } })
        try await counting.withRunning { try await body(counting) }
        return seen.withLock { $0 }
    }

    /// A fault that terminates, from another connection, the backend of the transaction's own
    /// connection before its statement `at`, as an operator's `pg_terminate_backend` or an OOM kill would.
    private static func terminating(at statement: Int, admin: PostgresSyncStore) -> PostgresSyncStore.FaultHook {
        { point, connection in
            guard point.statement == statement else { return }
            var pid: Int32 = 0
            for try await value in try await connection.query("SELECT pg_backend_pid()", logger: PostgresTestDatabase.quiet).decode(Int32.self) { pid = value }
            try await admin.execute("SELECT pg_terminate_backend(\(pid))")
        }
    }

    /// Runs `body` once for each of a transaction's `count` statements, on a store whose connection
    /// is terminated before that statement: each run must throw; `after` checks what it left.
    private func terminatingEachStatement(
        _ url: String, count: Int, admin: PostgresSyncStore, _ body: @escaping @Sendable (PostgresSyncStore) async throws -> Void,
        after: (Int) async throws -> Void = { _ in }
    ) async throws {
        for statement in 0..<count {
            let store = try makeStore(url, faults: Self.terminating(at: statement, admin: admin))
            try await store.withRunning {
                _ = await #expect(throws: StorageError.self, "statement \(statement)") { try await body(store) }
            }
            try await after(statement)
        }
    }

    @Test("The server's connection terminated before any statement of a push, or before its commit: no acknowledgement, nothing written, then applied once")
    func terminatedPush() async throws {
        let url = try await database()
        let push = try checked(ids: ids)
        // Measured on a database of its own, so that this one stays empty.
        let count = try await statements(try await database()) { store in _ = try await store.push(push, principal: principal) }
        #expect(count >= 6, "a push's statements: \(count)")
        let admin = try makeStore(url, connections: 1)
        try await admin.withRunning {
            try await terminatingEachStatement(url, count: count, admin: admin) { store in
                _ = try await store.push(push, principal: principal)
            } after: { statement in
                try await expectNothingWritten(admin, "terminated before statement \(statement)")
            }
            // Before the commit: the push's writes are done, and the connection goes.
            let killed = Mutex(false)
            let beforeCommit = try makeStore(
                url,
                beforeCommit: { _ in
                    guard !killed.withLock({ $0 }) else { return }
                    killed.withLock { $0 = true }
                    try await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"
                    )
                }
            )
            try await beforeCommit.withRunning {
                await #expect(throws: StorageError.self) { try await beforeCommit.push(push, principal: principal) }
                try await expectNothingWritten(admin, "terminated before the commit")
                // The same push again, on the same pool, which opens a new connection.
                #expect(try await beforeCommit.push(push, principal: principal).applied == 3)
            }
            try await expectAppliedOnce(admin, ids: ids)
            // And once more: a retry of an applied push is answered as before and writes nothing.
            let again = try makeStore(url)
            try await again.withRunning {
                let outcome = try await again.push(push, principal: principal)
                #expect(outcome.applied == 3 && outcome.fieldChanges == 0, "\(outcome)")
            }
            try await expectAppliedOnce(admin, ids: ids)
        }
    }

    @Test("The server's connection terminated before any statement of a pull: the pull fails whole, and the next one reads every record")
    func terminatedPull() async throws {
        let url = try await database()
        let request = PullRequest(cursor: ["S01": 0], limit: 100, replica: "reader")
        let reader = Principal(role: .site, site: "S01", replica: "reader")
        let seeded = try makeStore(url)
        try await seeded.withRunning { _ = try await seeded.push(try checked(ids: ids), principal: principal) }
        let count = try await statements(url) { store in _ = try await store.pull(request, principal: reader, schema: TrialSchema.current) }
        #expect(count >= 3, "a pull's statements: \(count)")
        let admin = try makeStore(url, connections: 1)
        try await admin.withRunning {
            try await terminatingEachStatement(url, count: count, admin: admin) { store in
                _ = try await store.pull(request, principal: reader, schema: TrialSchema.current)
            }
            let batch = try await admin.pull(request, principal: reader, schema: TrialSchema.current)
            #expect(batch.groups.flatMap { $0.rows.map(\.id) } == ids)
            #expect(batch.cursor == ["S01": 3] && !batch.more)
        }
    }

    @Test("PostgreSQL stopped in the middle of a push and started again: no acknowledgement, then the push applies once")
    func restartedMidPush() async throws {
        let cluster = try await PrivateCluster()
        do {
            let url = try PostgresTestDatabase.databaseURL(cluster.url, "postgres")
            try await Self.admin(url) { try await $0.migrate() }
            let stopped = Mutex(false)
            let store = try makeStore(
                url,
                beforeCommit: { _ in
                    guard !stopped.withLock({ $0 }) else { return }
                    stopped.withLock { $0 = true }
                    // Killed with the push's writes done and its commit not yet asked for.
                    try await cluster.stop(immediate: true)
                    try await cluster.start()
                }
            )
            try await store.withRunning {
                let error = await #expect(throws: StorageError.self) { try await store.push(try checked(ids: ids), principal: principal) }
                #expect(error?.kind == .unavailable, "\(String(describing: error))")
                try await expectNothingWritten(store, "restarted mid-push")
                #expect(try await store.push(try checked(ids: ids), principal: principal).applied == 3)
                try await expectAppliedOnce(store, ids: ids)
            }
        } catch {
            await cluster.remove()
            throw error
        }
        await cluster.remove()
    }
}
