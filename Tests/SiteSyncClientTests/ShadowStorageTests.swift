import Foundation
import GRDB
import GRDBSQLite
import SiteSyncCore
import SiteSyncSQLite
import SiteSyncTestSupport
import Testing
import TrialRecords

@testable import SiteSyncClient

@Suite("Shadow rows and outbox")
struct ShadowStorageTests {
    @Test("A value SQLite refuses to bind stops the statement: the row is not written with the previous row's value")
    func refusedBindingStops() async throws {
        let queue = try DatabaseQueue()
        try await queue.write { db in
            try db.execute(sql: "CREATE TABLE t (n INTEGER, v TEXT)")
            // Texts over 100 bytes are refused on this connection, as texts past SQLite's length limit are.
            sqlite3_limit(db.sqliteConnection, SQLITE_LIMIT_LENGTH, 100)
            let insert = try db.makeStatement(sql: "INSERT INTO t (n, v) VALUES (?, ?)")
            try insert.execute {
                $0.bind(Int64(1))
                $0.bind("short")
            }
            let error = #expect(throws: DatabaseError.self) {
                try insert.execute {
                    $0.bind(Int64(2))
                    $0.bind(String(repeating: "x", count: 200))
                }
            }
            #expect(error?.resultCode == .SQLITE_TOOBIG && error?.message?.contains("argument 2 was not bound") == true, "\(String(describing: error))")
            #expect(try Row.fetchAll(db, sql: "SELECT n, v FROM t").map { "\($0["n"] as Int64) \($0["v"] as String)" } == ["1 short"])
            // The statement works again with values it takes.
            try insert.execute {
                $0.bind(Int64(3))
                $0.bind("fine")
            }
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM t") == 2)
        }
    }

    @Test("Replacing a record is refused, and nothing is written")
    func replaceRefused() async throws {
        let replica = try makeReplica()
        let id = try replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F")])
        let before = try #require(try await replica.sync.outboxBatch(limit: 10))

        let error = await #expect(throws: DatabaseError.self) {
            try await replica.writer.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO subjects (id, site_id, screening_no, sex) VALUES (?, 'S01', 'S01-009', 'M')", arguments: [id])
            }
        }

        #expect(error?.message == "records of subjects are never replaced: update the fields that change instead")
        let stored = try #require(try replica.get("subjects", id: id))
        #expect(stored["sex"] == .text("F"))
        #expect(stored["screening_no"] == .text("S01-001"))
        let after = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(after.lastSeq == before.lastSeq)
        #expect(try OutboxAudit(replica).mismatches == [])
    }

    @Test("The outbox holds exactly the records changed here since they were pushed", arguments: [1, 2, 3] as [UInt64])
    func outboxFollowsEveryWrite(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let replica = try makeReplica()
        var dirty: Set<String> = []
        var ids: [String] = []
        var pulled: Int64 = 0
        /// Edits a record; returns whether a value changed (an unchanged value is not tracked).
        func edit(_ id: String, _ random: inout SeededGenerator) throws -> Bool {
            let before = try replica.get("subjects", id: id)
            try replica.put(
                "subjects", id: id,
                [
                    "sex": .text(random.next() % 2 == 0 ? "F" : "M"),
                    "screening_no": .text("S01-\(random.next() % 4)"),
                ], reason: "Corrected from the source document")
            return try replica.get("subjects", id: id) != before
        }
        for step in 0..<300 {
            var roll = random.next() % 10
            if ids.isEmpty, roll < 6 { roll = 0 }
            switch roll {
            case 0, 1, 2:
                ids.append(try replica.put("subjects", ["screening_no": .text("S01-\(step)")]))
                dirty.insert(ids.last!)
            case 3, 4, 5:
                let id = ids[Int(random.next() % UInt64(ids.count))]
                if try edit(id, &random) { dirty.insert(id) }
            case 6:
                // A record written elsewhere: a new one, or one this laptop holds, with a newer or an older stamp.
                let id = ids.isEmpty || random.next() % 2 == 0 ? "remote-\(step)" : ids[Int(random.next() % UInt64(ids.count))]
                let milliseconds = nowMilliseconds() + (random.next() % 2 == 0 ? 60_000 : -60_000)
                pulled += 1
                try await replica.sync.apply(pulledSubject(id: id, status: "screen_failed", milliseconds: milliseconds, cursor: pulled))
                if id.hasPrefix("remote-") { ids.append(id) }
            case 7, 8:
                // A push of the oldest changes, with some of its records edited while it travels.
                guard let batch = try await replica.sync.outboxBatch(limit: Int(random.next() % 20) + 1) else { break }
                let pushed = Set(batch.request.groups.flatMap { $0.rows.map(\.id) })
                var editedDuringPush: Set<String> = []
                for id in pushed where random.next() % 4 == 0 {
                    if try edit(id, &random) { editedDuringPush.insert(id) }
                }
                try await replica.sync.acknowledge(batch, PushResponse(acked: batch.lastSeq, applied: batch.count, conflicts: 0, hlc: .zero))
                dirty.subtract(pushed.subtracting(editedDuringPush))
            default:
                break
            }
            let mismatches = try OutboxAudit(replica).mismatches
            try #require(mismatches == [], "seed \(seed), step \(step)")
        }
        // The outbox would push every record still changed, once, oldest write first.
        let batch = try await replica.sync.outboxBatch(limit: 1000)
        let rows = batch?.request.groups.flatMap(\.rows) ?? []
        #expect(Set(rows.map(\.id)) == dirty)
        #expect(rows.count == dirty.count)
        #expect(try replica.pendingCount() == dirty.count)
        #expect(Set(rows.map(\.seq)).count == rows.count)
    }

    @Test("A replica written with the first shadow layout keeps its outbox, stamps and tracking when upgraded")
    func upgradeFromFirstLayout() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("replica.sqlite").path
        let h0 = HLC(milliseconds: nowMilliseconds() - 120_000)
        let h1 = HLC(milliseconds: nowMilliseconds() - 60_000)
        let h2 = HLC(rawValue: h1.rawValue + 1)
        try FirstLayoutReplica.write(path: path) { db in
            // s1: created here, never pushed.
            try db.execute(sql: "INSERT INTO subjects (id, site_id, screening_no, sex, status) VALUES ('s1', 'S01', 'S01-001', 'F', 'screening')")
            try db.execute(
                sql: "INSERT INTO _sitesync_records (tbl, id, hlc, replica, user, pending) VALUES ('subjects', 's1', ?, 'old-replica', 'A. Rivera', ?)",
                arguments: [h1.rawValue, h1.rawValue]
            )
            // s2: pulled from B. Chen, then enrolled here and not yet pushed.
            try db.execute(sql: "INSERT INTO subjects (id, site_id, screening_no, sex, status) VALUES ('s2', 'S01', 'S01-002', 'M', 'enrolled')")
            try db.execute(
                sql: """
                    INSERT INTO _sitesync_records (tbl, id, hlc, replica, user, fields, pending, base)
                    VALUES ('subjects', 's2', ?, 'remote', 'B. Chen', json_object('status', json_array(?, 'old-replica', 'A. Rivera')), ?,
                            json_object('status', json_array(?, 'remote', 'B. Chen')))
                    """,
                arguments: [h0.rawValue, h2.rawValue, h2.rawValue, h0.rawValue]
            )
            // ae1: pulled and synced; its grade was last written by A. Rivera.
            try db.execute(sql: "INSERT INTO adverse_events (id, site_id, subject_id, term, grade) VALUES ('ae1', 'S01', 's2', 'Pyrexia', 1)")
            try db.execute(
                sql: """
                    INSERT INTO _sitesync_records (tbl, id, hlc, replica, user, fields)
                    VALUES ('adverse_events', 'ae1', ?, 'remote', 'B. Chen', json_object('grade', json_array(?, 'old-replica', 'A. Rivera')))
                    """,
                arguments: [h0.rawValue, h1.rawValue]
            )
        }

        let replica = try Replica.open(path: path, schema: TrialSchema.current)

        // The outbox is what it was: s1 whole, s2's status on its pulled base, in write order.
        #expect(try replica.pendingCount() == 2)
        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.rows.map(\.row.id) == ["s1", "s2"])
        #expect(batch.rows[0].row.bases == nil)
        #expect(batch.rows[0].group.user == "A. Rivera")
        #expect(batch.value("sex", of: "s1") == .text("F"))
        #expect(batch.value("status", of: "s2") == .text("enrolled"))
        #expect(batch.base("status", of: "s2") == .some(Version(hlc: h0, replica: "remote")))
        #expect(batch.rows[1].row.seq == h2)
        // Every stamp is kept, with its replica and user.
        let history = try replica.localHistory("adverse_events", id: "ae1")
        let grade = try #require(history.entries.first { $0.changes?.contains { $0.field == "grade" } == true })
        #expect(grade.user == "A. Rivera")
        #expect(grade.replica == "old-replica")
        #expect(history.entries.contains { $0.user == "B. Chen" && $0.replica == "remote" })
        // The clock stays ahead of every change the replica issued.
        #expect(try replica.clock >= h2)

        // Tracking works on the new layout: an insert, and an edit based on the migrated stamp.
        try replica.put("adverse_events", id: "ae1", ["grade": .integer(2)], reason: "Corrected from the source document")
        let ae2 = try replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fatigue"), "grade": .integer(1)])
        let next = try #require(try await replica.sync.outboxBatch(limit: 10, after: batch.lastSeq))
        #expect(Set(next.rows.map(\.row.id)) == ["ae1", ae2])
        #expect(next.base("grade", of: "ae1") == .some(Version(hlc: h1, replica: "old-replica")))
        #expect(try OutboxAudit(replica).mismatches == [])
        #expect(try await replica.writer.read { db in try db.tableExists("_sitesync_records") } == false)
    }
}

/// Compares the outbox with the shadow rows: each pending record has exactly one entry, at its sequence number.
struct OutboxAudit {
    let mismatches: [String]

    init(_ replica: Replica) throws {
        mismatches = try replica.writer.read { db in
            let orphans = try String.fetchAll(
                db,
                sql: """
                    SELECT 'entry ' || o.seq || ' of ' || o.id || ' has no pending shadow row' FROM _sitesync_outbox AS o
                    LEFT JOIN _sitesync_shadows AS s ON s.tbl = o.tbl AND s.id = o.id AND s.pending = o.seq
                    WHERE s.id IS NULL
                    """
            )
            let missing = try String.fetchAll(
                db,
                sql: """
                    SELECT 'pending ' || s.id || ' at ' || s.pending || ' has no outbox entry' FROM _sitesync_shadows AS s
                    LEFT JOIN _sitesync_outbox AS o ON o.seq = s.pending AND o.tbl = s.tbl AND o.id = s.id
                    WHERE s.pending IS NOT NULL AND o.seq IS NULL
                    """
            )
            return orphans + missing
        }
    }
}

/// A replica database as the first release wrote it: shadow rows keyed by table name, with text
/// stamps, and the outbox as their partial index.
enum FirstLayoutReplica {
    static func write(path: String, records: (Database) throws -> Void) throws {
        let queue = try DatabaseQueue(path: path)
        // The replica's own first migration, then the trial tables, as the first release ran them.
        try Replica.migrator(schema: TrialSchema.current).migrate(queue, upTo: "sitesync-v1")
        var tables = DatabaseMigrator()
        registerSchemaMigrations(&tables, schema: TrialSchema.current, prefix: "")
        try tables.migrate(queue)
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO _sitesync_meta (id, replica_id, site, user, server_url, token, hlc, cursor, created_at)
                    VALUES (1, 'old-replica', 'S01', 'A. Rivera', 'http://127.0.0.1:9', 'token', 0, '{}', '2026-11-01T00:00:00Z')
                    """
            )
            try records(db)
            // The first release's insert trigger, which refers to the old table.
            try db.execute(
                sql: """
                    CREATE TRIGGER "_sitesync_subjects_ai" AFTER INSERT ON "subjects" BEGIN
                        INSERT OR IGNORE INTO _sitesync_records (tbl, id, hlc, replica, user, pending)
                        SELECT 'subjects', NEW.id, s.h, 'old-replica', 'A. Rivera', s.h
                        FROM (SELECT sitesync_tick() AS h) AS s;
                    END;
                    """
            )
        }
    }
}
