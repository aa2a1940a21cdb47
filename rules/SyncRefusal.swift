import SiteSyncCore

/// A request the sync rules refuse: a stable code and a sentence for people. Nothing was written.
///
/// The rules know no transport: the server gives each code its HTTP status in one place
/// (`SyncRefusal.init(_:)` in the server target).
public struct SyncRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable error code.
    public let code: ErrorCode
    /// The message for people; never holds record values, tokens or SQL.
    public let message: String

    /// Creates a refusal.
    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// A value that breaks the schema, named by table and field, never quoted: the message goes
    /// back over the network and into logs.
    public static func validation(_ error: ValidationError) -> SyncRefusal {
        SyncRefusal(.validationFailed, error.redacted.description)
    }

    public static func validation(_ message: String) -> SyncRefusal {
        SyncRefusal(.validationFailed, message)
    }

    public static func forbidden(_ message: String) -> SyncRefusal {
        SyncRefusal(.forbidden, message)
    }

    public static func authorRefused(_ message: String) -> SyncRefusal {
        SyncRefusal(.authorRefused, message)
    }

    public static func reasonRequired(_ missing: [(table: String, field: String, record: String)]) -> SyncRefusal {
        let fields = missing.prefix(20).map { "\($0.table).\($0.field) of record \($0.record)" }.joined(separator: "; ")
        let more = missing.count > 20 ? " and \(missing.count - 20) more" : ""
        return SyncRefusal(
            .reasonRequired,
            "A change of a synced value needs a reason for change, and none was given for \(fields)\(more). "
                + "Give one on the laptop (sitesync put TABLE --id ID FIELD=VALUE --reason TEXT) and sync again; nothing was written."
        )
    }

    public static func clockSkew(aheadBy milliseconds: Int64, limit: Int64) -> SyncRefusal {
        SyncRefusal(
            .clockSkew,
            "The push is stamped \(milliseconds / 1000) s ahead of the server's clock (limit \(limit / 1000) s): fix your clock, then sync again."
        )
    }

    public static let replicaDiverged = SyncRefusal(
        .replicaDiverged,
        "The server holds changes under this replica's id that this file did not send: another copy of the file (a copied or restored replica) syncs as the same replica. Nothing was written. Run `sitesync init --rejoin` on this laptop: it enrols the file as a new replica, pushes its pending changes under it and pulls again what it missed."
    )
}
