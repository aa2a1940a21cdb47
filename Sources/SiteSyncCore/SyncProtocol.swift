/// Constants of the wire protocol shared by replicas and the server (see docs/PROTOCOL.md).
public enum SyncProtocol {
    /// The protocol version this build speaks.
    public static let version = 1
    /// Request header carrying the protocol version.
    public static let protocolHeader = "SiteSync-Protocol"
    /// Request header carrying the schema version of the replica.
    public static let schemaHeader = "SiteSync-Schema"
    /// Path of the push endpoint.
    public static let pushPath = "/v1/push"
    /// Path of the pull endpoint.
    public static let pullPath = "/v1/pull"
    /// Request header asking for an asynchronous push (RFC 7240), with the value ``respondAsync``.
    public static let preferHeader = "Prefer"
    /// Response header confirming an asynchronous push.
    public static let preferenceAppliedHeader = "Preference-Applied"
    /// The preference of an asynchronous push: answered `202 Accepted` with the `Location` of its outcome.
    public static let respondAsync = "respond-async"
    /// Greatest number of rows a pull may ask for in one batch.
    public static let maximumPullLimit = 5000
    /// The most records one push may carry (a laptop sends 2,000 at most by default): with the body
    /// limit, it bounds how long one push holds its site's writer.
    public static let maximumPushRecords = 5000
    /// About how many bytes of records a pull page holds at most by default, whatever its limit
    /// in rows: a page of large text values stops early, with `more`.
    public static let maximumPullPageBytes = 4 << 20
    /// How far apart a laptop's clock and the server's may be by default: the server refuses a push
    /// stamped further ahead of its clock, and a laptop refuses a reply further ahead of its own.
    public static let defaultMaximumClockSkew: Duration = .seconds(60)
    /// Path of the enrolment endpoint, where a laptop registers its replica id and receives its own credential.
    public static let replicasPath = "/v1/replicas"
    /// Path of a person's first sign-in on a laptop.
    public static let signInPath = "/v1/people/sign-in"
    /// Path of what the server holds now of a laptop's people.
    public static let peopleStatusPath = "/v1/people/status"
}

extension Duration {
    /// The duration in whole milliseconds, saturating.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? (seconds < 0 ? .min : .max) : milliseconds + attoseconds / 1_000_000_000_000_000
    }
}

/// The stable error codes the server answers with, in `{"error":{"code":…,"message":…}}`.
public enum ErrorCode: String, Codable, Sendable, CaseIterable {
    /// The body is not the JSON message the endpoint expects.
    case invalidJSON = "invalid_json"
    /// The request is not valid HTTP/1.1: a body cut short by a closed connection, say.
    case badRequest = "bad_request"
    /// The body exceeds the server's limit.
    case bodyTooLarge = "body_too_large"
    /// A value breaks the schema, or names an unknown table or field.
    case validationFailed = "validation_failed"
    /// No bearer token, or an unknown one.
    case unauthorized
    /// A person's sign-in: the username or the password is wrong (`401`); the laptop counts it
    /// toward the person's lockout.
    case signInFailed = "sign_in_failed"
    /// The token's role or site does not allow the request.
    case forbidden
    /// The client speaks another protocol version.
    case protocolVersion = "protocol_version"
    /// The client's schema is newer than the server's.
    case schemaVersion = "schema_version"
    /// The push is stamped too far ahead of the server's clock.
    case clockSkew = "clock_skew"
    /// The replica id asked for at enrolment is enrolled already, by another laptop or a copy of this one's file.
    case replicaTaken = "replica_taken"
    /// The server applied pushes under the replica's id that this file did not send: a copy of the
    /// file syncs elsewhere.
    case replicaDiverged = "replica_diverged"
    /// A pushed change replaces a synced value of a table that requires a reason for change, and
    /// gives none (``ReasonForChange``).
    case reasonRequired = "reason_required"
    /// A pushed change whose author is not proven, or may not write it (docs/AUTHORSHIP.md):
    /// an unregistered key, a signature or proof that does not match, a role or site that does not allow it.
    case authorRefused = "author_refused"
    /// No such route or resource.
    case notFound = "not_found"
    /// Too many asynchronous pushes of this credential are still being applied: `429` with
    /// `Retry-After`; collect their outcomes, or wait.
    case tooManyPending = "too_many_pending"
    /// Too many requests of this credential are being served at once: `429` with `Retry-After`.
    case tooManyRequests = "too_many_requests"
    /// The server's store is busy or unreachable; nothing was written, and the same request may succeed later.
    case unavailable
    /// The server failed; nothing was written.
    case internalError = "internal"
}

/// The body of every error response.
public struct ErrorResponse: Codable, Sendable, Equatable {
    /// The error itself.
    public struct Detail: Codable, Sendable, Equatable {
        /// A stable machine-readable code.
        public var code: String
        /// A full sentence for people.
        public var message: String
        /// The id of the request, as the server's log records it (and its `X-Request-ID` header
        /// repeats): quote it to the operator to find the request in the log.
        public var requestID: String?

        enum CodingKeys: String, CodingKey {
            case code, message, requestID = "request_id"
        }
    }

    /// The error.
    public var error: Detail

    /// Creates an error body.
    public init(code: String, message: String, requestID: String? = nil) {
        self.error = Detail(code: code, message: message, requestID: requestID)
    }
}
