import Crypto
import Foundation

/// How a person's local transaction is signed and how the server, or an inspector, checks that a
/// pushed field is one of its writes (docs/AUTHORSHIP.md).
///
/// Each field a transaction leaves written is a *leaf*: the SHA-256 of the field's table, record,
/// name, HLC, value and reason for change. The leaves, in the order of (HLC, field name), are the
/// leaves of a Merkle tree; the person's Ed25519 key signs the tree's root with the replica, the
/// person, the key, the transaction's first and last HLC and the number of leaves
/// (``message(username:keyID:first:last:count:root:)``). A push carries, per transaction,
/// the signature and a multiproof: the positions of the leaves it carries and the hashes of the
/// subtrees it does not (fields a later write replaced, or fields left to another batch). So one
/// signature covers a transaction however its fields are later batched or overwritten, and a
/// whole transaction in one push needs no proof at all.
public enum Authorship {
    /// A SHA-256 digest, stored inline.
    public typealias Hash = SIMD32<UInt8>

    /// One field as a transaction left it written: what a leaf commits to.
    public struct FieldWrite: Sendable, Equatable {
        public var table: String
        public var id: String
        public var field: String
        public var hlc: HLC
        /// The value as the column normalises it (``ColumnSchema/normalize(_:)``), so that the
        /// laptop, which reads it from SQLite, and the server, which reads it from JSON, agree.
        public var value: FieldValue
        /// The reason for change recorded with the write, if any.
        public var reason: String?

        public init(table: String, id: String, field: String, hlc: HLC, value: FieldValue, reason: String?) {
            (self.table, self.id, self.field, self.hlc, self.value, self.reason) = (table, id, field, hlc, value, reason)
        }
    }

    /// The leaf of `write`: SHA-256 of the byte 0, then the table, record id and field as
    /// length-prefixed UTF-8 (4 bytes big-endian, then the bytes), the HLC as 8 bytes big-endian,
    /// the value (a tag byte: 0 null, 1 integer as 8 bytes big-endian two's complement, 2 real as
    /// its IEEE 754 bits big-endian with -0 written as 0, 3 text length-prefixed), and the reason
    /// (0 for none, 1 then the text length-prefixed).
    public static func leaf(_ write: FieldWrite) -> Hash {
        // Laid out on the stack and hashed in one call: a push hashes a leaf per field.
        var count = 1 + 12 + write.table.utf8.count + write.id.utf8.count + write.field.utf8.count + 8 + 1 + 1
        switch write.value {
        case .null: break
        case .integer, .real: count += 8
        case .text(let text): count += 4 + text.utf8.count
        }
        if let reason = write.reason { count += 4 + reason.utf8.count }
        return withUnsafeTemporaryAllocation(byteCount: count, alignment: 1) { buffer in
            var offset = 0
            func byte(_ value: UInt8) {
                buffer[offset] = value
                offset += 1
            }
            func integer<T: FixedWidthInteger>(_ value: T) {
                withUnsafeBytes(of: value.bigEndian) { bytes in
                    for index in bytes.indices { buffer[offset + index] = bytes[index] }
                }
                offset += MemoryLayout<T>.size
            }
            func text(_ string: String) {
                var string = string
                integer(UInt32(truncatingIfNeeded: string.utf8.count))
                string.withUTF8 { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + bytes.count]).copyMemory(from: UnsafeRawBufferPointer(bytes))
                    offset += bytes.count
                }
            }
            byte(0)
            text(write.table)
            text(write.id)
            text(write.field)
            integer(UInt64(bitPattern: write.hlc.rawValue))
            switch write.value {
            case .null: byte(0)
            case .integer(let value):
                byte(1)
                integer(UInt64(bitPattern: value))
            case .real(let real):
                byte(2)
                integer((real == 0 ? 0 : real).bitPattern)
            case .text(let string):
                byte(3)
                text(string)
            }
            if let reason = write.reason {
                byte(1)
                text(reason)
            } else {
                byte(0)
            }
            return hash(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: buffer[0..<offset])))
        }
    }

    /// A digest as a hash, copied in one load (``Hash``'s initialiser from a sequence takes a byte at a time).
    private static func hash(_ digest: SHA256Digest) -> Hash {
        digest.withUnsafeBytes { $0.loadUnaligned(as: Hash.self) }
    }

    /// The hash of an inner node: SHA-256 of the byte 1 and its two children.
    static func node(_ left: Hash, _ right: Hash) -> Hash {
        withUnsafeTemporaryAllocation(byteCount: 65, alignment: 1) { buffer in
            buffer[0] = 1
            withUnsafeBytes(of: left) { bytes in
                for index in 0..<32 { buffer[1 + index] = bytes[index] }
            }
            withUnsafeBytes(of: right) { bytes in
                for index in 0..<32 { buffer[33 + index] = bytes[index] }
            }
            return hash(SHA256.hash(data: UnsafeRawBufferPointer(buffer)))
        }
    }

    /// The Merkle root of `leaves` (at least one): pairs are hashed level by level, and the last
    /// node of a level with an odd number of nodes moves up unchanged.
    public static func root(of leaves: [Hash]) -> Hash {
        precondition(!leaves.isEmpty, "a transaction signs at least one field")
        var level = leaves
        while level.count > 1 {
            level = stride(from: 0, to: level.count, by: 2).map { $0 + 1 < level.count ? node(level[$0], level[$0 + 1]) : level[$0] }
        }
        return level[0]
    }

    /// The hashes that prove the leaves at `indices` (ascending, distinct) of `leaves`: the
    /// subtrees they cannot work out themselves, level by level, left to right.
    public static func proof(of indices: [Int], in leaves: [Hash]) -> [Hash] {
        var levels = [leaves]
        while levels[levels.count - 1].count > 1 {
            let level = levels[levels.count - 1]
            levels.append(stride(from: 0, to: level.count, by: 2).map { $0 + 1 < level.count ? node(level[$0], level[$0 + 1]) : level[$0] })
        }
        var proof: [Hash] = []
        var known = indices
        for level in levels.dropLast() {
            var next: [Int] = []
            var position = 0
            while position < known.count {
                let index = known[position]
                if index % 2 == 0, index + 1 < level.count, position + 1 < known.count, known[position + 1] == index + 1 {
                    position += 2
                } else {
                    if index % 2 == 1 || index + 1 < level.count { proof.append(level[index ^ 1]) }
                    position += 1
                }
                next.append(index / 2)
            }
            known = next
        }
        return proof
    }

    /// Why a multiproof does not give a root.
    public struct ProofError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The root of a tree of `count` leaves of which `known` (ascending, distinct indices) are
    /// given, with `proof` holding the rest as ``proof(of:in:)`` lays it out.
    public static func root(count: Int, known: [(index: Int, leaf: Hash)], proof: [Hash]) throws(ProofError) -> Hash {
        guard count > 0, !known.isEmpty else { throw ProofError(description: "a signature covers at least one field") }
        for (position, entry) in known.enumerated() {
            guard entry.index >= 0, entry.index < count, position == 0 || known[position - 1].index < entry.index else {
                throw ProofError(description: "the fields' positions must be distinct, ascending and below the signature's count of \(count)")
            }
        }
        var level = known.map { ($0.index, $0.leaf) }
        var width = count
        var used = 0
        func nextProof() throws(ProofError) -> Hash {
            guard used < proof.count else { throw ProofError(description: "the proof has too few hashes") }
            used += 1
            return proof[used - 1]
        }
        while width > 1 {
            var next: [(Int, Hash)] = []
            next.reserveCapacity(level.count)
            var position = 0
            while position < level.count {
                let (index, hash) = level[position]
                if index % 2 == 1 {
                    next.append((index / 2, node(try nextProof(), hash)))
                } else if index + 1 == width {
                    next.append((index / 2, hash))
                } else if position + 1 < level.count, level[position + 1].0 == index + 1 {
                    next.append((index / 2, node(hash, level[position + 1].1)))
                    position += 1
                } else {
                    next.append((index / 2, node(hash, try nextProof())))
                }
                position += 1
            }
            level = next
            width = (width + 1) / 2
        }
        guard used == proof.count else { throw ProofError(description: "the proof has more hashes than the fields need") }
        return level[0].1
    }

    /// The bytes a person's key signs for a transaction: the text `sitesync-authorship-v1`, a zero
    /// byte, the username and key id length-prefixed, the first and last HLC (8 bytes big-endian
    /// each), the number of leaves (4 bytes big-endian) and the root.
    ///
    /// The key is the person's on one laptop (the server registered it from that laptop's replica),
    /// so the key id names where the transaction was signed: the message needs no replica id, and a
    /// laptop that rejoins under a new replica id still pushes what it signed before.
    public static func message(username: String, keyID: String, first: HLC, last: HLC, count: Int, root: Hash) -> [UInt8] {
        var bytes = Array("sitesync-authorship-v1".utf8) + [0]
        for text in [username, keyID] {
            append(UInt32(truncatingIfNeeded: text.utf8.count), to: &bytes)
            bytes.append(contentsOf: text.utf8)
        }
        append(UInt64(bitPattern: first.rawValue), to: &bytes)
        append(UInt64(bitPattern: last.rawValue), to: &bytes)
        append(UInt32(truncatingIfNeeded: count), to: &bytes)
        for index in 0..<32 { bytes.append(root[index]) }
        return bytes
    }

    /// Whether `signature` (base64) is the Ed25519 signature of `message` by the public key
    /// `publicKey` (32 bytes in base64, as `person_keys` stores it).
    public static func isValidSignature(_ signature: String, of message: [UInt8], publicKey: String) -> Bool {
        guard let raw = Data(base64Encoded: publicKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
            let bytes = Data(base64Encoded: signature)
        else { return false }
        return key.isValidSignature(bytes, for: message)
    }

    /// A hash as the wire carries it: base64 of its 32 bytes.
    public static func base64(_ hash: Hash) -> String { Data(bytes(hash)).base64EncodedString() }

    /// The hash `text` carries in base64; nil when it is not 32 bytes of base64.
    public static func hash(base64 text: String) -> Hash? {
        guard let data = Data(base64Encoded: text), data.count == 32 else { return nil }
        return Hash(data)
    }

    /// The hash's 32 bytes.
    public static func bytes(_ hash: Hash) -> [UInt8] { (0..<32).map { hash[$0] } }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}
