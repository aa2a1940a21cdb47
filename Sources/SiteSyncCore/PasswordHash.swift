import Crypto
import Foundation
import _CryptoExtras

/// A person's password kept as a memory-hard digest, never as itself: scrypt (RFC 7914), in the
/// modular crypt text `$scrypt$ln=15,r=8,p=1$SALT$DIGEST` (salt and digest in base64).
///
/// Working one out takes about 32 MiB and a tenth of a second, on purpose: someone who copies the
/// stored digests must pay that for every guess. ``verifies(_:)`` compares digests in constant time.
public struct PasswordHash: Sendable, Equatable {
    /// scrypt's cost: `N = 2^logN` rounds of blocks of `128 × blockSize` bytes, `parallelism` lanes.
    public struct Cost: Sendable, Equatable {
        public var logN: Int
        public var blockSize: Int
        public var parallelism: Int

        /// Creates a cost.
        public init(logN: Int, blockSize: Int, parallelism: Int) {
            self.logN = logN
            self.blockSize = blockSize
            self.parallelism = parallelism
        }

        /// N = 2^15, r = 8, p = 1: 32 MiB per digest, twice the memory of the interactive setting of
        /// the scrypt paper (2^14), and still well under a second on a site's laptop.
        public static let standard = Cost(logN: 15, blockSize: 8, parallelism: 1)

        /// The greatest cost a stored digest may ask for: a hand-edited row cannot make the server
        /// spend gigabytes on a sign-in.
        static let greatest = Cost(logN: 20, blockSize: 16, parallelism: 4)
    }

    /// The cost the digest was worked out with.
    public let cost: Cost
    /// The random salt, 16 bytes.
    public let salt: [UInt8]
    /// The digest, 32 bytes.
    public let digest: [UInt8]

    /// The digest of `password` with a fresh random salt.
    public init(password: String, cost: Cost = .standard) throws {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        try self.init(password: password, salt: salt, cost: cost)
    }

    /// The digest of `password` with `salt`.
    public init(password: String, salt: [UInt8], cost: Cost = .standard) throws {
        self.cost = cost
        self.salt = salt
        self.digest = try Self.derive(password, salt: salt, cost: cost, byteCount: 32)
    }

    /// Reads the text ``encoded`` writes; nil for anything else, or for a cost beyond what this
    /// build works out.
    public init?(encoded: String) {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { return nil }
        var settings: [Substring: Int] = [:]
        for setting in parts[2].split(separator: ",") {
            let pair = setting.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, let value = Int(pair[1]), value > 0 else { return nil }
            settings[pair[0]] = value
        }
        guard settings.count == 3, let logN = settings["ln"], let blockSize = settings["r"], let parallelism = settings["p"],
            logN <= Cost.greatest.logN, blockSize <= Cost.greatest.blockSize, parallelism <= Cost.greatest.parallelism,
            let salt = Data(base64Encoded: String(parts[3])), let digest = Data(base64Encoded: String(parts[4])),
            salt.count >= 8, digest.count >= 16
        else { return nil }
        self.cost = Cost(logN: logN, blockSize: blockSize, parallelism: parallelism)
        self.salt = Array(salt)
        self.digest = Array(digest)
    }

    /// The digest as stored: `$scrypt$ln=…,r=…,p=…$SALT$DIGEST`.
    public var encoded: String {
        "$scrypt$ln=\(cost.logN),r=\(cost.blockSize),p=\(cost.parallelism)$\(Data(salt).base64EncodedString())$\(Data(digest).base64EncodedString())"
    }

    /// Whether `password` is the one this digest was worked out from; the comparison takes the same
    /// time whichever byte differs.
    public func verifies(_ password: String) -> Bool {
        guard let candidate = try? Self.derive(password, salt: salt, cost: cost, byteCount: digest.count) else { return false }
        return candidate.count == digest.count && zip(candidate, digest).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// scrypt of `password` (its UTF-8 bytes) and `salt`: `byteCount` bytes.
    public static func derive(_ password: String, salt: [UInt8], cost: Cost, byteCount: Int) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: byteCount, rounds: 1 << cost.logN, blockSize: cost.blockSize,
            parallelism: cost.parallelism
        )
        return key.withUnsafeBytes { Array($0) }
    }
}
