import Foundation
import LoopbackHTTP
import SiteSyncClient
import SiteSyncCore
import SiteSyncServer
import TrialRecords

#if canImport(Glibc)
    import Glibc
#endif

extension Run {
    /// flood: one site's credential floods the server (500 idle sockets; bodies twice the limit;
    /// bodies at the limit of the smallest rows, which the server reads and refuses; tiny pulls;
    /// 10 threads) while another site pushes one record at a time: how long its pushes take.
    func flood(folder: URL, report: Report) async throws {
        try await BenchServer.run(databasePath: folder.appendingPathComponent("flood.sqlite").path, postgres: database) { server in
            let attacker = try await server.replica(folder.appendingPathComponent("flood-attacker.sqlite").path, site: "S01")
            let victim = try await server.replica(folder.appendingPathComponent("flood-victim.sqlite").path, site: "S02")
            let credential = attacker.replica.identity!.token
            let port = server.url.port!
            let limit = ServerConfiguration(schema: TrialSchema.current).maximumBodySize
            func push(rows count: Int) throws -> [UInt8] {
                let rows = (0..<count).map { ChangeRow(id: String(format: "x%07d", $0), seq: HLC(rawValue: 1_000_000 + Int64($0)), values: [.integer(1)]) }
                return try PushRequest(
                    replica: attacker.replica.identity!.replicaID, groups: [ChangeGroup(table: "subjects", user: "m", columns: ["sex"], rows: rows)]
                ).wireJSON()
            }
            // The rows are alike in size, so their number scales with the body's.
            let largest = try push(rows: (limit - 4096) * 10_000 / push(rows: 10_000).count)
            let oversized = [UInt8](repeating: UInt8(ascii: " "), count: 2 * limit)
            let pull = Array(#"{"cursor":{},"limit":1}"#.utf8)
            let headers =
                "Host: 127.0.0.1\r\nAuthorization: Bearer \(credential)\r\nSiteSync-Protocol: 1\r\nSiteSync-Schema: 2\r\nContent-Type: application/json"

            let idle = (0..<500).compactMap { _ in Loopback.connect(port) }
            defer { idle.forEach { close($0) } }
            let flood = LoopbackFlood()
            flood.start("oversized", threads: 3) {
                Loopback.status(port, head: "POST /v1/push HTTP/1.1\r\n\(headers)\r\nContent-Length: \(oversized.count)", body: oversized)
            }
            flood.start("at_limit", threads: 3) {
                Loopback.status(port, head: "POST /v1/push HTTP/1.1\r\n\(headers)\r\nContent-Length: \(largest.count)", body: largest)
            }
            flood.start("tiny", threads: 4) {
                Loopback.status(port, head: "POST /v1/pull HTTP/1.1\r\n\(headers)\r\nContent-Length: \(pull.count)", body: pull)
            }
            defer { flood.stop() }
            let start = ContinuousClock.now
            while flood.summary["at_limit"] == nil, ContinuousClock.now - start < .seconds(60) { try await Task.sleep(for: .milliseconds(50)) }

            let engine = try victim.engine()
            var milliseconds: [Double] = []
            for round in 0..<floodRounds {
                try victim.replica.put("subjects", ["screening_no": .text("S02-flood-\(round)")])
                milliseconds.append(try await measure { try await engine.push() }.seconds * 1000)
                try await Task.sleep(for: .milliseconds(50))
            }
            flood.stop()
            let summary = flood.summary
            milliseconds.sort()
            var figures: [String: FieldValue] = [
                "rounds": .integer(Int64(floodRounds)), "idle_sockets": .integer(Int64(idle.count)),
                "push_p50_ms": .real(milliseconds[milliseconds.count / 2]), "push_max_ms": .real(milliseconds.last!),
            ]
            for (kind, statuses) in summary {
                figures["\(kind)_answered"] = .integer(Int64(statuses.values.reduce(0, +)))
                figures["\(kind)_refused_429"] = .integer(Int64(statuses[429] ?? 0))
            }
            report.add("flood", figures)
        }
    }
}
