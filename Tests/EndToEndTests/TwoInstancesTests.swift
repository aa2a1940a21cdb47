import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

#if canImport(Glibc)
    import Glibc
#endif

/// Sends each request to the next of several server instances in turn, as a load balancer would,
/// and now and then gives up on a push whose answer is late, as a client whose connection dropped
/// does: the push goes on and may commit, while the laptop sends it again, to the other instance.
///
/// The abandoned request is left to finish, not cancelled: cancelling an async URLSession task on
/// Linux can deadlock its delegate queue with the task's completion.
private final class Alternating: SyncTransport {
    private let transports: [HTTPTransport]
    private let next = Mutex(0)
    private let abandon: Mutex<SeededGenerator>
    /// Pushes abandoned so far, by every transport.
    static let abandoned = Mutex(0)

    init(_ replica: Replica, urls: [URL], seed: UInt64) throws {
        transports = try urls.map { url in
            var transport = try HTTPTransport(replica: replica, timeout: 10)
            transport.serverURL = url
            return transport
        }
        abandon = Mutex(SeededGenerator(seed: seed))
    }

    private func transport() -> HTTPTransport {
        transports[
            next.withLock { index in
                defer { index += 1 }
                return index % transports.count
            }]
    }

    /// Pushes the server rolled back and answered 503.
    static let rolledBack = Mutex(0)

    func push(_ request: PushRequest) async throws -> PushResponse {
        let transport = transport()
        guard abandon.withLock({ $0.next() % 5 == 0 }) else {
            do {
                return try await transport.push(request)
            } catch let error as SyncError where error.status == 503 {
                Self.rolledBack.withLock { $0 += 1 }
                throw error
            }
        }
        Task { _ = try? await transport.push(request) }
        try await Task.sleep(for: .milliseconds(Int(abandon.withLock { $0.next() % 20 })))
        Self.abandoned.withLock { $0 += 1 }
        throw SyncError.unreachable(transport.serverURL.absoluteString, "the test gave up on the answer")
    }

    func pull(_ request: PullRequest) async throws -> PullResponse { try await transport().pull(request) }

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await transport().enrol(request) }
}

/// Several stateless instances on one PostgreSQL database: any instance answers any request, and
/// an instance killed mid-push loses nothing and doubles nothing.
@Suite("Two instances, one database", .enabled(if: StoreKind.all.contains(.postgres)), .serialized)
struct TwoInstancesTests {
    @Test("Laptops of 8 sites pushing and pulling through alternating instances, one killed and restarted, converge exactly once")
    func twoInstances() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-two-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await PostgresTestDatabase.create()
        let sites = (1...8).map { String(format: "S%02d", $0) }
        let setup = try PostgresSyncStore(url: database, schema: TrialSchema.current, maximumConnections: 2, logger: PostgresTestDatabase.quiet)
        let tokens = try await setup.withRunning {
            try await setup.migrate()
            var tokens: [String: String] = [:]
            for site in sites { tokens[site] = try await Tokens.create(in: setup, role: .site, site: site) }
            tokens["*"] = try await Tokens.create(in: setup, role: .reviewer, site: nil)
            return tokens
        }
        let commands = Commands(directory: directory, environment: [:])
        // Each push waits up to 30 ms before its commit, holding its site's lock, so that pushes
        // overlap on both instances and late commits race the pulls; one in ten is rolled back there.
        let delay = ["--fault-commit-delay-ms", "30", "--fault-abort-percent", "10"]
        var (first, firstPort) = try await commands.startServer(database: database, arguments: delay)
        let (second, secondPort) = try await commands.startServer(database: database, arguments: delay)
        defer {
            first.terminate()
            second.terminate()
        }
        let urls = [firstPort, secondPort].map { URL(string: "http://127.0.0.1:\($0)")! }

        struct Member: Sendable {
            var site: String
            var laptop: Laptop
        }
        var members: [Member] = []
        for (index, site) in sites.enumerated() {
            for number in 0..<4 {
                let replica = try Replica.open(path: directory.appendingPathComponent("\(site)-\(number).sqlite").path, schema: TrialSchema.current)
                try replica.initialize(site: site, user: "\(site) nurse \(number)", serverURL: urls[0], token: tokens[site]!)
                let transport = try Alternating(replica, urls: urls, seed: UInt64(index * 10 + number + 1))
                members.append(Member(site: site, laptop: Laptop(replica: replica, transport: transport)))
            }
        }
        let created = Mutex(0)
        let failed = Mutex(0)
        let everyone = members

        /// One laptop's round: a new record and an edit of one of its own, then a sync that may fail.
        let round: @Sendable (Member, Int) async -> Void = { member, step in
            do {
                let id = try member.laptop.replica.put("subjects", ["screening_no": .text("\(member.site)-\(step)-\(UUID().uuidString.prefix(6))")])
                created.withLock { $0 += 1 }
                try member.laptop.replica.put("subjects", id: id, ["sex": .text(step % 2 == 0 ? "F" : "M")])
                _ = try await member.laptop.engine {
                    $0.attempts = 2
                    $0.initialBackoff = .milliseconds(20)
                }.sync()
            } catch {
                // Unreachable or dropped: the changes stay queued for a later round.
                failed.withLock { $0 += 1 }
            }
        }

        for step in 0..<6 {
            if step == 3 {
                // Kill the first instance mid-push, and bring it back on its port.
                let pushes = Task { await withTaskGroup(of: Void.self) { group in for member in everyone { group.addTask { await round(member, step) } } } }
                try await Task.sleep(for: .milliseconds(150))
                kill(first.processIdentifier, SIGKILL)
                await first.exit()
                await pushes.value
                (first, _) = try await commands.startServer(database: database, port: firstPort, arguments: delay)
                continue
            }
            await withTaskGroup(of: Void.self) { group in
                for member in everyone { group.addTask { await round(member, step) } }
            }
        }
        #expect(Alternating.abandoned.withLock { $0 } > 0, "some pushes were dropped mid-flight")
        #expect(Alternating.rolledBack.withLock { $0 } > 0, "some pushes were rolled back before their commit")
        #expect(failed.withLock { $0 } > 0, "some syncs failed, with the instance killed or their pushes dropped")
        // A quiet round through both instances: everything queued reaches the server, then every laptop.
        for _ in 0..<2 {
            for member in members { _ = try await member.laptop.engine().sync() }
        }
        for member in members { #expect(try member.laptop.replica.pendingCount() == 0) }

        // Every laptop of a site holds the same records; together they hold every record created.
        var total = 0
        for site in sites {
            let laptops = members.filter { $0.site == site }.map(\.laptop)
            let contents = try laptops.map { try $0.replica.list("subjects", includeDeleted: true).sorted { $0.id < $1.id } }
            #expect(contents.allSatisfy { $0 == contents[0] }, "the laptops of \(site) converged")
            total += contents[0].count
        }
        #expect(total == created.withLock { $0 })

        let records = total
        let check = try PostgresSyncStore(url: database, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        try await check.withRunning { () async throws -> Void in
            #expect(try await StoreContents.count(check, "SELECT count(*) FROM subjects") == records, "each record once")
            #expect(try await StoreContents.count(check, "SELECT count(*) FROM conflicts") == 0, "no conflict the edits did not cause")
            // Each change applied once: no replica's change is in the audit trail twice.
            #expect(
                try await StoreContents.count(
                    check, "SELECT count(*) FROM (SELECT replica, record_id, seq FROM audit GROUP BY 1, 2, 3 HAVING count(*) > 1) AS twice"
                ) == 0)
            // Each site's head is its last change's number: no number was taken and lost.
            #expect(
                try await StoreContents.count(
                    check, "SELECT count(*) FROM sites s WHERE s.seq <> (SELECT max(r.seq) FROM records r WHERE r.site_id = s.site_id)"
                ) == 0)
        }
    }
}
