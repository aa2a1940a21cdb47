import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncTestSupport
import Testing
import TrialRecords

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Requests of one kind sent by flood threads, and the statuses they got.
private final class FloodCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: [Int: Int]] = [:]
    private var stopped = false

    var isStopped: Bool { lock.withLock { stopped } }
    func stop() { lock.withLock { stopped = true } }
    func record(_ kind: String, _ status: Int?) { lock.withLock { counts[kind, default: [:]][status ?? 0, default: 0] += 1 } }
    var summary: [String: [Int: Int]] { lock.withLock { counts } }
}

/// A transport that times every push.
private final class TimingTransport: SyncTransport, @unchecked Sendable {
    let inner: any SyncTransport
    private let lock = NSLock()
    private var times: [Duration] = []

    init(_ inner: any SyncTransport) { self.inner = inner }

    var pushTimes: [Duration] { lock.withLock { times } }

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await inner.enrol(request) }
    func pull(_ request: PullRequest) async throws -> PullResponse { try await inner.pull(request) }
    func push(_ request: PushRequest) async throws -> PushResponse {
        let start = ContinuousClock.now
        defer { lock.withLock { times.append(ContinuousClock.now - start) } }
        return try await inner.push(request)
    }
}

/// A server process's resident memory, in bytes: now (`VmRSS`) or at its peak (`VmHWM`).
private func memory(_ pid: Int32, _ field: String) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("\(field):") }) else { return 0 }
    return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
}

@Suite("A flood from one credential", .serialized)
struct FloodTests {
    @Test("Under idle sockets, oversized and maximum-size bodies and tiny requests from one credential, another site's sync completes within a second, and the server's memory stays bounded")
    func flood() async throws {
        try await Commands.inTemporaryFolder { cli in
            func token(_ site: String) throws -> String {
                try cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", site, "--database", "server.sqlite"]).line
            }
            let (s01, s02) = (try token("S01"), try token("S02"))
            let (server, port) = try await cli.startServer(database: "server.sqlite", log: "server.log")
            defer { server.terminate() }
            let url = URL(string: "http://127.0.0.1:\(port)")!
            func laptop(_ name: String, site: String, token: String) async throws -> (Replica, SyncEngine, TimingTransport) {
                let replica = try Replica.open(path: cli.directory.appendingPathComponent("\(name).sqlite").path, schema: TrialSchema.current)
                try replica.initialize(site: site, user: name, serverURL: url, token: token)
                let transport = TimingTransport(try HTTPTransport(replica: replica))
                let engine = SyncEngine(replica: replica, transport: transport)
                try await engine.enrol()
                return (replica, engine, transport)
            }
            let (attacker, _, _) = try await laptop("attacker", site: "S01", token: s01)
            let (victim, victimEngine, victimTransport) = try await laptop("victim", site: "S02", token: s02)
            let credential = try #require(attacker.identity?.token)
            try victim.put("subjects", ["screening_no": .text("S02-warm")], reason: nil)
            try await victimEngine.sync()
            let baseline = memory(server.processIdentifier, "VmRSS")

            // A push at the body limit of the smallest rows the server decodes before refusing them
            // (more records than a push may carry): what decoding costs at its worst.
            let limit = 4 * 1024 * 1024
            func push(rows count: Int) throws -> [UInt8] {
                let rows = (0..<count).map { ChangeRow(id: String(format: "x%07d", $0), seq: HLC(rawValue: 1_000_000 + Int64($0)), values: [.integer(1)]) }
                return try PushRequest(replica: attacker.identity!.replicaID, groups: [ChangeGroup(table: "subjects", user: "m", columns: ["sex"], rows: rows)]).wireJSON()
            }
            // The rows are alike in size, so their number scales with the body's.
            let largest = try push(rows: (limit - 4096) * 10_000 / push(rows: 10_000).count)
            #expect(largest.count <= limit && largest.count > limit - 64 * 1024)
            let headers = "Host: 127.0.0.1\r\nAuthorization: Bearer \(credential)\r\nSiteSync-Protocol: 1\r\nSiteSync-Schema: 2\r\nContent-Type: application/json"
            let counts = FloodCounts()
            var idle: [Int32] = []
            for _ in 0..<500 { if let fd = Loopback.connect(port) { idle.append(fd) } }
            defer { idle.forEach { close($0) } }
            func flood(_ kind: String, threads: Int, _ send: @escaping @Sendable () -> Int?) {
                for _ in 0..<threads {
                    Thread.detachNewThread {
                        while !counts.isStopped { counts.record(kind, send()) }
                    }
                }
            }
            let oversized = [UInt8](repeating: UInt8(ascii: " "), count: 2 * limit)
            flood("oversized body", threads: 3) {
                Loopback.status(port, head: "POST /v1/push HTTP/1.1\r\n\(headers)\r\nContent-Length: \(oversized.count)", body: oversized)
            }
            flood("maximum-size body", threads: 3) {
                Loopback.status(port, head: "POST /v1/push HTTP/1.1\r\n\(headers)\r\nContent-Length: \(largest.count)", body: largest)
            }
            let pull = Array(#"{"cursor":{},"limit":1}"#.utf8)
            flood("tiny request", threads: 4) {
                Loopback.status(port, head: "POST /v1/pull HTTP/1.1\r\n\(headers)\r\nContent-Length: \(pull.count)", body: pull)
            }
            defer { counts.stop() }
            try await Task.sleep(for: .seconds(1))

            var durations: [Duration] = []
            let warm = victimTransport.pushTimes.count
            for round in 0..<5 {
                try victim.put("subjects", ["screening_no": .text("S02-\(round)")], reason: nil)
                let start = ContinuousClock.now
                let report = try await victimEngine.sync()
                durations.append(ContinuousClock.now - start)
                #expect(report.pushed == 1)
                try await Task.sleep(for: .milliseconds(200))
            }
            counts.stop()
            let peak = memory(server.processIdentifier, "VmHWM") - baseline
            let summary = counts.summary
            print("flood: \(idle.count) idle sockets; \(summary.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.sorted { $0.key < $1.key }.map { "\($0.value)×\($0.key)" }.joined(separator: " "))" }.joined(separator: "; "))")
            let pushes = Array(victimTransport.pushTimes.dropFirst(warm))
            func milliseconds(_ durations: [Duration]) -> String { durations.map { "\(Int($0 / .milliseconds(1))) ms" }.joined(separator: ", ") }
            print("flood: the other site's pushes took \(milliseconds(pushes)), its whole syncs \(milliseconds(durations)); server memory grew \(peak / 1_048_576) MiB at most")
            #expect(pushes.count == 5)
            #expect(pushes.allSatisfy { $0 < .seconds(1) })
            // Each request holds a few times the body limit at most while it is decoded, and one
            // credential has at most 8 requests served at once.
            #expect(peak <= 8 * 6 * limit, "\(peak / 1_048_576) MiB")
            #expect(summary.values.contains { $0[429] != nil }, "the credential's requests past 8 at once were refused")
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
