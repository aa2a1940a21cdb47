import Foundation
import SiteSyncCore

/// A record, named by its table and id.
package struct RecordKey: Hashable, Sendable {
    /// The table.
    package var table: String
    /// The record id.
    package var id: String

    /// Creates a key.
    package init(table: String, id: String) {
        self.table = table
        self.id = id
    }
}

/// What a store did with a push.
public struct PushOutcome: Sendable, Equatable {
    /// The greatest sequence number applied for the replica.
    public var acked: HLC
    /// Records applied by this request.
    public var applied: Int
    /// Conflicts logged by this request.
    public var conflicts: Int
    /// Field changes received by this request, as the audit trail records them; 0 for a retry.
    public var fieldChanges = 0

    /// Creates an outcome.
    public init(acked: HLC, applied: Int, conflicts: Int, fieldChanges: Int = 0) {
        self.acked = acked
        self.applied = applied
        self.conflicts = conflicts
        self.fieldChanges = fieldChanges
    }
}

/// The state the server keeps per replica, written in the transaction of every push that applies
/// anything: what it applied, and the answer to repeat to a retry.
public struct StoredReplica: Sendable, Equatable {
    /// The greatest sequence number applied for the replica.
    public var lastSeq: HLC
    /// Records applied by its last push that applied anything.
    public var lastApplied: Int
    /// Conflicts logged by that push.
    public var lastConflicts: Int
    /// That push's ``PushRequest/fingerprint``.
    public var lastPush: String?

    /// Creates a state.
    public init(lastSeq: HLC, lastApplied: Int, lastConflicts: Int, lastPush: String?) {
        self.lastSeq = lastSeq
        self.lastApplied = lastApplied
        self.lastConflicts = lastConflicts
        self.lastPush = lastPush
    }
}

/// The value one version wrote to one field: what a concurrent change replaced, for the reason rule.
package struct WrittenValueKey: Hashable, Sendable {
    /// The record.
    package var record: RecordKey
    /// The field.
    package var field: String
    /// The version that wrote it.
    package var version: Version

    package init(record: RecordKey, field: String, version: Version) {
        self.record = record
        self.field = field
        self.version = version
    }
}

/// One push, applied as one transaction of any store, by the sync rules (docs/ARCHITECTURE.md,
/// "The sync rules and the stores").
///
/// The rules do no I/O. The driver loop (`run(_:principal:in:)`, one for each
/// kind of store transaction, in `Ports/TransactionSteps.swift`) asks ``next(_:)`` what to do, calls
/// the store's method for it inside the store's own database transaction, and answers with what it
/// read, until the push is ``Step/finished(_:)``. Any error thrown, by the rules or the store, means
/// the store rolls back and nothing is written:
///
/// ```swift
/// try await writing { db in
///     var storage = PushSteps(store: self, db: db)  // a PushStorage
///     return try PushTransaction.run(push, principal: principal, in: &storage)
/// }
/// ```
///
/// The order of the steps is what makes the rules safe on a store with concurrent writers: the
/// replica's row is locked first, so a retried batch racing its original on another instance is
/// applied once; then the heads of the sites the push touches, in site order, so pushes for one
/// site are serialised and pushes for different sites never wait on each other; only then are the
/// records read, so no other push can change them before this one commits.
package struct PushTransaction: Sendable {
    /// What the store does next.
    package enum Step: Sendable {
        /// Lock the replica's state row (held to the end of the transaction) and read it; answer
        /// ``Answer/replica(_:)``.
        case lockReplica(String)
        /// Read the site of each of these records the store holds (a record never changes site,
        /// so no lock is needed); answer ``Answer/sites(_:)``.
        case readSites([RecordKey])
        /// Lock the head row of each site, in this order, and read its last sequence number (0 for
        /// a site without one); answer ``Answer/heads(_:)``.
        case lockHeads([String])
        /// Read the current values and stamps of these records; answer ``Answer/records(_:)``.
        case readRecords([RecordKey])
        /// Read the value each version wrote to each field, from the audit trail (null when that
        /// version wrote none there); answer ``Answer/writtenValues(_:)``.
        case readWrittenValues([WrittenValueKey])
        /// Say which of these conflict ids are logged already; answer ``Answer/loggedConflicts(_:)``.
        case readLoggedConflicts([String])
        /// Write everything, then answer ``Answer/written``.
        case write(PushWrites)
        /// The push is done: commit and answer this.
        case finished(PushOutcome)
    }

    /// What the store read or did for the previous step.
    package enum Answer: Sendable {
        case replica(StoredReplica?)
        case sites([RecordKey: String])
        case heads([String: Int64])
        case records([RecordKey: ServerRecord])
        case writtenValues([WrittenValueKey: FieldValue])
        case loggedConflicts(Set<String>)
        case written
    }

    private let push: CheckedPush
    private let principal: Principal
    private var stage = Stage.start
    private var replica: StoredReplica?
    /// Per group, the indices of the rows above the replica's last sequence number.
    private var fresh: [[Int]] = []
    private var sites: [RecordKey: String] = [:]
    private var heads: [String: Int64] = [:]
    private var records: [RecordKey: ServerRecord] = [:]
    private var writtenValues: [WrittenValueKey: FieldValue] = [:]
    private var merged: [MergedRow] = []
    /// Per group that creates records: the columns they are inserted with.
    private var createdColumns: [Int: CreatedColumns] = [:]

    private enum Stage: Sendable {
        case start, replica, sites, heads, records, writtenValues, loggedConflicts, write, done
    }

    /// A row merged into its record, waiting for its sequence numbers.
    private struct MergedRow: Sendable {
        var group: Int
        var row: Int
        var site: String
        var kind: Kind

        enum Kind: Sendable {
            case created(values: [FieldValue], stamps: FieldStamps)
            case changed(MergeResult)
        }
    }

    /// Starts a push by `principal`, checked already (``PushValidation``).
    package init(_ push: CheckedPush, principal: Principal) {
        self.push = push
        self.principal = principal
    }

    /// Takes the store's answer to the previous step (nil at the start) and returns the next step.
    /// - Throws: ``SyncRefusal`` when the push is refused; the store rolls back.
    package mutating func next(_ answer: Answer?) throws -> Step {
        switch (stage, answer) {
        case (.start, nil):
            stage = .replica
            return .lockReplica(push.replica)
        case (.replica, .replica(let state)?):
            return try admit(state)
        case (.sites, .sites(let found)?):
            sites = found
            return lockHeads()
        case (.heads, .heads(let locked)?):
            heads = locked
            stage = .records
            let existing = keys().filter { sites[$0] != nil }
            if existing.isEmpty { return try readWrittenValues() }
            return .readRecords(existing)
        case (.records, .records(let found)?):
            records = found
            return try readWrittenValues()
        case (.writtenValues, .writtenValues(let found)?):
            writtenValues = found
            return try merge()
        case (.loggedConflicts, .loggedConflicts(let logged)?):
            return .write(finish(logged: logged))
        case (.write, .written?):
            stage = .done
            return .finished(outcome)
        default:
            preconditionFailure("PushTransaction: the answer \(String(describing: answer)) does not fit the step \(stage)")
        }
    }

    // MARK: Steps

    /// Refuses a copy of the replica's file; then looks up the records of the rows not applied yet.
    private mutating func admit(_ state: StoredReplica?) throws -> Step {
        replica = state
        let lastSeq = state?.lastSeq ?? .zero
        // The server applied more under this id than the replica knows of: that is the replica's
        // own push whose answer it lost (it names it in `sent`), or another copy of its file.
        if let acked = push.acked, acked < lastSeq, !push.sent.contains(state?.lastPush ?? "") {
            throw SyncRefusal.replicaDiverged
        }
        fresh = push.groups.map { checked in checked.group.rows.indices.filter { checked.group.rows[$0].seq > lastSeq } }
        let keys = keys()
        guard !keys.isEmpty else {
            // A retried batch: nothing new to apply; answer as the first time.
            stage = .done
            var outcome = PushOutcome(acked: lastSeq, applied: 0, conflicts: 0)
            if let state, lastSeq >= push.groups.lazy.flatMap(\.group.rows).map(\.seq).max() ?? .zero {
                outcome.applied = state.lastApplied
                outcome.conflicts = state.lastConflicts
            }
            return .finished(outcome)
        }
        stage = .sites
        return .readSites(keys)
    }

    /// The records of the rows to apply, in push order.
    private func keys() -> [RecordKey] {
        var keys: [RecordKey] = []
        for (group, rows) in fresh.enumerated() {
            let table = push.groups[group].table.name
            for row in rows { keys.append(RecordKey(table: table, id: push.groups[group].group.rows[row].id)) }
        }
        return keys
    }

    /// Locks the heads of the sites the push writes: its existing records' and the ones its new
    /// records name. Every record belongs to one site, so this serialises every push that could
    /// write the same records.
    private mutating func lockHeads() -> Step {
        var touched = Set(sites.values)
        for (group, rows) in fresh.enumerated() {
            let checked = push.groups[group]
            for row in rows where sites[RecordKey(table: checked.table.name, id: checked.group.rows[row].id)] == nil {
                if let site = checked.sites[row] { touched.insert(site) }
            }
        }
        stage = .heads
        return .lockHeads(touched.sorted())
    }

    /// The values concurrent changes without a reason replaced, which the reason rule needs.
    private mutating func readWrittenValues() throws -> Step {
        var queries: [WrittenValueKey] = []
        for (group, rows) in fresh.enumerated() {
            let checked = push.groups[group]
            guard checked.table.requiresReason else { continue }
            for index in rows {
                let row = checked.group.rows[index]
                let key = RecordKey(table: checked.table.name, id: row.id)
                guard row.bases != nil, let current = records[key] else { continue }
                for (offset, field) in checked.group.columns.enumerated() where !ReasonForChange.explains(row.reason(at: offset)) {
                    if let base = row.base(at: offset), base != current.stamps[field].version {
                        queries.append(WrittenValueKey(record: key, field: field, version: base))
                    }
                }
            }
        }
        guard !queries.isEmpty else { return try merge() }
        stage = .writtenValues
        return .readWrittenValues(queries)
    }

    /// Applies the rules to every row: scope, validation against the stored record, the reason
    /// rule, and the merge. Sequence numbers come after, once the logged conflicts are known.
    private mutating func merge() throws -> Step {
        var unexplained: [(table: String, field: String, record: String)] = []
        var conflictIDs: [String] = []
        for (group, rows) in fresh.enumerated() {
            let checked = push.groups[group]
            let table = checked.table
            let plan = CreatedColumns(checked)
            createdColumns[group] = plan
            for index in rows {
                var row = checked.group.rows[index]
                row.values = checked.values[index]
                let key = RecordKey(table: table.name, id: row.id)
                let authors = push.authors(group: group, row: index)
                guard let current = records[key] else {
                    let (site, values) = try created(row, index: index, checked, plan)
                    try checkAuthors(authors, of: row, checked, site: site)
                    merged.append(
                        MergedRow(
                            group: group, row: index, site: site,
                            kind: .created(values: values, stamps: createdStamps(row, checked, users: push.stampedUsers(group: group, row: index)))))
                    continue
                }
                let site = current.site
                guard principal.canAccess(site: site) else {
                    throw SyncRefusal.forbidden(
                        "Record \(row.id) of \(table.name) belongs to site \(site), which this token may not write; nothing was written."
                    )
                }
                try checkAuthors(authors, of: row, checked, site: site)
                if let moved = checked.sites[index], moved != site {
                    throw SyncRefusal.validation("\(table.name).site_id: record \(row.id) belongs to site \(site) and cannot move to \(moved).")
                }
                if table.requiresReason {
                    for (offset, field) in checked.group.columns.enumerated() where !ReasonForChange.explains(row.reason(at: offset)) {
                        // A field without a reason (the triggers' placeholder for plain SQL is none).
                        // A change based on a version the server holds replaces a synced value: the
                        // current one, or for a concurrent change the one that version wrote. A
                        // change without a base (no `meta`, or a null base) over this replica's own
                        // synced value replaces that value all the same: the replica held it, whatever
                        // the push says; over another replica's, it is a concurrent creation, whose
                        // loser the conflict log keeps.
                        let previous: FieldValue
                        if let base = row.base(at: offset) {
                            previous =
                                base == current.stamps[field].version
                                ? current.values[field] ?? .null
                                : table.column(field).map { $0.normalize(writtenValues[WrittenValueKey(record: key, field: field, version: base)] ?? .null) }
                                    ?? .null
                        } else if current.stamps[field].version.replica == push.replica {
                            previous = current.values[field] ?? .null
                        } else {
                            continue
                        }
                        if ReasonForChange.isRequired(table: table, field: field, previous: previous, new: row.values[offset]) {
                            unexplained.append((table.name, field, row.id))
                        }
                    }
                }
                let result = RecordMerge.merge(
                    current: current, table: table.name, site: site, group: checked.group, row: row, replica: push.replica,
                    users: push.stampedUsers(group: group, row: index))
                if !table.checks.isEmpty {
                    var record = current.values
                    for (field, value) in result.writes { record[field] = value }
                    record["id"] = .text(row.id)
                    do {
                        try table.validateRecord(record, written: Set(checked.group.columns))
                    } catch {
                        throw SyncRefusal.validation(error)
                    }
                }
                conflictIDs += result.conflicts.map(\.id)
                merged.append(MergedRow(group: group, row: index, site: site, kind: .changed(result)))
            }
        }
        // Every change lacking a reason is named at once.
        guard unexplained.isEmpty else { throw SyncRefusal.reasonRequired(unexplained) }
        guard !conflictIDs.isEmpty else { return .write(finish(logged: [])) }
        stage = .loggedConflicts
        return .readLoggedConflicts(conflictIDs)
    }

    /// The fields a created record is inserted with, in table order, and where each value comes from.
    private struct CreatedColumns: Sendable {
        /// The group's fields and those with a default, in table order.
        var columns: [String] = []
        /// Per column: the index of the pushed value, or the column's default.
        var sources: [Source] = []
        /// Required fields without a default the group does not write: it cannot create records.
        var missingRequired: [String] = []

        enum Source: Sendable {
            case pushed(Int)
            case fixed(FieldValue)
        }

        init(_ checked: PushValidation.CheckedGroup) {
            let given = Dictionary(uniqueKeysWithValues: checked.group.columns.enumerated().map { ($1, $0) })
            for column in checked.table.columns {
                if let index = given[column.name] {
                    columns.append(column.name)
                    sources.append(.pushed(index))
                } else if !column.defaultValue.isNull {
                    columns.append(column.name)
                    sources.append(.fixed(column.defaultValue))
                } else if column.required {
                    missingRequired.append(column.name)
                }
            }
        }
    }

    /// Checks a row that creates a record; returns its site and its values in the order of
    /// ``CreatedColumns/columns``.
    private func created(
        _ row: ChangeRow, index: Int, _ checked: PushValidation.CheckedGroup, _ plan: CreatedColumns
    ) throws -> (site: String, values: [FieldValue]) {
        let table = checked.table
        guard table.clientCreatable else {
            throw SyncRefusal.forbidden("\(table.name) records are created by the server only; no record \(row.id).")
        }
        guard plan.missingRequired.isEmpty else {
            throw SyncRefusal.validation(
                ValidationError(
                    problems: plan.missingRequired.map {
                        .init(table: table.name, field: $0, message: "is required for a new record")
                    }))
        }
        guard let site = checked.sites[index] else {
            throw SyncRefusal.validation("\(table.name).site_id: is required for a new record")
        }
        let values = plan.sources.map { source in
            switch source {
            case .pushed(let position): row.values[position]
            case .fixed(let value): value
            }
        }
        if !table.checks.isEmpty {
            var record: [String: FieldValue] = ["id": .text(row.id)]
            record.reserveCapacity(plan.columns.count + 1)
            for (column, value) in zip(plan.columns, values) { record[column] = value }
            do {
                try table.validateRecord(record)
            } catch {
                throw SyncRefusal.validation(error)
            }
        }
        return (site, values)
    }

    /// A created record's stamps: every field by this replica, one base stamp unless the fields
    /// were written at different times.
    private func createdStamps(_ row: ChangeRow, _ checked: PushValidation.CheckedGroup, users: [String?]?) -> FieldStamps {
        let user = checked.group.user
        var stamps = FieldStamps(base: Stamp(hlc: row.seq, replica: push.replica, user: AuditAuthors.latest(users, of: row) ?? user))
        if row.hlcs != nil || users != nil {
            for (offset, column) in checked.group.columns.enumerated() {
                stamps[column] = Stamp(hlc: row.hlc(at: offset), replica: push.replica, user: users?[offset] ?? user)
            }
            stamps.compact(fields: checked.table.columnNames)
        }
        return stamps
    }

    /// Refuses a row one of whose proven authors may not write its record at `site`, naming the
    /// table, record and field.
    private func checkAuthors(_ authors: [String?]?, of row: ChangeRow, _ checked: PushValidation.CheckedGroup, site: String) throws {
        guard let authors else { return }
        for (offset, author) in authors.enumerated() {
            guard let author, let rights = push.authorRights[author], !rights.canWrite(site: site) else { continue }
            throw SyncRefusal.authorRefused(
                "The change to \(checked.table.name).\(checked.group.columns[offset]) of record \(row.id) by \(author) is not allowed: \(author) is a \(rights.role.rawValue), who \(rights.allowance). Nothing was written."
            )
        }
    }

    /// Hands out the sites' sequence numbers in push order (a record's, then its new conflicts')
    /// and gathers every write.
    private mutating func finish(logged: Set<String>) -> PushWrites {
        var writes = PushWrites(receivedAt: push.receivedAt, replica: push.replica)
        var outcome = PushOutcome(acked: replica?.lastSeq ?? .zero, applied: 0, conflicts: 0)
        var logged = logged
        var user = ""
        var createdGroups: [Int: Int] = [:]
        for entry in merged {
            let checked = push.groups[entry.group]
            let table = checked.table
            let row = checked.group.rows[entry.row]
            let values = checked.values[entry.row]
            outcome.applied += 1
            outcome.acked = max(outcome.acked, row.seq)
            let authors = push.authors(group: entry.group, row: entry.row)
            user = AuditAuthors.latest(authors, of: row).map { push.authorRights[$0]?.fullName ?? $0 } ?? checked.group.user
            var audit = PushWrites.AuditRow(
                site: entry.site, table: table.name, recordID: row.id, user: user, seq: row.seq,
                fields: checked.group.columns, newValues: values, oldValues: nil, hlcs: row.hlcs, bases: row.bases,
                outcomes: [], reasons: checked.reasons[entry.row], conflicts: nil,
                authors: authors.map { authors in
                    AuditAuthors(
                        fields: authors,
                        deactivated: push.deactivatedAuthors.isEmpty ? [] : push.deactivatedAuthors.filter { authors.contains($0) }.sorted())
                }
            )
            switch entry.kind {
            case .created(let created, let stamps):
                let seq = nextSequence(entry.site)
                let record = PushWrites.NewRecord(id: row.id, site: entry.site, seq: seq, stamps: stamps, values: created)
                if let position = createdGroups[entry.group] {
                    writes.created[position].records.append(record)
                } else {
                    createdGroups[entry.group] = writes.created.count
                    writes.created.append(PushWrites.CreatedGroup(table: table, columns: createdColumns[entry.group]?.columns ?? [], records: [record]))
                }
                audit.outcomes = Array(repeating: .applied, count: values.count)
            case .changed(let result):
                if result.changesRecord {
                    var stamps = result.stamps
                    stamps.compact(fields: table.columnNames)
                    writes.changed.append(
                        PushWrites.ChangedRecord(
                            table: table, id: row.id, seq: nextSequence(entry.site), stamps: stamps, writes: result.writes
                        ))
                }
                var conflicts: [String?]?
                for conflict in result.conflicts {
                    outcome.conflicts += 1
                    if conflicts == nil { conflicts = Array(repeating: nil, count: checked.group.columns.count) }
                    if let offset = checked.group.columns.firstIndex(of: conflict.field) { conflicts?[offset] = conflict.id }
                    // The id is derived from the two writes, so logging the same pair again is a no-op.
                    guard logged.insert(conflict.id).inserted else { continue }
                    // Stamped at the later of the two writes, which precedes the server's detection.
                    let hlc = max(conflict.winner.hlc, conflict.loser.hlc)
                    writes.conflicts.append(
                        PushWrites.LoggedConflict(
                            entry: conflict, seq: nextSequence(conflict.site),
                            stamps: FieldStamps(base: Stamp(hlc: hlc, replica: Self.serverReplica, user: Self.serverUser))
                        ))
                }
                audit.oldValues = result.previous
                audit.outcomes = result.outcomes
                audit.conflicts = conflicts
            }
            outcome.fieldChanges += audit.newValues.count
            writes.audit.append(audit)
        }
        writes.heads = heads
        writes.replica = StoredReplica(lastSeq: outcome.acked, lastApplied: outcome.applied, lastConflicts: outcome.conflicts, lastPush: push.fingerprint)
        writes.user = user
        self.outcome = outcome
        stage = .write
        return writes
    }

    private var outcome = PushOutcome(acked: .zero, applied: 0, conflicts: 0)

    /// The next sequence number of `site`, under the lock on its head.
    private mutating func nextSequence(_ site: String) -> Int64 {
        let next = (heads[site] ?? 0) + 1
        heads[site] = next
        return next
    }

    /// The replica id and user the server stamps its own writes (the conflict log) with.
    package static let serverReplica = "server"
    package static let serverUser = "sitesync-server"
}

/// Everything one push writes, in the order the rules applied it; a store writes it all in the
/// push's transaction, set-based where it can.
package struct PushWrites: Sendable {
    /// A record the push creates, its values in the order of its group's ``CreatedGroup/columns``.
    package struct NewRecord: Sendable {
        package var id: String
        package var site: String
        /// The site sequence number the record takes.
        package var seq: Int64
        package var stamps: FieldStamps
        package var values: [FieldValue]
    }

    /// Records created by one group of the push: one table, one set of columns.
    package struct CreatedGroup: Sendable {
        package var table: TableSchema
        /// The columns written, in table order: the group's fields and those with a default.
        package var columns: [String]
        package var records: [NewRecord]
    }

    /// A record the push changes: the fields whose value changes, and its stamps after the merge.
    package struct ChangedRecord: Sendable {
        package var table: TableSchema
        package var id: String
        /// The site sequence number it moves to: every merge that writes a value changes its stamps too.
        package var seq: Int64
        package var stamps: FieldStamps
        package var writes: [(field: String, value: FieldValue)]
    }

    /// One row of the audit trail: one record's change as received, one element per field in
    /// every list. Each store encodes the lists in its own columns (docs/AUDIT.md).
    package struct AuditRow: Sendable {
        package var site: String
        package var table: String
        package var recordID: String
        package var user: String
        /// The replica's sequence number of the change.
        package var seq: HLC
        /// The fields received, in the order they were sent.
        package var fields: [String]
        package var newValues: [FieldValue]
        /// The values held before; nil for a created record.
        package var oldValues: [FieldValue]?
        /// Each field's own stamp, when the row's fields were written at different times.
        package var hlcs: [HLC]?
        /// The version each field's edit was based on, when the replica sent them.
        package var bases: [Version?]?
        package var outcomes: [FieldOutcome]
        /// The reasons for change given, trimmed.
        package var reasons: [String?]?
        /// The conflict each field's change caused, by id.
        package var conflicts: [String?]?
        /// Each field's proven author, when any field's is proven.
        package var authors: AuditAuthors? = nil
    }

    /// A conflict to log: an ordinary record of the `conflicts` table, written by the server.
    package struct LoggedConflict: Sendable {
        package var entry: ConflictEntry
        package var seq: Int64
        package var stamps: FieldStamps

        /// The conflict record's fields.
        package func values(detectedAt: String) -> [String: FieldValue] {
            [
                TableSchema.siteColumn: .text(entry.site),
                "table_name": .text(entry.table),
                "record_id": .text(entry.recordID),
                "field": .text(entry.field),
                "winner_value": .text(entry.winner.value.json),
                "winner_hlc": .integer(entry.winner.hlc.rawValue),
                "winner_replica": .text(entry.winner.replica),
                "winner_user": entry.winner.user.map(FieldValue.text) ?? .null,
                "loser_value": .text(entry.loser.value.json),
                "loser_hlc": .integer(entry.loser.hlc.rawValue),
                "loser_replica": .text(entry.loser.replica),
                "loser_user": entry.loser.user.map(FieldValue.text) ?? .null,
                "detected_at": .text(detectedAt),
                "status": .text(ConflictStatus.open.rawValue),
            ]
        }
    }

    /// When the server received the push, ISO 8601: every audit row's and conflict's time.
    package var receivedAt: String
    /// The pushing replica.
    package var replicaID: String
    /// The user of the push's last applied row, recorded with the replica's state.
    package var user = ""
    package var created: [CreatedGroup] = []
    package var changed: [ChangedRecord] = []
    package var audit: [AuditRow] = []
    package var conflicts: [LoggedConflict] = []
    /// Each locked site's head after the push.
    package var heads: [String: Int64] = [:]
    /// The replica's state after the push.
    package var replica = StoredReplica(lastSeq: .zero, lastApplied: 0, lastConflicts: 0, lastPush: nil)

    package init(receivedAt: String, replica: String) {
        self.receivedAt = receivedAt
        self.replicaID = replica
    }

    /// The day the push was received, `YYYY-MM-DD` (UTC), under which `site_days` counts its changes.
    package var day: String { String(receivedAt.prefix(10)) }

    /// Record changes received, by site: the audit rows of each.
    package var changesBySite: [String: Int] {
        audit.reduce(into: [:]) { counts, row in counts[row.site, default: 0] += 1 }
    }
}
