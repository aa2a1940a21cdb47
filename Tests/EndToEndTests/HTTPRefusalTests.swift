import Foundation
import SiteSyncCore
import Testing
import TrialRecords

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite("Refused requests over loopback HTTP")
struct HTTPRefusalTests {
    /// Posts raw bytes and returns the status and decoded error.
    private func post(_ server: LiveServer, path: String = SyncProtocol.pushPath, token: String?, body: Data) async throws -> (Int, ErrorResponse?) {
        var request = URLRequest(url: server.url.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("1", forHTTPHeaderField: SyncProtocol.protocolHeader)
        request.setValue(String(TrialSchema.version), forHTTPHeaderField: SyncProtocol.schemaHeader)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, try? JSONDecoder().decode(ErrorResponse.self, from: data))
    }

    private func push(_ table: String, replica: String, columns: [String], values: [FieldValue]) throws -> Data {
        let row = ChangeRow(id: UUID().uuidString, seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds()), values: values)
        return try JSONEncoder().encode(PushRequest(replica: replica, groups: [ChangeGroup(table: table, user: "A", columns: columns, rows: [row])]))
    }

    @Test("Each bad request gets its status and code, and the server's database is unchanged")
    func refusals() async throws {
        try await LiveServer.run(configure: { $0.maximumBodySize = 64 * 1024 }) { server in
            // Some data first, so "unchanged" means something
            let a = try server.laptop("a")
            try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            let c = try server.laptop("c", site: "S02")
            try await c.engine().enrol()
            let before = try await server.dump()
            let (aID, aToken) = (a.replica.identity!.replicaID, a.replica.identity!.token)
            let (cID, cToken) = (c.replica.identity!.replicaID, c.replica.identity!.token)
            let valid = try push("subjects", replica: aID, columns: ["site_id", "screening_no"], values: [.text("S01"), .text("S01-002")])

            let cases: [(String, String?, Data, Int, ErrorCode)] = [
                ("malformed JSON", aToken, Data("{\"replica\":".utf8), 400, .invalidJSON),
                ("oversized body", aToken, Data(repeating: UInt8(ascii: " "), count: 200 * 1024), 413, .bodyTooLarge),
                ("unknown table", aToken, try push("labs", replica: aID, columns: ["site_id"], values: [.text("S01")]), 422, .validationFailed),
                (
                    "bad value", aToken,
                    try push(
                        "adverse_events", replica: aID, columns: ["site_id", "subject_id", "term", "grade"],
                        values: [.text("S01"), .text("s"), .text("t"), .integer(7)]), 422, .validationFailed
                ),
                ("missing token", nil, valid, 401, .unauthorized),
                ("wrong token", "sst_0000", valid, 401, .unauthorized),
                ("enrolment token", server.s01, valid, 403, .forbidden),
                ("another replica's id", cToken, valid, 403, .forbidden),
                (
                    "other site", cToken, try push("subjects", replica: cID, columns: ["site_id", "screening_no"], values: [.text("S01"), .text("S01-002")]),
                    403, .forbidden
                ),
            ]
            for (name, token, body, status, code) in cases {
                let (received, error) = try await post(server, token: token, body: body)
                #expect(received == status, "\(name)")
                #expect(error?.error.code == code.rawValue, "\(name)")
                #expect(error?.error.message.isEmpty == false, "\(name)")
            }
            let (notFound, error) = try await post(server, path: "/v1/nowhere", token: aToken, body: valid)
            #expect(notFound == 404 && error?.error.code == "not_found")
            #expect(try await server.dump() == before)
        }
    }
}
