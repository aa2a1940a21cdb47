import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import Testing
import TrialRecords

@Suite("Applying pulled changes")
struct PullApplyTests {
    @Test("Pulled records are stored without entering the outbox, with the cursor")
    func pulledNotTracked() async throws {
        let replica = try makeReplica()
        let changed = try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000, cursor: 7))
        #expect(changed == 1)
        #expect(try replica.pendingCount() == 0)
        #expect(try replica.get("subjects", id: "s1")?["screening_no"] == .text("S01-001"))
        #expect(try await replica.sync.cursor() == ["S01": 7])
    }

    @Test("Re-applying the same batch changes nothing")
    func reapplyIsNoOp() async throws {
        let replica = try makeReplica()
        let batch = pulledSubject(id: "s1", status: "enrolled", milliseconds: 1000)
        try await replica.sync.apply(batch)
        let before = try replica.get("subjects", id: "s1")
        #expect(try await replica.sync.apply(batch) == 0)
        #expect(try replica.get("subjects", id: "s1") == before)
        #expect(try replica.pendingCount() == 0)
    }

    @Test("An older pulled value never overwrites a newer local edit")
    func olderPullLoses() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        try replica.put("subjects", id: "s1", ["status": .text("enrolled")], reason: "Corrected from the source document")
        // A value written elsewhere before the local edit arrives late
        try await replica.sync.apply(pulledSubject(id: "s1", status: "withdrawn", milliseconds: 2000))
        #expect(try replica.get("subjects", id: "s1")?["status"] == .text("enrolled"))
        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.value("status", of: "s1") == .text("enrolled"), "the local edit is still pushed")
    }

    @Test("A newer pulled value wins locally, and the overwritten local edit is still pushed for the log")
    func newerPullHoldsLocalValue() async throws {
        let replica = try makeReplica()
        try await replica.sync.apply(pulledSubject(id: "s1", milliseconds: 1000))
        try replica.put("subjects", id: "s1", ["status": .text("enrolled")], reason: "Corrected from the source document")
        let local = try #require(try await replica.sync.outboxBatch(limit: 10)).rows[0].row.seq

        try await replica.sync.apply(pulledSubject(id: "s1", status: "withdrawn", milliseconds: nowMilliseconds() + 60_000))

        #expect(try replica.get("subjects", id: "s1")?["status"] == .text("withdrawn"))
        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(batch.value("status", of: "s1") == .text("enrolled"))
        let (group, row) = batch.rows[0]
        #expect(row.hlc(at: group.columns.firstIndex(of: "status")!) == local)
    }

    @Test("Pulled values advance the clock within the skew bound, so a later local edit wins")
    func pullAdvancesClock() async throws {
        let replica = try makeReplica()
        let future = nowMilliseconds() + 30_000
        var batch = pulledSubject(id: "s1", milliseconds: future)
        batch.hlc = HLC(milliseconds: future)
        try await replica.sync.apply(batch)
        try replica.put("subjects", id: "s1", ["status": .text("enrolled")], reason: "Corrected from the source document")
        let pushed = try #require(try await replica.sync.outboxBatch(limit: 10)).rows[0].row
        #expect(pushed.seq > HLC(milliseconds: future))
    }

    @Test("Acknowledged changes leave the outbox; an edit made during the push stays, rebased on what was pushed")
    func acknowledge() async throws {
        let replica = try makeReplica()
        let a = try replica.put("subjects", ["screening_no": .text("S01-001")])
        let b = try replica.put("subjects", ["screening_no": .text("S01-002")])
        let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
        // Record b is edited while the push is in flight
        try replica.put("subjects", id: b, ["status": .text("enrolled")], reason: "Corrected from the source document")

        let rebased = try await replica.sync.acknowledge(batch, PushResponse(acked: batch.lastSeq, applied: 2, conflicts: 0, hlc: .zero))

        #expect(rebased == 1)
        let next = try #require(try await replica.sync.outboxBatch(limit: 10))
        #expect(next.count == 1)
        #expect(next.value("status", of: b) == .text("enrolled"))
        let pushedStatus = batch.rows.first { $0.row.id == b }!.row.seq
        #expect(next.base("status", of: b) == .some(Version(hlc: pushedStatus, replica: replica.identity!.replicaID)))
        #expect(next.value("screening_no", of: b) == nil)
        #expect(next.value("status", of: a) == nil)
    }

    @Test("The clock survives a restart, staying ahead of every change issued")
    func clockPersists() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("replica.sqlite").path
        // A wall clock far ahead, then back to now, as after a clock correction
        let ahead = nowMilliseconds() + 86_400_000
        var issued: HLC
        do {
            let replica = try Replica.open(path: path, schema: TrialSchema.current, wallClock: { ahead })
            try replica.initialize(site: "S01", user: "A", serverURL: URL(string: "http://127.0.0.1:9")!, token: "t")
            try replica.put("subjects", ["screening_no": .text("S01-001")])
            let batch = try #require(try await replica.sync.outboxBatch(limit: 10))
            issued = batch.lastSeq
            try await replica.sync.acknowledge(batch, PushResponse(acked: batch.lastSeq, applied: 1, conflicts: 0, hlc: .zero))
            #expect(try replica.pendingCount() == 0)
        }
        let reopened = try Replica.open(path: path, schema: TrialSchema.current)
        #expect(reopened.identity?.site == "S01")
        try reopened.put("subjects", ["screening_no": .text("S01-002")])
        let next = try #require(try await reopened.sync.outboxBatch(limit: 10))
        #expect(next.lastSeq > issued)
    }
}

/// A replica records the time of what it does by the wall clock it stamps its writes with.
@Suite("The replica's clock")
struct ReplicaClockTests {
    @Test("The last sync and a clock reset read the replica's wall clock, not the system's")
    func nowIsTheReplicasClock() async throws {
        let wall: Int64 = 1_700_000_000_000 // 2023-11-14T22:13:20Z
        let replica = try Replica.inMemory(schema: TrialSchema.current, wallClock: { wall })
        try replica.initialize(site: "S01", user: "A. Rivera", serverURL: URL(string: "http://127.0.0.1:9")!, token: "test-token")
        #expect(try await replica.sync.recordSyncCompleted().awaitingReason == 0)
        #expect(try replica.status().lastSync == "2023-11-14T22:13:20Z")
        #expect(HLC(milliseconds: wall).iso8601 == "2023-11-14T22:13:20Z")
    }
}
