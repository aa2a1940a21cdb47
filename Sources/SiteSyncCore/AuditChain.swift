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
    public static func hash(previous: String, cells: [String?]) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(previous.utf8))
        for cell in cells {
            guard var cell else {
                hasher.update(data: [0])
                continue
            }
            let count = UInt64(cell.utf8.count).bigEndian
            hasher.update(data: [1])
            withUnsafeBytes(of: count) { hasher.update(bufferPointer: $0) }
            cell.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in hasher.finalize() {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
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
