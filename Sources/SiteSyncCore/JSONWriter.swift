/// Writes JSON text straight into a byte array: the encoder of the sync messages' hot path.
///
/// Foundation's `JSONEncoder` goes through `Encodable`'s containers, boxing every value; for the
/// arrays of scalars that make up a push or a pull page it runs at about 30 MB/s here. This writer
/// appends bytes directly. The messages keep their `Codable` conformance, and both paths produce
/// the same JSON values (the tests decode each with the other).
public struct JSONWriter: Sendable {
    /// The JSON text written so far, UTF-8.
    public private(set) var bytes: [UInt8] = []

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) mutating func byte(_ byte: UInt8) {
        bytes.append(byte)
    }

    @inline(__always) mutating func ascii(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// A quoted object key followed by a colon.
    mutating func key(_ key: StaticString) {
        byte(UInt8(ascii: "\""))
        ascii(key)
        ascii("\":")
    }

    mutating func null() {
        ascii("null")
    }

    mutating func bool(_ value: Bool) {
        value ? ascii("true") : ascii("false")
    }

    mutating func integer(_ value: Int64) {
        if value < 0 {
            byte(UInt8(ascii: "-"))
            // The magnitude of Int64.min does not fit an Int64, but it does fit a UInt64.
            unsigned(value.magnitude)
        } else {
            unsigned(UInt64(value))
        }
    }

    private mutating func unsigned(_ value: UInt64) {
        guard value >= 10 else {
            byte(UInt8(ascii: "0") &+ UInt8(value))
            return
        }
        // At most 20 digits, written backwards into a scratch buffer.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            var rest = value
            while rest > 0 {
                start -= 1
                digits[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    /// A finite number in its shortest round-trip form; JSON has no infinities or NaN.
    mutating func real(_ value: Double) throws(JSONWriteError) {
        guard value.isFinite else { throw JSONWriteError(message: "\(value) cannot be written as JSON") }
        bytes.append(contentsOf: value.description.utf8)
    }

    /// A quoted string, with the escapes JSON requires.
    mutating func string(_ value: String) {
        byte(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for index in utf8.indices {
                let unit = utf8[index]
                guard unit < 0x20 || unit == UInt8(ascii: "\"") || unit == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                escape(unit)
                start = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        byte(UInt8(ascii: "\""))
    }

    private mutating func escape(_ unit: UInt8) {
        byte(UInt8(ascii: "\\"))
        switch unit {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): byte(unit)
        case UInt8(ascii: "\n"): byte(UInt8(ascii: "n"))
        case UInt8(ascii: "\r"): byte(UInt8(ascii: "r"))
        case UInt8(ascii: "\t"): byte(UInt8(ascii: "t"))
        case 0x08: byte(UInt8(ascii: "b"))
        case 0x0C: byte(UInt8(ascii: "f"))
        default:
            func hex(_ digit: UInt8) -> UInt8 { digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10 }
            ascii("u00")
            byte(hex(unit >> 4))
            byte(hex(unit & 0xF))
        }
    }

    /// Exactly the bytes ``string(_:)`` writes for `text`: its UTF-8, the quotes, two bytes for a
    /// quote, a backslash or a control character with a short escape (`\n`, `\r`, `\t`, `\b`,
    /// `\f`), six for any other control character (`\u00XX`).
    public static func writtenBytes(of text: String) -> Int {
        var text = text
        return text.withUTF8 { utf8 in
            var bytes = utf8.count + 2
            for unit in utf8 where unit < 0x20 || unit == UInt8(ascii: "\"") || unit == UInt8(ascii: "\\") {
                switch unit {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"), 0x08, 0x0C: bytes += 1
                default: bytes += 5
                }
            }
            return bytes
        }
    }

    /// The most bytes ``string(_:)`` writes for `text`: its UTF-8, the quotes, and the escapes,
    /// six bytes for a control character.
    public static func maximumBytes(of text: String) -> Int {
        var bytes = 2
        for unit in text.utf8 {
            bytes += unit >= 0x20 ? (unit == UInt8(ascii: "\"") || unit == UInt8(ascii: "\\") ? 2 : 1) : 6
        }
        return bytes
    }

    /// The most bytes ``value(_:)`` writes for `value`.
    public static func maximumBytes(of value: FieldValue) -> Int {
        switch value {
        case .null: 4
        case .integer: 20
        case .real: 24
        case .text(let text): maximumBytes(of: text)
        }
    }

    /// A field value: null, a number or a string.
    mutating func value(_ value: FieldValue) throws(JSONWriteError) {
        switch value {
        case .null: null()
        case .integer(let integer): self.integer(integer)
        case .real(let real): try self.real(real)
        case .text(let text): string(text)
        }
    }

    /// A JSON array of strings.
    mutating func strings(_ values: [String]) {
        byte(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { byte(UInt8(ascii: ",")) }
            string(value)
        }
        byte(UInt8(ascii: "]"))
    }
}

extension JSONWriter {
    /// A JSON array of strings as text: how a list of ids is handed to SQLite's `json_each`.
    public static func array(of strings: [String]) -> String {
        var writer = JSONWriter(capacity: 2 + strings.count * 40)
        writer.strings(strings)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// A JSON array of strings and nulls as text.
    public static func array(ofOptional strings: [String?]) -> String {
        array(strings, capacity: 2 + strings.count * 24) { writer, text in
            if let text { writer.string(text) } else { writer.null() }
        }
    }

    /// A JSON array of HLCs as text, each its packed integer (as `HLC`'s `Codable` form).
    public static func array(ofHLCs hlcs: [HLC]) -> String {
        array(hlcs, capacity: 2 + hlcs.count * 18) { writer, hlc in writer.integer(hlc.rawValue) }
    }

    /// A JSON array of versions and nulls as text, each version `[hlc, replica]` (as `Version`'s
    /// `Codable` form).
    public static func array(ofVersions versions: [Version?]) -> String {
        array(versions, capacity: 2 + versions.count * 48) { writer, version in
            guard let version else { return writer.null() }
            writer.byte(UInt8(ascii: "["))
            writer.integer(version.hlc.rawValue)
            writer.byte(UInt8(ascii: ","))
            writer.string(version.replica)
            writer.byte(UInt8(ascii: "]"))
        }
    }

    private static func array<Element>(_ elements: [Element], capacity: Int, _ write: (inout JSONWriter, Element) -> Void) -> String {
        var writer = JSONWriter(capacity: capacity)
        writer.byte(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { writer.byte(UInt8(ascii: ",")) }
            write(&writer, element)
        }
        writer.byte(UInt8(ascii: "]"))
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

/// A value JSON cannot represent: an infinite or NaN number.
public struct JSONWriteError: Error, CustomStringConvertible, Sendable {
    /// What could not be written.
    public var message: String
    public var description: String { message }
}

/// Rows for a set-based statement, as one JSON array of arrays (`[[…],[…]]`): a store hands the
/// whole batch to the database in one parameter, which the statement unpacks
/// (`jsonb_array_elements` in PostgreSQL).
public struct JSONRows: Sendable {
    private var writer: JSONWriter
    private var inRow = false
    private var cellsInRow = 0
    /// Number of rows written.
    public private(set) var count = 0

    /// Creates an empty list with room for `capacity` bytes.
    public init(capacity: Int = 1024) {
        writer = JSONWriter(capacity: capacity)
        writer.byte(UInt8(ascii: "["))
    }

    /// Starts a row.
    public mutating func startRow() {
        precondition(!inRow, "JSONRows: a row is open")
        if count > 0 { writer.byte(UInt8(ascii: ",")) }
        writer.byte(UInt8(ascii: "["))
        inRow = true
        cellsInRow = 0
        count += 1
    }

    private mutating func cell() {
        precondition(inRow, "JSONRows: no row is open")
        if cellsInRow > 0 { writer.byte(UInt8(ascii: ",")) }
        cellsInRow += 1
    }

    /// Adds a field value; values are validated finite before they reach a store.
    public mutating func add(_ value: FieldValue) {
        cell()
        do {
            try writer.value(value)
        } catch {
            writer.null()
        }
    }

    /// Adds a string, or null.
    public mutating func add(_ text: String?) {
        cell()
        if let text { writer.string(text) } else { writer.null() }
    }

    /// Adds an integer, or null.
    public mutating func add(_ integer: Int64?) {
        cell()
        if let integer { writer.integer(integer) } else { writer.null() }
    }

    /// Ends the row.
    public mutating func endRow() {
        precondition(inRow, "JSONRows: no row is open")
        writer.byte(UInt8(ascii: "]"))
        inRow = false
    }

    /// The JSON text.
    public var text: String {
        var closed = writer
        closed.byte(UInt8(ascii: "]"))
        return String(decoding: closed.bytes, as: UTF8.self)
    }
}
