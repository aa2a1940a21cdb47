/// A store that failed, in terms the HTTP layer needs: whether to try again, and what to log.
///
/// Stores throw it for their database's own errors, so that nothing above them knows a database
/// library. The message names the failure (an SQLite result code, a PostgreSQL SQLSTATE), never a
/// statement's arguments, which may hold record values.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// Whether the request may succeed if sent again.
    public enum Kind: Sendable {
        /// The store is busy or unreachable now (a lock timeout, a lost connection): `503`.
        case unavailable
        /// Anything else: `500`.
        case failed
    }

    /// Whether to try again.
    public var kind: Kind
    /// The database's own code for the failure.
    public var code: String
    /// The database's message, without statement arguments.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, code: String, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
