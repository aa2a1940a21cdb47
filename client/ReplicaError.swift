/// A refused local operation, with a full sentence saying why. Nothing was written.
public struct ReplicaError: Error, Equatable, Sendable, CustomStringConvertible {
    private enum Kind: Equatable, Sendable {
        case notInitialized
        case alreadyInitialized
        case recordNotFound
        case readOnlyTable
        case outsideSite
        case invalidArgument
        case alreadyResolved
        case reasonRequired
        case signInRequired
        case signInRefused
    }

    private let kind: Kind
    /// What went wrong, for people.
    public let message: String

    private init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// Errors compare by kind, so tests and callers can match them whatever the details.
    public static func == (lhs: ReplicaError, rhs: ReplicaError) -> Bool { lhs.kind == rhs.kind }

    /// The replica has no identity yet.
    public static let notInitialized = ReplicaError(
        .notInitialized, "This replica is not initialised; run `sitesync init --site SITE --server URL --token TOKEN --user NAME` first."
    )
    /// The replica already belongs to another site.
    public static func alreadyInitialized(site: String) -> ReplicaError {
        ReplicaError(.alreadyInitialized, "This replica already records site \(site); use a new database file for another site.")
    }
    /// No record with that id.
    public static func recordNotFound(table: String, id: String) -> ReplicaError {
        ReplicaError(.recordNotFound, "No record \(id) in \(table).")
    }
    /// The table (or `table.field`) is written by the server only.
    public static func readOnlyTable(_ table: String) -> ReplicaError {
        ReplicaError(.readOnlyTable, "\(table) is written by the server only.")
    }
    /// The record belongs to a site this replica may not write.
    public static func outsideSite(_ message: String) -> ReplicaError { ReplicaError(.outsideSite, message) }
    /// The conflict was resolved already.
    public static func alreadyResolved(_ message: String) -> ReplicaError { ReplicaError(.alreadyResolved, message) }
    /// A change of synced values of a table that requires a reason for change gave none.
    public static func reasonRequired(table: String, id: String, fields: [String]) -> ReplicaError {
        ReplicaError(
            .reasonRequired,
            "\(fields.map { "\(table).\($0)" }.joined(separator: ", ")) of record \(id) \(fields.count == 1 ? "was" : "were") synced already: "
                + "changing \(fields.count == 1 ? "it" : "them") needs a reason for change (--reason TEXT), kept in the audit trail. Nothing was written."
        )
    }
    /// Nobody is signed in on this laptop, or the person signed in may not do this here.
    public static func signInRequired(_ message: String) -> ReplicaError { ReplicaError(.signInRequired, message) }
    /// A sign-in was refused: a wrong password, a lockout, a deactivated account.
    public static func signInRefused(_ message: String) -> ReplicaError { ReplicaError(.signInRefused, message) }
    /// An argument breaks a rule of the operation.
    public static func invalidArgument(_ message: String) -> ReplicaError { ReplicaError(.invalidArgument, message) }

    // Values to match against, whatever the details, for `#expect(throws:)` and `catch` patterns
    // (errors compare by kind).

    /// Matches every ``recordNotFound(table:id:)``.
    public static let recordNotFound = recordNotFound(table: "", id: "")
    /// Matches every ``readOnlyTable(_:)``.
    public static let readOnlyTable = readOnlyTable("")
    /// Matches every ``outsideSite(_:)``.
    public static let outsideSite = outsideSite("")
    /// Matches every ``invalidArgument(_:)``.
    public static let invalidArgument = invalidArgument("")
    /// Matches every ``signInRequired(_:)``.
    public static let signInRequired = signInRequired("")
    /// Matches every ``signInRefused(_:)``.
    public static let signInRefused = signInRefused("")
    /// Matches every ``alreadyInitialized(site:)``.
    public static let alreadyInitialized = alreadyInitialized(site: "")
    /// Matches every ``alreadyResolved(_:)``.
    public static let alreadyResolved = alreadyResolved("")
    /// Matches every ``reasonRequired(table:id:fields:)``.
    public static let reasonRequired = reasonRequired(table: "", id: "", fields: [])
}
