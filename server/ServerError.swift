import Foundation
import Hummingbird
import SiteSyncCore
import SiteSyncRules

/// A refused request: an HTTP status, a stable code and a full sentence. Nothing was written.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status.
    public let status: HTTPResponse.Status
    /// The stable error code.
    public let code: ErrorCode
    /// The message for people; never holds record values, tokens or SQL.
    public let message: String
    /// Seconds after which the request may succeed, sent as `Retry-After`.
    public var retryAfter: Int?

    init(_ status: HTTPResponse.Status, _ code: ErrorCode, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The HTTP refusal for a refusal of the sync rules: the one place where a rule's code gets
    /// its status.
    public init(_ refusal: SyncRefusal) {
        let status: HTTPResponse.Status =
            switch refusal.code {
            case .invalidJSON, .badRequest: .badRequest
            case .bodyTooLarge: .contentTooLarge
            case .validationFailed, .reasonRequired, .clockSkew: .unprocessableContent
            case .unauthorized, .signInFailed: .unauthorized
            case .forbidden, .authorRefused: .forbidden
            case .protocolVersion: .upgradeRequired
            case .schemaVersion, .replicaTaken, .replicaDiverged: .conflict
            case .notFound: .notFound
            case .tooManyPending, .tooManyRequests: .tooManyRequests
            case .unavailable: .serviceUnavailable
            case .internalError: .internalServerError
            }
        self.init(status, refusal.code, refusal.message)
    }

    static func invalidJSON(_ detail: String) -> ServerError {
        ServerError(.badRequest, .invalidJSON, "The request body is not valid: \(detail)")
    }

    static func bodyTooLarge(limit: Int) -> ServerError {
        ServerError(.contentTooLarge, .bodyTooLarge, "The request body exceeds the limit of \(limit) bytes; send smaller batches.")
    }

    /// A value that breaks the schema, named by table and field, never quoted: the message goes
    /// back over the network and into logs.
    static func validation(_ error: ValidationError) -> ServerError {
        ServerError(.unprocessableContent, .validationFailed, error.redacted.description)
    }

    static func validation(_ message: String) -> ServerError {
        ServerError(.unprocessableContent, .validationFailed, message)
    }

    static let missingToken = ServerError(.unauthorized, .unauthorized, "A bearer token is required: send `Authorization: Bearer TOKEN`.")
    static let unknownToken = ServerError(.unauthorized, .unauthorized, "The bearer token is not valid.")

    static func forbidden(_ message: String) -> ServerError {
        ServerError(.forbidden, .forbidden, message)
    }

    /// Another protocol version: 426. No version at all is a malformed request: 400, same code.
    static func protocolVersion(_ received: String?) -> ServerError {
        guard let received else {
            return ServerError(
                .badRequest, .protocolVersion,
                "The request has no \(SyncProtocol.protocolHeader) header; this server speaks sync protocol \(SyncProtocol.version)."
            )
        }
        return ServerError(
            .upgradeRequired, .protocolVersion,
            "This server speaks sync protocol \(SyncProtocol.version); the client sent protocol \(TextRules.quotable(received, maxBytes: 40)). Upgrade sitesync; changes stay queued until then."
        )
    }

    /// A schema newer than the server's, or unreadable: 409. No schema version at all is a
    /// malformed request: 400, same code.
    static func schemaVersion(client: String?, server: Int) -> ServerError {
        guard let client else {
            return ServerError(
                .badRequest, .schemaVersion,
                "The request has no \(SyncProtocol.schemaHeader) header: send the client's schema version, 1 to \(server)."
            )
        }
        return ServerError(
            .conflict, .schemaVersion,
            "The client's schema version \(TextRules.quotable(client, maxBytes: 40)) is not supported by this server (schema \(server)). Upgrade the server or use a matching sitesync; changes stay queued until then."
        )
    }

    static func replicaTaken(_ replica: String) -> ServerError {
        ServerError(
            .conflict, .replicaTaken,
            "Replica \(replica) is enrolled already, by another laptop or by the laptop this file was copied from. Run `sitesync init --rejoin` on this laptop: it enrols the file as a new replica and pushes its pending changes under it."
        )
    }

    static func notFound(_ path: String) -> ServerError {
        ServerError(.notFound, .notFound, "No endpoint \(TextRules.quotable(path)).")
    }

    static func tooManyPending(_ count: Int) -> ServerError {
        ServerError(
            .tooManyRequests, .tooManyPending,
            "This replica has \(count) asynchronous pushes still being applied here; wait for their outcomes (GET their Location), then push again. Nothing was written.",
            retryAfter: 5
        )
    }

    static func tooManyRequests(_ limit: Int) -> ServerError {
        ServerError(
            .tooManyRequests, .tooManyRequests,
            "This credential already has \(limit) requests being served; wait for their answers, then send again. Nothing was written.",
            retryAfter: 1
        )
    }

    static let unavailable = ServerError(
        .serviceUnavailable, .unavailable, "The server's store is busy or unreachable; nothing was written. Try again shortly.")
    static let internalError = ServerError(.internalServerError, .internalError, "The server failed to process the request; nothing was written.")
}

extension ServerError: HTTPResponseError {
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The router's own context: the middleware's copies are values it never sees.
        let requestID = (context as? SyncRequestContext)?.requestID
        let body = try encoder.encode(ErrorResponse(code: code.rawValue, message: message, requestID: requestID))
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let requestID { headers[.requestID] = requestID }
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
