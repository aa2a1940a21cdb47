import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceLifecycle
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import SiteSyncTestSupport
import Testing
import TrialRecords

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
        let enrolment = try await store.enrolReplica(
            replica, tokenHash: Tokens.hash(token), principal: Principal(role: role, site: site), label: replica, enrolledBy: "test", limit: .max
        )
        #expect(enrolment == .enrolled(acked: .zero))
        return token
    }

    func test<Value>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        try await buildApplication(configuration, store: store).test(.router, body)
    }

    /// Every row of every table but the tokens, as text, to prove a refused request wrote nothing.
    func dump() async throws -> [String: [String]] { try await StoreContents.dump(store) }

    func count(_ table: String) async throws -> Int { try await StoreContents.count(store, "SELECT count(*) FROM \(table)") }
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

/// The application on an SQLite store in a new folder, run as a service in a group of its own on
/// a free loopback port, for tests of its graceful shutdown; `credential` is replica `r1`'s, at S01.
///
/// Spoken to with raw HTTP (`Loopback`) from threads of their own, whose timeout is the test's:
/// HummingbirdTesting's client gives up after 20 s, which the first requests of a loaded run
/// (every suite starts at once on two cores) have taken.
struct ServedApplication {
    let directory: URL
    let store: SQLiteSyncStore
    let credential: String
    let port: Int
    let group: ServiceGroup
    let running: Task<Void, any Error>

    static func start(configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> ServedApplication {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-served-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = try SQLiteSyncStore(path: directory.appendingPathComponent("server.sqlite").path, schema: TrialSchema.current)
        let credential = try await TestServer.enrol(store, "r1", role: .site, site: "S01")
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.port = Loopback.freePort()
        configure(&configuration)
        let group = ServiceGroup(configuration: .init(services: [try buildApplication(configuration, store: store)], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        for _ in 0..<1200 {
            if let fd = Loopback.connect(configuration.port) {
                close(fd)
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return ServedApplication(directory: directory, store: store, credential: credential, port: configuration.port, group: group, running: running)
    }

    /// Sends one request and returns the status of its answer, or nil after `timeout` seconds.
    func status(_ method: String, _ path: String, _ headers: HTTPFields, body: [UInt8] = [], timeout: Int = 120) async -> Int? {
        let head = (["\(method) \(path) HTTP/1.1", "Host: 127.0.0.1", "Content-Length: \(body.count)"] + headers.map { "\($0.name): \($0.value)" })
            .joined(separator: "\r\n")
        return await Blocking.run { [port] in Loopback.status(port, head: head, body: body, timeout: timeout) }
    }

    /// Removes the folder; the application has stopped.
    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}
