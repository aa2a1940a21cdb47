import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncTestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// How a laptop of an earlier build pushes: `Prefer: respond-async`, a `202` with the outcome's
/// `Location`, then a bodiless `GET` of it, over URLSession. Enrolment and pulls are as today's.
private struct EarlierBuildTransport: SyncTransport {
    let current: HTTPTransport
    let serverURL: URL
    let credential: @Sendable () -> String

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await current.enrol(request) }
    func pull(_ request: PullRequest) async throws -> PullResponse { try await current.pull(request) }

    func push(_ request: PushRequest) async throws -> PushResponse {
        var post = URLRequest(url: serverURL.appendingPathComponent(SyncProtocol.pushPath))
        post.httpMethod = "POST"
        post.httpBody = Data(try request.wireJSON())
        post.setValue(SyncProtocol.respondAsync, forHTTPHeaderField: SyncProtocol.preferHeader)
        let (accepted, head) = try await send(post)
        #expect(head.statusCode == 202, "\(String(decoding: accepted, as: UTF8.self))")
        #expect(head.value(forHTTPHeaderField: SyncProtocol.preferenceAppliedHeader) == SyncProtocol.respondAsync)
        let location = try #require(head.value(forHTTPHeaderField: "Location"))
        let (outcome, answer) = try await send(URLRequest(url: serverURL.appendingPathComponent(location)))
        #expect(answer.statusCode == 200, "\(String(decoding: outcome, as: UTF8.self))")
        return try JSONDecoder().decode(PushResponse.self, from: outcome)
    }

    private func send(_ request: URLRequest) async throws -> (Data, HTTPURLResponse) {
        var request = request
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(credential())", forHTTPHeaderField: "Authorization")
        request.setValue(String(SyncProtocol.version), forHTTPHeaderField: SyncProtocol.protocolHeader)
        request.setValue("2", forHTTPHeaderField: SyncProtocol.schemaHeader)
        let (data, response) = try await URLSession.shared.data(for: request)
        return (data, try #require(response as? HTTPURLResponse))
    }
}

@Suite("Laptops of earlier builds")
struct EarlierBuildTests {
    @Test("A laptop that pushes asynchronously, as earlier builds do, still syncs with this server, on both stores", arguments: StoreKind.all)
    func asynchronousPush(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let old = try server.laptop("old", user: "O. Build")
            let current = try server.laptop("current")
            let transport = EarlierBuildTransport(
                current: try HTTPTransport(replica: old.replica), serverURL: server.url, credential: { old.replica.identity?.token ?? "" }
            )
            let engine = old.engine(transport: transport)
            let id = try old.replica.put("subjects", ["screening_no": .text("S01-001"), "sex": .text("F")])
            var report = try await engine.sync()
            #expect(report.pushed == 1 && report.awaitingReason == 0)
            try old.replica.put("subjects", id: id, ["sex": .text("M")], reason: "Corrected from the source document")
            report = try await engine.sync()
            #expect(report.pushed == 1)
            #expect(try old.replica.pendingCount() == 0)
            try await current.sync()
            #expect(try current.replica.get("subjects", id: id)?["sex"] == .text("M"))
            #expect(try await server.count("SELECT count(*) FROM subjects") == 1)
        }
    }
}
