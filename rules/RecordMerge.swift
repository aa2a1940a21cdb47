import Foundation
import SiteSyncCore

/// What happened to one pushed field change.
package enum FieldOutcome: Character, Sendable {
    /// The server now holds the pushed value.
    case applied = "a"
    /// A concurrent write with a greater version won; the pushed value was logged as the loser.
    case superseded = "s"
    /// The server already held this value; nothing changed.
    case unchanged = "e"

    /// `outcomes` as one letter each, as the audit trail stores them.
    package static func letters(_ outcomes: [FieldOutcome]) -> String {
        String(unsafeUninitializedCapacity: outcomes.count) { buffer in
            for (index, outcome) in outcomes.enumerated() { buffer[index] = outcome.rawValue.asciiValue! }
            return outcomes.count
        }
    }
}

/// A record as the server holds it before a push is merged into it.
package struct ServerRecord: Sendable {
    package var site: String
    package var stamps: FieldStamps
    package var values: [String: FieldValue]

    package init(site: String, stamps: FieldStamps, values: [String: FieldValue]) {
        self.site = site
        self.stamps = stamps
        self.values = values
    }
}

/// One overwritten value to write to the conflict log.
package struct ConflictEntry: Sendable {
    package var table: String
    package var recordID: String
    package var field: String
    package var site: String
    package var winner: Conflict.Side
    package var loser: Conflict.Side

    /// A deterministic id: the same pair of writes always yields the same conflict, so nothing is logged twice.
    package var id: String {
        Conflict.id(
            table: table, record: recordID, field: field,
            winner: Version(hlc: winner.hlc, replica: winner.replica), loser: Version(hlc: loser.hlc, replica: loser.replica)
        )
    }
}

/// The result of merging one pushed row into a record.
package struct MergeResult: Sendable {
    /// Fields whose stored value changes.
    package var writes: [(field: String, value: FieldValue)] = []
    /// The record's stamps after the merge.
    package var stamps: FieldStamps
    /// Per pushed field: what happened to it.
    package var outcomes: [FieldOutcome] = []
    /// Per pushed field: the value the server held before.
    package var previous: [FieldValue] = []
    /// Overwritten values to log.
    package var conflicts: [ConflictEntry] = []

    /// Whether the record's stored state changes (values or stamps).
    package var changesRecord: Bool
}

/// The server's decision rule, field by field (docs/PROTOCOL.md, "Merge"):
/// - the pushed base equals the server's current version, or the current version is an earlier
///   write of the same replica: fast-forward, apply;
/// - otherwise the writes are concurrent: the greater `(hlc, replica)` wins and the loser is logged
///   with both values, versions and users, unless both wrote the same value.
package enum RecordMerge {
    package static func merge(
        current: ServerRecord,
        table: String,
        site: String,
        group: ChangeGroup,
        row: ChangeRow,
        replica: String,
        users: [String?]? = nil
    ) -> MergeResult {
        var result = MergeResult(stamps: current.stamps, changesRecord: false)
        for (index, field) in group.columns.enumerated() {
            let value = row.values[index]
            let user = users?[index] ?? group.user
            let incoming = Stamp(hlc: row.hlc(at: index), replica: replica, user: user)
            let existing = current.stamps[field]
            let existingValue = current.values[field] ?? .null
            result.previous.append(existingValue)
            if incoming.version == existing.version {
                // Already merged (the same write arriving again, for example held and re-pushed).
                result.outcomes.append(.unchanged)
            } else if row.base(at: index) == existing.version || (existing.version.replica == replica && incoming.version > existing.version) {
                // Fast-forward: the writer had the server's value in front of it. A replica's own earlier
                // write counts too: its clock only moves forward, so it wrote the later value knowing the
                // earlier one, even when the answer to the earlier push was lost and its base is older.
                result.stamps[field] = incoming
                result.changesRecord = true
                if value == existingValue {
                    result.outcomes.append(.unchanged)
                } else {
                    result.writes.append((field, value))
                    result.outcomes.append(.applied)
                }
            } else if value == existingValue {
                // Concurrent writes of the same value: nothing to log; keep the greater version.
                if incoming.version > existing.version {
                    result.stamps[field] = incoming
                    result.changesRecord = true
                }
                result.outcomes.append(.unchanged)
            } else {
                let pushed = Conflict.Side(value: value, hlc: incoming.version.hlc, replica: replica, user: user)
                let held = Conflict.Side(value: existingValue, hlc: existing.version.hlc, replica: existing.version.replica, user: existing.user)
                if incoming.version > existing.version {
                    result.stamps[field] = incoming
                    result.changesRecord = true
                    result.writes.append((field, value))
                    result.outcomes.append(.applied)
                    result.conflicts.append(ConflictEntry(table: table, recordID: row.id, field: field, site: site, winner: pushed, loser: held))
                } else {
                    result.outcomes.append(.superseded)
                    result.conflicts.append(ConflictEntry(table: table, recordID: row.id, field: field, site: site, winner: held, loser: pushed))
                }
            }
        }
        return result
    }
}
