import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncTestSupport
import Testing
import TrialRecords

@Suite("Sync over loopback HTTP")
struct SyncScenarioTests {
    @Test("Offline writes on two laptops of one site: after sync both hold everything", arguments: StoreKind.all)
    func offlineWritesConverge(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            // Given two laptops of S01, both offline
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b", user: "B. Chen")
            let subject = try a.replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F")])
            try a.replica.put("adverse_events", ["subject_id": .text(subject), "term": .text("Fever"), "grade": .integer(1)])
            try b.replica.put("subjects", ["screening_no": .text("S01-002"), "sex": .text("M")])

            // When both sync (and a again, to get b's records)
            let first = try await a.sync()
            let second = try await b.sync()
            try await a.sync()

            // Then every laptop holds all three records, and no conflict was logged
            #expect(first.pushed == 2)
            #expect(second.pushed == 1 && second.pulled == 2)
            #expect(try a.contents() == b.contents())
            #expect(try a.replica.list("subjects").count == 2)
            #expect(try a.replica.list("adverse_events").first?["grade"] == .integer(1))
            #expect(try a.replica.status().pendingChanges == 0)
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
        }
    }

    @Test("The same field edited on two laptops: both converge on the later write, one conflict holds both sides", arguments: StoreKind.all)
    func sameFieldConflict(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b", user: "B. Chen")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try await b.sync()

            // Both edit status offline; b's edit is the later one
            try a.replica.put("subjects", id: id, ["status": .text("enrolled")], reason: "Corrected from the source document")
            try await Task.sleep(for: .milliseconds(5))
            try b.replica.put("subjects", id: id, ["status": .text("screen_failed")], reason: "Corrected from the source document")

            let pushedA = try await a.sync()
            let pushedB = try await b.sync()
            try await a.sync()

            #expect(pushedA.conflicts == 0)
            #expect(pushedB.conflicts == 1)
            #expect(try a.replica.get("subjects", id: id)?["status"] == .text("screen_failed"))
            #expect(try a.contents() == b.contents())
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 1)

            // Both laptops see the conflict offline, with both values, versions and users
            for laptop in [a, b] {
                let conflicts = try laptop.replica.conflicts()
                #expect(conflicts.count == 1)
                let conflict = try #require(conflicts.first)
                #expect(conflict.table == "subjects" && conflict.recordID == id && conflict.field == "status")
                #expect(conflict.winner.value == .text("screen_failed"))
                #expect(conflict.winner.user == "B. Chen")
                #expect(conflict.winner.replica == b.replica.identity?.replicaID)
                #expect(conflict.loser.value == .text("enrolled"))
                #expect(conflict.loser.user == "A. Rivera")
                #expect(conflict.loser.replica == a.replica.identity?.replicaID)
                #expect(conflict.winner.version > conflict.loser.version)
                #expect(conflict.status == .open)
                #expect(try laptop.replica.status().openConflicts == 1)
            }
        }
    }

    @Test("Different fields of one record edited on two laptops: both edits kept, no conflict", arguments: StoreKind.all)
    func differentFields(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(1)])
            try await a.sync()
            try await b.sync()

            try a.replica.put("adverse_events", id: id, ["grade": .integer(2)], reason: "Corrected from the source document")
            try b.replica.put("adverse_events", id: id, ["outcome": .text("recovered")], reason: "Corrected from the source document")
            try await a.sync()
            try await b.sync()
            try await a.sync()

            for laptop in [a, b] {
                let record = try #require(try laptop.replica.get("adverse_events", id: id))
                #expect(record["grade"] == .integer(2))
                #expect(record["outcome"] == .text("recovered"))
                #expect(try laptop.replica.conflicts().isEmpty)
            }
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
        }
    }

    @Test("Delete on one laptop, edit on another: converged, and logged as a conflict", arguments: StoreKind.all)
    func deleteVersusEdit(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b", user: "B. Chen")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Rash"), "grade": .integer(1)])
            try await a.sync()
            try await b.sync()

            try a.replica.delete("adverse_events", id: id, reason: "Entered for the wrong subject")
            try await Task.sleep(for: .milliseconds(5))
            try b.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "Corrected from the source document")
            try await a.sync()
            try await b.sync()
            try await a.sync()

            #expect(try a.contents() == b.contents())
            // b's edit is later, so the record is live again with grade 3; the delete is the logged loser
            let record = try #require(try a.replica.get("adverse_events", id: id))
            #expect(record["grade"] == .integer(3))
            #expect(!record.isDeleted)
            let conflict = try #require(try a.replica.conflicts().first)
            #expect(conflict.field == "_deleted")
            #expect(conflict.loser.value == .text("Entered for the wrong subject"))
            #expect(conflict.loser.user == "A. Rivera")
            #expect(conflict.winner.value == .null)
            #expect(conflict.winner.user == "B. Chen")
        }
    }

    @Test("An edit then a later delete: the record is deleted everywhere and the edit is logged", arguments: StoreKind.all)
    func editThenLaterDelete(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try await b.sync()

            try b.replica.put("subjects", id: id, ["sex": .text("F")], reason: "Corrected from the source document")
            try await Task.sleep(for: .milliseconds(5))
            try a.replica.delete("subjects", id: id, reason: "Duplicate")
            try await b.sync()
            try await a.sync()
            try await b.sync()

            #expect(try a.contents() == b.contents())
            #expect(try b.replica.list("subjects").isEmpty)
            #expect(try b.replica.get("subjects", id: id)?.isDeleted == true)
            #expect(try b.replica.conflicts().map(\.field) == ["_deleted"])
        }
    }

    @Test("A push whose answer was lost is retried and changes nothing the second time", arguments: StoreKind.all)
    func lostPushResponse(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            for index in 0..<5 {
                try a.replica.put("subjects", ["screening_no": .text("S01-\(index)")])
            }
            let losing = LosingResponses(a.transport, lose: 1)

            let report = try await a.engine(transport: losing).sync()

            #expect(losing.pushesSent == 2, "the batch was sent twice")
            #expect(report.pushed == 5)
            #expect(try await server.count("SELECT count(*) FROM subjects") == 5)
            #expect(try await server.count("SELECT count(*) FROM audit") == 5, "nothing doubled in the audit trail")
            #expect(try a.replica.status().pendingChanges == 0)
        }
    }

    @Test("A pull interrupted half-way resumes from its cursor and ends identical", arguments: StoreKind.all)
    func interruptedPull(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            for index in 0..<50 {
                try a.replica.put("subjects", ["screening_no": .text("S01-\(index)")])
            }
            try await a.sync()

            let b = try server.laptop("b")
            let small: (inout SyncEngine.Configuration) -> Void = {
                $0.pullBatchSize = 10
                $0.attempts = 2
            }
            // Two batches arrive, then the network goes
            await #expect(throws: SyncError.self) {
                try await b.engine(transport: FailingPulls(b.transport, after: 2), configure: small).sync()
            }
            let partial = try b.replica.list("subjects").count
            #expect(partial >= 10 && partial < 50)
            #expect(try await b.replica.sync.cursor()["S01"].map { $0 >= 10 } == true)

            // The next sync picks up where it stopped
            let report = try await b.engine(configure: small).sync()
            #expect(report.pulled == 50 - partial)
            #expect(try b.contents() == a.contents())
        }
    }

    @Test("A site token cannot push or pull another site's records; nothing is written", arguments: StoreKind.all)
    func siteScope(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let s02 = try server.laptop("s02", site: "S02")
            try s02.replica.put("subjects", ["screening_no": .text("S02-001")])
            try await s02.sync()
            let before = try await server.dump()

            let s01 = HTTPTransport(serverURL: server.url, token: server.s01, schemaVersion: TrialSchema.version)
            let foreign = PushRequest(
                replica: "intruder",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "X", columns: ["site_id", "screening_no"],
                        rows: [
                            ChangeRow(id: "x1", seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds()), values: [.text("S02"), .text("S02-666")])
                        ])
                ])
            await #expect { try await s01.push(foreign) } throws: { ($0 as? SyncError)?.status == 403 && ($0 as? SyncError)?.code == "forbidden" }
            await #expect { try await s01.pull(PullRequest(cursor: ["S02": 0], limit: 10)) } throws: { ($0 as? SyncError)?.status == 403 }
            #expect(try await server.dump() == before)

            // and an S01 laptop pulls nothing of S02
            let a = try server.laptop("a")
            #expect(try await a.sync().pulled == 0)
            #expect(try a.replica.list("subjects").isEmpty)
        }
    }

    @Test("A reviewer laptop sees every site", arguments: StoreKind.all)
    func reviewerSeesEverySite(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let s01 = try server.laptop("s01", site: "S01")
            let s02 = try server.laptop("s02", site: "S02")
            try s01.replica.put("subjects", ["screening_no": .text("S01-001")])
            try s02.replica.put("subjects", ["screening_no": .text("S02-001")])
            try await s01.sync()
            try await s02.sync()

            let reviewer = try server.laptop("reviewer", site: "*", user: "D. Manager")
            let report = try await reviewer.sync()

            #expect(report.pulled == 2)
            #expect(Set(try reviewer.replica.list("subjects").compactMap { $0["site_id"]?.displayText }) == ["S01", "S02"])
            #expect(try await reviewer.replica.sync.cursor() == ["S01": 1, "S02": 1])
        }
    }

    @Test("Three laptops editing at once converge to the server's state after a full round", arguments: StoreKind.all)
    func convergence(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let laptops = try ["a", "b", "c"].map { try server.laptop($0) }
            let id = try laptops[0].replica.put("subjects", ["screening_no": .text("S01-001")])
            for laptop in laptops { try await laptop.sync() }

            for (index, laptop) in laptops.enumerated() {
                try laptop.replica.put(
                    "subjects", id: id, ["status": .text(["enrolled", "withdrawn", "completed"][index])], reason: "Corrected from the source document")
                try laptop.replica.put("subjects", ["screening_no": .text("S01-1\(index)")])
                try await Task.sleep(for: .milliseconds(3))
            }
            for laptop in laptops { try await laptop.sync() }
            for laptop in laptops { try await laptop.sync() }

            let reference = try laptops[0].contents()
            for laptop in laptops.dropFirst() {
                #expect(try laptop.contents() == reference)
            }
            #expect(try laptops[0].replica.get("subjects", id: id)?["status"] == .text("completed"))
            // Each overwritten value is logged once: enrolled and withdrawn lost to completed
            let conflicts = try laptops[0].replica.conflicts()
            #expect(conflicts.count == 2)
            #expect(Set(conflicts.map(\.loser.value)) == [.text("enrolled"), .text("withdrawn")])
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 2)
            #expect(try await server.count("SELECT count(*) FROM subjects") == 4)
        }
    }

    @Test("An unreachable server fails the sync and loses nothing")
    func unreachable() async throws {
        let replica = try Replica.inMemory(schema: TrialSchema.current)
        let url = URL(string: "http://127.0.0.1:9")!
        try replica.initialize(site: "S01", user: "A", serverURL: url, token: "t")
        try replica.put("subjects", ["screening_no": .text("S01-001")])
        var configuration = SyncEngine.Configuration()
        configuration.attempts = 2
        configuration.initialBackoff = .milliseconds(10)
        let engine = SyncEngine(
            replica: replica, transport: HTTPTransport(serverURL: url, token: "t", schemaVersion: 1, timeout: 5), configuration: configuration)
        await #expect { try await engine.sync() } throws: { ($0 as? SyncError)?.isUnreachable == true }
        #expect(try replica.pendingCount() == 1)
        #expect(try replica.status().lastSync == nil)
    }

    @Test("A laptop on an older schema keeps working and syncs the tables and fields it knows", arguments: StoreKind.all)
    func olderSchemaKeepsSyncing(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let old = try server.laptop("old", schema: TrialSchema.current.restricted(to: 1))
            let new = try server.laptop("new")
            #expect(!old.replica.schema.contains(table: "screenings"))

            let subject = try old.replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F")])
            try await old.sync()
            try await new.sync()
            let event = try new.replica.put(
                "adverse_events",
                [
                    "subject_id": .text(subject), "term": .text("Cytokine release syndrome"), "grade": .integer(2),
                    "category": .text("crs"), "grading_scale": .text("ASTCT 2019"),
                ])
            try new.replica.put("screenings", ["subject_id": .text(subject), "date": .text("2026-11-01"), "sledai_2k": .integer(10)])
            try new.replica.put("subjects", id: subject, ["weight_kg": .real(61.5)], reason: "Corrected from the source document")
            try await new.sync()
            let report = try await old.sync()

            // The old laptop holds what it knows, and its edits still flow both ways
            #expect(report.pulled == 2, "the adverse event and the subject's new stamp; the screening is skipped")
            #expect(try old.replica.get("adverse_events", id: event)?["grade"] == .integer(2))
            #expect(try old.replica.get("adverse_events", id: event)?["category"] == nil)
            try old.replica.put("adverse_events", id: event, ["grade": .integer(3)], reason: "Corrected from the source document")
            try await old.sync()
            try await new.sync()
            let merged = try #require(try new.replica.get("adverse_events", id: event))
            #expect(merged["grade"] == .integer(3))
            #expect(merged["category"] == .text("crs"), "fields the old laptop does not know are kept")
            #expect(try new.replica.get("subjects", id: subject)?["weight_kg"] == .real(61.5))
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
        }
    }

    @Test("Concurrent valid edits that merge into a record breaking a rule never block a queue", arguments: StoreKind.all)
    func mergedRuleNeverBlocks(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put(
                "adverse_events",
                [
                    "subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(3), "category": .text("other"), "grading_scale": .text("CTCAE 5.0"),
                ])
            try await a.sync()
            try await b.sync()
            // a raises the grade to 5 (valid on CTCAE); b reclassifies the event as CRS (valid with grade 3)
            try a.replica.put("adverse_events", id: id, ["grade": .integer(5)], reason: "Corrected from the source document")
            try b.replica.put(
                "adverse_events", id: id, ["category": .text("crs"), "grading_scale": .text("ASTCT 2019")], reason: "Corrected from the source document")
            try await a.sync()
            let report = try await b.sync()
            #expect(report.pushed == 1)
            #expect(try b.replica.status().pendingChanges == 0, "b's queue is not stuck")
            try await a.sync()
            #expect(try a.contents() == b.contents())
            // The merged record is ASTCT with grade 5: editing it again on a laptop is refused until fixed
            #expect(throws: ValidationError.self) {
                try a.replica.put("adverse_events", id: id, ["term": .text("CRS")], reason: "Corrected from the source document")
            }
        }
    }

    @Test("A laptop on a newer schema is refused with a clear message and keeps its changes queued", arguments: StoreKind.all)
    func newerSchemaRefused(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            let newer = HTTPTransport(serverURL: server.url, token: server.s01, schemaVersion: TrialSchema.version + 1)
            await #expect {
                try await a.engine(transport: newer).sync()
            } throws: { error in
                let error = error as? SyncError
                return error?.code == "schema_version" && error?.message.contains("changes stay queued") == true
            }
            #expect(try a.replica.pendingCount() == 1)
            #expect(try await a.sync().pushed == 1)
        }
    }
}
