import Crypto

/// The hash chains that make the audit trail tamper-evident (docs/AUDIT.md, "Verifying the trail").
///
/// Each chained row stores `hash`: the SHA-256, in hex, of the hash of the row before it in its
/// chain (``genesis`` for the first) followed by the row's stored cells in a fixed order, each
/// written as a tag byte (0 for NULL, 1 for text), its length in bytes as 8 bytes big-endian, and
/// its UTF-8 bytes. A row changed, deleted or inserted without working out every later hash again
/// breaks the chain at that row.
public enum AuditChain {
    /// The hash a chain starts from.
    public static let genesis = String(repeating: "0", count: 64)

    /// The hash of a row whose cells are `cells`, after a row whose hash is `previous`.
    ///
    /// The bytes are laid out in one buffer and hashed in one call: on a push's hot path, one call
    /// per cell into the hash costs more than the hashing.
    public static func hash(previous: String, cells: [String?]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(previous.utf8.count + cells.reduce(0) { $0 + 9 + ($1?.utf8.count ?? 0) })
        bytes.append(contentsOf: previous.utf8)
        for cell in cells {
            guard let cell else {
                bytes.append(0)
                continue
            }
            let count = UInt64(cell.utf8.count)
            bytes.append(1)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: count >> UInt64(shift))) }
            bytes.append(contentsOf: cell.utf8)
        }
        let digest = bytes.withUnsafeBytes { SHA256.hash(data: $0) }
        return String(unsafeUninitializedCapacity: 64) { text in
            var index = 0
            for byte in digest {
                text[index] = hexDigits[Int(byte >> 4)]
                text[index + 1] = hexDigits[Int(byte & 0x0F)]
                index += 2
            }
            return 64
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}

extension JSONWriter {
    /// A JSON array of field values as text: how the audit trail stores a row's values, the same
    /// text on every store.
    public static func array(ofValues values: [FieldValue]) -> String {
        var rows = JSONRows(capacity: 2 + values.count * 16)
        rows.startRow()
        for value in values { rows.add(value) }
        rows.endRow()
        return String(rows.text.dropFirst().dropLast())
    }
}
