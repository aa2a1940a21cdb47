import SiteSyncCore

// The push and pull driver loops, written once above the stores.
//
// A store opens its transaction and hands the rules what it reads and writes in it, one method per
// step of ``PushTransaction`` or ``PullTransaction``; the loops below ask the rules for the next
// step, call the store's method for it, and hand the answer back, until the rules finish. A store
// only says how it reads and writes: the order of the steps, which is the safety property (the
// replica's lock before the sites' heads, every read before the writes), is the rules'.
//
// Each loop has two forms. A SQLite transaction is a synchronous closure on the connection's queue
// (GRDB's `write { db in … }`), which cannot await; a PostgreSQL transaction awaits each statement.
// Swift cannot abstract over `async`, so the two forms sit side by side here and map the same
// steps to the same methods.

/// What a store reads and writes for a push, in the push's one transaction: synchronously.
package protocol PushStorage {
    /// Locks the replica's state and reads it; nil for a replica that never pushed.
    mutating func lockReplica(_ replica: String) throws -> StoredReplica?
    /// The sites of the stored records among `keys`.
    mutating func sites(of keys: [RecordKey]) throws -> [RecordKey: String]
    /// Locks the heads of `sites` (in the order given) and reads them; 0 for a site without one.
    mutating func lockHeads(_ sites: [String]) throws -> [String: Int64]
    /// The stored records among `keys`, with their stamps and values.
    mutating func records(_ keys: [RecordKey]) throws -> [RecordKey: ServerRecord]
    /// The value each version wrote to each field, from the audit trail; null when it wrote none.
    mutating func writtenValues(_ keys: [WrittenValueKey]) throws -> [WrittenValueKey: FieldValue]
    /// The conflicts among `ids` logged already.
    mutating func loggedConflicts(_ ids: [String]) throws -> Set<String>
    /// Writes everything the push writes.
    mutating func write(_ writes: PushWrites) throws
}

/// What a store reads and writes for a push, in the push's one transaction: awaiting each statement.
package protocol AsyncPushStorage {
    /// Locks the replica's state and reads it; nil for a replica that never pushed.
    mutating func lockReplica(_ replica: String) async throws -> StoredReplica?
    /// The sites of the stored records among `keys`.
    mutating func sites(of keys: [RecordKey]) async throws -> [RecordKey: String]
    /// Locks the heads of `sites` (in the order given) and reads them; 0 for a site without one.
    mutating func lockHeads(_ sites: [String]) async throws -> [String: Int64]
    /// The stored records among `keys`, with their stamps and values.
    mutating func records(_ keys: [RecordKey]) async throws -> [RecordKey: ServerRecord]
    /// The value each version wrote to each field, from the audit trail; null when it wrote none.
    mutating func writtenValues(_ keys: [WrittenValueKey]) async throws -> [WrittenValueKey: FieldValue]
    /// The conflicts among `ids` logged already.
    mutating func loggedConflicts(_ ids: [String]) async throws -> Set<String>
    /// Writes everything the push writes.
    mutating func write(_ writes: PushWrites) async throws
}

extension PushTransaction {
    /// Applies `push` by `principal` through `storage`, inside the store's open transaction.
    package static func run(_ push: CheckedPush, principal: Principal, in storage: inout some PushStorage) throws -> PushOutcome {
        var transaction = PushTransaction(push, principal: principal)
        var step = try transaction.next(nil)
        while true {
            switch step {
            case .lockReplica(let replica): step = try transaction.next(.replica(try storage.lockReplica(replica)))
            case .readSites(let keys): step = try transaction.next(.sites(try storage.sites(of: keys)))
            case .lockHeads(let sites): step = try transaction.next(.heads(try storage.lockHeads(sites)))
            case .readRecords(let keys): step = try transaction.next(.records(try storage.records(keys)))
            case .readWrittenValues(let keys): step = try transaction.next(.writtenValues(try storage.writtenValues(keys)))
            case .readLoggedConflicts(let ids): step = try transaction.next(.loggedConflicts(try storage.loggedConflicts(ids)))
            case .write(let writes):
                try storage.write(writes)
                step = try transaction.next(.written)
            case .finished(let outcome): return outcome
            }
        }
    }

    /// Applies `push` by `principal` through `storage`, inside the store's open transaction.
    package static func run(_ push: CheckedPush, principal: Principal, in storage: inout some AsyncPushStorage) async throws -> PushOutcome {
        var transaction = PushTransaction(push, principal: principal)
        var step = try transaction.next(nil)
        while true {
            switch step {
            case .lockReplica(let replica): step = try transaction.next(.replica(try await storage.lockReplica(replica)))
            case .readSites(let keys): step = try transaction.next(.sites(try await storage.sites(of: keys)))
            case .lockHeads(let sites): step = try transaction.next(.heads(try await storage.lockHeads(sites)))
            case .readRecords(let keys): step = try transaction.next(.records(try await storage.records(keys)))
            case .readWrittenValues(let keys): step = try transaction.next(.writtenValues(try await storage.writtenValues(keys)))
            case .readLoggedConflicts(let ids): step = try transaction.next(.loggedConflicts(try await storage.loggedConflicts(ids)))
            case .write(let writes):
                try await storage.write(writes)
                step = try transaction.next(.written)
            case .finished(let outcome): return outcome
            }
        }
    }
}

/// What a store reads for a pull page, in one read transaction (one snapshot): synchronously.
package protocol PullStorage {
    /// Every site the server holds records of, in site order.
    mutating func sites() throws -> [String]
    /// The state of `replica`; nil for a replica that never pushed.
    mutating func replicaState(_ replica: String) throws -> StoredReplica?
    /// The records of `site` after `after`, in sequence order, at most `limit`, with their stamps.
    mutating func records(site: String, after: Int64, limit: Int) throws -> [PullTransaction.PulledRecord]
    /// The values of the records `ids` of each table, in the order of the table's columns.
    mutating func values(_ tables: [(table: TableSchema, ids: [String])]) throws -> [RecordKey: [FieldValue]]
}

/// What a store reads for a pull page, in one read transaction (one snapshot): awaiting each statement.
package protocol AsyncPullStorage {
    /// Every site the server holds records of, in site order.
    mutating func sites() async throws -> [String]
    /// The state of `replica`; nil for a replica that never pushed.
    mutating func replicaState(_ replica: String) async throws -> StoredReplica?
    /// The records of `site` after `after`, in sequence order, at most `limit`, with their stamps.
    mutating func records(site: String, after: Int64, limit: Int) async throws -> [PullTransaction.PulledRecord]
    /// The values of the records `ids` of each table, in the order of the table's columns.
    mutating func values(_ tables: [(table: TableSchema, ids: [String])]) async throws -> [RecordKey: [FieldValue]]
}

extension PullTransaction {
    /// Reads a page of `request` by `principal` through `storage`, inside the store's open read transaction.
    package static func run(
        _ request: PullRequest, principal: Principal, schema: Schema, byteBudget: Int, in storage: inout some PullStorage
    ) throws -> PullBatch {
        var transaction = PullTransaction(request, principal: principal, schema: schema, byteBudget: byteBudget)
        var step = try transaction.next(nil)
        while true {
            switch step {
            case .readSites: step = try transaction.next(.sites(try storage.sites()))
            case .readReplica(let replica): step = try transaction.next(.replica(try storage.replicaState(replica)))
            case .readRecords(let site, let after, let limit):
                step = try transaction.next(.records(try storage.records(site: site, after: after, limit: limit)))
            case .readValues(let tables): step = try transaction.next(.values(try storage.values(tables)))
            case .finished(let batch): return batch
            }
        }
    }

    /// Reads a page of `request` by `principal` through `storage`, inside the store's open read transaction.
    package static func run(
        _ request: PullRequest, principal: Principal, schema: Schema, byteBudget: Int, in storage: inout some AsyncPullStorage
    ) async throws -> PullBatch {
        var transaction = PullTransaction(request, principal: principal, schema: schema, byteBudget: byteBudget)
        var step = try transaction.next(nil)
        while true {
            switch step {
            case .readSites: step = try transaction.next(.sites(try await storage.sites()))
            case .readReplica(let replica): step = try transaction.next(.replica(try await storage.replicaState(replica)))
            case .readRecords(let site, let after, let limit):
                step = try transaction.next(.records(try await storage.records(site: site, after: after, limit: limit)))
            case .readValues(let tables): step = try transaction.next(.values(try await storage.values(tables)))
            case .finished(let batch): return batch
            }
        }
    }
}
