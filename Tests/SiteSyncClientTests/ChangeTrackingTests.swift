import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import Testing
import TrialRecords

@Suite("Change tracking")
struct ChangeTrackingTests {
    @Test("An insert is tracked with every field, no base, and the replica's user")
    func insertTracked() async throws {
        // Given a replica
        let replica = try makeReplica()
        // When a subject is recorded
        let id = try replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F")])
        // Then the outbox holds the whole record, stamped with the user
        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.count == 1)
        let group = try #require(batch.request.groups.first)
        #expect(group.columns == TrialSchema.subjects.columnNames)
        #expect(group.user == "A. Rivera")
        #expect(group.rows[0].bases == nil)
        #expect(batch.value("status", of: id) == .text("screening"))
        #expect(batch.value("site_id", of: id) == .text("S01"))
        #expect(batch.request.replica == replica.identity?.replicaID)
    }

    @Test("Raw SQL inserts and updates on the replica's connection are tracked")
    func rawSQLTracked() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        #expect(try replica.pendingCount() == 0)

        try await replica.writer.write { db in
            try db.execute(sql: "INSERT INTO adverse_events (id, site_id, subject_id, term, grade) VALUES ('ae1', 'S01', 's1', 'Fever', 1)")
            try db.execute(sql: "UPDATE subjects SET status = 'enrolled' WHERE id = 's1'")
        }

        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.count == 1, "the synced value changed without a reason waits for one")
        #expect(batch.value("term", of: "ae1") == .text("Fever"))
        #expect(try replica.pendingCount() == 2 && replica.unexplainedChanges().map(\.id) == ["s1"])
        try replica.explain("subjects", id: "s1", reason: "Enrolled on the signed CRF")
        let explained = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(explained.count == 2)
        #expect(explained.value("status", of: "s1") == .text("enrolled"))
        #expect(explained.base("status", of: "s1") == .some(Version(hlc: HLC(milliseconds: 1000), replica: "remote")))
        #expect(explained.value("screening_no", of: "s1") == nil, "only changed fields are pushed")
    }

    @Test("A rolled-back write leaves no outbox entry")
    func rollbackLeavesNothing() async throws {
        struct Abort: Error {}
        let replica = try makeReplica()
        await #expect(throws: Abort.self) {
            try await replica.writer.write { db in
                try db.execute(sql: "INSERT INTO subjects (id, site_id, screening_no) VALUES ('s1', 'S01', 'S01-001')")
                throw Abort()
            }
        }
        #expect(try replica.pendingCount() == 0)
        #expect(try replica.get("subjects", id: "s1") == nil)
    }

    @Test("Hard deletes are refused; a soft delete is tracked with its reason")
    func deletes() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        await #expect {
            try await replica.writer.write { db in try db.execute(sql: "DELETE FROM subjects WHERE id = 's1'") }
        } throws: { error in
            "\(error)".contains("records of subjects are never deleted")
        }

        try replica.delete("subjects", id: "s1", reason: "Entered twice")

        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.value("_deleted", of: "s1") == .text("Entered twice"))
        #expect(batch.base("_deleted", of: "s1") == .some(Version(hlc: HLC(milliseconds: 1000), replica: "remote")))
        #expect(try replica.list("subjects").isEmpty, "deleted records are hidden")
        #expect(try replica.get("subjects", id: "s1")?.isDeleted == true)
        #expect(throws: ReplicaError.invalidArgument) { try replica.delete("subjects", id: "s1", reason: "again") }
        #expect(throws: ReplicaError.invalidArgument) { try replica.delete("subjects", id: "s1", reason: "  ") }
    }

    @Test("An edit of a live record also asserts it is live, based on the replica's delete version")
    func editAssertsLive() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        try replica.put("subjects", id: "s1", ["sex": .text("M")], reason: "Corrected from the source document")
        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.value("_deleted", of: "s1") == .some(.null))
        #expect(batch.base("_deleted", of: "s1") == .some(Version(hlc: HLC(milliseconds: 1000), replica: "remote")))
    }

    @Test("Several edits of one field before a push compact to the last, keeping the first base")
    func compaction() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        try replica.put("subjects", id: "s1", ["status": .text("enrolled")], reason: "Corrected from the source document")
        try replica.put("subjects", id: "s1", ["status": .text("withdrawn")], reason: "Corrected from the source document")
        try replica.put("subjects", id: "s1", ["sex": .text("M")], reason: "Corrected from the source document")

        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.count == 1)
        #expect(batch.value("status", of: "s1") == .text("withdrawn"))
        #expect(batch.value("sex", of: "s1") == .text("M"))
        #expect(batch.base("status", of: "s1") == .some(Version(hlc: HLC(milliseconds: 1000), replica: "remote")))
        let row = try #require(batch.rows.first?.row)
        #expect(row.hlc(at: 0) <= row.seq)
    }

    @Test("Plain SQL changing a synced value marks it as waiting for a reason; the library's edits carry the person's reason, or none when none is needed")
    func reasonsOfPlainSQL() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        /// The reason kept with the pending field.
        func reason(_ field: String) throws -> String? {
            try replica.writer.read { db in
                try String.fetchOne(db, sql: "SELECT json_extract(reasons, '$.' || ?) FROM _sitesync_shadows WHERE id = 's1'", arguments: [field])
            }
        }
        try await replica.writer.write { db in try db.execute(sql: "UPDATE subjects SET status = 'enrolled' WHERE id = 's1'") }
        #expect(try reason("status") == ReasonForChange.writtenOutsideLibrary)
        #expect(try await replica.sync.outboxBatch(limit: 10) == nil, "held back until a person gives the reason")
        // A value never synced, set and changed again through the library: no reason is needed, and
        // the triggers leave the field's reason to the library.
        try replica.put("subjects", id: "s1", ["birth_date": .text("1980-01-01")])
        try replica.put("subjects", id: "s1", ["birth_date": .text("1980-01-02")])
        #expect(try reason("birth_date") == nil)
        #expect(try reason("status") == ReasonForChange.writtenOutsideLibrary)
        try replica.put("subjects", id: "s1", ["status": .text("withdrawn")], reason: "Withdrew consent")
        #expect(try reason("status") == "Withdrew consent")
        let (group, row) = try #require(try await replica.sync.outboxBatch(limit: 10)?.rows.first)
        #expect(group.columns.firstIndex(of: "status").flatMap { row.reasons?[$0] } == "Withdrew consent")
        // Changed again in plain SQL while pending: the person's reason stays, as it would through the library.
        try await replica.writer.write { db in try db.execute(sql: "UPDATE subjects SET status = 'completed' WHERE id = 's1'") }
        #expect(try reason("status") == "Withdrew consent")
    }

    @Test("An unchanged value written again is not tracked")
    func noOpUpdate() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        try replica.put("subjects", id: "s1", ["status": .text("screening")], reason: "Corrected from the source document")
        #expect(try replica.pendingCount() == 0)
    }

    @Test("Invalid values write nothing and name the field and rule")
    func invalidWritesNothing() async throws {
        let replica = try makeReplica()
        #expect(throws: ValidationError(table: "subjects", field: "sex", "must be one of F, M; got \"X\"")) {
            try replica.put("subjects", ["screening_no": .text("S01-009"), "sex": .text("X")])
        }
        #expect(throws: ValidationError.self) { try replica.put("labs", ["x": .integer(1)]) }
        #expect(try replica.pendingCount() == 0)
        #expect(try replica.list("subjects").isEmpty)
    }

    @Test("A site laptop writes its own site only; records never move; the conflict log is read-only")
    func scope() async throws {
        let replica = try makeReplica()
        #expect(throws: ReplicaError.outsideSite) {
            try replica.put("subjects", ["site_id": .text("S02"), "screening_no": .text("S02-001")])
        }
        let id = try replica.put("subjects", ["screening_no": .text("S01-001")])
        #expect(throws: ReplicaError.outsideSite) {
            try replica.put("subjects", id: id, ["site_id": .text("S02")], reason: "Corrected from the source document")
        }
        #expect(throws: ReplicaError.readOnlyTable) { try replica.put("conflicts", ["status": .text("resolved")]) }
        await #expect {
            try await replica.writer.write { db in try db.execute(sql: "UPDATE subjects SET site_id = 'S02' WHERE id = ?", arguments: [id]) }
        } throws: { "\($0)".contains("cannot move to another site") }

        let reviewer = try makeReplica(site: "*")
        #expect(throws: ReplicaError.invalidArgument) { try reviewer.put("subjects", ["screening_no": .text("S02-001")]) }
        #expect(throws: Never.self) { try reviewer.put("subjects", ["site_id": .text("S02"), "screening_no": .text("S02-001")]) }
    }

    @Test("Nothing can be written before the replica is initialised")
    func notInitialised() async throws {
        let replica = try Replica.inMemory(schema: TrialSchema.current)
        #expect(throws: ReplicaError.notInitialized) { try replica.put("subjects", ["screening_no": .text("x")]) }
        await #expect {
            try await replica.writer.write { db in try db.execute(sql: "INSERT INTO subjects (id, site_id, screening_no) VALUES ('a', 'S01', 'x')") }
        } throws: { "\($0)".contains("not initialised") }
    }
}

@Suite("Identity in tracked writes")
struct IdentityTrackingTests {
    @Test("The user is recorded exactly, quotes included, and a new user applies to later writes")
    func userRecorded() async throws {
        let replica = try makeReplica(user: "S. O'Brien")
        let first = try replica.put("subjects", ["screening_no": .text("S01-001")])
        #expect(try #require(try await replica.sync.outboxBatch(limit: 10)).request.groups.first?.user == "S. O'Brien")

        try replica.initialize(site: "S01", user: "T. Nguyen", serverURL: URL(string: "http://127.0.0.1:9")!, token: "t")
        try replica.put("subjects", id: first, ["sex": .text("F")], reason: "Corrected from the source document")
        let second = try replica.put("subjects", ["screening_no": .text("S01-002")])
        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.request.groups.first { $0.rows.contains { $0.row(second) } }?.user == "T. Nguyen")
        #expect(batch.request.groups.flatMap(\.rows).allSatisfy { !$0.id.isEmpty })
        #expect(batch.request.replica == replica.identity?.replicaID)
    }
}

extension ChangeRow {
    fileprivate func row(_ id: String) -> Bool { self.id == id }
}
