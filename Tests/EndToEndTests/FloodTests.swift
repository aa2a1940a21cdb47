import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncTestSupport
import Testing
import TrialRecords

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite("A flood from one credential", .serialized)
struct FloodTests {
    @Test(
        "Under idle sockets, oversized and maximum-size bodies and tiny requests from one credential, another site's push is served, and the server's memory stays bounded"
    )
    func flood() async throws {
        try await Commands.inTemporaryFolder { cli in
            func token(_ site: String) async throws -> String {
                try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", site, "--database", "server.sqlite"]).line
            }
            let (s01, s02) = (try await token("S01"), try await token("S02"))
            let (server, port) = try await cli.startServer(database: "server.sqlite", log: "server.log")
            defer { server.terminate() }
            let url = URL(string: "http://127.0.0.1:\(port)")!
            func laptop(_ name: String, site: String, token: String) async throws -> (Replica, SyncEngine, ObservedTransport) {
                let replica = try Replica.open(path: cli.directory.appendingPathComponent("\(name).sqlite").path, schema: TrialSchema.current)
                try replica.initialize(site: site, user: name, serverURL: url, token: token)
                let transport = ObservedTransport(try HTTPTransport(replica: replica))
                let engine = SyncEngine(replica: replica, transport: transport)
                try await engine.enrol()
                return (replica, engine, transport)
            }
            let (attacker, _, _) = try await laptop("attacker", site: "S01", token: s01)
            let (victim, victimEngine, victimTransport) = try await laptop("victim", site: "S02", token: s02)
            let credential = try #require(attacker.identity?.token)
            try victim.put("subjects", ["screening_no": .text("S02-warm")], reason: nil)
            try await victimEngine.sync()
            let baseline = LoopbackFlood.memory(of: server.processIdentifier, "VmRSS")

            // A push at the body limit of the smallest rows the server decodes before refusing them
            // (more records than a push may carry): what decoding costs at its worst.
            let limit = 4 * 1024 * 1024
            func push(rows count: Int) throws -> [UInt8] {
                let rows = (0..<count).map { ChangeRow(id: String(format: "x%07d", $0), seq: HLC(rawValue: 1_000_000 + Int64($0)), values: [.integer(1)]) }
                return try PushRequest(replica: attacker.identity!.replicaID, groups: [ChangeGroup(table: "subjects", user: "m", columns: ["sex"], rows: rows)])
                    .wireJSON()
            }
            // The rows are alike in size, so their number scales with the body's.
            let largest = try push(rows: (limit - 4096) * 10_000 / push(rows: 10_000).count)
            #expect(largest.count <= limit && largest.count > limit - 64 * 1024)
            let headers =
                "Host: 127.0.0.1\r\nAuthorization: Bearer \(credential)\r\nSiteSync-Protocol: 1\r\nSiteSync-Schema: 2\r\nContent-Type: application/json"
            let flood = LoopbackFlood()
            var idle: [Int32] = []
            for _ in 0..<500 { if let fd = Loopback.connect(port) { idle.append(fd) } }
            defer { idle.forEach { close($0) } }
            let oversized = [UInt8](repeating: UInt8(ascii: " "), count: 2 * limit)
            // Few threads, so that the flood takes about one core of two: the other tests run beside it.
            flood.start("oversized body", threads: 2) {
                Loopback.status(port, head: "POST /v1/push HTTP/1.1\r\n\(headers)\r\nContent-Length: \(oversized.count)", body: oversized)
            }
            // Reading and refusing a body at the limit takes seconds in a debug build, and more than
            // ten with the whole suite beside it on two cores: its answer is waited for as long as
            // the flood's start is.
            flood.start("maximum-size body", threads: 1) {
                Loopback.status(
                    port, head: "POST /v1/push HTTP/1.1\r\n\(headers)\r\nContent-Length: \(largest.count)", body: largest, timeout: 60)
            }
            let pull = Array(#"{"cursor":{},"limit":1}"#.utf8)
            flood.start("tiny request", threads: 2) {
                Loopback.status(port, head: "POST /v1/pull HTTP/1.1\r\n\(headers)\r\nContent-Length: \(pull.count)", body: pull)
            }
            defer { flood.stop() }
            // The flood is on once a body at the limit has been read and refused (seconds in a debug build).
            let ready = ContinuousClock.now
            while flood.summary["maximum-size body"] == nil, ContinuousClock.now - ready < .seconds(60) { try await Task.sleep(for: .milliseconds(100)) }

            var durations: [Duration] = []
            let warm = victimTransport.pushTimes.count
            let rounds = ProcessInfo.processInfo.environment["SITESYNC_FLOOD_ROUNDS"].flatMap(Int.init) ?? 5
            for round in 0..<rounds {
                try victim.put("subjects", ["screening_no": .text("S02-\(round)")], reason: nil)
                let start = ContinuousClock.now
                let report = try await victimEngine.sync()
                durations.append(ContinuousClock.now - start)
                #expect(report.pushed == 1)
                try await Task.sleep(for: .milliseconds(200))
            }
            flood.stop()
            let peak = LoopbackFlood.memory(of: server.processIdentifier, "VmHWM") - baseline
            let summary = flood.summary
            print("flood: \(idle.count) idle sockets; \(flood.summaryLine)")
            let pushes = Array(victimTransport.pushTimes.dropFirst(warm))
            func milliseconds(_ durations: [Duration]) -> String { durations.map { "\(Int($0 / .milliseconds(1))) ms" }.joined(separator: ", ") }
            print(
                "flood: the other site's pushes took \(milliseconds(pushes)), its whole syncs \(milliseconds(durations)); server memory grew \(peak / 1_048_576) MiB at most"
            )
            #expect(pushes.count == rounds)
            // Served, not starved (a 13 MB push once held another site's push for 45 s). The figure
            // itself, under a second, is the bench's (`flood` in docs/BENCHMARKS.md): with the other
            // tests running beside this one on two cores, a debug build's pushes take up to 3 s here.
            #expect(pushes.allSatisfy { $0 < .seconds(10) })
            // One credential has at most 8 requests served at once, each holding its body (at most
            // the limit) and, while it is read, its rows (up to 10 times the body for the smallest
            // rows); the 500 idle sockets hold their buffers, and the allocator keeps some of what
            // was freed. Measured: 96-125 MiB alone; 320 MiB with the other tests running, where
            // the flood lasts longer (it levels off there: 318 MiB after 100 rounds alone). Without
            // the bounds, 8 bodies of 27 MB took 800 MB.
            #expect(peak <= 8 * 16 * limit, "\(peak / 1_048_576) MiB")
            for kind in ["oversized body", "maximum-size body", "tiny request"] {
                #expect(summary[kind, default: [:]].values.reduce(0, +) > 0, "\(kind) were sent")
            }
            #expect(summary["oversized body", default: [:]].keys.allSatisfy { [413, 429, 0].contains($0) })
            #expect(summary["maximum-size body", default: [:]].keys.allSatisfy { [422, 429].contains($0) })
            #expect(summary["tiny request", default: [:]].keys.allSatisfy { [200, 429].contains($0) })
            // Bodies cut short by the flood's closed connections are the client's fault: refused, not server errors.
            let log = try String(contentsOf: cli.directory.appendingPathComponent("server.log"), encoding: .utf8)
            #expect(!log.split(separator: "\n").contains { $0.contains(" error ") || $0.contains(" critical ") }, "no server error logged")
            // The store holds the other site's records, and nothing of the flood.
            #expect(try victim.pendingCount() == 0)
        }
    }
}
