import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

/// A change to recorded data is attributable, dated and explained (ICH E6(R3)): once a value of a
/// trial table is synced, changing it needs a reason, which travels with the change into the
/// server's history and audit trail. End to end over loopback HTTP with replicas on disk.
@Suite("Reason for change")
struct ReasonForChangeTests {
    static let reason = "Grade corrected from the source document"

    /// Every field change of the server's audit trail that `filter` selects.
    static func audit(_ server: LiveServer, _ filter: AuditFilter = AuditFilter()) async throws -> [AuditFieldChange] {
        try await server.store.withAuditTrail(filter) { trail in
            var changes: [AuditFieldChange] = []
            for try await change in trail { changes.append(change) }
            return changes
        }
    }

    @Test("First entry and edits of values never synced need no reason; a synced value needs one, and nothing is written without it", arguments: StoreKind.all)
    func laptopRule(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(1)])
            try a.replica.put("adverse_events", id: id, ["grade": .integer(2)])
            try await a.sync()

            // Filling in an empty synced field is first entry.
            try a.replica.put("adverse_events", id: id, ["outcome": .text("recovering")])
            let pending = try a.replica.pendingCount()
            let before = try a.replica.get("adverse_events", id: id)
            #expect {
                try a.replica.put("adverse_events", id: id, ["grade": .integer(3), "term": .text("Pyrexia"), "serious": .integer(1)])
            } throws: { error in
                let error = try #require(error as? ReplicaError)
                return error == .reasonRequired && error.message.contains("adverse_events.term, adverse_events.grade of record \(id)")
                    && error.message.contains("--reason") && !error.message.contains("serious")
            }
            #expect(try a.replica.get("adverse_events", id: id) == before)
            #expect(try a.replica.pendingCount() == pending)
            // A reason that is no reason is refused too.
            #expect(throws: ReplicaError.invalidArgument) { try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "  \n ") }
            #expect(throws: ReplicaError.invalidArgument) {
                try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: String(repeating: "x", count: ReasonForChange.maximumBytes + 1))
            }
            #expect(throws: ReplicaError.invalidArgument) { try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "a\u{0}b") }
            #expect(try a.replica.get("adverse_events", id: id) == before)

            try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "  \(Self.reason)\n")
            // Editing the same pending value again needs no second reason; the first one stays.
            try a.replica.put("adverse_events", id: id, ["grade": .integer(4)])
            try await a.sync()

            let changes = try await Self.audit(server, AuditFilter(record: id)).filter { $0.field == "grade" }
            #expect(changes.map(\.newValue) == [.integer(2), .integer(4)], "the server receives the first entry and the net change")
            #expect(changes.map(\.reason) == [nil, Self.reason])
            #expect(changes.last?.oldValue == .integer(2))
            let outcome = try await Self.audit(server, AuditFilter(record: id)).filter { $0.field == "outcome" }
            #expect(outcome.map(\.reason) == [nil, nil], "entering an empty field needs no reason")

            // The conflict log is no trial table: its changes need no reason.
            #expect(!TableSchema.conflicts.requiresReason)
        }
    }

    @Test("Deleting takes the delete's own reason; restoring a deleted record needs a reason for change", arguments: StoreKind.all)
    func deleteAndRestore(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try a.replica.delete("subjects", id: id, reason: "Entered twice")
            try await a.sync()
            #expect(throws: ReplicaError.reasonRequired) { try a.replica.put("subjects", id: id, [TableSchema.deletedColumn: .null]) }
            try a.replica.put("subjects", id: id, [TableSchema.deletedColumn: .null], reason: "Not a duplicate: two visits")
            try await a.sync()
            let deletes = try await Self.audit(server, AuditFilter(table: "subjects", record: id)).filter { $0.field == TableSchema.deletedColumn }
            #expect(deletes.map(\.newValue) == [.null, .text("Entered twice"), .null])
            #expect(deletes.map(\.reason) == [nil, "Entered twice", "Not a duplicate: two visits"])
        }
    }

    @Test("A laptop on an older build cannot push a change of a synced value without a reason; the server refuses it whole", arguments: StoreKind.all)
    func serverRefusesMissingReason(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(2)])
            let other = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try await b.sync()

            try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: Self.reason)
            try a.replica.put("subjects", id: other, ["sex": .text("F")])
            let batch = try #require(try await a.replica.sync.outboxBatch(limit: 10))
            var stripped = batch.request
            for group in stripped.groups.indices {
                for row in stripped.groups[group].rows.indices { stripped.groups[group].rows[row].reasons = nil }
            }
            let before = try await server.dump()
            await #expect {
                try await a.transport.push(stripped)
            } throws: { error in
                let error = try #require(error as? SyncError)
                return error.status == 422 && error.code == "reason_required" && error.message.contains("adverse_events.grade of record \(id)")
                    && !error.message.contains("subjects")
            }
            #expect(try await server.dump() == before, "nothing of the push is written, not even the subject's first entry of sex")

            // The same push with its reason goes through.
            let answer = try await a.transport.push(batch.request)
            #expect(answer.applied == 2)
            try await a.replica.sync.acknowledge(batch, answer)
            #expect(try await Self.audit(server, AuditFilter(record: id)).last { $0.field == "grade" }?.reason == Self.reason)

            // A change concurrent with another laptop's is judged by the value its base wrote: b
            // still holds grade 2 (synced, not empty), so its change needs a reason too.
            try b.replica.put("adverse_events", id: id, ["grade": .integer(4)], reason: "Worsened")
            let concurrent = try #require(try await b.replica.sync.outboxBatch(limit: 10))
            var unexplained = concurrent.request
            unexplained.groups[0].rows[0].reasons = nil
            await #expect { try await b.transport.push(unexplained) } throws: { ($0 as? SyncError)?.code == "reason_required" }
            try await b.sync()
            let last = try #require(try await Self.audit(server, AuditFilter(record: id)).last { $0.field == "grade" })
            #expect(last.reason == "Worsened" && last.newValue == .integer(4) && last.conflict != nil, "the concurrent change is logged as a conflict")
        }
    }

    @Test("A concurrent first entry of an empty field needs no reason, whatever the other laptop wrote meanwhile", arguments: StoreKind.all)
    func concurrentFirstEntry(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever")])
            try await a.sync()
            try await b.sync()
            try a.replica.put("adverse_events", id: id, ["outcome": .text("recovered")])
            try await a.sync()
            // b never saw a's value: its first entry replaces an empty field as far as it knew.
            try b.replica.put("adverse_events", id: id, ["outcome": .text("recovering")])
            try await b.sync()
            #expect(try await server.count("SELECT count(*) FROM conflicts WHERE field = 'outcome'") == 1)
            #expect(try await Self.audit(server, AuditFilter(record: id)).filter { $0.field == "outcome" }.map(\.reason) == [nil, nil, nil])
        }
    }

    @Test("A change refused for lack of a reason is explained by putting the field again with one, and then syncs", arguments: StoreKind.all)
    func explainRefusedChange(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001"), "status": .text("screening")])
            try await a.sync()
            // An older build's write: tracked, but no reason asked (this build's triggers note that
            // plain SQL asked none, so a push without it stands for an older build's).
            try await a.replica.writer.write { db in
                try db.execute(sql: "UPDATE subjects SET status = 'enrolled' WHERE id = ?", arguments: [id])
                try db.execute(sql: "UPDATE _sitesync_shadows SET reasons = NULL")
            }
            await #expect { try await a.sync() } throws: { error in
                let error = try #require(error as? SyncError)
                return error.code == "reason_required" && error.message.contains("subjects.status of record \(id)") && error.message.contains("--reason")
            }
            #expect(try a.replica.pendingCount() == 1)
            try a.replica.put("subjects", id: id, ["status": .text("enrolled")], reason: "Consent signed on 2026-11-02")
            #expect(try await a.sync().pushed == 1)
            let status = try await Self.audit(server, AuditFilter(record: id)).filter { $0.field == "status" }
            #expect(status.map(\.newValue) == [.text("screening"), .text("enrolled")])
            #expect(status.last?.reason == "Consent signed on 2026-11-02")
            // A field written again unchanged when nothing is pending keeps no reason for later edits.
            try a.replica.put("subjects", id: id, ["status": .text("enrolled")], reason: "Stale")
            #expect(try a.replica.pendingCount() == 0)
            #expect(throws: ReplicaError.reasonRequired) { try a.replica.put("subjects", id: id, ["status": .text("withdrawn")]) }
        }
    }

    @Test("A value changed again while its first entry is being pushed carries a reason saying so, and the server accepts it", arguments: StoreKind.all)
    func changedDuringSync(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            try await a.engine().enrol()
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(1)])
            let batch = try #require(try await a.replica.sync.outboxBatch(limit: 10))
            let answer = try await a.transport.push(batch.request)
            // Not synced yet as far as the laptop knows: no reason asked.
            try a.replica.put("adverse_events", id: id, ["grade": .integer(2)])
            try await a.replica.sync.acknowledge(batch, answer)
            #expect(try await a.sync().pushed == 1)
            let grades = try await Self.audit(server, AuditFilter(record: id)).filter { $0.field == "grade" }
            #expect(grades.map(\.newValue) == [.integer(1), .integer(2)])
            #expect(grades.last?.reason == ReasonForChange.changedDuringSync)
        }
    }

    @Test("History shows each change's reason and conflict, and a resolution's change says it is one", arguments: StoreKind.all)
    func historyShowsReasons(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b", user: "B. Chen")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(2)])
            try await a.sync()
            try await b.sync()
            try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "Hospitalised")
            try await Task.sleep(for: .milliseconds(5))
            try b.replica.put("adverse_events", id: id, ["grade": .integer(1)], reason: "Transcription error")
            try await a.sync()
            try await b.sync()
            try await a.sync()
            let conflict = try #require(try a.replica.conflicts().first)
            try a.replica.resolve(conflict: conflict.id, .takeLoser, reason: "Discharge letter says grade 3")
            try await a.sync()

            let history = try await HTTPTransport(replica: a.replica).history(table: "adverse_events", id: id)
            let grades = history.entries.flatMap { entry in (entry.changes ?? []).filter { $0.field == "grade" }.map { (entry.user, $0) } }
            #expect(grades.map(\.1.new) == [.integer(2), .integer(3), .integer(1), .integer(3)])
            #expect(
                grades.map(\.1.reason) == [
                    nil, "Hospitalised", "Transcription error",
                    "conflict resolution: take_loser (conflict \(conflict.id)): Discharge letter says grade 3",
                ])
            #expect(grades.map(\.1.conflict) == [nil, nil, conflict.id, nil])
            #expect(grades.map(\.0) == ["A. Rivera", "A. Rivera", "B. Chen", "A. Rivera"])

            // The laptop's own history shows a pending change's reason before it is pushed.
            try a.replica.put("adverse_events", id: id, ["grade": .integer(4)], reason: "Worsened overnight")
            let local = try a.replica.localHistory("adverse_events", id: id)
            let pending = local.entries.flatMap { $0.changes ?? [] }.first { $0.field == "grade" }
            #expect(pending?.outcome == "pending" && pending?.reason == "Worsened overnight")
        }
    }

    @Test("An import that changes synced values needs a reason, and every row refused for lack of one is named", arguments: StoreKind.all)
    func importNeedsReason(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let first = try a.replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F")])
            let second = try a.replica.put("subjects", ["screening_no": .text("S01-002")])
            try await a.sync()
            let rows = [
                ImportRow(line: 2, id: first, values: ["sex": .text("M")]),
                ImportRow(line: 3, id: second, values: ["sex": .text("F")]),
                ImportRow(line: 4, id: nil, values: ["screening_no": .text("S01-003")]),
            ]
            #expect {
                try a.replica.importRecords("subjects", rows)
            } throws: { error in
                let problems = try #require(error as? ImportError).problems
                return problems.map(\.line) == [2] && problems[0].message.contains("subjects.sex of record \(first)")
            }
            #expect(try a.replica.list("subjects").count == 2)
            try a.replica.importRecords("subjects", rows, reason: "Sex re-checked against the consent form")
            try await a.sync()
            let sex = try await Self.audit(server, AuditFilter(table: "subjects")).filter { $0.field == "sex" && $0.recordID == first }
            #expect(sex.last?.reason == "Sex re-checked against the consent form")
        }
    }
}
