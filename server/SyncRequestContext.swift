import Hummingbird
import SiteSyncCore
import SiteSyncRules

/// Per-request state: the token's principal and the schema version the client speaks.
public struct SyncRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Who the bearer token belongs to; set by the token middleware.
    public var principal: Principal?
    /// The SHA-256 hex digest of the request's bearer token; set with ``principal``.
    public var tokenHash: String?
    /// The client's schema version; set by the version middleware.
    public var clientSchemaVersion: Int?
    /// The request's id: the one the log records (`hb.request.id`), sent back as `X-Request-ID` and
    /// in error bodies. A logger that keeps no metadata (a no-op handler) gets a new one.
    public let requestID: String

    /// The client's address (without its port), as the connection shows it; behind a proxy, the proxy's.
    public let remoteAddress: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
        self.requestID = source.logger[metadataKey: "hb.request.id"]?.description ?? RequestID().description
    }

    /// The bearer token's digest, which the token middleware guarantees on `/v1` routes.
    func requireTokenHash() throws -> String {
        guard let tokenHash else { throw ServerError.missingToken }
        return tokenHash
    }

    /// The principal, which the token middleware guarantees on `/v1` routes.
    func requirePrincipal() throws -> Principal {
        guard let principal else { throw ServerError.missingToken }
        return principal
    }
}
