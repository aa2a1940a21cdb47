/// A batch of local changes pushed by one replica: `POST /v1/push`, protocol v1.
///
/// Changes are grouped by table, user and the set of fields they change, so each record is one
/// compact array: `[id, seq, meta, value…]`, values in the order of the group's `c`.
public struct PushRequest: Codable, Sendable, Equatable {
    /// The pushing replica.
    public var replica: String
    /// The changes, grouped.
    public var groups: [ChangeGroup]
    /// The greatest sequence number the server has acknowledged to this replica, when the replica
    /// knows it; nil from replicas of earlier builds.
    public var acked: HLC?
    /// The ``fingerprint``s of the pushes this replica sent since that acknowledgement without
    /// receiving an answer, this one included. When the server applied more under the replica's id
    /// than `acked`, its last push must be one of these, or another copy of the replica's file sent
    /// it (`409 replica_diverged`).
    public var sent: [String]?

    /// The signatures of the local transactions whose fields the push carries, with the proofs
    /// that tie each pushed field to one (docs/AUTHORSHIP.md).
    public var signatures: [PushSignature]?

    /// Creates a push.
    public init(replica: String, groups: [ChangeGroup], acked: HLC? = nil, sent: [String]? = nil, signatures: [PushSignature]? = nil) {
        self.replica = replica
        self.groups = groups
        self.acked = acked
        self.sent = sent
        self.signatures = signatures
    }

    /// Number of records in the push.
    public var recordCount: Int { groups.reduce(0) { $0 + $1.rows.count } }

    /// What identifies this push among a replica's pushes: 16 hex digits of a 64-bit FNV-1a hash of
    /// every row's table, id and sequence number, in order.
    ///
    /// Two pushes of one replica never share a sequence number, so this tells the replica's own
    /// retried push from a push made by a copy of its file. It guards against accidents (a copied
    /// or restored file), not forgery: forging a push needs the replica's credential anyway.
    public var fingerprint: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) {
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            hash ^= 0x1F
            hash = hash &* 0x0000_0100_0000_01b3
        }
        for group in groups {
            mix(group.table.utf8)
            for row in group.rows {
                mix(row.id.utf8)
                withUnsafeBytes(of: row.seq.rawValue.littleEndian) { mix($0) }
            }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// A person's signature of one local transaction, and the proof that ties the push's fields of
/// that transaction to it (docs/AUTHORSHIP.md, "What a push carries").
public struct PushSignature: Codable, Sendable, Equatable {
    /// The author's username.
    public var username: String
    /// The id of the author's key on the pushing replica.
    public var keyID: String
    /// The transaction's first HLC.
    public var first: HLC
    /// The transaction's last HLC.
    public var last: HLC
    /// The number of fields the transaction left written: the leaves of its tree.
    public var count: Int
    /// The Ed25519 signature of ``Authorship/message(username:keyID:first:last:count:root:)``, base64.
    public var signature: String
    /// The positions among the leaves of the push's fields in `[first, last]`, in the order of
    /// (HLC, field name), as runs `[start, length]`.
    public var positions: [[Int]]
    /// The multiproof's hashes, base64 (``Authorship/proof(of:in:)``).
    public var proof: [String]

    /// Creates a signature entry.
    public init(username: String, keyID: String, first: HLC, last: HLC, count: Int, signature: String, positions: [[Int]], proof: [String]) {
        (self.username, self.keyID, self.first, self.last, self.count) = (username, keyID, first, last, count)
        (self.signature, self.positions, self.proof) = (signature, positions, proof)
    }

    /// The positions, one per field, from their runs; nil when a run is malformed or the runs
    /// name more than `limit` positions.
    public func expandedPositions(limit: Int) -> [Int]? {
        var expanded: [Int] = []
        for run in positions {
            guard run.count == 2, run[0] >= 0, run[1] > 0, run[1] <= limit - expanded.count else { return nil }
            expanded.append(contentsOf: run[0]..<(run[0] + run[1]))
        }
        return expanded
    }

    /// Runs `[start, length]` of ascending `positions`.
    public static func runs(_ positions: [Int]) -> [[Int]] {
        var runs: [[Int]] = []
        for position in positions {
            if let last = runs.last, last[0] + last[1] == position {
                runs[runs.count - 1][1] += 1
            } else {
                runs.append([position, 1])
            }
        }
        return runs
    }

    enum CodingKeys: String, CodingKey {
        case username = "u"
        case keyID = "k"
        case first = "f"
        case last = "l"
        case count = "n"
        case signature = "s"
        case positions = "i"
        case proof = "p"
    }
}

/// Changes to one table, by one user, all changing the same fields.
public struct ChangeGroup: Codable, Sendable, Equatable {
    /// The table.
    public var table: String
    /// The user recorded on the replica when the changes were made.
    public var user: String
    /// The fields every row of the group changes, in the order of the row's values.
    public var columns: [String]
    /// The records.
    public var rows: [ChangeRow]

    /// Creates a group.
    public init(table: String, user: String, columns: [String], rows: [ChangeRow]) {
        self.table = table
        self.user = user
        self.columns = columns
        self.rows = rows
    }

    enum CodingKeys: String, CodingKey {
        case table = "t"
        case user = "u"
        case columns = "c"
        case rows = "r"
    }
}

/// One record's pending change: new values of the group's fields, their versions and their bases.
public struct ChangeRow: Sendable, Equatable {
    /// The record id.
    public var id: String
    /// The replica's sequence number of the change: the HLC of its latest local write, strictly
    /// increasing on one replica. The server applies a row once, when `seq` is above the last it applied.
    public var seq: HLC
    /// The new values, one per field of the group.
    public var values: [FieldValue]
    /// The HLC of each field's write, when not all equal to `seq`.
    public var hlcs: [HLC]?
    /// The version each field had on the replica before it was changed (nil entries: a new field),
    /// or nil for a record created on the replica.
    public var bases: [Version?]?
    /// The reason for change given for each field (nil entries: none), or nil when no field has one
    /// (``ReasonForChange``).
    public var reasons: [String?]?

    /// Creates a row.
    public init(id: String, seq: HLC, values: [FieldValue], hlcs: [HLC]? = nil, bases: [Version?]? = nil, reasons: [String?]? = nil) {
        self.id = id
        self.seq = seq
        self.values = values
        self.hlcs = hlcs
        self.bases = bases
        self.reasons = reasons
    }

    /// The HLC of the write of field number `index`.
    public func hlc(at index: Int) -> HLC { hlcs?[index] ?? seq }

    /// The base version of field number `index`; nil when the replica had no value before.
    public func base(at index: Int) -> Version? { bases?[index] ?? nil }

    /// The reason for change of field number `index`, if one was given.
    public func reason(at index: Int) -> String? { reasons?[index] ?? nil }

    /// Whether the row carries anything besides its values: field HLCs, bases or reasons.
    var hasMeta: Bool { hlcs != nil || bases != nil || reasons != nil }
}

extension ChangeRow: Codable {
    private struct Meta: Codable {
        var h: [HLC]?
        var b: [Version?]?
        var w: [String?]?
    }

    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        id = try container.decode(String.self)
        seq = try container.decode(HLC.self)
        if try container.decodeNil() {
            hlcs = nil
            bases = nil
            reasons = nil
        } else {
            let meta = try container.decode(Meta.self)
            hlcs = meta.h
            bases = meta.b
            reasons = meta.w
        }
        var values: [FieldValue] = []
        if let count = container.count { values.reserveCapacity(max(0, count - 3)) }
        while !container.isAtEnd {
            values.append(try container.decode(FieldValue.self))
        }
        self.values = values
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(id)
        try container.encode(seq)
        if hasMeta {
            try container.encode(Meta(h: hlcs, b: bases, w: reasons))
        } else {
            try container.encodeNil()
        }
        for value in values { try container.encode(value) }
    }
}

extension Version: Codable {
    // A version travels as [hlc, replica].
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        self.init(hlc: try container.decode(HLC.self), replica: try container.decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(hlc)
        try container.encode(replica)
    }
}

/// The server's answer to a push.
public struct PushResponse: Codable, Sendable, Equatable {
    /// The greatest sequence number the server has applied for this replica; every pending change at
    /// or below it is on the server.
    public var acked: HLC
    /// Records applied by this request (0 for a retried batch).
    public var applied: Int
    /// Field changes of this request that lost to a concurrent write, or overwrote one, and were logged.
    public var conflicts: Int
    /// The server's clock, which the replica advances past.
    public var hlc: HLC

    /// Creates a push response.
    public init(acked: HLC, applied: Int, conflicts: Int, hlc: HLC) {
        self.acked = acked
        self.applied = applied
        self.conflicts = conflicts
        self.hlc = hlc
    }
}
