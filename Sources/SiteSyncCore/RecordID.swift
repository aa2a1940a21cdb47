import Foundation

/// Record ids generated on replicas: UUIDv7 (RFC 9562), lowercase.
///
/// Version 7 UUIDs start with the creation time in milliseconds, so records created one after another
/// get increasing ids: every B-tree keyed by id (the data tables, the shadow rows, the audit index)
/// grows at its end instead of dirtying a random page per insert, which keeps write transactions
/// small on the laptop and the server. The 74 random bits keep offline inserts collision-free.
public enum RecordID {
    /// A new id, for example `019ab3c2-7f10-7a3e-9c41-2b6d0e8f1a57`.
    public static func generate(milliseconds: Int64 = HybridLogicalClock.systemMilliseconds()) -> String {
        var generator = SystemRandomNumberGenerator()
        let random = generator.next() as UInt64
        let moreRandom = generator.next() as UInt64
        let time = UInt64(max(0, milliseconds)) & 0xFFFF_FFFF_FFFF
        let high = (time << 16) | 0x7000 | (random & 0x0FFF)
        let low = 0x8000_0000_0000_0000 | (moreRandom & 0x3FFF_FFFF_FFFF_FFFF)
        let hex = String(format: "%016llx%016llx", high, low)
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }
}
