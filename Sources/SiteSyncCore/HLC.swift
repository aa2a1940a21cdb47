/// A hybrid logical clock timestamp: wall-clock milliseconds and a logical counter packed in one integer.
///
/// The upper 48 bits hold milliseconds since 1970, the lower 16 bits a counter that orders events
/// within one millisecond. Packing makes the order a plain integer comparison, and the send rule of
/// Kulkarni et al. (2014) becomes `max(last + 1, wall << 16)`: when the counter overflows it carries
/// into the millisecond, which only nudges the clock ahead.
///
/// ```swift
/// let stamp = HLC(milliseconds: 1_764_000_000_000, counter: 3)
/// stamp.milliseconds // 1_764_000_000_000
/// ```
public struct HLC: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The packed value: `milliseconds << 16 | counter`.
    public let rawValue: Int64

    /// The zero timestamp, older than any real one.
    public static let zero = HLC(rawValue: 0)

    /// Number of bits used by the logical counter.
    public static let counterBits: Int64 = 16

    /// Creates a timestamp from its packed value.
    public init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// Creates a timestamp from wall-clock milliseconds and a logical counter.
    public init(milliseconds: Int64, counter: Int64 = 0) {
        self.rawValue = (milliseconds << Self.counterBits) | (counter & 0xFFFF)
    }

    /// Wall-clock milliseconds since 1970.
    public var milliseconds: Int64 { rawValue >> Self.counterBits }

    /// The logical counter within the millisecond.
    public var counter: Int64 { rawValue & 0xFFFF }

    public static func < (lhs: HLC, rhs: HLC) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { "\(milliseconds).\(counter)" }
}
