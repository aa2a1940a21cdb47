/// Reads JSON text from a byte buffer, value by value: the decoder of the sync messages' hot path.
///
/// A message decoder walks the text in the order it expects, so values go straight into their
/// typed fields with no intermediate tree. Strict about the grammar (RFC 8259): no trailing
/// commas, no control characters in strings, valid UTF-8, numbers as JSON writes them. Every error
/// names what was expected, what was found, and the byte offset.
public struct JSONReader {
    private let base: UnsafeRawBufferPointer
    private(set) var offset = 0
    /// How deeply an ignored value may nest, so hostile input cannot exhaust the stack.
    private static let maximumDepth = 64

    /// Reads from `bytes`, which must outlive the reader.
    public init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes
    }

    // MARK: Tokens

    @inline(__always) private func peekByte() -> UInt8? {
        offset < base.count ? base[offset] : nil
    }

    /// The next byte that is not whitespace, without consuming it.
    @inline(__always) mutating func peek() -> UInt8? {
        while offset < base.count {
            switch base[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return base[offset]
            }
        }
        return nil
    }

    /// Consumes `byte` if it comes next; returns whether it did.
    @inline(__always) mutating func consume(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        offset += 1
        return true
    }

    /// Consumes `byte`, or fails naming `what` the message expected there.
    @inline(__always) mutating func expect(_ byte: UInt8, _ what: @autoclosure () -> String) throws(JSONReadError) {
        guard consume(byte) else { throw error(expected: what()) }
    }

    /// Consumes `null` if it comes next; returns whether it did.
    mutating func consumeNull() throws(JSONReadError) -> Bool {
        guard peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    /// Requires that only whitespace is left.
    mutating func expectEnd() throws(JSONReadError) {
        if let byte = peek() {
            throw JSONReadError(message: "unexpected \(Self.describe(byte)) after the message", offset: offset)
        }
    }

    private mutating func literal(_ text: StaticString) throws(JSONReadError) {
        let start = offset
        var matched = true
        text.withUTF8Buffer { expected in
            if base.count - offset >= expected.count, expected.indices.allSatisfy({ base[offset + $0] == expected[$0] }) {
                offset += expected.count
            } else {
                matched = false
            }
        }
        guard matched else { throw JSONReadError(message: "malformed JSON: expected \(text)", offset: start) }
    }

    // MARK: Containers

    /// Reads an object, calling `member` with each key; `member` must read the key's value.
    ///
    /// A key given twice is refused: JSON leaves its meaning open (RFC 8259, 4), and two readers
    /// of one message must never see different values.
    mutating func object(_ what: @autoclosure () -> String, _ member: (inout JSONReader, String) throws(JSONReadError) -> Void) throws(JSONReadError) {
        try expect(UInt8(ascii: "{"), what())
        if consume(UInt8(ascii: "}")) { return }
        // Most objects have a few members: a list, searched, until it grows.
        var keys: [String] = []
        var manyKeys: Set<String> = []
        repeat {
            guard peek() == UInt8(ascii: "\"") else { throw error(expected: "a member name in \(what())") }
            let start = offset
            let key = try string("a member name")
            let repeated: Bool
            if keys.count < 16 {
                repeated = keys.contains(key)
                keys.append(key)
            } else {
                if manyKeys.isEmpty { manyKeys = Set(keys) }
                repeated = !manyKeys.insert(key).inserted
            }
            if repeated {
                throw JSONReadError(message: "the member \"\(TextRules.quotable(key, maxBytes: 40))\" appears twice in \(what())", offset: start)
            }
            try expect(UInt8(ascii: ":"), "':' after \"\(TextRules.quotable(key, maxBytes: 40))\"")
            try member(&self, key)
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: "}"), "',' or '}' in \(what())")
    }

    /// Checks that `bytes` hold one JSON value and nothing else: the grammar, UTF-8, nesting at most
    /// 64 deep, no member twice in an object. Messages read by `JSONDecoder` pass this first.
    public static func checkWellFormed(_ bytes: UnsafeRawBufferPointer) throws(JSONReadError) {
        var reader = JSONReader(bytes)
        try reader.skipValue()
        try reader.expectEnd()
    }

    /// Reads an array, calling `element` for each element; `element` must read it.
    mutating func array(_ what: @autoclosure () -> String, _ element: (inout JSONReader) throws(JSONReadError) -> Void) throws(JSONReadError) {
        try expect(UInt8(ascii: "["), what())
        if consume(UInt8(ascii: "]")) { return }
        repeat {
            try element(&self)
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: "]"), "',' or ']' in \(what())")
    }

    /// Whether the array being read has another element: consumes the ',' before it, or the closing ']'.
    mutating func hasNextElement(in what: @autoclosure () -> String) throws(JSONReadError) -> Bool {
        if consume(UInt8(ascii: ",")) { return true }
        try expect(UInt8(ascii: "]"), "',' or ']' in \(what())")
        return false
    }

    /// Skips one value of any kind: members the message does not know are ignored.
    mutating func skipValue(depth: Int = 0) throws(JSONReadError) {
        guard depth < Self.maximumDepth else {
            throw JSONReadError(message: "values nested more than \(Self.maximumDepth) deep", offset: offset)
        }
        switch peek() {
        case UInt8(ascii: "{"):
            try object("an object") { (reader, _) throws(JSONReadError) in try reader.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            try array("an array") { (reader) throws(JSONReadError) in try reader.skipValue(depth: depth + 1) }
        case UInt8(ascii: "\""): _ = try string("a string")
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try number("a value")
        }
    }

    // MARK: Scalars

    mutating func bool(_ what: @autoclosure () -> String) throws(JSONReadError) -> Bool {
        switch peek() {
        case UInt8(ascii: "t"):
            try literal("true")
            return true
        case UInt8(ascii: "f"):
            try literal("false")
            return false
        default: throw error(expected: "true or false for \(what())")
        }
    }

    /// An integer written without a fraction or exponent.
    mutating func integer(_ what: @autoclosure () -> String) throws(JSONReadError) -> Int64 {
        let start = offset
        guard case .integer(let value) = try number(what()) else {
            throw JSONReadError(message: "expected an integer for \(what())", offset: start)
        }
        return value
    }

    mutating func string(_ what: @autoclosure () -> String) throws(JSONReadError) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw error(expected: "String for \(what())") }
        let start = offset
        offset += 1
        var nonASCII: UInt8 = 0
        while offset < base.count {
            let unit = base[offset]
            if unit == UInt8(ascii: "\"") {
                let text = UnsafeRawBufferPointer(rebasing: base[(start + 1)..<offset])
                offset += 1
                if nonASCII & 0x80 == 0 { return String(decoding: text, as: UTF8.self) }
                guard let valid = String(validating: text, as: UTF8.self) else {
                    throw JSONReadError(message: "a string that is not valid UTF-8", offset: start)
                }
                return valid
            }
            if unit == UInt8(ascii: "\\") { return try escapedString(from: start) }
            if unit < 0x20 { throw JSONReadError(message: "malformed JSON: a control character in a string", offset: offset) }
            nonASCII |= unit
            offset += 1
        }
        throw JSONReadError(message: "malformed JSON: a string is not closed", offset: start)
    }

    /// The slow path of `string`: the string at `start` has escapes.
    private mutating func escapedString(from start: Int) throws(JSONReadError) -> String {
        var utf8: [UInt8] = Array(UnsafeRawBufferPointer(rebasing: base[(start + 1)..<offset]))
        while offset < base.count {
            let unit = base[offset]
            offset += 1
            switch unit {
            case UInt8(ascii: "\""):
                guard let text = String(validating: utf8, as: UTF8.self) else {
                    throw JSONReadError(message: "a string that is not valid UTF-8", offset: start)
                }
                return text
            case UInt8(ascii: "\\"):
                guard let escape = peekByte() else { break }
                offset += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = UInt32(try hex4())
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard base.count - offset >= 6, base[offset] == UInt8(ascii: "\\"), base[offset + 1] == UInt8(ascii: "u") else {
                            throw JSONReadError(message: "malformed JSON: an unpaired surrogate in a string", offset: offset)
                        }
                        offset += 2
                        let low = UInt32(try hex4())
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw JSONReadError(message: "malformed JSON: an unpaired surrogate in a string", offset: offset)
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let decoded = Unicode.Scalar(scalar) else {
                        throw JSONReadError(message: "malformed JSON: an unpaired surrogate in a string", offset: offset)
                    }
                    utf8.append(contentsOf: UTF8.encode(decoded)!)
                default:
                    throw JSONReadError(message: "malformed JSON: an invalid escape in a string", offset: offset - 2)
                }
            default:
                if unit < 0x20 { throw JSONReadError(message: "malformed JSON: a control character in a string", offset: offset - 1) }
                utf8.append(unit)
            }
        }
        throw JSONReadError(message: "malformed JSON: a string is not closed", offset: start)
    }

    private mutating func hex4() throws(JSONReadError) -> UInt16 {
        guard base.count - offset >= 4 else { throw JSONReadError(message: "malformed JSON: an invalid \\u escape", offset: offset) }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let unit = base[offset]
            let digit: UInt8
            switch unit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = unit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = unit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = unit - UInt8(ascii: "A") + 10
            default: throw JSONReadError(message: "malformed JSON: an invalid \\u escape", offset: offset)
            }
            value = value << 4 | UInt16(digit)
            offset += 1
        }
        return value
    }

    /// A number: an integer when written without fraction or exponent and within 64 bits, else a real.
    mutating func number(_ what: @autoclosure () -> String) throws(JSONReadError) -> FieldValue {
        guard let first = peek(), first == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw error(expected: "a number for \(what())")
        }
        let start = offset
        let negative = first == UInt8(ascii: "-")
        if negative { offset += 1 }
        func isDigit(_ unit: UInt8?) -> Bool { unit.map { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } ?? false }
        guard isDigit(peekByte()) else { throw JSONReadError(message: "malformed JSON: a number needs digits", offset: start) }
        var magnitude: UInt64 = 0
        var overflow = false
        let integerStart = offset
        while let unit = peekByte(), isDigit(unit) {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(unit - UInt8(ascii: "0")))
            magnitude = sum
            overflow = overflow || o1 || o2
            offset += 1
        }
        if base[integerStart] == UInt8(ascii: "0"), offset - integerStart > 1 {
            throw JSONReadError(message: "malformed JSON: a number with a leading zero", offset: start)
        }
        var isInteger = true
        if peekByte() == UInt8(ascii: ".") {
            isInteger = false
            offset += 1
            guard isDigit(peekByte()) else { throw JSONReadError(message: "malformed JSON: a number needs digits after '.'", offset: start) }
            while isDigit(peekByte()) { offset += 1 }
        }
        if peekByte() == UInt8(ascii: "e") || peekByte() == UInt8(ascii: "E") {
            isInteger = false
            offset += 1
            if peekByte() == UInt8(ascii: "+") || peekByte() == UInt8(ascii: "-") { offset += 1 }
            guard isDigit(peekByte()) else { throw JSONReadError(message: "malformed JSON: a number needs digits in its exponent", offset: start) }
            while isDigit(peekByte()) { offset += 1 }
        }
        if isInteger, !overflow {
            if negative, magnitude <= UInt64(Int64.max) + 1 { return .integer(magnitude == UInt64(Int64.max) + 1 ? .min : -Int64(magnitude)) }
            if !negative, magnitude <= UInt64(Int64.max) { return .integer(Int64(magnitude)) }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: base[start..<offset]), as: UTF8.self)
        guard let real = Double(text), real.isFinite else {
            throw JSONReadError(message: "the number \(TextRules.quotable(text, maxBytes: 40)) is out of range", offset: start)
        }
        return .real(real)
    }

    /// A field value: null, a number or a string.
    mutating func value(_ what: @autoclosure () -> String) throws(JSONReadError) -> FieldValue {
        switch peek() ?? 0 {
        case UInt8(ascii: "\""): return .text(try string(what()))
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number(what())
        default: throw error(expected: "null, a number or a string for \(what())")
        }
    }

    // MARK: Errors

    /// An error at the current offset: a type mismatch when a JSON value starts here, malformed JSON otherwise.
    func error(expected: String) -> JSONReadError {
        guard offset < base.count else {
            return JSONReadError(message: "malformed JSON: the text ends where \(expected) was expected", offset: offset)
        }
        let found = base[offset]
        switch found {
        case UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "\""), UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"),
            UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return JSONReadError(message: "expected \(expected), found \(Self.describe(found))", offset: offset)
        default:
            return JSONReadError(message: "malformed JSON: expected \(expected), found \(Self.describe(found))", offset: offset)
        }
    }

    private static func describe(_ byte: UInt8) -> String {
        switch byte {
        case UInt8(ascii: "{"): "an object"
        case UInt8(ascii: "["): "an array"
        case UInt8(ascii: "\""): "a string"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): "a boolean"
        case UInt8(ascii: "n"): "null"
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): "a number"
        case 0x21...0x7E: "'\(Character(Unicode.Scalar(byte)))'"
        default: "byte 0x\(String(byte, radix: 16))"
        }
    }
}

/// Text that is not the JSON message expected, with what was wrong and where.
public struct JSONReadError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was expected and found.
    public var message: String
    /// The byte offset in the text.
    public var offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}
