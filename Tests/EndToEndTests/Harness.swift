import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import TrialRecords

/// A live sync server on a loopback port, its store, its tokens, and a folder for replicas.
struct LiveServer: Sendable {
    let url: URL
    let store: any SyncStore
    let directory: URL
    let s01: String
    let s02: String
    let reviewer: String

    /// Runs `body` against a server listening on 127.0.0.1 on a free port, stopped afterwards, on
    /// a new store of `kind` (an SQLite file in the folder, or a new PostgreSQL database).
    static func run(
        store kind: StoreKind = .sqlite, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveServer) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store: any SyncStore =
            switch kind {
            case .sqlite: try SQLiteSyncStore(path: directory.appendingPathComponent("server.sqlite").path, schema: TrialSchema.current)
            case .postgres: try await PostgresTestDatabase.store()
            }
        try await run(on: store, directory: directory, configure: configure, body)
    }

    /// Runs `body` against a server on `store`, a migrated store whose connections run already;
    /// replicas go in `directory`.
    static func run(
        on store: any SyncStore, directory: URL, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveServer) async throws -> Void
    ) async throws {
        let s01 = try await Tokens.create(in: store, role: .site, site: "S01")
        let s02 = try await Tokens.create(in: store, role: .site, site: "S02")
        let reviewer = try await Tokens.create(in: store, role: .reviewer, site: nil)
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configure(&configuration)
        try await buildApplication(configuration, store: store).test(.live) { client in
            let server = LiveServer(
                url: URL(string: "http://127.0.0.1:\(client.port!)")!, store: store, directory: directory,
                s01: s01, s02: s02, reviewer: reviewer
            )
            try await body(server)
        }
    }

    /// A laptop: an on-disk replica initialised for `site` with the matching token, on `schema`.
    func laptop(_ name: String, site: String = "S01", user: String? = nil, schema: Schema = TrialSchema.current) throws -> Laptop {
        let replica = try Replica.open(path: directory.appendingPathComponent("\(name).sqlite").path, schema: schema)
        let token = site == "*" ? reviewer : site == "S02" ? s02 : s01
        try replica.initialize(site: site, user: user ?? name, serverURL: url, token: token)
        return Laptop(replica: replica, transport: try HTTPTransport(replica: replica))
    }

    /// Every row of the server's tables but the tokens, as text.
    func dump() async throws -> [String: [String]] { try await StoreContents.dump(store) }

    /// The number a `SELECT count(*) …` query answers, on either store.
    func count(_ sql: String) async throws -> Int { try await StoreContents.count(store, sql) }
}

/// A replica and its way to the server.
struct Laptop: Sendable {
    let replica: Replica
    let transport: any SyncTransport

    func engine(transport: (any SyncTransport)? = nil, configure: (inout SyncEngine.Configuration) -> Void = { _ in }) -> SyncEngine {
        var configuration = SyncEngine.Configuration()
        configuration.initialBackoff = .milliseconds(10)
        configure(&configuration)
        return SyncEngine(replica: replica, transport: transport ?? self.transport, configuration: configuration)
    }

    @discardableResult
    func sync() async throws -> SyncReport { try await engine().sync() }

    /// Every record of every table, deleted ones included, to compare replicas.
    func contents() throws -> [String: [StoredRecord]] {
        var contents: [String: [StoredRecord]] = [:]
        for table in replica.schema.tables {
            contents[table.name] = try replica.list(table.name, includeDeleted: true).sorted { $0.id < $1.id }
        }
        return contents
    }
}

/// Performs each push but reports the first N answers as lost, as when a connection drops after the server committed.
final class LosingResponses: SyncTransport {
    let base: any SyncTransport
    private let remaining: Mutex<Int>
    private let sent = Mutex(0)

    init(_ base: any SyncTransport, lose: Int) {
        self.base = base
        self.remaining = Mutex(lose)
    }

    var pushesSent: Int { sent.withLock { $0 } }

    func push(_ request: PushRequest) async throws -> PushResponse {
        let response = try await base.push(request)
        sent.withLock { $0 += 1 }
        let lose = remaining.withLock { remaining in
            defer { remaining -= 1 }
            return remaining > 0
        }
        if lose { throw SyncError.unreachable("test", "connection reset after the request was sent") }
        return response
    }

    func pull(_ request: PullRequest) async throws -> PullResponse { try await base.pull(request) }

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await base.enrol(request) }
}

/// Lets N pulls through, then fails every pull, as when the network goes away half-way.
final class FailingPulls: SyncTransport {
    let base: any SyncTransport
    private let allowed: Mutex<Int>

    init(_ base: any SyncTransport, after allowed: Int) {
        self.base = base
        self.allowed = Mutex(allowed)
    }

    func push(_ request: PushRequest) async throws -> PushResponse { try await base.push(request) }

    func pull(_ request: PullRequest) async throws -> PullResponse {
        let pass = allowed.withLock { allowed in
            defer { allowed -= 1 }
            return allowed > 0
        }
        guard pass else { throw SyncError.unreachable("test", "network lost") }
        return try await base.pull(request)
    }

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await base.enrol(request) }
}

/// Runs `edit` at the start of the first push, as a person typing while the laptop syncs.
final class EditingDuringPush: SyncTransport {
    let base: any SyncTransport
    private let edit: Mutex<(@Sendable () throws -> Void)?>

    init(_ base: any SyncTransport, edit: @escaping @Sendable () throws -> Void) {
        self.base = base
        self.edit = Mutex(edit)
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        try edit.withLock { edit in
            defer { edit = nil }
            try edit?()
        }
        return try await base.push(request)
    }

    func pull(_ request: PullRequest) async throws -> PullResponse { try await base.pull(request) }

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await base.enrol(request) }
}

/// A transport that records each push it sends: its size in bytes and how long its answer took.
final class ObservedTransport: SyncTransport, @unchecked Sendable {
    let inner: any SyncTransport
    private let lock = NSLock()
    private var pushes: [(bytes: Int, duration: Duration)] = []

    init(_ inner: any SyncTransport) { self.inner = inner }

    var pushSizes: [Int] { lock.withLock { pushes.map(\.bytes) } }
    var pushTimes: [Duration] { lock.withLock { pushes.map(\.duration) } }

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await inner.enrol(request) }
    func pull(_ request: PullRequest) async throws -> PullResponse { try await inner.pull(request) }
    func push(_ request: PushRequest) async throws -> PushResponse {
        let bytes = try request.wireJSON().count
        let start = ContinuousClock.now
        defer { lock.withLock { pushes.append((bytes, ContinuousClock.now - start)) } }
        return try await inner.push(request)
    }
}
