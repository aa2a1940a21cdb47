import Foundation
import Logging
import ServiceLifecycle
import SiteSyncClient
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import Synchronization
import TrialRecords

/// The sync server running in this process on free loopback ports: one instance, or several on
/// one PostgreSQL database.
struct BenchServer: Sendable {
    /// Every instance's address; the first is where replicas go unless told otherwise.
    let urls: [URL]
    let siteTokens: [String: String]

    var url: URL { urls[0] }

    /// The sites the bench's replicas record.
    static let sites = (1...5).map { String(format: "S%02d", $0) }

    /// Runs `body` against a server on an SQLite file at `databasePath`, or, given `postgres` (a
    /// cluster's URL), on a new PostgreSQL database made for this run, served by `instances`
    /// instances (one for SQLite).
    static func run(databasePath: String, postgres: String? = nil, instances: Int = 1, _ body: (BenchServer) async throws -> Void) async throws {
        var quiet = Logger(label: "sitesync.bench.postgres")
        quiet.logLevel = .error
        var stores: [any SyncStore] = []
        var dropDatabase: (@Sendable () async throws -> Void)?
        var services: [[any Service]] = []
        var tokens: [String: String] = [:]
        if let postgres {
            let admin = try PostgresSyncStore(url: postgres, schema: TrialSchema.current, maximumConnections: 1, logger: quiet)
            let name = "sitesync_bench_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
            try await admin.withRunning { try await admin.execute("CREATE DATABASE \(name)") }
            let logger = quiet
            dropDatabase = {
                // A pool runs once: the drop takes a new one.
                let admin = try PostgresSyncStore(url: postgres, schema: TrialSchema.current, maximumConnections: 1, logger: logger)
                try await admin.withRunning { try await admin.execute("DROP DATABASE \(name) WITH (FORCE)") }
            }
            var components = URLComponents(string: postgres)!
            components.path = "/\(name)"
            let url = components.string!
            // Migrated, and the tokens made, before the servers' own pools run.
            let setup = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: quiet)
            tokens = try await setup.withRunning {
                try await setup.migrate()
                var tokens: [String: String] = [:]
                for site in sites { tokens[site] = try await Tokens.create(in: setup, role: .site, site: site) }
                try await addPeople(to: setup)
                return tokens
            }
            for _ in 0..<max(1, instances) {
                let store = try PostgresSyncStore(url: url, schema: TrialSchema.current, logger: quiet)
                stores.append(store)
                services.append([store])
            }
        } else {
            let store = try SQLiteSyncStore(path: databasePath, schema: TrialSchema.current)
            for site in sites { tokens[site] = try await Tokens.create(in: store, role: .site, site: site) }
            try await addPeople(to: store)
            stores = [store]
            services = [[]]
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.port = 0
        configuration.onServerRunning = { continuation.yield($0) }
        let logger = Logger(label: "sitesync.bench", factory: { _ in SwiftLogNoOpLogHandler() })
        func application(_ store: some SyncStore, _ services: [any Service]) throws -> any Service {
            try buildApplication(configuration, store: store, logger: logger, services: services)
        }
        var apps: [any Service] = []
        for (store, services) in zip(stores, services) { apps.append(try application(store, services)) }
        let group = ServiceGroup(configuration: .init(services: apps, logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            var urls: [URL] = []
            for _ in apps {
                guard let port = await iterator.next() else { return }
                urls.append(URL(string: "http://127.0.0.1:\(port)")!)
            }
            do {
                try await body(BenchServer(urls: urls, siteTokens: tokens))
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        try await dropDatabase?()
    }

    /// A new replica of `site` at `path`, syncing with instance `instance`, enrolled, so that what
    /// is measured next is sync alone.
    func replica(_ path: String, site: String, instance: Int = 0) async throws -> BenchReplica {
        try await BenchReplica.enrolled(path, site: site, serverURL: urls[instance % urls.count], token: siteTokens[site]!)
    }

    /// The password of the coordinators ``addPeople(to:)`` adds, one per site (`coordinator.s01`, …).
    static let password = "a bench coordinator's password"

    /// The username of the coordinator of `site`.
    static func coordinator(_ site: String) -> String { "coordinator.\(site.lowercased())" }

    /// Adds a coordinator for each site, whom replicas sign in as to write signed transactions.
    static func addPeople(to store: any SyncStore) async throws {
        let hash = try PasswordHash(password: password).encoded
        for site in sites {
            _ = try await store.changeAccount(
                coordinator(site), .create(fullName: "Coordinator \(site)", role: .coordinator, sites: [site], passwordHash: hash),
                at: Date().formatted(.iso8601), by: "sitesync-bench")
        }
    }
}

/// A replica with its server, which it syncs with its own credential.
struct BenchReplica: Sendable {
    let replica: Replica

    /// Signs the coordinator of the replica's site in, so that the library's write transactions
    /// are signed (docs/AUTHORSHIP.md).
    func signIn() async throws {
        let site = replica.identity!.site
        try await replica.signIn(username: BenchServer.coordinator(site), password: BenchServer.password, server: try HTTPTransport(replica: replica))
    }

    /// Writes `rows` as new records through the library, signed, in transactions of 1,000.
    func importSigned(_ rows: [AdverseEventRow]) throws {
        let columns = AdverseEventGenerator.columns.dropFirst()
        for start in stride(from: 0, to: rows.count, by: 1000) {
            let batch = rows[start..<min(start + 1000, rows.count)].enumerated().map { offset, row in
                var values: [String: FieldValue] = [:]
                for (column, value) in zip(columns, row.values.dropFirst()) {
                    values[column] =
                        switch value {
                        case let text as String: .text(text)
                        case let number as Int64: .integer(number)
                        default: .null
                        }
                }
                return ImportRow(line: start + offset + 1, id: nil, values: values)
            }
            try replica.importRecords("adverse_events", batch)
        }
    }

    func engine(counter: ByteCounter? = nil, configuration: SyncEngine.Configuration = .init()) throws -> SyncEngine {
        var transport = try HTTPTransport(replica: replica)
        if let counter {
            transport.observer = { _, request, response in counter.add(request: request, response: response) }
        }
        return SyncEngine(replica: replica, transport: transport, configuration: configuration)
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
