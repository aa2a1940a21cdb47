import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Testing
import TrialRecords

/// Writes to a replica from SQLite clients other than the library, the `sqlite3` shell and Python's
/// `sqlite3` module, tracked by the same plain-SQL triggers and synced like the library's own.
@Suite("Writers other than the library")
struct ForeignWriterTests {
    /// Runs the `sqlite3` shell on `path` with `sql` on its standard input, stopping at the first
    /// error; its exit status and output (standard error included).
    static func shell(_ path: String, _ sql: String) async throws -> (status: Int32, output: String) {
        try await foreign("/usr/bin/sqlite3", ["-bail", path], input: sql)
    }

    /// Runs a Python script with `arguments`; its exit status and output (standard error included).
    static func python(_ script: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await foreign("/usr/bin/python3", ["-c", script] + arguments, input: "")
    }

    private static func foreign(_ executable: String, _ arguments: [String], input: String) async throws -> (status: Int32, output: String) {
        let run = try await Subprocess.run(executable, arguments, input: input.isEmpty ? nil : Data(input.utf8))
        return (run.status, String(decoding: run.stdout + run.stderr, as: UTF8.self))
    }

    /// The server's audit trail of a record, as a reviewer reads it.
    private func history(_ server: LiveServer, _ table: String, _ id: String) async throws -> [HistoryEntry] {
        try await server.store.history(table: table, id: id, principal: Principal(role: .reviewer, site: nil))?.entries ?? []
    }

    @Test(
        "Rows the sqlite3 shell inserts, updates and soft-deletes are pushed with the replica's stamps and bases; a synced value it changes waits for a person's reason"
    )
    func sqliteShell() async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b")
            let path = server.directory.appendingPathComponent("a.sqlite").path
            let replicaID = try #require(a.replica.identity?.replicaID)
            let s1 = try a.replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F")])
            let created = try #require(try await a.replica.sync.outboxBatch(limit: 10)?.request.groups.first?.rows.first?.seq)
            try await a.sync()
            try await b.sync()

            // One transaction of the shell: a new record and an edit of a synced one.
            let s2 = RecordID.generate()
            let before = HybridLogicalClock.systemMilliseconds()
            let written = try await Self.shell(
                path,
                """
                BEGIN;
                INSERT INTO subjects (id, site_id, screening_no) VALUES ('\(s2)', 'S01', 'S01-002');
                UPDATE subjects SET sex = 'M' WHERE id = '\(s1)';
                COMMIT;
                """)
            #expect(written.status == 0, "\(written.output)")
            // The new record is pushed; the synced value changed without a reason waits for one.
            let batch = try #require(try await a.replica.sync.outboxBatch(limit: 10))
            #expect(batch.rows.map(\.row.id) == [s2])
            #expect(batch.rows.allSatisfy { $0.group.user == "A. Rivera" && $0.row.seq > created })
            #expect(batch.rows.allSatisfy { $0.row.seq.milliseconds >= before && $0.row.seq.milliseconds < before + 60_000 })
            #expect(batch.value("screening_no", of: s2) == .text("S01-002"))
            #expect(batch.value("status", of: s2) == .text("screening"), "the column's default")
            #expect(try a.replica.pendingCount() == 2 && a.replica.status().awaitingReason == 1)
            let waiting = try a.replica.unexplainedChanges()
            #expect(waiting.map(\.id) == [s1] && waiting.first?.fields == ["sex"] && waiting.first?.table == "subjects")

            let first = try await a.sync()
            #expect(first.pushed == 1 && first.awaitingReason == 1)
            #expect(try await b.sync().pulled == 1)
            #expect(try b.replica.get("subjects", id: s1)?["sex"] == .text("F"), "not pushed without a reason")
            #expect(try b.replica.get("subjects", id: s2)?["screening_no"] == .text("S01-002"))

            // A person gives the reason: the change goes, after what the server acknowledged meanwhile.
            #expect(throws: ReplicaError.self) { try a.replica.explain("subjects", id: s2, reason: "nothing waits") }
            #expect(throws: ReplicaError.self) { try a.replica.explain("subjects", id: s1, reason: "  ") }
            #expect(try a.replica.unexplainedChanges().map(\.id) == [s1], "a refused explanation writes nothing")
            #expect(try a.replica.explain("subjects", id: s1, reason: "Corrected from the source document") == ["sex"])
            let explained = try #require(try await a.replica.sync.outboxBatch(limit: 10))
            #expect(explained.rows.map(\.row.id) == [s1])
            #expect(explained.rows.allSatisfy { $0.row.seq > batch.rows[0].row.seq })
            #expect(explained.value("sex", of: s1) == .text("M"))
            #expect(explained.base("sex", of: s1) == .some(Version(hlc: created, replica: replicaID)))
            #expect(try a.replica.status().awaitingReason == 0)
            let second = try await a.sync()
            #expect(second.pushed == 1 && second.awaitingReason == 0)
            #expect(try a.replica.pendingCount() == 0)
            #expect(try await b.sync().pulled == 1)
            #expect(try b.replica.get("subjects", id: s1)?["sex"] == .text("M"))
            let change = try #require(try await history(server, "subjects", s1).last)
            #expect(change.user == "A. Rivera" && change.replica == replicaID)
            #expect(change.changes?.map(\.field).contains("sex") == true)
            #expect(change.changes?.first { $0.field == "sex" }?.reason == "Corrected from the source document")

            // A soft delete is an edit of `_deleted`; a hard delete is refused and writes nothing.
            let deleted = try await Self.shell(path, "UPDATE subjects SET _deleted = 'Entered in error' WHERE id = '\(s2)';")
            #expect(deleted.status == 0, "\(deleted.output)")
            let hard = try await Self.shell(path, "DELETE FROM subjects WHERE id = '\(s1)';")
            #expect(hard.status != 0 && hard.output.contains("never deleted"), "\(hard.output)")
            #expect(try a.replica.pendingCount() == 1)
            #expect(try await a.sync().pushed == 1)
            try await b.sync()
            #expect(try b.replica.get("subjects", id: s2)?.isDeleted == true)
            #expect(try b.replica.get("subjects", id: s1)?.isDeleted == false)

            // A concurrent edit: the shell's later write wins, and the other laptop's value is logged.
            try b.replica.put("subjects", id: s1, ["birth_date": .text("1980-01-01")])
            try await b.sync()
            let edited = try await Self.shell(path, "UPDATE subjects SET birth_date = '1981-02-02' WHERE id = '\(s1)';")
            #expect(edited.status == 0, "\(edited.output)")
            #expect(try await a.sync().conflicts == 1)
            try await b.sync()
            #expect(try b.replica.get("subjects", id: s1)?["birth_date"] == .text("1981-02-02"))
            let conflict = try #require(try b.replica.conflicts().first)
            #expect(conflict.winner.value == .text("1981-02-02") && conflict.winner.replica == replicaID)
            #expect(conflict.loser.value == .text("1980-01-01"))

            // Applying pulled changes switched tracking off inside its own transaction only.
            let clock = try await Self.shell(server.directory.appendingPathComponent("b.sqlite").path, "SELECT tracking, wall IS NULL FROM _sitesync_clock;")
            #expect(clock.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1|1")
        }
    }

    @Test("A change waiting for a reason loses to a later edit elsewhere, logged with both sides; put with a reason explains one too")
    func waitingForReason() async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b", user: "B. Chen")
            let path = server.directory.appendingPathComponent("a.sqlite").path
            let s1 = try a.replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F"), "birth_date": .text("1980-01-01")])
            try await a.sync()
            try await b.sync()

            // Plain SQL changes a synced date; meanwhile another laptop changes it later, with a reason.
            let shell = try await Self.shell(path, "UPDATE subjects SET birth_date = '1981-01-01' WHERE id = '\(s1)';")
            #expect(shell.status == 0, "\(shell.output)")
            try await Task.sleep(for: .milliseconds(5))
            try b.replica.put("subjects", id: s1, ["birth_date": .text("1982-02-02")], reason: "Date of birth from the passport")
            try await b.sync()
            let held = try await a.sync()
            #expect(held.pushed == 0 && held.pulled == 1 && held.awaitingReason == 1)
            #expect(try a.replica.get("subjects", id: s1)?["birth_date"] == .text("1982-02-02"), "the later write shows")

            // Explained, the earlier value reaches the server, loses, and is logged with both sides.
            try a.replica.explain("subjects", id: s1, reason: "Typed from the screening log")
            #expect(try await a.sync().conflicts == 1)
            try await b.sync()
            for laptop in [a, b] {
                #expect(try laptop.replica.get("subjects", id: s1)?["birth_date"] == .text("1982-02-02"))
                let conflict = try #require(try laptop.replica.conflicts().first)
                #expect(conflict.field == "birth_date" && conflict.winner.value == .text("1982-02-02") && conflict.loser.value == .text("1981-01-01"))
                #expect(conflict.loser.user == "A. Rivera")
            }

            // `put` of the value it already has, with a reason, explains a waiting change as well.
            let again = try await Self.shell(path, "UPDATE subjects SET sex = 'M' WHERE id = '\(s1)';")
            #expect(again.status == 0, "\(again.output)")
            #expect(try await a.sync().awaitingReason == 1)
            try a.replica.put("subjects", id: s1, ["sex": .text("M")], reason: "Corrected from the source document")
            #expect(try a.replica.unexplainedChanges().isEmpty)
            #expect(try await a.sync().pushed == 1)
            try await b.sync()
            #expect(try b.replica.get("subjects", id: s1)?["sex"] == .text("M"))
            let change = try #require(try await history(server, "subjects", s1).last)
            #expect(change.changes?.first { $0.field == "sex" }?.reason == "Corrected from the source document")
        }
    }

    @Test(
        "Python's sqlite3 writes in its own transactions: a committed one is pushed, a rolled-back one leaves nothing, and the library's next write comes after it"
    )
    func pythonModule() async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let path = server.directory.appendingPathComponent("a.sqlite").path
            let (kept, dropped) = (RecordID.generate(), RecordID.generate())
            let script = """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1])
                db.execute("INSERT INTO subjects (id, site_id, screening_no) VALUES (?, 'S01', 'S01-010')", (sys.argv[2],))
                db.execute("UPDATE subjects SET sex = 'F' WHERE id = ?", (sys.argv[2],))
                db.commit()
                db.execute("INSERT INTO subjects (id, site_id, screening_no) VALUES (?, 'S01', 'S01-011')", (sys.argv[3],))
                db.rollback()
                print(db.execute("SELECT count(*) FROM _sitesync_outbox").fetchone()[0])
                """
            let run = try await Self.python(script, [path, kept, dropped])
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            let later = try a.replica.put("subjects", ["screening_no": .text("S01-012")])
            let batch = try #require(try await a.replica.sync.outboxBatch(limit: 10))
            #expect(batch.rows.map(\.row.id) == [kept, later])
            #expect(batch.value("sex", of: kept) == .text("F"))

            #expect(try await a.sync().pushed == 2)
            try await b.sync()
            #expect(try b.replica.get("subjects", id: kept)?["sex"] == .text("F"))
            #expect(try b.replica.get("subjects", id: dropped) == nil)
        }
    }

    @Test("Before the replica has an identity, another client's write is refused with the library's message and nothing is written")
    func notInitialized() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-foreign-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("new.sqlite").path
        let replica = try Replica.open(path: path, schema: TrialSchema.current)
        let refused = try await Self.shell(path, "INSERT INTO subjects (id, site_id, screening_no) VALUES ('x', 'S01', 'S01-001');")
        #expect(refused.status != 0)
        #expect(refused.output.contains(ReplicaError.notInitialized.message), "\(refused.output)")
        #expect(try replica.list("subjects").isEmpty)
        #expect(try replica.pendingCount() == 0)
    }
}
