/// The version of a field's value: the HLC of the write and the replica that made it.
///
/// Versions are totally ordered by `(hlc, replica)`, so every node picks the same winner
/// between two concurrent writes.
public struct Version: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// When the value was written.
    public var hlc: HLC
    /// The replica that wrote it.
    public var replica: String

    /// Creates a version.
    public init(hlc: HLC, replica: String) {
        self.hlc = hlc
        self.replica = replica
    }

    public static func < (lhs: Version, rhs: Version) -> Bool {
        lhs.hlc != rhs.hlc ? lhs.hlc < rhs.hlc : lhs.replica < rhs.replica
    }

    public var description: String { "\(hlc)@\(replica)" }
}

/// A version together with the user who made the write: what every field carries on both sides.
public struct Stamp: Hashable, Sendable {
    /// The version of the value.
    public var version: Version
    /// The user recorded on the replica when the value was written.
    public var user: String

    /// Creates a stamp.
    public init(version: Version, user: String) {
        self.version = version
        self.user = user
    }

    /// Creates a stamp from its parts.
    public init(hlc: HLC, replica: String, user: String) {
        self.init(version: Version(hlc: hlc, replica: replica), user: user)
    }
}

extension Stamp: Codable {
    // A stamp travels and is stored as a compact array: [hlc, replica, user].
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let hlc = try container.decode(HLC.self)
        let replica = try container.decode(String.self)
        let user = try container.decode(String.self)
        self.init(hlc: hlc, replica: replica, user: user)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(version.hlc)
        try container.encode(version.replica)
        try container.encode(user)
    }
}
