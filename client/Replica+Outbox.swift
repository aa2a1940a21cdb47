import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

/// Local changes read from the outbox for one push, and what is needed to acknowledge them.
public struct OutboxBatch: Sendable {
    struct Entry: Sendable {
        var table: String
        var id: String
        var seq: HLC
        /// The fields pushed, the HLC and the value of each; every pushed write is this replica's own.
        var columns: [String]
        var hlcs: [HLC]
        var values: [FieldValue]
        var user: String
        /// The reason for change of each field, when any has one.
        var reasons: [String?]?
    }

    /// The push request carrying the batch.
    public var request: PushRequest
    /// The greatest sequence number in the batch.
    public var lastSeq: HLC
    var entries: [Entry]
    /// The batch holds every pending record in `(after, lastSeq]` (none was skipped), so it can be
    /// acknowledged as one range.
    var first: HLC?

    /// Number of records in the batch.
    public var count: Int { entries.count }

    /// Whether no record is in both batches.
    func isDisjoint(with other: OutboxBatch) -> Bool {
        struct Key: Hashable {
            var table: String
            var id: String
        }
        let records = Set(entries.map { Key(table: $0.table, id: $0.id) })
        return !other.entries.contains { records.contains(Key(table: $0.table, id: $0.id)) }
    }
}

/// A value kept in the outbox because a newer pulled value replaced it before it was pushed.
struct HeldValue: Codable {
    var value: FieldValue
    var stamp: Stamp

    init(value: FieldValue, stamp: Stamp) {
        self.value = value
        self.stamp = stamp
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        value = try container.decode(FieldValue.self)
        stamp = try container.decode(Stamp.self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(value)
        try container.encode(stamp)
    }
}

enum ShadowJSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    static func decode<T: Decodable>(_ type: T.Type, _ json: String?) throws -> T? {
        guard let json else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    static func encode(_ value: some Encodable) -> String? {
        String(decoding: try! encoder.encode(value), as: UTF8.self)
    }
}

extension Replica {
    /// Number of records waiting to be pushed.
    public func pendingCount() throws -> Int {
        try writer.read(Replica.pendingCount)
    }

    static func pendingCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM _sitesync_outbox") ?? 0
    }

    /// Advances and persists the clock past a server reply, and records the clock offset.
    ///
    /// The reply was checked with ``ReplicaState/checkServerClock(_:)`` before anything was written.
    func recordServerReply(_ db: Database, hlc: HLC) throws {
        state.clock.receive(hlc)
        let offset = hlc.milliseconds - state.clock.wallMilliseconds
        try ClockSQL.advance(db, to: state.clock.current)
        try db.execute(sql: "UPDATE _sitesync_meta SET clock_offset_ms = ?", arguments: [offset])
    }
}

extension ReplicaSync {
    /// Number of records waiting to be pushed that a push sends: those not held back for a reason
    /// for change (``unexplainedChanges()``).
    static func sendableCount(_ db: Database) throws -> Int {
        try Replica.pendingCount(db) - Replica.unexplainedCount(db)
    }

    /// Reads the oldest pending changes, at most `limit` records with sequence numbers above `after`,
    /// and at most `byteBudget` bytes of JSON in the push request's groups, each value counted at
    /// its longest: the batch ends before the record that would pass the budget (a record larger
    /// than the budget on its own makes a batch of one).
    ///
    /// Each record carries the fields it changed since its last push, their current local values
    /// (or the held ones a pull replaced), their versions and their bases. A record changed with
    /// plain SQL over a synced value stays in the outbox, unsent, until a person gives the reason
    /// (``explain(_:id:reason:)``).
    package func outboxBatch(limit: Int, byteBudget: Int = .max, after: HLC = .zero) async throws -> OutboxBatch? {
        let identity = try requireIdentity()
        return try await writer.read { db in try batch(db, identity: identity, limit: limit, byteBudget: byteBudget, after: after) }
    }

    /// The next batch to push (``outboxBatch(limit:byteBudget:after:)``), recorded as sent in the
    /// same transaction, its request ready to send with what the server acknowledged and the
    /// pushes not answered yet (``PushRequest/sent``): one trip to the database per batch.
    ///
    /// A batch recorded as sent and then not sent (the engine reads the next batch while one is in
    /// flight, and reads it again when the answer rebases one of its records) is harmless: the
    /// server only looks for its own last push among the fingerprints listed, and the next answer
    /// clears every fingerprint listed before the one it answers.
    package func nextBatchToSend(limit: Int, byteBudget: Int = .max, after: HLC = .zero) async throws -> OutboxBatch? {
        let identity = try requireIdentity()
        return try await writer.write { db in
            guard var batch = try batch(db, identity: identity, limit: limit, byteBudget: byteBudget, after: after) else { return nil }
            batch.request = try recordSent(db, batch.request)
            return batch
        }
    }

    /// The batch of ``outboxBatch(limit:byteBudget:after:)``, read in `db`.
    private func batch(_ db: Database, identity: ReplicaIdentity, limit: Int, byteBudget: Int, after: HLC) throws -> OutboxBatch? {
        var after = after
        // Reads on past a window whose every record stays queued.
        while true {
            let shadows = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT \(ShadowRow.columns)
                        FROM _sitesync_outbox AS o
                        JOIN _sitesync_shadows AS s ON s.tbl = o.tbl AND s.id = o.id
                        JOIN _sitesync_actors AS a ON a.actor = s.actor
                        WHERE o.seq > ? ORDER BY o.seq LIMIT ?
                        """),
                arguments: [after.rawValue, limit]
            )
            guard !shadows.isEmpty else { return nil }
            struct GroupKey: Hashable {
                var table: String
                var user: String
                /// Nil for records created here: every field.
                var columns: [String]?
            }
            var groups: [ChangeGroup] = []
            var positions: [GroupKey: Int] = [:]
            var entries: [OutboxBatch.Entry] = []
            entries.reserveCapacity(shadows.count)
            var reads: [String: Statement] = [:]
            var skipped = false
            var bytes = 0
            /// The sequence number of the last record read into the batch or skipped.
            var last = after
            for row in shadows {
                let shadow = try ShadowRow(row)
                let id = shadow.id
                // Joined from the outbox: every row read has a pending change.
                let seq = shadow.pending ?? .zero
                // A table this build no longer knows cannot be read or pushed; it stays queued.
                guard let tableName = tableCodes.name(shadow.table), let table = try? schema.table(tableName) else {
                    skipped = true
                    last = seq
                    continue
                }
                if reads[tableName] == nil { reads[tableName] = try db.cachedStatement(sql: "\(table.selectSQL) WHERE id = ?") }
                guard let data = try Row.fetchOne(reads[tableName]!, arguments: [id]) else {
                    skipped = true
                    last = seq
                    continue
                }
                let stamps = shadow.stamps
                let base = try shadow.base()
                let held = try shadow.held()
                let reasons = try shadow.reasons()
                if let reasons, reasons.values.contains(ReasonForChange.writtenOutsideLibrary) {
                    skipped = true
                    last = seq
                    continue
                }
                /// The reasons of `columns`, when any has one.
                func reasonsOf(_ columns: [String]) -> [String?]? {
                    guard let reasons else { return nil }
                    let aligned = columns.map { reasons[$0] }
                    return aligned.contains { $0 != nil } ? aligned : nil
                }
                let row: ChangeRow
                let entry: OutboxBatch.Entry
                var key: GroupKey
                if base == nil, held.isEmpty, stamps.overrides.isEmpty {
                    // Created here and not edited since: every field, written at `seq`.
                    let values = (1...table.columns.count).map { data.fieldValue(atIndex: $0) }
                    row = ChangeRow(id: id, seq: seq, values: values, reasons: reasonsOf(table.columnNames))
                    key = GroupKey(table: tableName, user: stamps.base.user, columns: nil)
                    entry = .init(
                        table: tableName, id: id, seq: seq, columns: table.columnNames, hlcs: Array(repeating: seq, count: values.count),
                        values: values, user: stamps.base.user, reasons: row.reasons
                    )
                } else {
                    let columns = base.map { base in table.columnNames.filter { base.keys.contains($0) } } ?? table.columnNames
                    guard !columns.isEmpty else {
                        skipped = true
                        last = seq
                        continue
                    }
                    var values: [FieldValue] = []
                    var pushed: [Stamp] = []
                    var bases: [Version?] = []
                    for column in columns {
                        if let kept = held[column] {
                            values.append(kept.value)
                            pushed.append(kept.stamp)
                        } else {
                            values.append(data.fieldValue(atIndex: table.position(of: column)! + 1))
                            pushed.append(stamps[column])
                        }
                        bases.append(base?[column]??.version)
                    }
                    let user = pushed.max { $0.version < $1.version }?.user ?? identity.user
                    let hlcs = pushed.map(\.version.hlc)
                    row = ChangeRow(
                        id: id, seq: seq, values: values, hlcs: hlcs.allSatisfy { $0 == seq } ? nil : hlcs, bases: base == nil ? nil : bases,
                        reasons: reasonsOf(columns)
                    )
                    key = GroupKey(table: tableName, user: user, columns: columns)
                    entry = .init(table: tableName, id: id, seq: seq, columns: columns, hlcs: hlcs, values: values, user: user, reasons: row.reasons)
                }
                // A new group also writes its table, user and columns.
                let header =
                    positions[key] != nil
                    ? 0
                    : 40 + JSONWriter.maximumBytes(of: tableName) + JSONWriter.maximumBytes(of: key.user)
                        + (key.columns ?? table.columnNames).reduce(0) { $0 + 1 + JSONWriter.maximumBytes(of: $1) }
                let size = header + row.maximumEncodedBytes
                if !entries.isEmpty, bytes + size > byteBudget {
                    break
                }
                bytes += size
                if let position = positions[key] {
                    groups[position].rows.append(row)
                } else {
                    positions[key] = groups.count
                    groups.append(ChangeGroup(table: tableName, user: key.user, columns: key.columns ?? table.columnNames, rows: [row]))
                }
                entries.append(entry)
                last = seq
            }
            guard !entries.isEmpty else {
                after = last
                continue
            }
            let signatures = try replica.pushSignatures(db, for: entries)
            return OutboxBatch(
                request: PushRequest(replica: identity.replicaID, groups: groups, signatures: signatures.isEmpty ? nil : signatures),
                lastSeq: last,
                entries: entries,
                first: skipped ? nil : after
            )
        }
    }

    /// Marks the changes the server acknowledged as pushed, and advances the clock past the server's.
    ///
    /// A record edited again while the push was in flight stays pending; its pushed fields now have
    /// the pushed versions as their bases, so the server sees the new edit as sequential.
    /// - Returns: the number of records edited again during the push.
    @discardableResult
    package func acknowledge(_ batch: OutboxBatch, _ response: PushResponse) async throws -> Int {
        try state.checkServerClock(max(response.hlc, response.acked))
        return try await writer.write { db in
            try ClockSQL.keepPastOutbox(db)
            var rebased = 0
            if let after = batch.first, response.acked >= batch.lastSeq {
                // The batch is exactly the outbox entries in (after, lastSeq]: clear them as one range.
                // Records edited during the push have a newer sequence number and stay pending.
                let range: StatementArguments = [after.rawValue, batch.lastSeq.rawValue]
                try db.execute(
                    sql: """
                        UPDATE _sitesync_shadows SET pending = NULL, base = NULL, held = NULL, reasons = NULL
                        FROM (SELECT tbl, id FROM _sitesync_outbox WHERE seq > ? AND seq <= ?) AS o
                        WHERE _sitesync_shadows.tbl = o.tbl AND _sitesync_shadows.id = o.id
                        """,
                    arguments: range
                )
                let cleared = db.changesCount
                try db.execute(sql: "DELETE FROM _sitesync_outbox WHERE seq > ? AND seq <= ?", arguments: range)
                if cleared == batch.entries.count {
                    try recordAnswer(db, fingerprint: batch.request.fingerprint, acked: response.acked)
                    try recordServerReply(db, hlc: max(response.hlc, response.acked))
                    try TransactionSignature.forgetPushed(db)
                    return 0
                }
            }
            let clear = try db.cachedStatement(
                sql: "UPDATE _sitesync_shadows SET pending = NULL, base = NULL, held = NULL, reasons = NULL WHERE tbl = ? AND id = ? AND pending = ?"
            )
            let remove = try db.cachedStatement(sql: "DELETE FROM _sitesync_outbox WHERE seq = ?")
            for entry in batch.entries where entry.seq <= response.acked {
                try clear.execute(arguments: [tableCodes.code(entry.table), entry.id, entry.seq.rawValue])
                if db.changesCount == 1 {
                    try remove.execute(arguments: [entry.seq.rawValue])
                } else if try rebase(db, entry) {
                    rebased += 1
                }
            }
            try recordAnswer(db, fingerprint: batch.request.fingerprint, acked: response.acked)
            try recordServerReply(db, hlc: max(response.hlc, response.acked))
            try TransactionSignature.forgetPushed(db)
            return rebased
        }
    }

    /// Rebases a record edited again during its push; returns false when it is no longer pending.
    ///
    /// The fields pushed now have the pushed values as their bases. A field changed again during
    /// the push from a value that needed no reason (an empty field filled in, a record not yet
    /// synced) now changes a synced value, which the server accepts only with a reason: it gets
    /// ``ReasonForChange/changedDuringSync``, unless the person gave one.
    private func rebase(_ db: Database, _ entry: OutboxBatch.Entry) throws -> Bool {
        let code = try tableCodes.code(entry.table)
        guard
            let shadow = try Row.fetchOne(
                db,
                sql: "SELECT \(ShadowRow.columns) FROM \(ShadowRow.source) WHERE s.tbl = ? AND s.id = ? AND s.pending IS NOT NULL",
                arguments: [code, entry.id]
            ).map(ShadowRow.init)
        else { return false }
        let replica = try requireIdentity().replicaID
        let pushed = zip(entry.columns, entry.hlcs).map { (column: $0, stamp: Stamp(hlc: $1, replica: replica, user: entry.user)) }
        let stamps = shadow.stamps
        var base: [String: Stamp?]
        if let stored = try shadow.base() {
            base = stored
            for (column, stamp) in pushed where base[column] != nil {
                base[column] = .some(stamp)
            }
        } else {
            // Created here and edited during its first push: what was edited since is based on what was pushed.
            base = [:]
            for (column, stamp) in pushed where stamps[column].version.hlc > entry.seq {
                base[column] = .some(stamp)
            }
        }
        var held = try shadow.held()
        for column in entry.columns { held[column] = nil }
        var reasons = try shadow.reasons() ?? [:]
        if let table = try? schema.table(entry.table), table.requiresReason {
            let current = try self.replica.fields(db, table, id: entry.id)
            for (column, pushed) in zip(entry.columns, entry.values) where base[column] != nil && reasons[column] == nil {
                if ReasonForChange.isRequired(table: table, field: column, previous: pushed, new: current[column] ?? .null) {
                    reasons[column] = ReasonForChange.changedDuringSync
                }
            }
        }
        try db.execute(
            sql: "UPDATE _sitesync_shadows SET base = ?, held = ?, reasons = ? WHERE tbl = ? AND id = ?",
            arguments: [
                ShadowJSON.encode(base), held.isEmpty ? nil : ShadowJSON.encode(held), reasons.isEmpty ? nil : ShadowJSON.encode(reasons), code, entry.id,
            ]
        )
        return true
    }
}
