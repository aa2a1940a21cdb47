import SiteSyncCore

/// A sync that failed: the server was unreachable, refused the request, or answered nonsense.
///
/// Nothing local is lost on any of them: unpushed changes stay in the outbox, and a pulled batch is
/// applied only whole.
public struct SyncError: Error, Sendable, CustomStringConvertible {
    private enum Kind: Sendable {
        case unreachable
        case refused(status: Int, code: String)
        case invalidResponse
        case unsendable
        case clockAhead
        case replicaConflict
        case untrusted
    }

    private let kind: Kind
    /// What went wrong, for people.
    public let message: String

    /// The server could not be reached (no network, refused connection, time-out).
    public static func unreachable(_ server: String, _ detail: String) -> SyncError {
        SyncError(kind: .unreachable, message: "The server \(server) cannot be reached (\(detail)); changes stay queued on this laptop.")
    }

    /// The server's TLS certificate was not accepted: not signed by a trusted authority, for
    /// another host name, or out of date. Not worth retrying until someone fixes it.
    public static func untrusted(_ server: String, _ detail: String) -> SyncError {
        SyncError(
            kind: .untrusted,
            message:
                "The server \(server) presented a TLS certificate this laptop does not accept (\(detail)); check the server address and the certificate authority (sitesync init --ca-cert). Changes stay queued on this laptop."
        )
    }

    /// The server answered with an error body; `requestID` is the id under which the server's log
    /// records the request, which the message quotes for the operator.
    public static func refused(status: Int, code: String, message: String, requestID: String? = nil) -> SyncError {
        let logged = requestID.map { " (Request \(TextRules.brief($0, maxBytes: 64)) in the server's log.)" } ?? ""
        return SyncError(kind: .refused(status: status, code: code), message: "The server refused the request (\(status) \(code)): \(message)\(logged)")
    }

    /// The server's answer could not be read.
    public static func invalidResponse(_ detail: String) -> SyncError {
        SyncError(kind: .invalidResponse, message: "The server's answer could not be read: \(detail)")
    }

    /// A pending change cannot be written as a request (a number JSON cannot carry, written by raw SQL).
    public static func unsendable(_ detail: String) -> SyncError {
        SyncError(
            kind: .unsendable, message: "A pending change cannot be sent: \(detail); correct the value, then sync again. Changes stay queued on this laptop.")
    }

    /// The server answered with a clock further ahead of this laptop's than the skew bound allows.
    /// Nothing of the answer was recorded: adopting it would stamp every later edit in the future.
    public static func clockAhead(aheadBy milliseconds: Int64, limit: Int64) -> SyncError {
        SyncError(
            kind: .clockAhead,
            message:
                "The server's answer carries a clock \(milliseconds / 1000) s ahead of this laptop's (limit \(limit / 1000) s); nothing of it was recorded. Check this laptop's date and time, and tell the server's operator: its clock may be wrong. Changes stay queued on this laptop."
        )
    }

    /// This file's replica id is held by another copy of it; nothing was pushed or pulled.
    public static func replicaConflict(_ message: String) -> SyncError {
        SyncError(kind: .replicaConflict, message: message)
    }

    /// The HTTP status of a refusal.
    public var status: Int? {
        if case .refused(let status, _) = kind { status } else { nil }
    }

    /// The server's error code of a refusal (see `ErrorCode`).
    public var code: String? {
        if case .refused(_, let code) = kind { code } else { nil }
    }

    /// Whether the server could not be reached at all.
    public var isUnreachable: Bool {
        if case .unreachable = kind { true } else { false }
    }

    /// Whether trying again later may succeed: unreachable, overloaded or failing server.
    public var isTransient: Bool {
        switch kind {
        case .unreachable: true
        case .refused(let status, _): status >= 500 || status == 429 || status == 408
        case .invalidResponse, .unsendable, .clockAhead, .replicaConflict, .untrusted: false
        }
    }

    public var description: String { message }
}
