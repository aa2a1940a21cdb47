import Foundation

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

    /// `text` with every control character written as a `\u{…}` escape, for a terminal or a log
    /// line: C0 controls (escape sequences start with ESC; a newline would forge a log line), DEL,
    /// C1 controls, and the bidirectional controls that make a terminal show text in another order
    /// than it is stored. Text without them is returned as it is.
    public static func escapingControls(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Whether `scalar` is a control character that ``escapingControls(_:)`` escapes.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// The columns `text` takes in a terminal: two for a wide character (East Asian Wide or
    /// Fullwidth, and emoji shown as emoji), none for a character made only of combining marks or
    /// format characters (a zero-width space, a combining accent with nothing to sit on), one for
    /// any other. A character is a grapheme cluster, so `e` and a combining acute accent are one
    /// column, and a family emoji joined by zero-width joiners is two.
    ///
    /// Neither `String.count` (characters) nor Foundation's `padding(toLength:withPad:startingAt:)`
    /// (UTF-16 units on Linux, and it truncates) measures this.
    public static func displayWidth(_ text: String) -> Int {
        var width = 0
        for character in text {
            width += displayWidth(character)
        }
        return width
    }

    /// `text` followed by spaces up to `width` columns (``displayWidth(_:)``); never cut.
    public static func padded(_ text: String, toWidth width: Int) -> String {
        let missing = width - displayWidth(text)
        return missing > 0 ? text + String(repeating: " ", count: missing) : text
    }

    private static func displayWidth(_ character: Character) -> Int {
        let scalars = character.unicodeScalars
        guard let first = scalars.first else { return 0 }
        if scalars.allSatisfy({ [.nonspacingMark, .enclosingMark, .format].contains($0.properties.generalCategory) }) {
            return 0
        }
        // An emoji, or a symbol made one by the emoji variation selector U+FE0F.
        if first.properties.isEmojiPresentation || (first.properties.isEmoji && scalars.contains("\u{FE0F}")) {
            return 2
        }
        return isWide(first.value) ? 2 : 1
    }

    /// East Asian Wide and Fullwidth code points (Unicode's EastAsianWidth.txt, W and F), by range.
    private static func isWide(_ value: UInt32) -> Bool {
        switch value {
        case 0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x2E80...0x303E, 0x3041...0x33FF,
            0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3,
            0xF900...0xFAFF, 0xFE10...0xFE19, 0xFE30...0xFE6F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
            0x16FE0...0x16FE4, 0x17000...0x18CFF, 0x1B000...0x1B2FF, 0x1F200...0x1F2FF,
            0x20000...0x2FFFD, 0x30000...0x3FFFD:
            true
        default:
            false
        }
    }

    /// Input quoted in a message or a log line: cut to `maxBytes` bytes, control characters escaped.
    public static func quotable(_ text: String, maxBytes: Int = 100) -> String {
        escapingControls(brief(text, maxBytes: maxBytes))
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
    public static let rule = "a replica id is 1 to 64 letters, digits, '-' or '_', starting with a letter or digit, and not `server`"

    /// Ids no laptop may take: `server` stamps the server's own writes (conflict records, resolutions' bookkeeping).
    public static let reserved: Set<String> = ["server"]

    /// A new random replica id: 16 lowercase hex digits.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = String(generator.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Whether `id` is a valid replica id.
    public static func isValid(_ id: String) -> Bool {
        guard let first = id.utf8.first, first.isASCIILetterOrDigit, id.utf8.count <= 64 else { return false }
        return id.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
            && !reserved.contains(id.lowercased())
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

/// The reason given for changing a value that was already synced (ICH E6(R3): a change to recorded
/// data is attributable, dated and explained, and the original stays visible).
///
/// A change needs one when its table ``TableSchema/requiresReason``, the value it replaces is a
/// synced value that is not empty, and the new value differs. Entering a value into an empty field
/// and editing a value never synced need none. The laptop refuses a change without a required
/// reason, and so does the server, which holds the replaced value whatever build the laptop runs.
public enum ReasonForChange {
    /// The longest reason, in bytes of UTF-8.
    public static let maximumBytes = 1000

    /// What a conflict resolution's change of a field carries as its reason, before the reviewer's words.
    public static let resolutionPrefix = "conflict resolution: "

    /// The reason a field carries when it was changed again on the laptop while its previous value
    /// was being pushed: the person was not asked, because the value was not synced yet.
    public static let changedDuringSync = "changed again while the previous value was being synced; no reason was asked"

    /// The placeholder a field carries when an SQLite client other than the library (the `sqlite3`
    /// shell, a script) changed its synced value: plain SQL has nowhere to give a reason. It is no
    /// reason (``explains(_:)``): the laptop holds such a change back until a person gives one
    /// (`Replica.explain`), and the server refuses it where a reason is required.
    public static let writtenOutsideLibrary = "written with plain SQL outside SiteSync; no reason was asked"

    /// Whether `reason` explains a change: given, and not the placeholder of a change written with
    /// plain SQL (``writtenOutsideLibrary``).
    public static func explains(_ reason: String?) -> Bool {
        guard let reason else { return false }
        return reason.trimmingCharacters(in: .whitespacesAndNewlines) != writtenOutsideLibrary
    }

    /// The reason a resolution's change of the contested field carries.
    public static func resolution(conflict: String, decision: String, reason: String) -> String {
        brief("\(resolutionPrefix)\(decision) (conflict \(conflict)): \(reason)")
    }

    /// Whether changing `field` of `table` from the synced value `previous` to `new` needs a reason.
    public static func isRequired(table: TableSchema, field: String, previous: FieldValue, new: FieldValue) -> Bool {
        table.requiresReason && !previous.isNull && previous != new && field != TableSchema.siteColumn
    }

    /// `reason` trimmed of surrounding white space, or why it cannot be one (a sentence).
    public static func checked(_ reason: String) -> Result<String, ReasonProblem> {
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return .failure(ReasonProblem(message: "A reason for change must not be empty.")) }
        if let problem = TextRules.problem(trimmed, maxBytes: maximumBytes) {
            return .failure(ReasonProblem(message: "A reason for change \(problem)."))
        }
        return .success(trimmed)
    }

    /// `text` cut to ``maximumBytes``, for reasons the software composes.
    static func brief(_ text: String) -> String { TextRules.brief(text, maxBytes: maximumBytes) }
}

/// Why a text cannot be a reason for change.
public struct ReasonProblem: Error, Sendable, Equatable {
    /// The problem, as a sentence.
    public var message: String
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
        return prefix
            + (0..<4).map { _ in
                let hex = String(generator.next() as UInt64, radix: 16)
                return String(repeating: "0", count: 16 - hex.count) + hex
            }.joined()
    }

    /// Whether `text` has the form of a replica credential: `ssr_` and 64 lowercase hex digits
    /// that could be 256 random bits (``looksRandom(_:)``).
    public static func isReplicaCredential(_ text: String) -> Bool {
        guard text.hasPrefix(replicaPrefix), text.utf8.count == replicaPrefix.utf8.count + 64 else { return false }
        let digits = Array(text.utf8.dropFirst(replicaPrefix.utf8.count))
        return digits.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
            && looksRandom(digits)
    }

    /// Whether 64 hex digits could have been drawn at random: a credential a person or a broken
    /// generator made (all zeros, one digit repeated, a short pattern repeated) is refused.
    ///
    /// For 256 random bits, fewer than 8 distinct digits (probability about 10^-19), a digit more
    /// than 26 times (about 4 × 10^-15), or a pattern of up to 32 digits repeated (16^-32) are all
    /// but impossible.
    static func looksRandom(_ digits: [UInt8]) -> Bool {
        var counts: [UInt8: Int] = [:]
        for digit in digits { counts[digit, default: 0] += 1 }
        guard counts.count >= 8, counts.values.allSatisfy({ $0 <= 26 }) else { return false }
        for period in [1, 2, 4, 8, 16, 32] where digits.indices.allSatisfy({ digits[$0] == digits[$0 % period] }) {
            return false
        }
        return true
    }
}

/// Loopback addresses: the only hosts plain HTTP may be used with, by the server and the laptop.
public enum Loopback {
    /// Whether `host` is a loopback address written as an address: an IPv4 address in
    /// 127.0.0.0/8 (four decimal numbers) or `::1` (bracketed or not). A host *name* is never
    /// taken for one, whatever it starts with: `127.example.org` and even `localhost` resolve
    /// through the system's resolver, which another host can answer.
    public static func isAddress(_ host: String) -> Bool {
        if host == "::1" || host == "[::1]" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
    }
}
