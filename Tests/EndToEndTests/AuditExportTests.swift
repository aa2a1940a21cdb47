import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Testing
import TrialRecords

/// The audit export answers an inspector's questions about every field change on its own: which
/// record and field, the value before and after, who, where, when, why, and the conflict it caused.
@Suite("Audit export for inspectors")
struct AuditExportTests {
    @Test("Each change says who, where, when (laptop and server), why, and the conflict it caused", arguments: StoreKind.all)
    func inspectorColumns(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b", user: "B. Chen")
            let started = Date().formatted(.iso8601)
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(2)])
            try await a.sync()
            try await b.sync()
            try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "Hospitalised")
            let aWrite = try #require(try a.replica.localHistory("adverse_events", id: id).entries.flatMap { $0.changes ?? [] }.first { $0.field == "grade" })
            try await Task.sleep(for: .milliseconds(5))
            try b.replica.put("adverse_events", id: id, ["grade": .integer(1)], reason: "Transcription error")
            try await a.sync()
            try await b.sync()
            let conflict = try #require(try await server.store.conflicts(ConflictFilter(), principal: Principal(role: .reviewer, site: nil)).conflicts.first)

            let grades = try await ReasonForChangeTests.audit(server, AuditFilter(site: "S01", table: "adverse_events", record: id))
                .filter { $0.field == "grade" }
            try #require(grades.count == 3)
            let (created, edited, concurrent) = (grades[0], grades[1], grades[2])
            #expect(created.oldValue == .null && created.newValue == .integer(2) && created.reason == nil && created.conflict == nil)
            #expect(edited.oldValue == .integer(2) && edited.newValue == .integer(3))
            #expect(edited.user == "A. Rivera" && edited.replica == a.replica.identity?.replicaID && edited.site == "S01")
            #expect(edited.reason == "Hospitalised" && edited.conflict == nil && edited.outcome == "applied")
            #expect(edited.hlc == aWrite.hlc)
            let iso = ISO8601DateFormatter()
            iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let changedAt = try #require(iso.date(from: edited.changedAt), "changed_at is ISO 8601 with milliseconds: \(edited.changedAt)")
            #expect(Int64((changedAt.timeIntervalSince1970 * 1000).rounded()) == aWrite.hlc.milliseconds, "the laptop's time of the write")
            #expect(edited.receivedAt >= started && edited.receivedAt <= Date().formatted(.iso8601))
            #expect(concurrent.user == "B. Chen" && concurrent.replica == b.replica.identity?.replicaID)
            #expect(concurrent.oldValue == .integer(3) && concurrent.newValue == .integer(1) && concurrent.reason == "Transcription error")
            #expect(concurrent.conflict == conflict.id, "the change that overwrote a concurrent value names the conflict it caused")

            // Filters: by table, by record, by both; each selects exactly what it names.
            let all = try await ReasonForChangeTests.audit(server)
            let subjects = try await ReasonForChangeTests.audit(server, AuditFilter(table: "subjects"))
            #expect(subjects.isEmpty && !all.isEmpty && all.allSatisfy { $0.table == "adverse_events" })
            let record = try await ReasonForChangeTests.audit(server, AuditFilter(record: id))
            #expect(record == all.filter { $0.recordID == id })
            #expect(try await ReasonForChangeTests.audit(server, AuditFilter(site: "S02", record: id)).isEmpty)
        }
    }
}
