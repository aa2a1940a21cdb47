import Crypto
import Foundation

extension Conflict {
    /// The id of the conflict between the versions `winner` and `loser` of `field` of a record:
    /// 32 hex digits of a SHA-256 of them all, so that the same pair of writes always makes the same
    /// conflict and nothing is logged twice.
    public static func id(table: String, record: String, field: String, winner: Version, loser: Version) -> String {
        let key = [table, record, field, "\(winner.hlc.rawValue)", winner.replica, "\(loser.hlc.rawValue)", loser.replica]
            .joined(separator: "\u{1F}")
        return SHA256.hash(data: Data(key.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }
}
