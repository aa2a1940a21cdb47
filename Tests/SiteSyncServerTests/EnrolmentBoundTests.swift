import Foundation
import HTTPTypes
import HummingbirdTesting
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Testing

/// What an enrolment token can enrol: a bounded number of laptops, under ids no laptop may
/// misuse, each with a credential that can hold 256 random bits (issue "Nothing lost when the
/// database fails", hole 9).
@Suite("Enrolment bounds")
struct EnrolmentBoundTests {
    private func enrol(_ client: any TestClientProtocol, token: String, replica: String, credential: String) async throws -> (HTTPResponse.Status, String) {
        let body = try json(EnrolRequest(replica: replica, user: "A. Rivera", credential: credential))
        return try await client.execute(uri: SyncProtocol.replicasPath, method: .post, headers: syncHeaders(token), body: body) { response in
            (response.status, String(buffer: response.body))
        }
    }

    @Test("An enrolment token enrols at most its limit of laptops; a lost answer's retry is still answered", arguments: StoreKind.all)
    func boundedPerToken(store: StoreKind) async throws {
        let server = try await TestServer.make(store) { $0.maximumEnrolmentsPerToken = 2 }
        try await server.test { client in
            let first = Credential.generate(prefix: Credential.replicaPrefix)
            #expect(try await enrol(client, token: server.s01Enrolment, replica: "laptop-1", credential: first).0 == .created)
            #expect(
                try await enrol(client, token: server.s01Enrolment, replica: "laptop-2", credential: Credential.generate(prefix: Credential.replicaPrefix)).0
                    == .created)
            let (status, body) = try await enrol(
                client, token: server.s01Enrolment, replica: "laptop-3", credential: Credential.generate(prefix: Credential.replicaPrefix))
            #expect(status == .forbidden)
            #expect(body.contains("has enrolled 2 laptops, its limit"), "\(body)")
            // The first laptop's request sent again, its answer lost: answered again.
            #expect(try await enrol(client, token: server.s01Enrolment, replica: "laptop-1", credential: first).0 == .created)
            // Another token of the site has its own count.
            #expect(
                try await enrol(client, token: server.s02Enrolment, replica: "laptop-4", credential: Credential.generate(prefix: Credential.replicaPrefix)).0
                    == .created)
        }
        let laptops = try await server.store.tokens().filter { $0.replica?.hasPrefix("laptop-") == true }.compactMap(\.replica).sorted()
        #expect(laptops == ["laptop-1", "laptop-2", "laptop-4"], "nothing written for the refused one")
    }

    @Test("`server`, ids that do not start with a letter or digit, and credentials no generator drew are refused", arguments: StoreKind.all)
    func idsAndCredentials(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            for replica in ["server", "SERVER", "-", "_", "-rf"] {
                let (status, body) = try await enrol(
                    client, token: server.s01Enrolment, replica: replica, credential: Credential.generate(prefix: Credential.replicaPrefix))
                #expect(status == .unprocessableContent, "\(replica): \(body)")
                #expect(body.contains("not `server`"), "\(body)")
            }
            for weak in [String(repeating: "0", count: 64), String(repeating: "01", count: 32), String(repeating: "0123456789abcdef", count: 4)] {
                let (status, body) = try await enrol(client, token: server.s01Enrolment, replica: "laptop-1", credential: Credential.replicaPrefix + weak)
                #expect(status == .unprocessableContent, "\(weak): \(body)")
            }
            // A push naming the reserved id is refused before anything is read.
            let push = PushRequest(replica: "server", groups: [])
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(push)) { response in
                #expect(response.status == .unprocessableContent)
            }
        }
        #expect(try await server.store.tokens().allSatisfy { $0.replica != "server" && $0.replica != "laptop-1" })
    }
}
