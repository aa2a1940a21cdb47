import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncTestSupport
import Testing
import TrialRecords

/// Two laptops of S01 that both changed a subject's status offline; b's change is the later one.
private func conflictOnStatus(_ server: LiveServer) async throws -> (a: Laptop, b: Laptop, id: String, conflict: Conflict) {
    let a = try server.laptop("a", user: "A. Rivera")
    let b = try server.laptop("b", user: "B. Chen")
    let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
    try await a.sync()
    try await b.sync()
    try a.replica.put("subjects", id: id, ["status": .text("enrolled")], reason: "Corrected from the source document")
    try await Task.sleep(for: .milliseconds(5))
    try b.replica.put("subjects", id: id, ["status": .text("screen_failed")], reason: "Corrected from the source document")
    try await a.sync()
    try await b.sync()
    try await a.sync()
    let conflict = try #require(try a.replica.conflicts().first)
    return (a, b, id, conflict)
}

@Suite("Conflict review over loopback HTTP")
struct ReviewTests {
    @Test(
        "Each decision converges every laptop on the decided value, and the conflict shows resolved everywhere",
        arguments: [
            (ResolutionChoice.keepWinner, FieldValue.text("screen_failed"), "keep_winner", false),
            (.takeLoser, .text("enrolled"), "take_loser", false),
            (.value(.text("withdrawn")), .text("withdrawn"), "value", true),
        ]
    )
    func resolve(choice: ResolutionChoice, decided: FieldValue, decision: String, byReviewer: Bool) async throws {
        try await LiveServer.run { server in
            let (a, b, id, conflict) = try await conflictOnStatus(server)
            let reviewer = try server.laptop("reviewer", site: "*", user: "D. Monitor")
            try await reviewer.sync()
            let resolver = byReviewer ? reviewer : a

            let resolved = try resolver.replica.resolve(conflict: conflict.id, choice, reason: "Source document checked")
            #expect(resolved.resolution?.decision.rawValue == decision)
            for laptop in [resolver, b, a, reviewer] { try await laptop.sync() }

            for laptop in [a, b, reviewer] {
                #expect(try laptop.replica.get("subjects", id: id)?["status"] == decided)
                let seen = try laptop.replica.conflict(id: conflict.id).conflict
                #expect(seen.status == .resolved)
                #expect(seen.resolution?.decision.rawValue == decision)
                #expect(seen.resolution?.reason == "Source document checked")
                #expect(seen.resolution?.reviewer == (byReviewer ? "D. Monitor" : "A. Rivera"))
                #expect(try laptop.replica.conflicts().isEmpty, "no open conflict left")
            }
            #expect(try a.contents()["subjects"] == b.contents()["subjects"])
            #expect(try await server.count("SELECT count(*) FROM conflicts WHERE status = 'open'") == 0)
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 1, "resolving logs nothing new")
        }
    }

    @Test("A resolution made offline is pushed at the next sync", arguments: StoreKind.all)
    func offlineResolution(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let (a, _, id, conflict) = try await conflictOnStatus(server)
            // Offline: resolve, nothing reaches the server yet
            try a.replica.resolve(conflict: conflict.id, .takeLoser, reason: "Enrolment confirmed by phone")
            #expect(try a.replica.status().pendingChanges == 2, "the record and the conflict")
            #expect(try await server.count("SELECT count(*) FROM conflicts WHERE status = 'open'") == 1)

            try await a.sync()

            #expect(try await server.count("SELECT count(*) FROM conflicts WHERE status = 'resolved'") == 1)
            #expect(try await server.count("SELECT count(*) FROM subjects WHERE status = 'enrolled' AND id = '\(id)'") == 1)
            let page = try await HTTPTransport(serverURL: server.url, token: server.reviewer, schemaVersion: TrialSchema.version)
                .conflicts(ConflictFilter(status: .resolved))
            #expect(page.conflicts.map(\.id) == [conflict.id])
            #expect(page.conflicts.first?.resolution?.reason == "Enrolment confirmed by phone")
        }
    }

    @Test("Resolving twice, without a reason, or outside the token's scope is refused and writes nothing", arguments: StoreKind.all)
    func refusals(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let (a, b, id, conflict) = try await conflictOnStatus(server)
            #expect(throws: ReplicaError.invalidArgument) { try a.replica.resolve(conflict: conflict.id, .keepWinner, reason: "  ") }
            try a.replica.resolve(conflict: conflict.id, .keepWinner, reason: "Checked")
            let pending = try a.replica.status().pendingChanges
            #expect(throws: ReplicaError.alreadyResolved) { try a.replica.resolve(conflict: conflict.id, .takeLoser, reason: "Changed my mind") }
            #expect(try a.replica.status().pendingChanges == pending)
            #expect(throws: ReplicaError.recordNotFound) { try b.replica.resolve(conflict: "nope", .keepWinner, reason: "x") }
            #expect(throws: ValidationError.self) { try b.replica.resolve(conflict: conflict.id, .value(.text("cured")), reason: "x") }

            // Conflict records are the server's: replicas cannot create them or change their sides
            #expect(throws: ReplicaError.readOnlyTable) {
                try b.replica.put("conflicts", id: conflict.id, ["loser_value": .text("\"x\"")], reason: "Corrected from the source document")
            }
            try await a.sync()
            let before = try await server.dump()
            let now = HLC(milliseconds: HybridLogicalClock.systemMilliseconds())
            let s02 = HTTPTransport(serverURL: server.url, token: server.s02, schemaVersion: TrialSchema.version)
            let forged = PushRequest(
                replica: "s02-laptop",
                groups: [
                    ChangeGroup(
                        table: "conflicts", user: "Z", columns: ["status", "decision", "reviewer", "reason", "resolved_at"],
                        rows: [
                            ChangeRow(
                                id: conflict.id, seq: now, values: [.text("resolved"), .text("value"), .text("Z"), .text("x"), .text("2026-11-25T00:00:00Z")],
                                bases: [nil, nil, nil, nil, nil])
                        ])
                ])
            await #expect { try await s02.push(forged) } throws: { ($0 as? SyncError)?.status == 403 }
            let s01 = a.transport
            var created = forged
            created.replica = a.replica.identity!.replicaID
            created.groups[0].rows[0].id = "made-up"
            await #expect { try await s01.push(created) } throws: { ($0 as? SyncError)?.message.contains("created by the server only") == true }
            var sides = forged
            sides.replica = a.replica.identity!.replicaID
            sides.groups[0].columns = ["winner_value"]
            sides.groups[0].rows[0].values = [.text("\"x\"")]
            sides.groups[0].rows[0].bases = [nil]
            await #expect { try await s01.push(sides) } throws: { ($0 as? SyncError)?.status == 403 }
            var unexplained = forged
            unexplained.replica = a.replica.identity!.replicaID
            unexplained.groups[0].rows[0].values[3] = .null
            await #expect { try await s01.push(unexplained) } throws: {
                ($0 as? SyncError)?.message.contains("conflicts.reason: is required when the conflict is resolved") == true
            }
            #expect(try await server.dump() == before)

            // Reading: a site token sees its site only; a reviewer sees all
            await #expect { try await s02.conflicts(ConflictFilter(status: nil, site: "S01")) } throws: { ($0 as? SyncError)?.status == 403 }
            #expect(try await s02.conflicts(ConflictFilter(status: nil)).conflicts.isEmpty)
            await #expect { try await s02.history(table: "subjects", id: id) } throws: { ($0 as? SyncError)?.status == 404 }
            let reviewer = HTTPTransport(serverURL: server.url, token: server.reviewer, schemaVersion: TrialSchema.version)
            #expect(try await reviewer.conflicts(ConflictFilter(status: nil)).conflicts.count == 1)
        }
    }

    @Test("Conflict listings page and filter", arguments: StoreKind.all)
    func paging(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let ids = try (0..<3).map { try a.replica.put("subjects", ["screening_no": .text("S01-\($0)")]) }
            try await a.sync()
            try await b.sync()
            for id in ids { try a.replica.put("subjects", id: id, ["sex": .text("F")], reason: "Corrected from the source document") }
            try await Task.sleep(for: .milliseconds(5))
            for id in ids { try b.replica.put("subjects", id: id, ["sex": .text("M")], reason: "Corrected from the source document") }
            try await a.sync()
            try await b.sync()

            let transport = HTTPTransport(serverURL: server.url, token: server.s01, schemaVersion: TrialSchema.version)
            var filter = ConflictFilter(status: .open, limit: 2)
            let first = try await transport.conflicts(filter)
            #expect(first.conflicts.count == 2)
            filter.after = try #require(first.next)
            let second = try await transport.conflicts(filter)
            #expect(second.conflicts.count == 1 && second.next == nil)
            #expect(Set((first.conflicts + second.conflicts).map(\.recordID)) == Set(ids))
            #expect(try await transport.conflicts(ConflictFilter(status: .open, table: "adverse_events")).conflicts.isEmpty)
            #expect(try a.replica.conflicts(table: "subjects").count == 0, "a has not pulled them yet")
            try await a.sync()
            #expect(try a.replica.conflicts(site: "S01", table: "subjects").count == 3)
            #expect(try a.replica.conflicts(site: "S02").isEmpty)
        }
    }
}

@Suite("Conflict semantics over loopback HTTP")
struct ConflictSemanticsTests {
    @Test("Concurrent writes of the same value log nothing", arguments: StoreKind.all)
    func equalValues(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try await b.sync()
            try a.replica.put("subjects", id: id, ["status": .text("enrolled")], reason: "Corrected from the source document")
            try b.replica.put("subjects", id: id, ["status": .text("enrolled")], reason: "Corrected from the source document")
            try await a.sync()
            try await b.sync()
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
        }
    }

    @Test("Sequential edits on one laptop never log, even when made during a push", arguments: StoreKind.all)
    func sequentialEdits(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever"), "grade": .integer(1)])
            try await a.sync()
            for grade in 2...4 {
                try a.replica.put("adverse_events", id: id, ["grade": .integer(Int64(grade))], reason: "Corrected from the source document")
                try await a.sync()
            }
            // An edit between a push and its acknowledgement
            try a.replica.put("adverse_events", id: id, ["grade": .integer(5)], reason: "Corrected from the source document")
            let batch = try #require(try await a.replica.sync.outboxBatch(limit: 10))
            let answer = try await a.transport.push(batch.request)
            try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "Corrected from the source document")
            try await a.replica.sync.acknowledge(batch, answer)
            try await a.sync()
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
            #expect(try await server.count("SELECT count(*) FROM adverse_events WHERE grade = 3") == 1)
        }
    }

    @Test("Pipelined batches: a record edited while its batch travels is pushed again, rebased, without a conflict", arguments: [2, 3, 10])
    func editDuringPipelinedPush(batchSize: Int) async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let ids = try (1...7).map { try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Fever \($0)"), "grade": .integer(1)]) }
            // While the first batch (holding ids[0]) travels, ids[0] and the last record are edited again
            let typing = EditingDuringPush(a.transport) { [replica = a.replica] in
                try replica.put("adverse_events", id: ids[0], ["grade": .integer(4)], reason: "Corrected from the source document")
                try replica.put("adverse_events", id: ids[6], ["outcome": .text("recovered")], reason: "Corrected from the source document")
            }
            let report = try await a.engine(transport: typing) { $0.pushBatchSize = batchSize }.sync()
            #expect(report.conflicts == 0)
            #expect(try a.replica.pendingCount() == 0)
            try await b.sync()
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
            #expect(try await server.count("SELECT count(*) FROM adverse_events") == 7)
            #expect(try b.replica.get("adverse_events", id: ids[0])?["grade"] == .integer(4))
            #expect(try b.replica.get("adverse_events", id: ids[6])?["outcome"] == .text("recovered"))
            #expect(try a.contents() == b.contents())
        }
    }

    @Test("Three laptops racing on one field log each overwritten value once, whatever the retries", arguments: StoreKind.all)
    func threeWayRaceWithRetries(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let laptops = try ["a", "b", "c"].map { try server.laptop($0) }
            let id = try laptops[0].replica.put("subjects", ["screening_no": .text("S01-001")])
            for laptop in laptops { try await laptop.sync() }
            for (index, laptop) in laptops.enumerated() {
                try laptop.replica.put(
                    "subjects", id: id, ["sex": .text(index == 1 ? "M" : "F"), "status": .text(["enrolled", "withdrawn", "completed"][index])],
                    reason: "Corrected from the source document")
                try await Task.sleep(for: .milliseconds(3))
            }
            for laptop in laptops {
                // Every push's answer is lost once, so every batch arrives twice
                _ = try await laptop.engine(transport: LosingResponses(laptop.transport, lose: 1)).sync()
            }
            for laptop in laptops { try await laptop.sync() }
            #expect(try await server.count("SELECT count(*) FROM conflicts WHERE field = 'status'") == 2)
            #expect(try await server.count("SELECT count(*) FROM conflicts WHERE field = 'sex'") == 2, "b's M overwrites a's F, then c's F overwrites M")
            #expect(try await server.count("SELECT count(DISTINCT loser_value) FROM conflicts WHERE field = 'status'") == 2)
        }
    }

    @Test("A resolution racing with a new edit is logged like any other write", arguments: StoreKind.all)
    func resolutionRacesEdit(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let (a, b, id, conflict) = try await conflictOnStatus(server)
            try await b.sync()
            // a resolves offline; b, not knowing, edits the same field a little later
            try a.replica.resolve(conflict: conflict.id, .takeLoser, reason: "Enrolled per CRF")
            try await Task.sleep(for: .milliseconds(5))
            try b.replica.put("subjects", id: id, ["status": .text("withdrawn")], reason: "Corrected from the source document")
            try await a.sync()
            try await b.sync()
            try await a.sync()

            #expect(try a.replica.get("subjects", id: id)?["status"] == .text("withdrawn"))
            #expect(try b.replica.get("subjects", id: id)?["status"] == .text("withdrawn"))
            let open = try a.replica.conflicts()
            #expect(open.count == 1)
            #expect(open.first?.loser.value == .text("enrolled"), "the resolution's write lost and is logged")
            #expect(open.first?.winner.value == .text("withdrawn"))
        }
    }

    @Test("History lists every received value in order, with the conflict and its resolution", arguments: StoreKind.all)
    func history(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a", user: "A. Rivera")
            let b = try server.laptop("b", user: "B. Chen")
            let c = try server.laptop("c", user: "C. Okafor")
            let id = try a.replica.put("adverse_events", ["subject_id": .text("s1"), "term": .text("Neutropenia"), "grade": .integer(1)])
            for laptop in [a, b, c] { try await laptop.sync() }
            try b.replica.put("adverse_events", id: id, ["grade": .integer(2)], reason: "Corrected from the source document")
            try await b.sync()
            try await a.sync()
            try await c.sync()
            try a.replica.put("adverse_events", id: id, ["grade": .integer(3)], reason: "Corrected from the source document")
            try await Task.sleep(for: .milliseconds(5))
            try c.replica.put("adverse_events", id: id, ["grade": .integer(4)], reason: "Corrected from the source document")
            try await a.sync()
            try await c.sync()
            try await a.sync()
            let conflict = try #require(try a.replica.conflicts().first)
            try a.replica.resolve(conflict: conflict.id, .takeLoser, reason: "Grade 3 per lab report")
            try await a.sync()

            let history = try await HTTPTransport(serverURL: server.url, token: server.s01, schemaVersion: TrialSchema.version)
                .history(table: "adverse_events", id: id)
            #expect(history.source == "server")
            let grades = history.entries.compactMap { entry -> String? in
                if entry.kind == "resolution" { return "resolution \(entry.decision ?? "") \(entry.field ?? ""): \(entry.reason ?? "")" }
                guard let grade = entry.changes?.first(where: { $0.field == "grade" }) else { return nil }
                return "\(entry.user): \(grade.old.shown) -> \(grade.new.shown) \(grade.outcome)"
            }
            #expect(
                grades == [
                    "A. Rivera: - -> 1 applied",
                    "B. Chen: 1 -> 2 applied",
                    "A. Rivera: 2 -> 3 applied",
                    "C. Okafor: 3 -> 4 applied",
                    "A. Rivera: 4 -> 3 applied",
                    "resolution take_loser grade: Grade 3 per lab report",
                ])
            // Offline, a laptop shows what it knows
            let local = try a.replica.localHistory("adverse_events", id: id)
            #expect(local.source == "replica")
            #expect(local.entries.contains { $0.kind == "resolution" && $0.reason == "Grade 3 per lab report" })
            #expect(local.entries.flatMap { $0.changes ?? [] }.first { $0.field == "grade" }?.new == .integer(3))
        }
    }
}

extension FieldValue {
    fileprivate var shown: String { displayText ?? "-" }
}
