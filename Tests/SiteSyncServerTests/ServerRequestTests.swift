import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Testing
import TrialRecords

@Suite("Server requests")
struct ServerRequestTests {
    @Test("Health check answers without a token", arguments: StoreKind.all)
    func health(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"status":"ok"}"#)
            }
        }
    }

    /// Sends a request, expects an error status and code, and proves nothing was written.
    private func expectRefusal(
        _ server: TestServer, path: String = SyncProtocol.pushPath, headers: HTTPFields, body: ByteBuffer?,
        status: HTTPResponse.Status, code: ErrorCode, message: String? = nil
    ) async throws {
        let before = try await server.dump()
        try await server.test { client in
            try await client.execute(uri: path, method: .post, headers: headers, body: body) { response in
                #expect(response.status == status)
                let error = try decode(ErrorResponse.self, response.body)
                #expect(error.error.code == code.rawValue)
                if let message { #expect(error.error.message.contains(message), "\(error.error.message)") }
            }
        }
        #expect(try await server.dump() == before, "a refused request writes nothing")
    }

    @Test("A missing or unknown token is refused with 401", arguments: StoreKind.all)
    func tokens(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let body = try json(subjectPush(ids: ["a"]))
        try await expectRefusal(server, headers: syncHeaders(nil), body: body, status: .unauthorized, code: .unauthorized, message: "bearer token is required")
        try await expectRefusal(server, headers: syncHeaders("sst_nope"), body: body, status: .unauthorized, code: .unauthorized, message: "not valid")
        try await expectRefusal(server, headers: syncHeaders(server.admin), body: body, status: .forbidden, code: .forbidden)
    }

    @Test("Another protocol, or a newer schema, is refused with a clear message; a request without either header is malformed", arguments: StoreKind.all)
    func versions(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let body = try json(subjectPush(ids: ["a"]))
        try await expectRefusal(
            server, headers: syncHeaders(server.s01, protocolVersion: nil), body: body, status: .badRequest, code: .protocolVersion,
            message: "no SiteSync-Protocol header")
        try await expectRefusal(
            server, headers: syncHeaders(server.s01, schema: nil), body: body, status: .badRequest, code: .schemaVersion, message: "no SiteSync-Schema header")
        try await expectRefusal(server, headers: syncHeaders(server.s01, protocolVersion: "2"), body: body, status: .upgradeRequired, code: .protocolVersion)
        try await expectRefusal(
            server, headers: syncHeaders(server.s01, schema: "99"), body: body, status: .conflict, code: .schemaVersion, message: "schema version 99")
    }

    @Test("Malformed JSON and oversized bodies are refused", arguments: StoreKind.all)
    func malformed(store: StoreKind) async throws {
        let server = try await TestServer.make(store) { $0.maximumBodySize = 4096 }
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: ByteBuffer(string: "{\"replica\": \"r1\", \"groups\": [}"), status: .badRequest, code: .invalidJSON)
        try await expectRefusal(
            server, headers: syncHeaders(server.s01),
            body: ByteBuffer(string: #"{"replica":"r1","groups":[{"t":"subjects","u":"A","c":["site_id"],"r":[[1]]}]}"#), status: .badRequest,
            code: .invalidJSON, message: "expected String")
        let ids = (0..<200).map { "record-\($0)" }
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(subjectPush(ids: ids)), status: .contentTooLarge, code: .bodyTooLarge,
            message: "4096 bytes")
    }

    @Test("Unknown tables and fields, bad values and half-bad batches are refused whole", arguments: StoreKind.all)
    func validation(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let now = HybridLogicalClock.systemMilliseconds()
        var unknownTable = subjectPush(ids: ["a"])
        unknownTable.groups[0].table = "labs"
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(unknownTable), status: .unprocessableContent, code: .validationFailed,
            message: "labs: is not a known table")

        var unknownField = subjectPush(ids: ["a"])
        unknownField.groups[0].columns[2] = "colour"
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(unknownField), status: .unprocessableContent, code: .validationFailed,
            message: "subjects.colour: is not a field")

        // One good record and one with grade 7: nothing of the batch is written
        let ae = ChangeGroup(
            table: "adverse_events", user: "A", columns: ["site_id", "subject_id", "term", "grade"],
            rows: [
                ChangeRow(id: "ae1", seq: HLC(milliseconds: now), values: [.text("S01"), .text("s1"), .text("Fever"), .integer(2)]),
                ChangeRow(id: "ae2", seq: HLC(milliseconds: now, counter: 1), values: [.text("S01"), .text("s1"), .text("Rash"), .integer(7)]),
            ])
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(PushRequest(replica: "r1", groups: subjectPush(ids: ["s1"]).groups + [ae])),
            status: .unprocessableContent, code: .validationFailed, message: "adverse_events.grade: must be a whole number from 1 to 5")
        // The value itself is not quoted back: an error never holds a record value.
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(PushRequest(replica: "r1", groups: [ae]))
            ) { response in
                let error = try decode(ErrorResponse.self, response.body)
                #expect(response.status == .unprocessableContent && !error.error.message.contains("got"), "\(error.error.message)")
            }
        }

        // A new record without its required fields
        let partial = PushRequest(
            replica: "r1",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A", columns: ["site_id", "sex"],
                    rows: [
                        ChangeRow(id: "s9", seq: HLC(milliseconds: now), values: [.text("S01"), .text("F")])
                    ])
            ])
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(partial), status: .unprocessableContent, code: .validationFailed,
            message: "subjects.screening_no: is required for a new record")
        // The same after a valid record: it fails inside the transaction, which rolls the first one back
        let mixed = PushRequest(replica: "r1", groups: subjectPush(ids: ["s1"], milliseconds: now - 10).groups + partial.groups)
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(mixed), status: .unprocessableContent, code: .validationFailed,
            message: "subjects.screening_no")

        // One record twice in one push
        var twice = subjectPush(ids: ["d1", "d2"])
        twice.groups[0].rows[1].id = "d1"
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(twice), status: .unprocessableContent, code: .validationFailed, message: "appears twice")

        // The server-written conflict log
        let conflicts = PushRequest(
            replica: "r1",
            groups: [
                ChangeGroup(
                    table: "conflicts", user: "A", columns: ["status"],
                    rows: [
                        ChangeRow(id: "c1", seq: HLC(milliseconds: now), values: [.text("resolved")])
                    ])
            ])
        try await expectRefusal(server, headers: syncHeaders(server.s01), body: try json(conflicts), status: .forbidden, code: .forbidden)
    }

    @Test("A site token cannot write or read another site's records", arguments: StoreKind.all)
    func scope(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(subjectPush(site: "S02", ids: ["a"])), status: .forbidden, code: .forbidden,
            message: "site S02")
        try await expectRefusal(
            server, path: SyncProtocol.pullPath, headers: syncHeaders(server.s01), body: try json(PullRequest(cursor: ["S02": 0], limit: 10)),
            status: .forbidden, code: .forbidden)

        // A record of S02 exists; S01 cannot edit it even without naming the site
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s02), body: try json(subjectPush(replica: "r2", site: "S02", ids: ["b"]))
            ) { #expect($0.status == .ok) }
        }
        let edit = PushRequest(
            replica: "r1",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A", columns: ["status"],
                    rows: [
                        ChangeRow(id: "b", seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds()), values: [.text("enrolled")], bases: [nil])
                    ])
            ])
        try await expectRefusal(server, headers: syncHeaders(server.s01), body: try json(edit), status: .forbidden, code: .forbidden)

        // and nothing of S02 comes down to S01
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01), body: try json(PullRequest(cursor: [:], limit: 10))
            ) { response in
                let batch = try decode(PullResponse.self, response.body)
                #expect(batch.recordCount == 0)
                #expect(batch.cursor == ["S01": 0])
            }
        }
    }

    @Test("A push stamped too far ahead is refused: fix your clock", arguments: StoreKind.all)
    func clockSkew(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let ahead = subjectPush(ids: ["a"], milliseconds: HybridLogicalClock.systemMilliseconds() + 5 * 60_000)
        try await expectRefusal(
            server, headers: syncHeaders(server.s01), body: try json(ahead), status: .unprocessableContent, code: .clockSkew, message: "fix your clock")
        let within = subjectPush(ids: ["b"], milliseconds: HybridLogicalClock.systemMilliseconds() + 20_000)
        try await server.test { client in
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(within)) {
                #expect($0.status == .ok)
            }
        }
    }

    @Test("A retried push gets the same answer and writes nothing twice", arguments: StoreKind.all)
    func idempotentPush(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let body = try json(subjectPush(ids: ["a", "b", "c"]))
        let (first, second) = try await server.test { client in
            let first = try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: body) {
                try decode(PushResponse.self, $0.body)
            }
            let dump = try await server.dump()
            let second = try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: body) {
                try decode(PushResponse.self, $0.body)
            }
            #expect(try await server.dump() == dump)
            return (first, second)
        }
        #expect(first.applied == 3)
        #expect((second.acked, second.applied, second.conflicts) == (first.acked, first.applied, first.conflicts))
        #expect(try await server.count("audit") == 3)
        #expect(try await server.count("subjects") == 3)
    }

    @Test("Pull pages through a site's changes in order, each exactly once, resuming from the cursor", arguments: StoreKind.all)
    func pullPaging(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let ids = (0..<7).map { "s\($0)" }
        try await server.test { client in
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(subjectPush(ids: ids))) {
                #expect($0.status == .ok)
            }
            var cursor: [String: Int64] = [:]
            var seen: [String] = []
            var pages = 0
            while true {
                let batch = try await client.execute(
                    uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01), body: try json(PullRequest(cursor: cursor, limit: 3))
                ) {
                    try decode(PullResponse.self, $0.body)
                }
                seen += batch.groups.flatMap { $0.rows.map(\.id) }
                cursor = batch.cursor
                pages += 1
                if !batch.more { break }
            }
            #expect(seen == ids)
            #expect(pages == 3)
            #expect(cursor == ["S01": 7])
        }
    }

    @Test(
        "A pull page stops at its byte budget as well as its row limit, counted as written (escapes included), and the pages still hold each record once",
        arguments: StoreKind.all, ["n", "\u{1}", "\""]
    )
    func pullByteBudget(store: StoreKind, character: String) async throws {
        let server = try await TestServer.make(store) { $0.maximumPullPageBytes = 40_000 }
        // 30 visits with 3,900 bytes of notes each: about 120 kB of plain letters, so about 10 to a
        // page; six times that of control characters, which JSON writes as \u0001.
        let ids = (0..<30).map { String(format: "v%02d", $0) }
        let notes = String(repeating: character, count: 3_900)
        let milliseconds = HybridLogicalClock.systemMilliseconds()
        let rows = ids.enumerated().map { index, id in
            ChangeRow(
                id: id, seq: HLC(milliseconds: milliseconds, counter: Int64(index)), values: [.text("S01"), .text("subject-1"), .text("D7"), .text(notes)])
        }
        let push = PushRequest(
            replica: "r1", groups: [ChangeGroup(table: "visits", user: "A", columns: ["site_id", "subject_id", "name", "notes"], rows: rows)])
        try await server.test { client in
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01, schema: "2"), body: try json(push)) {
                #expect($0.status == .ok)
            }
            var cursor: [String: Int64] = [:]
            var seen: [String] = []
            var sizes: [Int] = []
            var pages: [(bytes: Int, records: Int)] = []
            while true {
                let (batch, bytes) = try await client.execute(
                    uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01, schema: "2"),
                    body: try json(PullRequest(cursor: cursor, limit: 5000))
                ) { (try decode(PullResponse.self, $0.body), $0.body.readableBytes) }
                seen += batch.groups.flatMap { $0.rows.map(\.id) }
                sizes.append(bytes)
                pages.append((bytes, batch.groups.reduce(0) { $0 + $1.rows.count }))
                cursor = batch.cursor
                if !batch.more { break }
            }
            #expect(seen == ids, "every record once, in order")
            // About the budget, as written: only a page of one record may pass it.
            #expect(sizes.count >= 3 && pages.allSatisfy { $0.bytes <= 48_000 || $0.records == 1 }, "pages of about 40 kB: \(pages)")
            // A single record larger than the budget still goes, alone.
            let tiny = try await server.store.pull(
                PullRequest(cursor: [:], limit: 5000), principal: Principal(role: .site, site: "S01", replica: "r1b"), schema: TrialSchema.current,
                byteBudget: 10)
            #expect(tiny.groups.flatMap(\.rows).count == 1 && tiny.more)
        }
    }

    @Test("A page whose budget is spent still says more waits, past records the puller wrote itself", arguments: StoreKind.all)
    func pullBudgetSkipping(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let base = HybridLogicalClock.systemMilliseconds()
        try await server.test { client in
            for (token, push) in [
                (server.s01, subjectPush(replica: "r1", site: "S01", ids: ["a"], milliseconds: base)),
                (server.reviewer, subjectPush(replica: "rv", site: "S02", ids: ["own"], milliseconds: base + 1)),
                (server.s02, subjectPush(replica: "r2", site: "S02", ids: ["b"], milliseconds: base + 2)),
            ] {
                try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(token), body: try json(push)) {
                    #expect($0.status == .ok)
                }
            }
        }
        // The reviewer's replica pulls with a budget that S01's one record spends.
        let reviewer = Principal(role: .reviewer, site: nil, replica: "rv")
        var request = PullRequest(cursor: [:], limit: 100, replica: "rv")
        var seen: [String] = []
        for _ in 0..<5 {
            let page = try await server.store.pull(request, principal: reviewer, schema: TrialSchema.current, byteBudget: 10)
            seen += page.groups.flatMap { $0.rows.map(\.id) }
            request.cursor = page.cursor
            if !page.more { break }
        }
        #expect(seen == ["a", "b"], "its own record skipped, the next one not lost")
    }

    @Test("A reviewer pulls every site", arguments: StoreKind.all)
    func reviewerPull(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(subjectPush(replica: "r1", site: "S01", ids: ["a"]))
            ) { #expect($0.status == .ok) }
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s02), body: try json(subjectPush(replica: "r2", site: "S02", ids: ["b"]))
            ) { #expect($0.status == .ok) }
            let batch = try await client.execute(
                uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.reviewer), body: try json(PullRequest(cursor: [:], limit: 10))
            ) {
                try decode(PullResponse.self, $0.body)
            }
            #expect(Set(batch.groups.flatMap { $0.rows.map(\.id) }) == ["a", "b"])
            #expect(batch.cursor == ["S01": 1, "S02": 1])
        }
    }
}

@Suite("Review endpoints")
struct ReviewEndpointTests {
    @Test("One conflict with the field's current value; invisible to another site's token", arguments: StoreKind.all)
    func conflictDetail(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let now = HybridLogicalClock.systemMilliseconds()
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01),
                body: try json(subjectPush(replica: "r1", ids: ["s1"], milliseconds: now - 20))
            ) { #expect($0.status == .ok) }
            // r2 never saw r1's status and writes its own later: a concurrent write, logged
            let edit = PushRequest(
                replica: "r1b",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "B", columns: ["status"],
                        rows: [
                            ChangeRow(id: "s1", seq: HLC(milliseconds: now - 10), values: [.text("enrolled")], bases: [nil])
                        ])
                ])
            let answer = try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01b), body: try json(edit)) {
                try decode(PushResponse.self, $0.body)
            }
            #expect(answer.conflicts == 1)
            let page = try await client.execute(uri: "\(SyncProtocol.conflictsPath)?status=all", method: .get, headers: syncHeaders(server.s01)) {
                try decode(ConflictPage.self, $0.body)
            }
            let id = try #require(page.conflicts.first?.id)
            let detail = try await client.execute(uri: "\(SyncProtocol.conflictsPath)/\(id)", method: .get, headers: syncHeaders(server.reviewer)) {
                try decode(ConflictDetail.self, $0.body)
            }
            #expect(detail.conflict.winner.value == .text("enrolled"))
            #expect(detail.conflict.loser.value == .text("screening"))
            #expect(detail.current == .text("enrolled"))
            let hidden = try await client.execute(uri: "\(SyncProtocol.conflictsPath)/\(id)", method: .get, headers: syncHeaders(server.s02)) { response in
                (response.status, try decode(ErrorResponse.self, response.body).error.code)
            }
            #expect(hidden.0 == .notFound && hidden.1 == "not_found")
        }
    }
}

/// Text that reaches a store from a URL follows the rules of stored text.
@Suite("Review requests with bad text")
struct ReviewTextTests {
    @Test("A NUL in a review query, or an overlong value in its query or path, is refused with 422 naming it, on either store", arguments: StoreKind.all)
    func refused(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let long = String(repeating: "x", count: 1025)
        let requests: [(uri: String, names: String)] = [
            ("\(SyncProtocol.conflictsPath)?table=a%00b", "table"),
            ("\(SyncProtocol.conflictsPath)?site=S01%00", "site"),
            ("\(SyncProtocol.conflictsPath)?after=%00", "after"),
            ("\(SyncProtocol.conflictsPath)?table=\(long)", "table"),
            // Path parameters are not percent-decoded, so no NUL reaches the store through them.
            ("\(SyncProtocol.conflictsPath)/\(long)", "conflict id"),
            ("/v1/records/subjects/\(long)/history", "record id"),
            ("/v1/records/\(long)/a/history", "table"),
        ]
        try await server.test { client in
            for request in requests {
                let refusal = try await client.execute(uri: request.uri, method: .get, headers: syncHeaders(server.reviewer)) { response in
                    (response.status, try decode(ErrorResponse.self, response.body).error)
                }
                #expect(refusal.0 == .unprocessableContent, "\(request.uri)")
                #expect(refusal.1.code == "validation_failed" && refusal.1.message.contains(request.names), "\(request.uri): \(refusal.1.message)")
            }
            // The same requests with plain text are answered.
            try await client.execute(uri: "\(SyncProtocol.conflictsPath)?table=subjects&site=S01", method: .get, headers: syncHeaders(server.reviewer)) {
                #expect($0.status == .ok)
            }
        }
    }
}
