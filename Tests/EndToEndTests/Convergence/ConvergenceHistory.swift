import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import TrialRecords

/// One generated history: laptops of two sites and a reviewer write, delete, resolve and sync in a
/// seeded random order over a ``FaultyTransport``, while the server restarts now and then. After a
/// quiet round it checks what a user relies on (see ``check()``) and throws ``HistoryFailure``
/// naming what broke.
///
/// Everything that decides the course of a history is drawn from the seed: replica and record ids
/// are chosen, and every clock reads one simulated wall clock (each laptop with its own skew), so a
/// failing seed replays the same history.
struct ConvergenceHistory {
    /// A site laptop or the reviewer's.
    struct Laptop {
        let name: String
        let site: String
        let replica: Replica
        let engine: SyncEngine
    }

    /// A field of a record.
    struct FieldKey: Hashable, CustomStringConvertible {
        var table: String
        var id: String
        var field: String
        var description: String { "\(table) \(id) \(field)" }
    }

    /// A value a laptop wrote, with the version its replica stamped it with.
    struct Write {
        var version: Version
        var value: FieldValue
        var by: String
    }

    let seed: UInt64
    private var random: SeededGenerator
    private let clock: SimulatedClock
    private let server: InProcessServer
    private let faults: FaultPlan
    /// PostgreSQL's failures, on that store.
    private let databaseFaults: DatabaseFaults?
    private let received = ReceivedPushes()
    private var laptops: [Laptop] = []
    private var writes: [FieldKey: [Write]] = [:]
    private(set) var steps = 0
    private(set) var syncs = 0
    private(set) var failedSyncs = 0
    /// Resolutions made, by decision.
    private(set) var resolutions: [String: Int] = [:]
    /// Conflicts the server received more than one resolution of.
    private(set) var resolvedTwice = 0
    /// Values the conflict log holds.
    private(set) var conflicts = 0

    static let tables = [TrialSchema.subjects, TrialSchema.screenings, TableSchema.conflicts]

    /// The laptops every history starts from, initialised but not enrolled: copying one is far
    /// cheaper than setting a replica up.
    struct Templates: Sendable {
        static let laptops = [("a", "S01"), ("b", "S01"), ("c", "S02"), ("d", "S02"), ("reviewer", SiteID.all)]
        /// The enrolment tokens every history's server accepts.
        static let enrolment = ["S01": "sst_convergence-s01", "S02": "sst_convergence-s02", SiteID.all: "sst_convergence-reviewer"]
        let replicas: [Replica]

        init() throws {
            replicas = try Self.laptops.map { name, site in
                let replica = try Replica.inMemory(schema: TrialSchema.current)
                try replica.initialize(
                    site: site, user: "User \(name)", serverURL: URL(string: "http://in-process")!, token: Self.enrolment[site]!, replicaID: "replica-\(name)")
                return replica
            }
        }
    }

    /// Sets up the server and the laptops of history `seed` in `directory`.
    init(seed: UInt64, database: InProcessServer.Database, databaseFaults: DatabaseFaults? = nil, templates: Templates) async throws {
        self.seed = seed
        self.databaseFaults = databaseFaults
        random = SeededGenerator(seed: seed)
        let clock = SimulatedClock()
        self.clock = clock
        faults = FaultPlan(seed: seed ^ 0x5EED_FA17)
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.wallClock = { clock.now }
        server = try await InProcessServer(database: database, configuration: configuration)
        for (site, token) in Templates.enrolment {
            try await server.store.createToken(
                hash: Tokens.hash(token), role: site == SiteID.all ? .reviewer : .site, site: site == SiteID.all ? nil : site, label: nil, expiresAt: nil)
        }
        for (index, (name, site)) in Templates.laptops.enumerated() {
            let skew = Int64.random(in: -1500...1500, using: &random)
            let replica = try templates.replicas[index].inMemoryCopy(wallClock: { clock.now + skew })
            var settings = SyncEngine.Configuration()
            settings.attempts = 2
            settings.initialBackoff = .zero
            settings.maximumBackoff = .zero
            settings.pushBatchSize = 6
            settings.pullBatchSize = 8
            let transport = FaultyTransport(server: server, replica: replica, faults: faults, received: received)
            laptops.append(
                Laptop(name: name, site: site, replica: replica, engine: SyncEngine(replica: replica, transport: transport, configuration: settings)))
        }
        databaseFaults?.enable()
    }

    /// Stops the server's connections to its database.
    func stop() { server.stop() }

    // MARK: Running

    /// Runs `count` random steps, then a quiet round, then the checks.
    mutating func run(steps count: Int) async throws {
        for _ in 0..<count {
            try await step()
            steps += 1
        }
        faults.disable()
        databaseFaults?.disable()
        try await quietRound()
        try await check()
    }

    private mutating func step() async throws {
        clock.advance(by: Int64.random(in: 0...3, using: &random))
        let roll = Int.random(in: 0..<100, using: &random)
        let laptop = laptops[Int.random(in: 0..<laptops.count, using: &random)]
        switch roll {
        case 0..<32: try put(laptop)
        case 32..<40: try delete(laptop)
        case 40..<43: try restore(laptop)
        case 43..<58: try resolve(laptop)
        case 58..<93: try await sync(laptop)
        case 93..<96: try await server.restart()
        default: clock.advance(by: Int64.random(in: 50...3000, using: &random))
        }
    }

    /// Syncs one laptop; a sync that gives up after the faults is fine, any refusal is a failure.
    private mutating func sync(_ laptop: Laptop) async throws {
        syncs += 1
        do {
            _ = try await laptop.engine.sync()
        } catch let error as SyncError where error.isTransient {
            failedSyncs += 1
        } catch {
            throw HistoryFailure("\(laptop.name)'s sync failed: \(error)")
        }
    }

    /// Every laptop syncs, round after round, until a round moves nothing.
    private mutating func quietRound() async throws {
        for _ in 0..<8 {
            var moved = 0
            for laptop in laptops {
                do {
                    let report = try await laptop.engine.sync()
                    moved += report.pushed + report.pulled
                } catch {
                    throw HistoryFailure("\(laptop.name)'s sync failed in the quiet round: \(error)")
                }
            }
            if moved == 0 { return }
        }
        throw HistoryFailure("the laptops still move records after 8 quiet rounds")
    }

    // MARK: Local writes, recorded in the model

    /// The records a laptop may touch, chosen from small pools so that laptops meet on them.
    private mutating func record(for laptop: Laptop) -> (table: TableSchema, id: String, site: String) {
        let site = laptop.site == SiteID.all ? (Bool.random(using: &random) ? "S01" : "S02") : laptop.site
        if Int.random(in: 0..<3, using: &random) < 2 {
            return (TrialSchema.subjects, "\(site)-subject-\(Int.random(in: 0..<3, using: &random))", site)
        }
        return (TrialSchema.screenings, "\(site)-screening-\(Int.random(in: 0..<2, using: &random))", site)
    }

    private mutating func pick<T>(_ choices: [T]) -> T { choices[Int.random(in: 0..<choices.count, using: &random)] }

    /// A value for `field`, written every way a caller may write it: whole-number reals as integers
    /// or reals, integers as whole-number reals.
    private mutating func value(_ field: String, site: String) -> FieldValue {
        switch field {
        case "screening_no": .text(pick(["\(site)-001", "\(site)-002", "\(site)-003"]))
        case "sex": .text(pick(["F", "M"]))
        case "birth_date": .text(pick(["1984-03-12", "1990-04-02"]))
        case "status": .text(pick(["screening", "enrolled", "screen_failed"]))
        case "consent_date": .text(pick(["2026-11-02", "2026-11-03"]))
        case "weight_kg": pick([.real(68), .integer(68), .real(68.5), .real(90.5), .integer(75)])
        case "childbearing_potential": .integer(pick([0, 1]))
        case "date": .text(pick(["2026-11-20", "2026-11-21"]))
        case "sledai_2k": pick([.integer(6), .integer(12), .real(12)])
        case "inr": pick([.real(1.2), .real(1.8), .integer(1), .real(1)])
        case "ana_positive": .integer(pick([0, 1]))
        default: .null
        }
    }

    private mutating func put(_ laptop: Laptop) throws {
        let (table, id, site) = record(for: laptop)
        let exists = try laptop.replica.get(table.name, id: id) != nil
        if !exists && laptop.site == SiteID.all { return }
        let editable =
            table.name == "subjects"
            ? ["screening_no", "sex", "birth_date", "status", "consent_date", "weight_kg", "childbearing_potential"]
            : ["date", "sledai_2k", "inr", "ana_positive"]
        var values: [String: FieldValue] = [:]
        if !exists {
            values =
                table.name == "subjects"
                ? ["screening_no": value("screening_no", site: site)]
                : ["subject_id": .text("\(site)-subject-0"), "date": value("date", site: site)]
        }
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let field = pick(editable)
            values[field] = value(field, site: site)
        }
        let reason = exists ? pick(["Transcription error", "Source document updated"]) : nil
        guard let change = try recording(laptop, [(table.name, id)], { try laptop.replica.put(table.name, id: id, values, reason: reason) })?[0] else { return }
        // An edit of a live record stamps `_deleted` with the edit's own HLC (docs/PROTOCOL.md, "Delete versus edit").
        let edited = change.after.filter { $0.key != TableSchema.deletedColumn && change.before[$0.key]?.version != $0.value.version }
        if let latest = edited.values.map(\.version).max(), let before = change.before[TableSchema.deletedColumn], before.value == .null {
            guard change.after[TableSchema.deletedColumn]?.version == latest else {
                throw HistoryFailure(
                    "\(laptop.name)'s edit of the live \(table.name) \(id) at \(latest) left _deleted at \(String(describing: change.after[TableSchema.deletedColumn]))"
                )
            }
        }
    }

    private mutating func delete(_ laptop: Laptop) throws {
        let (table, id, _) = record(for: laptop)
        guard let record = try laptop.replica.get(table.name, id: id), record[TableSchema.deletedColumn] == .null else { return }
        let reason = pick(["Entered twice", "Consent withdrawn", "Wrong subject"])
        try recording(laptop, [(table.name, id)]) { try laptop.replica.delete(table.name, id: id, reason: reason) }
    }

    private mutating func restore(_ laptop: Laptop) throws {
        let (table, id, _) = record(for: laptop)
        guard let record = try laptop.replica.get(table.name, id: id), record[TableSchema.deletedColumn] != .null else { return }
        try recording(laptop, [(table.name, id)]) {
            try laptop.replica.put(table.name, id: id, [TableSchema.deletedColumn: .null], reason: "Corrected from the source document")
        }
    }

    private mutating func resolve(_ laptop: Laptop) throws {
        let open = try laptop.replica.conflicts().sorted { $0.id < $1.id }
        guard !open.isEmpty else { return }
        let conflict = pick(open)
        let choice: ResolutionChoice =
            switch Int.random(in: 0..<3, using: &random) {
            case 0: .keepWinner
            case 1: .takeLoser
            default: .value(conflict.field == TableSchema.deletedColumn ? .null : value(conflict.field, site: conflict.site))
            }
        let reason = pick(["Checked against the source document", "Confirmed with the site"])
        guard
            let change = try recording(
                laptop, [(conflict.table, conflict.recordID), (TableSchema.conflicts.name, conflict.id)],
                {
                    try laptop.replica.resolve(conflict: conflict.id, choice, reason: reason)
                })?[0]
        else { return }
        // The decided value is written with a fresh HLC, even when it is there already (docs/PROTOCOL.md, "Conflict records").
        let decided: FieldValue =
            switch choice {
            case .keepWinner: conflict.winner.value
            case .takeLoser: conflict.loser.value
            case .value(let value): value
            }
        resolutions[choice.name, default: 0] += 1
        let column = try TrialSchema.current.table(conflict.table).column(conflict.field)!
        guard let after = change.after[conflict.field], after.version != change.before[conflict.field]?.version,
            after.version.replica == laptop.replica.identity!.replicaID, after.value == column.normalize(decided)
        else {
            throw HistoryFailure(
                "\(laptop.name)'s resolution of \(conflict.id) (\(choice)) left \(conflict.table) \(conflict.recordID) \(conflict.field) at \(String(describing: change.after[conflict.field])), before \(String(describing: change.before[conflict.field]))"
            )
        }
    }

    /// The fields of a record before and after a local write.
    typealias Change = (before: [String: (version: Version, value: FieldValue)], after: [String: (version: Version, value: FieldValue)])

    /// Runs a local write and records in the model every field whose stamp it changed, with the
    /// value it left; returns each record's fields before and after. A write refused by a rule
    /// writes nothing, records nothing and returns nil.
    @discardableResult
    private mutating func recording(_ laptop: Laptop, _ records: [(table: String, id: String)], _ write: () throws -> Void) throws -> [Change]? {
        let before = try records.map { try Self.fields(laptop.replica, table: $0.table, id: $0.id) }
        do {
            try write()
        } catch is ValidationError {
            return nil
        } catch is ReplicaError {
            return nil
        }
        var changes: [Change] = []
        for (index, record) in records.enumerated() {
            let after = try Self.fields(laptop.replica, table: record.table, id: record.id)
            changes.append((before[index], after))
            for (field, now) in after where before[index][field]?.version != now.version {
                guard now.version.replica == laptop.replica.identity!.replicaID else {
                    throw HistoryFailure("\(laptop.name)'s write of \(record.table) \(record.id) \(field) is stamped by \(now.version.replica)")
                }
                writes[FieldKey(table: record.table, id: record.id, field: field), default: []].append(
                    Write(version: now.version, value: now.value, by: laptop.name))
            }
        }
        return changes
    }

    /// Every field of a record on a replica with its value and version.
    static func fields(_ replica: Replica, table: String, id: String) throws -> [String: (version: Version, value: FieldValue)] {
        let schema = try replica.schema.table(table)
        guard let record = try replica.get(table, id: id) else { return [:] }
        let stamps = try replica.writer.read { db -> FieldStamps? in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT s.hlc, a.replica, a.user, s.fields FROM _sitesync_shadows AS s
                        JOIN _sitesync_actors AS a ON a.actor = s.actor JOIN _sitesync_tables AS t ON t.code = s.tbl
                        WHERE t.name = ? AND s.id = ?
                        """,
                    arguments: [table, id]
                )
            else { return nil }
            return FieldStamps(base: Stamp(hlc: HLC(rawValue: row[0]), replica: row[1], user: row[2]), overrides: try FieldStamps.overrides(fromJSON: row[3]))
        }
        guard let stamps else { return [:] }
        return Dictionary(uniqueKeysWithValues: schema.columnNames.map { ($0, (stamps[$0].version, record[$0] ?? .null)) })
    }

    // MARK: Checks

    /// After the quiet round:
    /// - every laptop holds exactly the server's records of its scope, values and versions;
    /// - every field a laptop wrote holds its latest write (greatest version) on the server;
    /// - every value the server received is in its record's history;
    /// - every value overwritten by a concurrent write is in the conflict log, exactly once;
    /// - nothing waits in an outbox.
    mutating func check() async throws {
        let store = server.store
        for laptop in laptops {
            guard try laptop.replica.pendingCount() == 0 else { throw HistoryFailure("\(laptop.name) still has pending changes") }
            for table in Self.tables {
                let held = try laptop.replica.list(table.name, includeDeleted: true)
                let expected = try await serverRecords(table, site: laptop.site)
                guard Set(held.map(\.id)) == Set(expected.keys) else {
                    throw HistoryFailure("\(laptop.name) holds \(held.map(\.id).sorted()) of \(table.name), the server \(expected.keys.sorted())")
                }
                for record in held {
                    let local = try Self.fields(laptop.replica, table: table.name, id: record.id)
                    for (field, server) in expected[record.id]! where local[field]?.value != server.value || local[field]?.version != server.version {
                        throw HistoryFailure(
                            "\(laptop.name) holds \(table.name) \(record.id) \(field) = \(String(describing: local[field])), the server \(server)\n"
                                + (try await auditTrail(table: table.name, id: record.id))
                        )
                    }
                }
            }
        }
        var everything: [String: [String: [String: (version: Version, value: FieldValue)]]] = [:]
        for table in Self.tables { everything[table.name] = try await serverRecords(table, site: SiteID.all) }
        for (key, candidates) in writes {
            let latest = candidates.max { $0.version < $1.version }!
            let table = try TrialSchema.current.table(key.table)
            guard let server = everything[key.table]?[key.id]?[key.field] else {
                throw HistoryFailure("the server lost \(key)")
            }
            guard server.version == latest.version, server.value == table.column(key.field)!.normalize(latest.value) else {
                throw HistoryFailure(
                    "\(key) holds \(server.value) at \(server.version); its latest write is \(latest.value) at \(latest.version) by \(latest.by)")
            }
        }
        try await checkHistories(store)
        try await checkConflictLog(store)
        conflicts = try await StoreContents.count(store, "SELECT count(*) FROM conflicts")
        resolvedTwice = try await StoreContents.count(
            store,
            """
            SELECT count(*) FROM (SELECT record_id FROM audit WHERE tbl = 'conflicts'
            AND fields LIKE '%"decision"%' GROUP BY record_id HAVING count(DISTINCT replica) > 1) AS twice
            """
        )
    }

    /// The audit rows of a record, one a line, for a failure's report.
    private func auditTrail(table: String, id: String) async throws -> String {
        try await StoreContents.select(
            server.store,
            "SELECT replica, seq, fields, new_values, hlcs, bases, outcomes FROM audit WHERE tbl = \(literal(table)) AND record_id = \(literal(id)) ORDER BY id"
        ).map { "  audit: \($0)" }.joined(separator: "\n")
    }

    /// The server's records of `table` for `site` (every site for `*`), each field with its value and version.
    private func serverRecords(_ table: TableSchema, site: String) async throws -> [String: [String: (version: Version, value: FieldValue)]] {
        var records: [String: [String: (version: Version, value: FieldValue)]] = [:]
        let columns = table.columnNames.map { "t.\($0.quotedDatabaseIdentifier)" }.joined(separator: ", ")
        let rows = try await StoreContents.select(
            server.store,
            """
            SELECT r.id, r.hlc, r.replica, r."user", r.fields, \(columns) FROM records AS r
            JOIN \(table.name.quotedDatabaseIdentifier) AS t ON t.id = r.id
            WHERE r.tbl = \(literal(table.name))\(site == SiteID.all ? "" : " AND r.site_id = \(literal(site))")
            """
        )
        for row in rows {
            let stamps = FieldStamps(
                base: Stamp(hlc: HLC(rawValue: try row.integer(1)), replica: try row.text(2), user: try row.text(3)),
                overrides: try FieldStamps.overrides(fromJSON: row[4].textValue)
            )
            var fields: [String: (version: Version, value: FieldValue)] = [:]
            for (offset, name) in table.columnNames.enumerated() {
                fields[name] = (stamps[name].version, row[5 + offset])
            }
            records[try row.text(0)] = fields
        }
        return records
    }

    /// Every value in a push the server answered is in the record's history, with its writer and HLC.
    private func checkHistories(_ store: any SyncStore) async throws {
        let reviewer = Principal(role: .reviewer, site: nil)
        var histories: [String: RecordHistory] = [:]
        for request in received.all {
            for group in request.groups {
                let table = try TrialSchema.current.table(group.table)
                for row in group.rows {
                    let key = "\(group.table) \(row.id)"
                    if histories[key] == nil {
                        histories[key] = try await store.history(table: group.table, id: row.id, principal: reviewer)
                    }
                    guard let history = histories[key] else { throw HistoryFailure("the server has no history of \(key), which it received") }
                    let changes: [(replica: String, change: FieldHistory)] = history.entries.flatMap { entry in
                        (entry.changes ?? []).map { (replica: entry.replica, change: $0) }
                    }
                    if group.table == TableSchema.conflicts.name {
                        // A conflict's history shows each resolution received, with its decision and reason.
                        let values = Dictionary(uniqueKeysWithValues: zip(group.columns, row.values))
                        let found = history.entries.contains { entry in
                            entry.kind == "resolution" && entry.replica == request.replica && entry.conflict == row.id
                                && entry.decision.map(FieldValue.text) == values["decision"] && entry.reason.map(FieldValue.text) == values["reason"]
                        }
                        guard found else { throw HistoryFailure("the history of \(key) lacks the resolution \(values) from \(request.replica)") }
                        continue
                    }
                    for (index, field) in group.columns.enumerated() {
                        let value = table.column(field)!.normalize(row.values[index])
                        let hlc = row.hlc(at: index)
                        let found = changes.contains { received in
                            received.replica == request.replica && received.change.field == field && received.change.hlc == hlc && received.change.new == value
                        }
                        guard found else {
                            throw HistoryFailure("the history of \(key) lacks \(field) = \(value) at \(row.hlc(at: index)) from \(request.replica)")
                        }
                    }
                }
            }
        }
    }

    /// Replays every change the server received, in the order received, by the merge rule of
    /// docs/PROTOCOL.md ("Merge"), and compares the overwritten values it finds with the conflict log.
    private func checkConflictLog(_ store: any SyncStore) async throws {
        struct Logged: Hashable {
            var table: String
            var id: String
            var field: String
            var winner: Version
            var loser: Version
        }
        let audit = try await StoreContents.select(
            store, "SELECT tbl, record_id, replica, seq, fields, new_values, old_values, hlcs, bases FROM audit ORDER BY id")
        let logged = try await StoreContents.select(
            store, "SELECT table_name, record_id, field, winner_hlc, winner_replica, loser_hlc, loser_replica FROM conflicts"
        ).map {
            Logged(
                table: try $0.text(0), id: try $0.text(1), field: try $0.text(2),
                winner: Version(hlc: HLC(rawValue: try $0.integer(3)), replica: try $0.text(4)),
                loser: Version(hlc: HLC(rawValue: try $0.integer(5)), replica: try $0.text(6))
            )
        }
        let created = Dictionary(
            uniqueKeysWithValues: try await StoreContents.select(
                store, "SELECT id, CASE WHEN winner_hlc > loser_hlc THEN winner_hlc ELSE loser_hlc END FROM conflicts"
            ).map { (try $0.text(0), HLC(rawValue: try $0.integer(1))) }
        )
        guard Set(logged).count == logged.count else { throw HistoryFailure("the conflict log holds a pair of writes twice") }
        var state: [String: [String: (version: Version, value: FieldValue)]] = [:]
        var expected: Set<Logged> = []
        for row in audit {
            let tableName = try row.text(0)
            let id = try row.text(1)
            let replica = try row.text(2)
            let seq = HLC(rawValue: try row.integer(3))
            let table = try TrialSchema.current.table(tableName)
            let fields = try JSONDecoder().decode([String].self, from: Data(try row.text(4).utf8))
            let values = try JSONDecoder().decode([FieldValue].self, from: Data(try row.text(5).utf8))
            let hlcs = try row[7].textValue.map { try JSONDecoder().decode([HLC].self, from: Data($0.utf8)) }
            let bases = try row[8].textValue.map { try JSONDecoder().decode([Version?].self, from: Data($0.utf8)) }
            let key = "\(tableName) \(id)"
            if state[key] == nil {
                if tableName == TableSchema.conflicts.name {
                    // Conflict records are created by the server, stamped after both sides; then only resolved.
                    let version = Version(hlc: created[id]!, replica: "server")
                    var initial: [String: (version: Version, value: FieldValue)] = [:]
                    for name in table.columnNames { initial[name] = (version, name == "status" ? FieldValue.text("open") : .null) }
                    state[key] = initial
                } else if row[6] == .null {
                    // Created by this change: every field at its sequence number, defaults where not written.
                    let version = Version(hlc: seq, replica: replica)
                    var initial: [String: (version: Version, value: FieldValue)] = [:]
                    for column in table.columns { initial[column.name] = (version, column.defaultValue) }
                    state[key] = initial
                    for (index, field) in fields.enumerated() {
                        state[key]![field] = (Version(hlc: hlcs?[index] ?? seq, replica: replica), table.column(field)!.normalize(values[index]))
                    }
                    continue
                }
            }
            for (index, field) in fields.enumerated() {
                let incoming = Version(hlc: hlcs?[index] ?? seq, replica: replica)
                let value = table.column(field)!.normalize(values[index])
                let current = state[key]![field]!
                let base = bases?[index] ?? nil
                if incoming == current.version { continue }
                if base == current.version || (current.version.replica == replica && incoming > current.version) {
                    state[key]![field] = (incoming, value)
                } else if value == current.value {
                    if incoming > current.version { state[key]![field] = (incoming, value) }
                } else if incoming > current.version {
                    expected.insert(Logged(table: tableName, id: id, field: field, winner: incoming, loser: current.version))
                    state[key]![field] = (incoming, value)
                } else {
                    expected.insert(Logged(table: tableName, id: id, field: field, winner: current.version, loser: incoming))
                }
            }
        }
        let missing = expected.subtracting(logged)
        let extra = Set(logged).subtracting(expected)
        guard missing.isEmpty, extra.isEmpty else {
            throw HistoryFailure(
                "the conflict log misses \(missing.count) overwritten values (\(missing.first.map { "\($0)" } ?? "")) and holds \(extra.count) no concurrent write caused (\(extra.first.map { "\($0)" } ?? ""))"
            )
        }
    }
}

/// An SQL string literal: the histories' own ids and names, in the SQL both stores understand.
private func literal(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
}

extension FieldValue {
    /// The text of a text value; nil for any other.
    fileprivate var textValue: String? {
        if case .text(let text) = self { text } else { nil }
    }
}

extension [FieldValue] {
    /// The text of the cell at `index`.
    fileprivate func text(_ index: Int) throws -> String {
        guard let text = self[index].textValue else { throw HistoryFailure("cell \(index) of \(self) is not text") }
        return text
    }

    /// The integer of the cell at `index`.
    fileprivate func integer(_ index: Int) throws -> Int64 {
        guard case .integer(let value) = self[index] else { throw HistoryFailure("cell \(index) of \(self) is not an integer") }
        return value
    }
}

/// The one wall clock of a history, which every laptop (with its skew) and the server read.
final class SimulatedClock: Sendable {
    private let milliseconds = Mutex<Int64>(1_800_000_000_000)

    var now: Int64 { milliseconds.withLock { $0 } }

    func advance(by delta: Int64) { milliseconds.withLock { $0 += delta } }
}

/// What a history broke.
struct HistoryFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension ResolutionChoice {
    /// The decision's name, for the summary.
    var name: String {
        switch self {
        case .keepWinner: "keep winner"
        case .takeLoser: "take loser"
        case .value: "value"
        }
    }
}
