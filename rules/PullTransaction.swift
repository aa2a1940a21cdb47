import SiteSyncCore

/// One pull page, read in one read transaction (one snapshot) of any store, by the sync rules.
///
/// Like ``PushTransaction``, the rules do no I/O: the store asks ``next(_:)`` what to read and
/// answers with it. The rules decide the scope (a site token's site, every site for a reviewer),
/// refuse a copy of a replica's file, page through the sites in order up to the request's limit,
/// and set each site's cursor to the last sequence number the page read: never to a head read
/// separately, which on a store with concurrent writers could pass a change committed late.
package struct PullTransaction: Sendable {
    package enum Step: Sendable {
        /// Read every site the server holds records of, in site order (a reviewer's scope); answer
        /// ``Answer/sites(_:)``.
        case readSites
        /// Read the state of the pulling replica; answer ``Answer/replica(_:)``.
        case readReplica(String)
        /// Read the records of `site` with sequence numbers above `after`, in sequence order, at
        /// most `limit`: their stamps, not their values; answer ``Answer/records(_:)``.
        case readRecords(site: String, after: Int64, limit: Int)
        /// Read the values of the records `ids` of each table, in the order of the table's columns
        /// in the client's schema; answer ``Answer/values(_:)``.
        case readValues([(table: TableSchema, ids: [String])])
        /// The page: answer it.
        case finished(PullBatch)
    }

    package enum Answer: Sendable {
        case sites([String])
        case replica(StoredReplica?)
        case records([PulledRecord])
        case values([RecordKey: [FieldValue]])
    }

    /// One record a page read: its place in its site's sequence, its stamps, and its values in the
    /// order of its table's columns in the client's schema (nil until read, and for a record not sent).
    package struct PulledRecord: Sendable {
        package var seq: Int64
        package var table: String
        package var id: String
        package var stamps: FieldStamps
        package var values: [FieldValue]?

        package init(seq: Int64, table: String, id: String, stamps: FieldStamps, values: [FieldValue]?) {
            self.seq = seq
            self.table = table
            self.id = id
            self.stamps = stamps
            self.values = values
        }
    }

    private let request: PullRequest
    private let principal: Principal
    private let schema: Schema
    private var sites: [String] = []
    private var index = 0
    private var remaining: Int
    /// Bytes the page may still fill (an estimate of the records' JSON); at least one record is
    /// always sent, so that a pull makes progress.
    private var bytesLeft: Int
    /// Whether the page holds a record to send yet.
    private var sending = false
    private var more = false
    private var cursor: [String: Int64] = [:]
    private var groups: [String: RecordGroup] = [:]
    private var order: [String] = []
    private var stage = Stage.start
    /// The records of the site being read, waiting for their values.
    private var read: [PulledRecord] = []

    private enum Stage: Sendable { case start, sites, replica, records, values, done }

    /// Starts a pull by `principal` of a replica on `schema`, of a page of at most the request's
    /// limit of records and about `byteBudget` bytes.
    package init(_ request: PullRequest, principal: Principal, schema: Schema, byteBudget: Int = SyncProtocol.maximumPullPageBytes) {
        self.request = request
        self.principal = principal
        self.schema = schema
        self.remaining = min(max(request.limit, 1), SyncProtocol.maximumPullLimit)
        self.bytesLeft = max(byteBudget, 1)
    }

    /// Takes the store's answer to the previous step (nil at the start) and returns the next step.
    package mutating func next(_ answer: Answer?) throws -> Step {
        switch (stage, answer) {
        case (.start, nil):
            switch principal.role {
            case .site:
                return try scope(principal.site.map { [$0] } ?? [])
            case .reviewer:
                stage = .sites
                return .readSites
            case .admin, .monitor, .metrics:
                throw principal.cannotSync
            }
        case (.sites, .sites(let all)?):
            return try scope(all)
        case (.replica, .replica(let state)?):
            // A replica pulls only once its pushes are answered: if the server applied more under its
            // id than it knows of, another copy of its file pushed them.
            if let state, let acked = request.acked, state.lastSeq > acked {
                throw SyncRefusal.replicaDiverged
            }
            return nextPage()
        case (.records, .records(let records)?):
            // Sent without values: records whose every field the pulling replica wrote (it holds
            // them), and those of tables the client's schema does not have yet.
            var idsByTable: [String: [String]] = [:]
            var names: [String] = []
            for record in records where !(record.stamps.overrides.isEmpty && record.stamps.base.version.replica == request.replica) {
                if idsByTable[record.table] == nil { names.append(record.table) }
                idsByTable[record.table, default: []].append(record.id)
            }
            let tables = names.compactMap { try? schema.table($0) }
            guard !tables.isEmpty else { return take(records) }
            read = records
            stage = .values
            return .readValues(tables.map { ($0, idsByTable[$0.name]!) })
        case (.values, .values(let values)?):
            var records = read
            read = []
            for index in records.indices {
                records[index].values = values[RecordKey(table: records[index].table, id: records[index].id)]
            }
            return take(records)
        default:
            preconditionFailure("PullTransaction: the answer \(String(describing: answer)) does not fit the step \(stage)")
        }
    }

    /// Takes the records of the site being read into the page, as far as the limit and the byte
    /// budget allow, and goes on to the next site.
    private mutating func take(_ records: [PulledRecord]) -> Step {
        let site = sites[index]
        let from = cursor[site] ?? 0
        // Up to the limit, and while the budget lasts: a page of large text values stops early.
        var taken = 0
        for record in records.prefix(remaining) {
            let size = record.estimatedBytes
            // The page's first record always goes, so that a pull makes progress; then the budget decides.
            if sending, size > bytesLeft { break }
            bytesLeft = max(bytesLeft - size, 0)
            taken += 1
            if record.values != nil { sending = true }
        }
        let page = records.prefix(taken)
        if records.count > taken { more = true }
        // The last sequence number read, skipped records included: the page is one snapshot.
        cursor[site] = page.last?.seq ?? from
        for record in page {
            guard let values = record.values, let table = try? schema.table(record.table) else { continue }
            var stamps = record.stamps
            if !stamps.overrides.isEmpty {
                stamps.overrides = stamps.overrides.filter { table.column($0.key) != nil }
            }
            if groups[table.name] == nil {
                groups[table.name] = RecordGroup(table: table.name, columns: table.columnNames, rows: [])
                order.append(table.name)
            }
            groups[table.name]!.rows.append(RecordRow(id: record.id, stamps: stamps, values: values))
        }
        remaining -= page.count
        index += 1
        return nextPage()
    }

    private mutating func scope(_ sites: [String]) throws -> Step {
        self.sites = sites
        // Sites not reached in this page keep the cursor the client sent.
        for site in sites { cursor[site] = request.cursor[site] ?? 0 }
        if let replica = principal.replica, request.acked != nil {
            stage = .replica
            return .readReplica(replica)
        }
        return nextPage()
    }

    private mutating func nextPage() -> Step {
        stage = .records
        // With the limit reached, the next site is still read, for one record: whether more wait.
        guard index < sites.count, !more else {
            stage = .done
            return .finished(PullBatch(groups: order.map { groups[$0]! }, cursor: cursor, more: more))
        }
        let site = sites[index]
        return .readRecords(site: site, after: cursor[site] ?? 0, limit: remaining + 1)
    }
}

extension PullTransaction.PulledRecord {
    /// About how many bytes of JSON the record takes in a pull answer: its values, id and stamps,
    /// each text counted as it is written, escapes included (a text of control characters takes
    /// up to six times its length). A skipped record takes none.
    package var estimatedBytes: Int {
        guard let values else { return 0 }
        var bytes =
            48 + JSONWriter.writtenBytes(of: id) + JSONWriter.writtenBytes(of: stamps.base.version.replica)
            + JSONWriter.writtenBytes(of: stamps.base.user)
        for (field, stamp) in stamps.overrides {
            bytes += 30 + JSONWriter.writtenBytes(of: field) + JSONWriter.writtenBytes(of: stamp.version.replica) + JSONWriter.writtenBytes(of: stamp.user)
        }
        for value in values {
            switch value {
            case .text(let text): bytes += JSONWriter.writtenBytes(of: text) + 1
            case .integer, .real: bytes += 21
            case .null: bytes += 5
            }
        }
        return bytes
    }
}

/// One page of a pull.
public struct PullBatch: Sendable, Equatable {
    /// The records, grouped by table.
    public var groups: [RecordGroup]
    /// The cursor after the page, for every site in scope.
    public var cursor: [String: Int64]
    /// Whether more records wait.
    public var more: Bool

    /// Creates a page.
    public init(groups: [RecordGroup], cursor: [String: Int64], more: Bool) {
        self.groups = groups
        self.cursor = cursor
        self.more = more
    }
}
