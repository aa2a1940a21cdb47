import Crypto
import Foundation

/// A person as the server tells a laptop about them: what the laptop checks a sign-in and a
/// write against while offline.
public struct PersonInfo: Codable, Sendable, Equatable {
    public var username: String
    /// The full name, which JSON outputs show as `user`.
    public var name: String
    public var role: PersonRole
    /// The sites the person works at; `["*"]` for every site.
    public var sites: [String]
    /// `active` or `deactivated`.
    public var state: String
    /// When the password was last set (ISO 8601, UTC): a later time than the laptop knows means the
    /// password changed, and the laptop forgets the key the old one wrapped.
    public var passwordChangedAt: String

    public init(username: String, name: String, role: PersonRole, sites: [String], state: String, passwordChangedAt: String) {
        (self.username, self.name, self.role, self.sites, self.state, self.passwordChangedAt) = (
            username, name, role, sites, state, passwordChangedAt
        )
    }

    /// Whether the person works at `site`.
    public func covers(site: String) -> Bool { sites == [SiteID.all] || sites.contains(site) }

    enum CodingKeys: String, CodingKey {
        case username, name, role, sites, state
        case passwordChangedAt = "password_changed_at"
    }
}

/// `POST /v1/people/sign-in`, with the laptop's own credential: a person's first sign-in on a
/// laptop. The server checks the password, and registers the public half of the signing key the
/// laptop made for the person (docs/PROTOCOL.md, "People").
public struct SignInRequest: Codable, Sendable, Equatable {
    public var username: String
    public var password: String
    /// The Ed25519 public key, 32 bytes in base64.
    public var publicKey: String

    public init(username: String, password: String, publicKey: String) {
        (self.username, self.password, self.publicKey) = (username, password, publicKey)
    }

    enum CodingKeys: String, CodingKey {
        case username, password
        case publicKey = "public_key"
    }
}

/// The answer to a sign-in: the person, the registered key's id, and the sign-in policy.
public struct SignInResponse: Codable, Sendable, Equatable {
    public var person: PersonInfo
    public var keyID: String
    /// A sign-in ends after this long without a command.
    public var idleTimeoutSeconds: Int
    /// Wrong passwords in a row that lock the person out on a laptop…
    public var maximumAttempts: Int
    /// …for this long.
    public var lockoutSeconds: Int

    public init(person: PersonInfo, keyID: String, idleTimeoutSeconds: Int, maximumAttempts: Int, lockoutSeconds: Int) {
        (self.person, self.keyID, self.idleTimeoutSeconds, self.maximumAttempts, self.lockoutSeconds) = (
            person, keyID, idleTimeoutSeconds, maximumAttempts, lockoutSeconds
        )
    }

    enum CodingKeys: String, CodingKey {
        case person
        case keyID = "key_id"
        case idleTimeoutSeconds = "idle_timeout_s"
        case maximumAttempts = "max_attempts"
        case lockoutSeconds = "lockout_s"
    }
}

/// `POST /v1/people/status`: at each sync, what the server holds now of the people who signed in
/// on the laptop, so that a deactivation or a new password reaches it.
public struct PeopleStatusRequest: Codable, Sendable, Equatable {
    public var usernames: [String]

    public init(usernames: [String]) {
        self.usernames = usernames
    }
}

/// The people of a status request who have a key registered on the asking laptop; others are left out.
public struct PeopleStatusResponse: Codable, Sendable, Equatable {
    public var people: [PersonInfo]

    public init(people: [PersonInfo]) {
        self.people = people
    }
}

/// A person's signing key: Ed25519, made on a laptop at the person's first sign-in there.
public enum PersonKeyID {
    /// The key's id: 32 hex digits of the SHA-256 of its 32 public bytes.
    public static func of(publicKey: Data) -> String {
        SHA256.hash(data: publicKey).prefix(16).map { String(format: "%02x", $0) }.joined()
    }
}

/// People's usernames: 2 to 64 of `a-z`, `0-9`, `.`, `_` and `-`, never reused.
public enum Username {
    /// The rule, as a sentence fragment.
    public static let rule = "a username is 2 to 64 lowercase letters, digits, '.', '_' or '-'"

    /// Whether `username` follows the rule.
    public static func isValid(_ username: String) -> Bool {
        let bytes = username.utf8
        return (2...64).contains(bytes.count)
            && bytes.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
            }
    }
}
