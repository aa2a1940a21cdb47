/// Rules every stored string follows, whatever it holds: a value, a user name, a reason.
///
/// SQLite stores a string with U+0000 in full but C strings read it back cut at the NUL, so a value,
/// a user or a replica id would silently change on the way: NUL is refused everywhere. Lengths are
/// bounded in bytes of UTF-8, which is what storage and the wire pay for; one base character
/// followed by a million combining marks is one `Character`, and a limit in characters would let it
/// through.
public enum TextRules {
    /// What is wrong with `text` under a limit of `maxBytes` bytes, as a sentence fragment; nil when nothing.
    public static func problem(_ text: String, maxBytes: Int) -> String? {
        let bytes = text.utf8.count
        if bytes > maxBytes { return "must be at most \(maxBytes) bytes of UTF-8 text; got \(bytes) bytes" }
        if text.utf8.contains(0) { return "must not contain the NUL character (U+0000)" }
        return nil
    }

    /// `text` cut to at most `maxBytes` bytes of UTF-8 on a character boundary, with `…` when cut.
    public static func brief(_ text: String, maxBytes: Int) -> String {
        guard text.utf8.count > maxBytes else { return text }
        var result = ""
        var used = 0
        for character in text {
            let size = character.utf8.count
            guard used + size <= maxBytes - 3 else { break }
            result.append(character)
            used += size
        }
        return result + "…"
    }
}

/// Replica ids: chosen by a laptop or issued by the server at enrolment, written on every stamp.
public enum ReplicaID {
    /// The rule a replica id follows, as a sentence fragment.
    public static let rule = "a replica id is 1 to 64 letters, digits, '-' or '_'"

    /// A new random replica id: 16 lowercase hex digits.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = String(generator.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Whether `id` is a valid replica id.
    public static func isValid(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }
}

/// User names: recorded on every stamp, so the conflict log and audit trail name people.
public enum UserName {
    /// The longest user name, in bytes of UTF-8.
    public static let maximumBytes = 200

    /// What is wrong with `user` as a user name, as a sentence; nil when nothing.
    public static func problem(_ user: String) -> String? {
        if user.allSatisfy(\.isWhitespace) { return "A user name is required: it is recorded on every change." }
        if user.utf8.count > maximumBytes { return "A user name is at most \(maximumBytes) bytes of UTF-8; got \(user.utf8.count) bytes." }
        if user.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "A user name must not contain control characters (NUL, tab, line breaks)."
        }
        return nil
    }
}

extension UInt8 {
    var isASCIILetterOrDigit: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}

/// Bearer credentials: 256 random bits in hex behind a prefix that says what they are.
public enum Credential {
    /// The prefix of a replica's own credential.
    public static let replicaPrefix = "ssr_"

    /// A new random credential: `prefix` and 64 hex digits (256 bits).
    public static func generate(prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        return prefix + (0..<4).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// Whether `text` has the form of a replica credential: `ssr_` and 64 lowercase hex digits.
    public static func isReplicaCredential(_ text: String) -> Bool {
        text.hasPrefix(replicaPrefix) && text.utf8.count == replicaPrefix.utf8.count + 64
            && text.utf8.dropFirst(replicaPrefix.utf8.count).allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }
}
