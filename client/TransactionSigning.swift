import Crypto
import Foundation
import GRDB
import SiteSyncCore

/// The signatures of the local transactions of signed-in people (docs/AUTHORSHIP.md), kept until
/// nothing is pending (``TransactionSignature/forgetPushed(_:)``).
enum SignatureSQL {
    static let table = """
        CREATE TABLE _sitesync_signatures (
            first INTEGER PRIMARY KEY,          -- the transaction's first HLC
            last INTEGER NOT NULL,              -- its last HLC
            username TEXT NOT NULL,
            key_id TEXT NOT NULL,
            count INTEGER NOT NULL CHECK (count > 0),
            root BLOB NOT NULL,                 -- the Merkle root of its leaves
            signature BLOB NOT NULL,            -- Ed25519 over Authorship.message
            leaves BLOB NOT NULL                -- the leaves' hashes, 32 bytes each, in order
        );
        """
}

/// A transaction's signature as the laptop keeps it.
package struct TransactionSignature: Sendable, Equatable {
    package var first: HLC
    package var last: HLC
    package var username: String
    package var keyID: String
    package var leaves: [Authorship.Hash]
    package var root: Authorship.Hash
    package var signature: Data

    /// The signed message.
    package var message: [UInt8] {
        Authorship.message(username: username, keyID: keyID, first: first, last: last, count: leaves.count, root: root)
    }

    /// Forgets every signature once nothing is pending: the fields each covered are on the server.
    /// While anything is pending the signatures stay, since a record edited again keeps fields an
    /// older transaction signed, whatever its place in the outbox.
    static func forgetPushed(_ db: Database) throws {
        try db.cachedStatement(sql: "DELETE FROM _sitesync_signatures WHERE NOT EXISTS (SELECT 1 FROM _sitesync_outbox)").execute()
    }

    /// A kept signature without its leaves.
    package struct Range {
        package var first: HLC
        package var last: HLC
        package var username: String
        package var keyID: String
        package var count: Int
        package var signature: Data
    }

    /// The kept signatures whose range meets `range`, oldest first, without their leaves.
    package static func ranges(_ db: Database, overlapping range: ClosedRange<HLC>) throws -> [Range] {
        try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT first, last, username, key_id, count, signature FROM _sitesync_signatures WHERE first <= ? AND last >= ? ORDER BY first"),
            arguments: [range.upperBound.rawValue, range.lowerBound.rawValue]
        ).map { row in
            Range(
                first: HLC(rawValue: row["first"]), last: HLC(rawValue: row["last"]), username: row["username"], keyID: row["key_id"],
                count: row["count"], signature: row["signature"])
        }
    }

    /// The leaves of the kept signature starting at `first`.
    package static func leaves(_ db: Database, first: HLC) throws -> [Authorship.Hash] {
        let data = try Data.fetchOne(db, sql: "SELECT leaves FROM _sitesync_signatures WHERE first = ?", arguments: [first.rawValue]) ?? Data()
        return stride(from: 0, to: data.count - 31, by: 32).map { Authorship.Hash(data[data.startIndex + $0..<data.startIndex + $0 + 32]) }
    }

    /// The signatures kept whose range meets `range`, oldest first.
    package static func fetchAll(_ db: Database, overlapping range: ClosedRange<HLC> = .zero...HLC(rawValue: .max)) throws -> [TransactionSignature] {
        try Row.fetchAll(
            db,
            sql: "SELECT first, last, username, key_id, root, signature, leaves FROM _sitesync_signatures WHERE first <= ? AND last >= ? ORDER BY first",
            arguments: [range.upperBound.rawValue, range.lowerBound.rawValue]
        ).map { row in
            let leaves: Data = row["leaves"]
            let root: Data = row["root"]
            return TransactionSignature(
                first: HLC(rawValue: row["first"]), last: HLC(rawValue: row["last"]), username: row["username"], keyID: row["key_id"],
                leaves: stride(from: 0, to: leaves.count, by: 32).map { Authorship.Hash(leaves[leaves.startIndex + $0..<leaves.startIndex + $0 + 32]) },
                root: Authorship.Hash(root), signature: row["signature"])
        }
    }
}

/// The signing key of the person signed in, for the transaction about to run.
struct TransactionSigner {
    var username: String
    var keyID: String
    var key: Curve25519.Signing.PrivateKey
}

extension Replica {
    /// The signer of a write transaction starting now: the person signed in, with the key their
    /// sign-in unwrapped; nil when nobody is (the write is then signed by nobody, and the server
    /// takes it under the laptop's label with no proven author: docs/AUTHORSHIP.md).
    func transactionSigner() throws -> TransactionSigner? {
        guard let identity = try? requireIdentity(), let session = try currentSession(identity, at: state.clock.wallMilliseconds)?.session,
            let raw = Data(base64Encoded: session.privateKey), let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { return nil }
        return TransactionSigner(username: session.username, keyID: session.keyID, key: key)
    }

    /// Signs what the transaction in `db` wrote after `start` (the clock when it began): every
    /// field whose stamp is past it, as the transaction leaves it. Signs nothing when the
    /// transaction wrote nothing.
    func signTransaction(_ db: Database, after start: HLC, signer: TransactionSigner) throws {
        let end = try ClockSQL.read(db)
        guard end > start else { return }
        let writes = try writesSince(db, start)
        guard !writes.isEmpty else { return }
        let leaves = writes.map(Authorship.leaf)
        let root = Authorship.root(of: leaves)
        let (first, last) = (writes.map(\.hlc).min()!, writes.map(\.hlc).max()!)
        let message = Authorship.message(username: signer.username, keyID: signer.keyID, first: first, last: last, count: leaves.count, root: root)
        let signature = try signer.key.signature(for: message)
        var bytes = Data(capacity: leaves.count * 32)
        for leaf in leaves { bytes.append(contentsOf: Authorship.bytes(leaf)) }
        try db.execute(
            sql: "INSERT INTO _sitesync_signatures (first, last, username, key_id, count, root, signature, leaves) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: [first.rawValue, last.rawValue, signer.username, signer.keyID, leaves.count, Data(Authorship.bytes(root)), signature, bytes])
    }

    /// The fields written since `start` (exclusive), in the order of their leaves: by HLC, then field name.
    func writesSince(_ db: Database, _ start: HLC) throws -> [Authorship.FieldWrite] {
        let identity = try requireIdentity()
        let shadows = try Row.fetchAll(
            db,
            sql: """
                SELECT \(ShadowRow.columns) FROM _sitesync_outbox AS o
                JOIN _sitesync_shadows AS s ON s.tbl = o.tbl AND s.id = o.id
                JOIN _sitesync_actors AS a ON a.actor = s.actor
                WHERE o.seq > ?
                """,
            arguments: [start.rawValue])
        var writes: [Authorship.FieldWrite] = []
        for row in shadows {
            let shadow = try ShadowRow(row)
            guard let name = tableCodes.name(shadow.table), let table = try? schema.table(name),
                let data = try Row.fetchOne(db, sql: "\(table.selectSQL) WHERE id = ?", arguments: [shadow.id])
            else { continue }
            let reasons = try shadow.reasons() ?? [:]
            for (index, column) in table.columns.enumerated() {
                let stamp = shadow.stamps[column.name]
                guard stamp.version.hlc > start, stamp.version.replica == identity.replicaID else { continue }
                writes.append(
                    Authorship.FieldWrite(
                        table: name, id: shadow.id, field: column.name, hlc: stamp.version.hlc, value: column.normalize(data.fieldValue(atIndex: index + 1)),
                        reason: reasons[column.name]))
            }
        }
        return writes.sorted { ($0.hlc, $0.field) < ($1.hlc, $1.field) }
    }

    /// The signatures covering the fields of `entries`, each with the positions of those fields
    /// among its leaves and the multiproof of the rest (docs/AUTHORSHIP.md, "What a push carries").
    /// A field no kept signature covers is signed by nobody, and travels without a proof.
    ///
    /// A batch carrying every field a transaction signed (its records all in the batch, none
    /// written again since) needs no proof and no hashing here: its positions are all the leaves.
    /// Otherwise the pushed fields' leaves are worked out and found among the kept ones.
    func pushSignatures(_ db: Database, for entries: [OutboxBatch.Entry]) throws -> [PushSignature] {
        guard let lowest = entries.lazy.flatMap(\.hlcs).min(), let highest = entries.lazy.flatMap(\.hlcs).max() else { return [] }
        let kept = try TransactionSignature.ranges(db, overlapping: lowest...highest)
        guard !kept.isEmpty else { return [] }
        /// Per kept signature, the batch's fields in its range, as (entry, field) positions.
        var covered: [[(entry: Int, field: Int)]] = Array(repeating: [], count: kept.count)
        for (entryIndex, entry) in entries.enumerated() {
            for (fieldIndex, hlc) in entry.hlcs.enumerated() {
                // The last signature starting at or before the field's HLC, if its range holds it.
                var (low, high) = (0, kept.count)
                while low < high {
                    let middle = (low + high) / 2
                    if kept[middle].first <= hlc { low = middle + 1 } else { high = middle }
                }
                guard low > 0, kept[low - 1].last >= hlc else { continue }
                covered[low - 1].append((entryIndex, fieldIndex))
            }
        }
        var signatures: [PushSignature] = []
        for (range, fields) in zip(kept, covered) where !fields.isEmpty {
            let indices: [Int]
            var proof: [String] = []
            if fields.count == range.count {
                indices = Array(0..<range.count)
            } else {
                let leaves = try TransactionSignature.leaves(db, first: range.first)
                var positions: [Authorship.Hash: Int] = [:]
                positions.reserveCapacity(leaves.count)
                for (position, leaf) in leaves.enumerated() { positions[leaf] = position }
                let found = fields.compactMap { field -> Int? in
                    let entry = entries[field.entry]
                    let name = entry.columns[field.field]
                    let value = (try? schema.table(entry.table))?.column(name).map { $0.normalize(entry.values[field.field]) } ?? entry.values[field.field]
                    let write = Authorship.FieldWrite(
                        table: entry.table, id: entry.id, field: name, hlc: entry.hlcs[field.field], value: value, reason: entry.reasons?[field.field] ?? nil)
                    return positions[Authorship.leaf(write)]
                }
                guard found.count == fields.count else { continue }
                indices = found.sorted()
                proof = Authorship.proof(of: indices, in: leaves).map(Authorship.base64)
            }
            signatures.append(
                PushSignature(
                    username: range.username, keyID: range.keyID, first: range.first, last: range.last, count: range.count,
                    signature: range.signature.base64EncodedString(), positions: PushSignature.runs(indices), proof: proof))
        }
        return signatures
    }
}
