import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SiteSyncRules

/// The endpoints for operators: `/healthz` (liveness), `/readyz` (readiness) and `/metrics`
/// (docs/MONITORING.md).
struct OperationsController {
    let store: any MonitoringStore
    let metrics: ServerMetrics

    /// How long `/readyz` waits for the store before it answers that it is not ready.
    static let readinessTimeout: Duration = .seconds(5)

    func addRoutes(to router: Router<SyncRequestContext>, tokens: TokenMiddleware) {
        router.get("healthz") { _, _ in Self.json(.ok, #"{"status":"ok"}"#) }
        router.get("readyz", use: ready)
        router.group("metrics").add(middleware: tokens).get { request, context in
            let principal = try context.requirePrincipal()
            guard principal.replica == nil, principal.role == .metrics || principal.role == .admin else {
                throw ServerError.forbidden("/metrics takes a metrics or admin token (`sitesync-server token create --role metrics`).")
            }
            return await scrape(context.logger)
        }
    }

    /// Ready when the store answers within ``readinessTimeout`` and every migration of this build
    /// is applied; otherwise `503` with the reason, so that a load balancer sends no sync here.
    @Sendable func ready(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let store = self.store
        let outcome = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    try await store.checkReady()
                    return nil
                } catch let error as StorageError where error.code == "migrations" {
                    return "migrations_pending"
                } catch {
                    return "store_unreachable"
                }
            }
            group.addTask {
                try? await Task.sleep(for: Self.readinessTimeout)
                return "store_timeout"
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        guard let reason = outcome else { return Self.json(.ok, #"{"status":"ready"}"#) }
        context.logger.warning("not ready", metadata: ["sync.error": "\(reason)"])
        return Self.json(.serviceUnavailable, #"{"status":"not_ready","reason":"\#(reason)"}"#)
    }

    /// The metrics in the Prometheus text format, the open conflicts read from the store first.
    func scrape(_ logger: Logger) async -> Response {
        do {
            metrics.setOpenConflicts(try await store.openConflictCounts())
        } catch {
            logger.warning("open conflicts not read for /metrics", metadata: ["sync.error": "\(error)"])
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: metrics.render()))
        )
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

extension OperationsController {
    /// `/metrics` without a credential on a port of its own, bound to 127.0.0.1: for a collector
    /// on the same machine (`serve --metrics-port`). Run as a service beside the sync server.
    func metricsApplication(port: Int, onRunning: @escaping @Sendable (Int) async -> Void, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("metrics") { _, _ in await scrape(logger) }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "sitesync-metrics"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}
