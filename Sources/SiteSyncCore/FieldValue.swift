/// One field's value as SQLite holds it: null, an integer, a real number or text.
///
/// On the wire a value is a bare JSON scalar: `null`, a number or a string.
public enum FieldValue: Hashable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    /// Whether the value is SQL `NULL`.
    public var isNull: Bool { self == .null }

    /// The value as text, for display; `nil` for null.
    public var displayText: String? {
        switch self {
        case .null: nil
        case .integer(let value): String(value)
        case .real(let value): value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .text(let value): value
        }
    }
}

extension FieldValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let text = try? container.decode(String.self) {
            self = .text(text)
        } else if let integer = try? container.decode(Int64.self) {
            self = .integer(integer)
        } else if let real = try? container.decode(Double.self) {
            self = .real(real)
        } else {
            throw DecodingError.typeMismatch(
                FieldValue.self,
                .init(codingPath: decoder.codingPath, debugDescription: "A field value must be null, a number or a string.")
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .integer(let value): try container.encode(value)
        case .real(let value): try container.encode(value)
        case .text(let value): try container.encode(value)
        }
    }
}

extension FieldValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: "null"
        case .text(let value): "\"\(value)\""
        default: displayText ?? ""
        }
    }
}

extension FieldValue {
    /// The value as ``description`` writes it, cut to at most 64 bytes of UTF-8 for an error message,
    /// so that a refusal never echoes a huge value back.
    public var briefDescription: String { TextRules.brief(description, maxBytes: 64) }
}
