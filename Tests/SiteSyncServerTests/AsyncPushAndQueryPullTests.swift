import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SiteSyncCore
import Testing

@testable import SiteSyncServer

/// Headers of an asynchronous push (`Prefer: respond-async`).
private func asyncHeaders(_ token: String) -> HTTPFields {
    var headers = syncHeaders(token)
    headers[HTTPField.Name(SyncProtocol.preferHeader)!] = SyncProtocol.respondAsync
    return headers
}

@Suite("Asynchronous push and the bodiless pull")
struct AsyncPushAndQueryPullTests {
    @Test("An asynchronous push is accepted at once; its outcome is collected once, by the token's scope only")
    func asyncPush() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let location = try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: asyncHeaders(server.s01), body: try json(subjectPush(ids: ["a", "b"]))
            ) { response in
                #expect(response.status == .accepted)
                #expect(response.headers[HTTPField.Name(SyncProtocol.preferenceAppliedHeader)!] == SyncProtocol.respondAsync)
                return try #require(response.headers[.location])
            }
            #expect(location.hasPrefix("/v1/push/"))
            // Another site's token cannot collect it
            try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s02)) { #expect($0.status == .notFound) }
            let outcome = try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .ok)
                return try decode(PushResponse.self, response.body)
            }
            #expect(outcome.applied == 2)
            #expect(outcome.conflicts == 0)
            // Collected once: asking again says to push again
            try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .notFound)
                let error = try decode(ErrorResponse.self, response.body).error
                #expect(error.message.contains("Push again"))
            }
        }
        #expect(try await server.count("subjects") == 2)
    }

    @Test("A refusal found while applying an asynchronous push is its outcome, and nothing is written")
    func asyncRefusal() async throws {
        let server = try await TestServer.make()
        let before = try await server.dump()
        // A new subject without its required screening number is refused by the store, not up front
        let push = PushRequest(replica: "r1", groups: [ChangeGroup(table: "subjects", user: "A", columns: ["site_id"], rows: [
            ChangeRow(id: "a", seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds()), values: [.text("S01")]),
        ])])
        try await server.test { client in
            let location = try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: asyncHeaders(server.s01), body: try json(push)) { response in
                #expect(response.status == .accepted)
                return try #require(response.headers[.location])
            }
            try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .unprocessableContent)
                let error = try decode(ErrorResponse.self, response.body).error
                #expect(error.code == ErrorCode.validationFailed.rawValue)
                #expect(error.message.contains("subjects.screening_no: is required for a new record"))
            }
        }
        #expect(try await server.dump() == before)
    }

    @Test("Bad text is refused before an asynchronous push is accepted")
    func asyncMalformed() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: asyncHeaders(server.s01), body: ByteBuffer(string: #"{"replica":"r1","groups":[}"#)) { response in
                #expect(response.status == .badRequest)
                let error = try decode(ErrorResponse.self, response.body).error
                #expect(error.code == ErrorCode.invalidJSON.rawValue)
            }
        }
    }

    @Test("GET /v1/pull reads the request from the query and answers as POST does")
    func queryPull() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(subjectPush(ids: ["a", "b", "c"]))) {
                #expect($0.status == .ok)
            }
            let request = PullRequest(cursor: ["S01": 1], limit: 1, replica: "r1b", acked: .zero)
            let query = request.queryItems.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
            #expect(query == "limit=1&cursor=S01:1&replica=r1b&acked=0")
            let byQuery = try await client.execute(uri: "\(SyncProtocol.pullPath)?\(query)", method: .get, headers: syncHeaders(server.s01b)) { response in
                #expect(response.status == .ok)
                return try decode(PullResponse.self, response.body)
            }
            let byBody = try await client.execute(uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01b), body: try json(request)) {
                try decode(PullResponse.self, $0.body)
            }
            #expect(byQuery.groups.flatMap { $0.rows.map(\.id) } == ["b"])
            #expect(byQuery.cursor == ["S01": 2])
            #expect(byQuery.more)
            #expect(byQuery.groups == byBody.groups)
            #expect(byQuery.cursor == byBody.cursor)
        }
    }

    @Test("A bad pull query is refused with the parameter and the rule", arguments: [
        ("limit=ten", HTTPResponse.Status.unprocessableContent, "limit must be a whole number"),
        ("cursor=S01:1", .unprocessableContent, "limit is required"),
        ("limit=5&cursor=S01", .unprocessableContent, "cursor must list SITE:SEQUENCE pairs"),
        ("limit=5&cursor=S01:1,S01:2", .unprocessableContent, "each site once"),
        ("limit=5&cursor=S01:-3", .unprocessableContent, "cursor must list"),
        ("limit=0", .unprocessableContent, "at least 1"),
        ("limit=5&cursor=S02:0", .forbidden, "reads site S01 only"),
    ])
    func badQuery(query: String, status: HTTPResponse.Status, message: String) async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            try await client.execute(uri: "\(SyncProtocol.pullPath)?\(query)", method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == status)
                let text = try decode(ErrorResponse.self, response.body).error.message
                #expect(text.contains(message), "\(text)")
            }
        }
    }
}
