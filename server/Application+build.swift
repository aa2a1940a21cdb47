import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import ServiceLifecycle
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLiteStore

/// Builds the sync server on the embedded SQLite store at `configuration.databasePath`.
///
/// ```swift
/// var configuration = ServerConfiguration(schema: TrialSchema.current)
/// configuration.port = 8080
/// try await buildApplication(configuration).runService()
/// ```
public func buildApplication(_ configuration: ServerConfiguration, logger: Logger? = nil) throws -> some ApplicationProtocol {
    let store = try SQLiteSyncStore(path: configuration.databasePath, schema: configuration.schema)
    return try buildApplication(configuration, store: store, logger: logger)
}

/// Builds the sync server on a given store, with the services it needs run beside the HTTP server
/// (a PostgreSQL store's connection pool).
public func buildApplication(
    _ configuration: ServerConfiguration, store: some SyncStore, logger: Logger? = nil, services: [any Service] = []
) throws -> some ApplicationProtocol {
    let logger = logger ?? Logger(label: "sitesync.server")
    let metrics = ServerMetrics()
    let router = Router(context: SyncRequestContext.self)
    router.add(middleware: RequestMiddleware(metrics: metrics))
    router.add(middleware: ErrorMiddleware())
    let tokens = TokenMiddleware(store: store, inFlight: RequestsInFlight(maximumPerCredential: configuration.maximumRequestsPerCredential))
    let operations = OperationsController(store: store, metrics: metrics)
    operations.addRoutes(to: router, tokens: tokens)
    MonitorController(store: store, configuration: configuration, metrics: metrics).addRoutes(to: router)
    let api = router.group("v1")
        .add(middleware: VersionMiddleware(schemaVersion: configuration.schema.version))
        .add(middleware: tokens)
    let clock = HybridLogicalClock(wallClock: configuration.wallClock)
    let pending = PendingPushes(maximumPerReplica: configuration.maximumPendingPushes)
    let changes = ChangeNotifier()
    SyncController(store: store, configuration: configuration, clock: clock, pending: pending, changes: changes, metrics: metrics).addRoutes(to: api)
    ReviewController(store: store).addRoutes(to: api)
    EnrolmentController(store: store, clock: clock, maximumEnrolments: configuration.maximumEnrolmentsPerToken).addRoutes(to: api)
    PeopleController(store: store, configuration: configuration).addRoutes(to: api)
    return Application(
        router: router,
        server: try configuration.tls.map { try .tls(http1(configuration, logger: logger), tlsConfiguration: $0) } ?? http1(configuration, logger: logger),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sitesync"),
        // Shut down after the server, in reverse order: the pushes accepted before it stopped
        // finish first, then the watch of other instances' pushes ends, then the store's services stop.
        services: services + ((store as? any CommitFeed).map { [CommitWatcher(feed: $0, changes: changes)] } ?? []) + [pending]
            + (configuration.metricsPort.map { [operations.metricsApplication(port: $0, onRunning: configuration.onMetricsServerRunning, logger: logger)] }
                ?? []),
        onServerRunning: { channel in await configuration.onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
}

/// HTTP/1.1 that closes a connection silent for ``ServerConfiguration/readTimeout``: idle between
/// requests, or stalled in the middle of a request's head or body (a request head arrives as one
/// part, so a head sent a byte at a time counts as silence); and one that has not delivered a whole
/// request by its deadline (``RequestDeadlineHandler``). A request the server is still answering
/// is not cut.
private func http1(_ configuration: ServerConfiguration, logger: Logger) -> HTTPServerBuilder {
    let timeout = TimeAmount.nanoseconds(Int64(configuration.readTimeout.wholeMilliseconds) * 1_000_000)
    let deadline = TimeAmount.nanoseconds(Int64(configuration.requestDeadline.wholeMilliseconds) * 1_000_000)
    let rate = configuration.minimumRequestRate
    // Hummingbird's idle timeout closes a connection with no request; the read-idle handler one
    // stalled in the middle of a request; the deadline one that trickles its request in.
    return .http1(
        configuration: .init(
            additionalChannelHandlers: [
                IdleStateHandler(readTimeout: timeout), RequestDeadlineHandler(deadline: deadline, bytesPerSecond: rate, logger: logger),
            ],
            idleTimeout: timeout
        )
    )
}
