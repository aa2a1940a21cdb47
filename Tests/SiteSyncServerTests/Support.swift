import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SiteSyncCore
import Testing
import TrialRecords
@testable import SiteSyncServer

/// The stores the server suites run against: SQLite always, and PostgreSQL when
/// `SITESYNC_POSTGRES_URL` names a cluster the tests may create databases in. In CI
/// (`CI` set) a missing PostgreSQL is a failure, not a silent skip.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static var all: [StoreKind] {
        ProcessInfo.processInfo.environment["SITESYNC_POSTGRES_URL"].map { !$0.isEmpty } == true || ProcessInfo.processInfo.environment["CI"] != nil
            ? [.sqlite, .postgres] : [.sqlite]
    }

    var testDescription: String { rawValue }
}

/// A server on a fresh store. `s01`, `s01b`, `s02` and `reviewer` are replica credentials
/// (replicas `r1` and `r1b` at S01, `r2` at S02 and `rv`, a reviewer), issued through the enrolment tokens
/// `s01Enrolment`, `s02Enrolment` and `reviewerEnrolment`; `admin` manages tokens.
struct TestServer {
    let store: any SyncStore
    let kind: StoreKind
    let configuration: ServerConfiguration
    let s01: String
    let s01b: String
    let s02: String
    let reviewer: String
    let admin: String
    let s01Enrolment: String
    let s02Enrolment: String
    let reviewerEnrolment: String

    static func make(_ kind: StoreKind = .sqlite, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        let store: any SyncStore =
            switch kind {
            case .sqlite: try SQLiteSyncStore(writer: DatabaseQueue(), schema: TrialSchema.current)
            case .postgres: try await PostgresTestDatabase.store()
            }
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.port = 0
        configure(&configuration)
        let s01Enrolment = try await Tokens.create(in: store, role: .site, site: "S01")
        let s02Enrolment = try await Tokens.create(in: store, role: .site, site: "S02")
        let reviewerEnrolment = try await Tokens.create(in: store, role: .reviewer, site: nil)
        return TestServer(
            store: store,
            kind: kind,
            configuration: configuration,
            s01: try await enrol(store, "r1", role: .site, site: "S01"),
            s01b: try await enrol(store, "r1b", role: .site, site: "S01"),
            s02: try await enrol(store, "r2", role: .site, site: "S02"),
            reviewer: try await enrol(store, "rv", role: .reviewer, site: nil),
            admin: try await Tokens.create(in: store, role: .admin, site: nil),
            s01Enrolment: s01Enrolment,
            s02Enrolment: s02Enrolment,
            reviewerEnrolment: reviewerEnrolment
        )
    }

    /// Registers `replica` directly in the store and returns its credential.
    static func enrol(_ store: any SyncStore, _ replica: String, role: Role, site: String?) async throws -> String {
        let token = Credential.generate(prefix: Credential.replicaPrefix)
        let acked = try await store.enrolReplica(replica, tokenHash: Tokens.hash(token), principal: Principal(role: role, site: site), label: replica)
        #expect(acked != nil)
        return token
    }

    func test<Value>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        try await buildApplication(configuration, store: store).test(.router, body)
    }

    static let tables = ["records", "audit", "replicas", "sites", "subjects", "adverse_events", "conflicts"]

    /// Every row of every table but the tokens, as text, to prove a refused request wrote nothing.
    func dump() async throws -> [String: [String]] {
        switch store {
        case let sqlite as SQLiteSyncStore:
            return try await sqlite.writer.read { db in
                var tables: [String: [String]] = [:]
                for table in Self.tables { tables[table] = try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY 1").map(\.description) }
                return tables
            }
        case let postgres as PostgresSyncStore:
            var tables: [String: [String]] = [:]
            for table in Self.tables { tables[table] = try await postgres.rowsAsText("SELECT t::text FROM \(table) t ORDER BY 1") }
            return tables
        default:
            preconditionFailure("no dump for \(type(of: store))")
        }
    }

    func count(_ table: String) async throws -> Int {
        switch store {
        case let sqlite as SQLiteSyncStore:
            return try await sqlite.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
        case let postgres as PostgresSyncStore:
            return Int(try await postgres.rowsAsText("SELECT count(*)::text FROM \(table)").first ?? "0") ?? 0
        default:
            preconditionFailure("no count for \(type(of: store))")
        }
    }
}

/// Fresh PostgreSQL databases for tests, in the cluster `SITESYNC_POSTGRES_URL` names.
enum PostgresTestDatabase {
    /// A migrated store on a new, empty database; its connection pool runs until the process ends.
    static func store() async throws -> PostgresSyncStore {
        let url = try #require(
            ProcessInfo.processInfo.environment["SITESYNC_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 },
            "SITESYNC_POSTGRES_URL must name a PostgreSQL cluster for the PostgreSQL store's tests (.ci/run starts one)"
        )
        let name = "sitesync_test_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        // Quiet: a pool asked for a connection before its `run()` has started only says so.
        var logger = Logger(label: "sitesync.postgres.test")
        logger.logLevel = .error
        let admin = try PostgresSyncStore(url: url, schema: TrialSchema.current, logger: logger)
        try await admin.withRunning { try await admin.execute("CREATE DATABASE \(name)") }
        var components = try #require(URLComponents(string: url))
        components.path = "/\(name)"
        let store = try PostgresSyncStore(url: try #require(components.string), schema: TrialSchema.current, logger: logger)
        Task { try await store.run() }
        try await store.migrate()
        return store
    }
}

/// Headers of a sync request with a token.
func syncHeaders(_ token: String?, protocolVersion: String? = "1", schema: String? = "1") -> HTTPFields {
    var headers: HTTPFields = [.contentType: "application/json"]
    if let token { headers[.authorization] = "Bearer \(token)" }
    if let protocolVersion { headers[HTTPField.Name(SyncProtocol.protocolHeader)!] = protocolVersion }
    if let schema { headers[HTTPField.Name(SyncProtocol.schemaHeader)!] = schema }
    return headers
}

func json(_ value: some Encodable) throws -> ByteBuffer {
    ByteBuffer(bytes: try JSONEncoder().encode(value))
}

func decode<T: Decodable>(_ type: T.Type, _ buffer: ByteBuffer) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
}

/// A push of new subjects by replica `replica` at `milliseconds`.
func subjectPush(
    replica: String = "r1", site: String = "S01", ids: [String], milliseconds: Int64 = HybridLogicalClock.systemMilliseconds(), user: String = "A. Rivera"
) -> PushRequest {
    let columns = ["site_id", "screening_no", "status"]
    let rows = ids.enumerated().map { index, id in
        ChangeRow(id: id, seq: HLC(milliseconds: milliseconds, counter: Int64(index)), values: [.text(site), .text("\(site)-\(id)"), .text("screening")])
    }
    return PushRequest(replica: replica, groups: [ChangeGroup(table: "subjects", user: user, columns: columns, rows: rows)])
}
