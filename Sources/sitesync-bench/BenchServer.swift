import Foundation
import Logging
import ServiceLifecycle
import SiteSyncClient
import SiteSyncCore
import SiteSyncServer
import Synchronization
import TrialRecords

/// The sync server running in this process on a free loopback port.
struct BenchServer: Sendable {
    let url: URL
    let siteTokens: [String: String]

    /// Runs `body` against a server on an SQLite file at `databasePath`, or, given `postgres` (a
    /// cluster's URL), on a new PostgreSQL database made for this run.
    static func run(databasePath: String, postgres: String? = nil, _ body: (BenchServer) async throws -> Void) async throws {
        var quiet = Logger(label: "sitesync.bench.postgres")
        quiet.logLevel = .error
        let store: any SyncStore
        var services: [any Service] = []
        var tokens: [String: String] = [:]
        if let postgres {
            let admin = try PostgresSyncStore(url: postgres, schema: TrialSchema.current, maximumConnections: 1, logger: quiet)
            let name = "sitesync_bench_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
            try await admin.withRunning { try await admin.execute("CREATE DATABASE \(name)") }
            var components = URLComponents(string: postgres)!
            components.path = "/\(name)"
            let url = components.string!
            // Migrated, and the tokens made, before the server's own pool runs.
            let setup = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: quiet)
            tokens = try await setup.withRunning {
                try await setup.migrate()
                var tokens: [String: String] = [:]
                for site in ["S01", "S02"] { tokens[site] = try await Tokens.create(in: setup, role: .site, site: site) }
                return tokens
            }
            let postgresStore = try PostgresSyncStore(url: url, schema: TrialSchema.current, logger: quiet)
            store = postgresStore
            services = [postgresStore]
        } else {
            store = try SQLiteSyncStore(path: databasePath, schema: TrialSchema.current)
            for site in ["S01", "S02"] {
                tokens[site] = try await Tokens.create(in: store, role: .site, site: site)
            }
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.port = 0
        configuration.maximumBodySize = 64 * 1024 * 1024
        configuration.onServerRunning = { continuation.yield($0) }
        let logger = Logger(label: "sitesync.bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = buildApplication(configuration, store: store, logger: logger, services: services)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { return }
            do {
                try await body(BenchServer(url: URL(string: "http://127.0.0.1:\(port)")!, siteTokens: tokens))
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// A new replica of `site` at `path`, enrolled, so that what is measured next is sync alone.
    func replica(_ path: String, site: String) async throws -> BenchReplica {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        let replica = try Replica.open(path: path, schema: TrialSchema.current)
        try replica.initialize(site: site, user: "Bench \(site)", serverURL: url, token: siteTokens[site]!)
        let bench = BenchReplica(replica: replica)
        try await bench.engine().enrol()
        return bench
    }
}

/// A replica with its server, which it syncs with its own credential.
struct BenchReplica {
    let replica: Replica

    func engine(counter: ByteCounter? = nil) throws -> SyncEngine {
        var transport = try HTTPTransport(replica: replica)
        if let counter {
            transport.observer = { _, request, response in counter.add(request: request, response: response) }
        }
        return SyncEngine(replica: replica, transport: transport)
    }
}

/// Bytes of request and response bodies, summed.
final class ByteCounter: Sendable {
    private let totals = Mutex((request: 0, response: 0, exchanges: 0))

    func add(request: Int, response: Int) {
        totals.withLock { $0 = ($0.request + request, $0.response + response, $0.exchanges + 1) }
    }

    var requestBytes: Int { totals.withLock { $0.request } }
    var responseBytes: Int { totals.withLock { $0.response } }
    var exchanges: Int { totals.withLock { $0.exchanges } }
}
