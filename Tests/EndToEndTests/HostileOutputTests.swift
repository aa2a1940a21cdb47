import Foundation
import SiteSyncClient
import SiteSyncCore
import Testing
import TrialRecords

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Data written on one laptop is read on others and by inspectors: whatever it holds, it is shown
/// and exported as inert text.
@Suite("Hostile text stays inert", .serialized)
struct HostileOutputTests {
    /// A terminal escape sequence: set the window title, clear the screen.
    static let escape = "\u{1B}]0;owned\u{07}\u{1B}[2J"

    /// RFC 4180 rows, for checking cells as a spreadsheet would read them.
    static func csvRows(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var cell = ""
        var quoted = false
        var scalars = Array(text.unicodeScalars)[...]
        while let scalar = scalars.popFirst() {
            if quoted {
                if scalar == "\"" {
                    if scalars.first == "\"" { cell.unicodeScalars.append(scalars.removeFirst()) } else { quoted = false }
                } else {
                    cell.unicodeScalars.append(scalar)
                }
            } else if scalar == "\"" {
                quoted = true
            } else if scalar == "," {
                row.append(cell)
                cell = ""
            } else if scalar == "\r", scalars.first == "\n" {
                scalars.removeFirst()
                row.append(cell)
                rows.append(row)
                (row, cell) = ([], "")
            } else {
                cell.unicodeScalars.append(scalar)
            }
        }
        if !row.isEmpty || !cell.isEmpty { rows.append(row + [cell]) }
        return rows
    }

    /// Sends `body` to `path` and returns the status and the error message.
    private func send(_ port: Int, _ path: String, token: String?, protocolVersion: String = "1", body: Data) async throws -> (status: Int, message: String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = "POST"
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        request.setValue(protocolVersion, forHTTPHeaderField: SyncProtocol.protocolHeader)
        request.setValue(String(TrialSchema.current.version), forHTTPHeaderField: SyncProtocol.schemaHeader)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        let error = (try? JSONSerialization.jsonObject(with: data)) as? [String: [String: Any]]
        return ((response as! HTTPURLResponse).statusCode, (error?["error"]?["message"] as? String) ?? "")
    }

    @Test("Refusals are logged with their code, token, site and replica; no request forges a log line; errors quote little of their input")
    func refusals() async throws {
        try await Commands.inTemporaryFolder { cli in
            let (server, port) = try await cli.startServer(database: "server.sqlite", log: "server.log")
            defer { server.terminate() }
            let enrolment = try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "server.sqlite"]).line
            try Data(enrolment.utf8).write(to: cli.directory.appendingPathComponent("token.txt"))
            #expect(
                try await cli.sitesync("init", "--site", "S01", "--server", "http://127.0.0.1:\(port)", "--token-file", "token.txt", "--user", "A").status == 0)
            try await cli.signIn(database: "server.sqlite")
            let identity = try #require(
                try Replica.open(path: cli.directory.appendingPathComponent("sitesync.sqlite").path, schema: TrialSchema.current).identity)

            let unknown = try await send(port, SyncProtocol.pullPath, token: "sst_not-a-token", body: Data(#"{"cursor":{},"limit":1}"#.utf8))
            #expect(unknown.status == 401)
            // A replica id with a line break, which would start a forged log line if logged raw.
            let forged = #"{"replica":"x\n2026-01-01T00:00:00+0000 critical sitesync.server: forged","groups":[]}"#
            let refused = try await send(port, SyncProtocol.pushPath, token: identity.token, body: Data(forged.utf8))
            #expect(refused.status == 422 && !refused.message.contains("forged"))
            // Huge input is quoted in part, or not at all.
            let huge = try await send(
                port, SyncProtocol.pullPath, token: identity.token,
                body: Data(#"{"cursor":{"S01":1\#(String(repeating: "9", count: 1_000_000))},"limit":1}"#.utf8))
            #expect(huge.status == 400 && huge.message.utf8.count < 300, "\(huge.message.utf8.count) bytes")
            let longKey = try await send(
                port, SyncProtocol.pushPath, token: identity.token, body: Data(#"{"\#(String(repeating: "k", count: 100_000))" 1}"#.utf8))
            #expect(longKey.status == 400 && longKey.message.utf8.count < 300, "\(longKey.message.utf8.count) bytes")
            let version = try await send(port, SyncProtocol.pullPath, token: identity.token, protocolVersion: String(repeating: "7", count: 5000), body: Data())
            #expect(version.status == 426 && version.message.utf8.count < 400, "\(version.message.utf8.count) bytes")
            let path = try await send(port, "/v1/" + String(repeating: "p", count: 5000), token: identity.token, body: Data())
            #expect(path.status == 404 && path.message.utf8.count < 300, "\(path.message.utf8.count) bytes")
            var fields: [String] = []
            for index in 0..<50 { fields.append("f\(index)") }
            let many = try JSONEncoder().encode(
                PushRequest(
                    replica: identity.replicaID,
                    groups: [
                        ChangeGroup(
                            table: "subjects", user: "A", columns: fields,
                            rows: [ChangeRow(id: "r1", seq: HLC(milliseconds: 1), values: fields.map { _ in .null })])
                    ]))
            // A value that breaks the schema is named by table and field, never quoted back.
            let secret = try JSONEncoder().encode(
                PushRequest(
                    replica: identity.replicaID,
                    groups: [
                        ChangeGroup(
                            table: "subjects", user: "A", columns: ["site_id", "screening_no", "sex"],
                            rows: [
                                ChangeRow(id: "r2", seq: HLC(milliseconds: 1), values: [.text("S01"), .text("S01-9"), .text("SECRET-VALUE-42")])
                            ])
                    ]))
            let quoted = try await send(port, SyncProtocol.pushPath, token: identity.token, body: secret)
            #expect(quoted.status == 422 && quoted.message.contains("subjects.sex") && !quoted.message.contains("SECRET-VALUE-42"), "\(quoted.message)")
            let manyFields = try await send(port, SyncProtocol.pushPath, token: identity.token, body: many)
            #expect(manyFields.status == 422 && manyFields.message.contains("and 30 more problems"), "\(manyFields.message)")

            server.terminate()
            await server.exit()
            let log = try String(contentsOf: cli.directory.appendingPathComponent("server.log"), encoding: .utf8)
            let lines = log.split(separator: "\n")
            let refusals = lines.filter { $0.contains("request refused") }
            #expect(refusals.contains { $0.contains("sync.error=unauthorized") && $0.contains("http.status=401") })
            #expect(
                refusals.contains {
                    $0.contains("sync.error=validation_failed") && $0.contains("sync.replica=\(identity.replicaID)") && $0.contains("sync.site=S01")
                        && $0.contains("sync.token=")
                })
            #expect(refusals.contains { $0.contains("sync.error=protocol_version") })
            #expect(refusals.contains { $0.contains("sync.error=invalid_json") })
            #expect(lines.allSatisfy { $0.hasPrefix("20") }, "every log line is the server's own")
            #expect(!log.contains("forged") && !log.contains(identity.token) && !log.contains(enrolment) && !log.contains("SECRET-VALUE-42"))
            #expect(lines.allSatisfy { $0.utf8.count < 4096 }, "no log line carries the huge input")
        }
    }

    @Test("Formulas in the audit export are escaped, line breaks quoted; control characters in the CLI are shown escaped")
    func hostileText() async throws {
        try await Commands.inTemporaryFolder { cli in
            let server = try await cli.startServerAndInit(user: "=laptop", personName: "@SUM(A1)")
            defer { server.terminate() }
            let subject = try await cli.sitesync("put", "subjects", "screening_no=S01-001").line
            let event = try await cli.sitesync(
                "put", "adverse_events", "subject_id=\(subject)", "term=\(Self.escape)Neutropenia", "onset_date=2026-11-20", "grade=2"
            ).line
            #expect(try await cli.sitesync("sync").status == 0)
            let reason = "=HYPERLINK(\"http://example.invalid\")\r\n-2+3,forged row"
            #expect(try await cli.sitesync("put", "adverse_events", "--id", event, "grade=3", "--reason", reason).status == 0)
            #expect(try await cli.sitesync("sync").status == 0)
            // A line break alone (no comma or quote beside it) must still be quoted.
            #expect(try await cli.sitesync("put", "adverse_events", "--id", event, "grade=4", "--reason", "Seen again\r\nat the visit").status == 0)
            #expect(try await cli.sitesync("sync").status == 0)

            let csv = try await cli.run("sitesync-server", ["audit", "export", "--format", "csv", "--database", "sitesync-server.sqlite"])
            #expect(csv.status == 0, "\(csv.stderr)")
            let rows = Self.csvRows(csv.stdout)
            let header = try #require(rows.first)
            #expect(rows.count > 2 && rows.allSatisfy { $0.count == header.count }, "a line break in a value stays inside its cell")
            let formulaStarts: Set<Unicode.Scalar> = ["=", "+", "-", "@", "\t", "\r"]
            let dangerous = rows.flatMap { $0 }.filter { $0.unicodeScalars.first.map(formulaStarts.contains) ?? false }
            #expect(dangerous.isEmpty, "no cell a spreadsheet reads as a formula: \(dangerous)")
            let reasons = rows.dropFirst().map { $0[header.firstIndex(of: "reason")!] }
            #expect(reasons.contains("'" + reason), "escaped with an apostrophe, otherwise whole")
            #expect(reasons.contains("Seen again\r\nat the visit"))
            #expect(rows.dropFirst().allSatisfy { $0[header.firstIndex(of: "user")!] == "'@SUM(A1)" })

            for shown in [
                try await cli.sitesync("get", "adverse_events", event), try await cli.sitesync("list", "adverse_events"),
                try await cli.sitesync("history", "adverse_events", event),
            ] {
                #expect(shown.status == 0, "\(shown.stderr)")
                #expect(!shown.stdout.unicodeScalars.contains("\u{1B}") && !shown.stdout.unicodeScalars.contains("\u{07}"), "no raw control character")
                #expect(shown.stdout.contains("\\u{1B}]0;owned\\u{7}\\u{1B}[2JNeutropenia") || shown.stdout.contains("\\u{D}\\u{A}-2+3"))
            }
            // --json keeps the data exact, escaped as JSON escapes it.
            let json = try await cli.sitesync("get", "adverse_events", event, "--json")
            #expect(json.stdout.contains("\\u001b]0;owned\\u0007\\u001b[2JNeutropenia"))
        }
    }
}
