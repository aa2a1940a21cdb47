import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import Synchronization

/// The sync server's application driven in this process without sockets: every request goes through
/// the same router, middleware and handlers as over the network, thousands of times faster than a
/// loopback connection, which is what lets the convergence test run hundreds of histories.
///
/// ``restart()`` drops the application with its memory (outcomes of asynchronous pushes not yet
/// collected) and opens the database file again, as a restarted process would.
final class InProcessServer: Sendable {
    private typealias Respond = @Sendable (Request, Logger) async throws -> Response

    /// Where the server keeps its data.
    enum Database: Sendable {
        /// An SQLite file.
        case sqlite(path: String)
        /// A PostgreSQL database, whose every transaction runs `faults` before each statement.
        case postgres(url: String, faults: PostgresSyncStore.FaultHook?)
    }

    let database: Database
    let configuration: ServerConfiguration
    /// The running instance: its store, its application, the task running its connections, and
    /// the task running the application's services (the asynchronous pushes it accepts, the watch
    /// of other instances' commits).
    private struct Instance: Sendable {
        var store: any SyncStore
        var respond: Respond
        var pool: Task<Void, any Error>?
        var services: Task<Void, Never>
    }

    private let current = Mutex<Instance?>(nil)
    private let logger = Logger(label: "sitesync.convergence", factory: { _ in SwiftLogNoOpLogHandler() })

    init(database: Database, configuration: ServerConfiguration) async throws {
        self.database = database
        self.configuration = configuration
        try await restart()
    }

    /// The store of the running instance.
    var store: any SyncStore { current.withLock { $0!.store } }

    /// Replaces the running instance by a new one on the same database: an SQLite file opened
    /// again, or a new pool of connections to the PostgreSQL database.
    func restart() async throws {
        let store: any SyncStore
        var pool: Task<Void, any Error>?
        switch database {
        case .sqlite(let path):
            store = try SQLiteSyncStore(path: path, schema: configuration.schema)
        case .postgres(let url, let faults):
            let postgres = try PostgresSyncStore(url: url, schema: configuration.schema, logger: Self.quiet, faults: faults)
            pool = Task { try await postgres.run() }
            store = postgres
        }
        let app = try buildApplication(configuration, store: store, logger: logger)
        let respond = try await Self.responder(of: app)
        let services = Task {
            await withDiscardingTaskGroup { group in
                for service in app.services { group.addTask { try? await service.run() } }
            }
        }
        let instance = Instance(store: store, respond: respond, pool: pool, services: services)
        let previous = current.withLock { $0 }
        current.withLock { $0 = instance }
        previous?.services.cancel()
        previous?.pool?.cancel()
    }

    /// Stops the running instance's services and connections.
    func stop() {
        let instance = current.withLock { $0 }
        instance?.services.cancel()
        instance?.pool?.cancel()
    }

    private static let quiet: Logger = {
        var logger = Logger(label: "sitesync.convergence.postgres")
        logger.logLevel = .critical
        return logger
    }()

    /// The application's responder, with a request context as a server connection would make it.
    private static func responder(of app: some ApplicationProtocol) async throws -> Respond {
        try await respond(with: app.responder)
    }

    private static func respond<Responder: HTTPResponder>(with responder: Responder) -> Respond
    where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        { request, logger in
            let context = Responder.Context(source: .init(channel: NIOAsyncTestingChannel(), logger: logger))
            // The router turns refusals into their error JSON; anything thrown past it is a 500, as
            // the server's connection handler answers.
            do {
                return try await responder.respond(to: request, context: context)
            } catch {
                return Response(status: .internalServerError)
            }
        }
    }

    /// Sends one request to the running instance; returns the status and the body.
    func execute(_ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields, body: [UInt8]? = nil) async throws -> (status: Int, body: [UInt8]) {
        let respond = current.withLock { $0!.respond }
        var headers = headers
        if let body { headers[.contentLength] = String(body.count) }
        let request = Request(
            head: HTTPRequest(method: method, scheme: "http", authority: "localhost", path: uri, headerFields: headers),
            body: RequestBody(buffer: ByteBuffer(bytes: body ?? []))
        )
        let response = try await respond(request, logger)
        let collected = CollectedBody()
        try await response.body.write(collected)
        return (response.status.code, collected.bytes)
    }
}

/// A response body gathered in memory.
private struct CollectedBody: ResponseBodyWriter {
    private final class Storage: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    private let storage = Storage()

    var bytes: [UInt8] { storage.bytes.withLock { $0 } }

    mutating func write(_ buffer: ByteBuffer) async throws {
        storage.bytes.withLock { $0 += buffer.readableBytesView }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
