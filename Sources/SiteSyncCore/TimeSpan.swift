/// A span of time as people type it on a command line: a whole number and a unit, `90d`, `12h`,
/// `30m` or `45s`.
public struct TimeSpan: Sendable, Equatable, CustomStringConvertible {
    /// The span in seconds.
    public let seconds: Int
    /// The span as written.
    public let description: String

    /// Reads `text`; nil unless it is a positive whole number followed by `d`, `h`, `m` or `s`.
    public init?(_ text: String) {
        guard let unit = text.last, let number = Int(text.dropLast()), number > 0 else { return nil }
        let (product, overflow): (Int, Bool) =
            switch unit {
            case "d": number.multipliedReportingOverflow(by: 86_400)
            case "h": number.multipliedReportingOverflow(by: 3_600)
            case "m": number.multipliedReportingOverflow(by: 60)
            case "s": (number, false)
            default: (0, true)
            }
        guard !overflow else { return nil }
        seconds = product
        description = text
    }
}
