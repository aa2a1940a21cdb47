/// The bulk messages of protocol v1, push requests and pull responses, read and written with
/// ``JSONReader`` and ``JSONWriter``: the same JSON as their `Codable` conformances, several times
/// faster. Members a message does not know are skipped, as `JSONDecoder` does.
///
/// ```swift
/// let bytes = try push.wireJSON()
/// let decoded = try bytes.withUnsafeBytes { try PushRequest(wireJSON: $0) }
/// ```
extension PushRequest {
    /// The request as JSON text.
    public func wireJSON() throws(JSONWriteError) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + recordCount * 256)
        writer.byte(UInt8(ascii: "{"))
        writer.key("replica")
        writer.string(replica)
        writer.byte(UInt8(ascii: ","))
        writer.key("groups")
        writer.byte(UInt8(ascii: "["))
        for (index, group) in groups.enumerated() {
            if index > 0 { writer.byte(UInt8(ascii: ",")) }
            try group.write(to: &writer)
        }
        writer.byte(UInt8(ascii: "]"))
        if let acked {
            writer.byte(UInt8(ascii: ","))
            writer.key("acked")
            writer.integer(acked.rawValue)
        }
        if let sent {
            writer.byte(UInt8(ascii: ","))
            writer.key("sent")
            writer.strings(sent)
        }
        if let signatures {
            writer.byte(UInt8(ascii: ","))
            writer.key("signatures")
            writer.byte(UInt8(ascii: "["))
            for (index, signature) in signatures.enumerated() {
                if index > 0 { writer.byte(UInt8(ascii: ",")) }
                signature.write(to: &writer)
            }
            writer.byte(UInt8(ascii: "]"))
        }
        writer.byte(UInt8(ascii: "}"))
        return writer.bytes
    }

    /// Reads a request from JSON text.
    public init(wireJSON bytes: UnsafeRawBufferPointer) throws(JSONReadError) {
        var reader = JSONReader(bytes)
        var replica: String?
        var groups: [ChangeGroup]?
        var acked: HLC?
        var sent: [String]?
        var signatures: [PushSignature]?
        try reader.object("a push request") { (reader, key) throws(JSONReadError) in
            switch key {
            case "replica": replica = try reader.string("replica")
            case "acked":
                if try !reader.consumeNull() { acked = HLC(rawValue: try reader.integer("acked")) }
            case "sent":
                if try reader.consumeNull() { break }
                var read: [String] = []
                try reader.array("sent") { (reader) throws(JSONReadError) in read.append(try reader.string("a push fingerprint")) }
                sent = read
            case "groups":
                var read: [ChangeGroup] = []
                try reader.array("groups") { (reader) throws(JSONReadError) in read.append(try ChangeGroup(reading: &reader)) }
                groups = read
            case "signatures":
                if try reader.consumeNull() { break }
                var read: [PushSignature] = []
                try reader.array("signatures") { (reader) throws(JSONReadError) in read.append(try PushSignature(reading: &reader)) }
                signatures = read
            default: try reader.skipValue()
            }
        }
        try reader.expectEnd()
        guard let replica else { throw JSONReadError(message: "missing \"replica\"", offset: 0) }
        guard let groups else { throw JSONReadError(message: "missing \"groups\"", offset: 0) }
        self.init(replica: replica, groups: groups, acked: acked, sent: sent, signatures: signatures)
    }
}

extension PushSignature {
    func write(to writer: inout JSONWriter) {
        writer.byte(UInt8(ascii: "{"))
        writer.key("u")
        writer.string(username)
        writer.byte(UInt8(ascii: ","))
        writer.key("k")
        writer.string(keyID)
        writer.byte(UInt8(ascii: ","))
        writer.key("f")
        writer.integer(first.rawValue)
        writer.byte(UInt8(ascii: ","))
        writer.key("l")
        writer.integer(last.rawValue)
        writer.byte(UInt8(ascii: ","))
        writer.key("n")
        writer.integer(Int64(count))
        writer.byte(UInt8(ascii: ","))
        writer.key("s")
        writer.string(signature)
        writer.byte(UInt8(ascii: ","))
        writer.key("i")
        writer.byte(UInt8(ascii: "["))
        for (index, run) in positions.enumerated() {
            if index > 0 { writer.byte(UInt8(ascii: ",")) }
            writer.byte(UInt8(ascii: "["))
            for (offset, number) in run.enumerated() {
                if offset > 0 { writer.byte(UInt8(ascii: ",")) }
                writer.integer(Int64(number))
            }
            writer.byte(UInt8(ascii: "]"))
        }
        writer.byte(UInt8(ascii: "]"))
        writer.byte(UInt8(ascii: ","))
        writer.key("p")
        writer.strings(proof)
        writer.byte(UInt8(ascii: "}"))
    }

    init(reading reader: inout JSONReader) throws(JSONReadError) {
        var (username, keyID, signature): (String?, String?, String?) = (nil, nil, nil)
        var (first, last, count): (Int64?, Int64?, Int64?) = (nil, nil, nil)
        var positions: [[Int]] = []
        var proof: [String] = []
        try reader.object("a signature") { (reader, key) throws(JSONReadError) in
            switch key {
            case "u": username = try reader.string("a signature's username \"u\"")
            case "k": keyID = try reader.string("a signature's key id \"k\"")
            case "s": signature = try reader.string("a signature \"s\"")
            case "f": first = try reader.integer("a signature's first HLC \"f\"")
            case "l": last = try reader.integer("a signature's last HLC \"l\"")
            case "n": count = try reader.integer("a signature's count \"n\"")
            case "i":
                try reader.array("a signature's positions \"i\"") { (reader) throws(JSONReadError) in
                    var run: [Int] = []
                    try reader.array("a run of positions [start, length]") { (reader) throws(JSONReadError) in
                        run.append(Int(clamping: try reader.integer("a position")))
                    }
                    positions.append(run)
                }
            case "p":
                try reader.array("a signature's proof \"p\"") { (reader) throws(JSONReadError) in proof.append(try reader.string("a proof hash")) }
            default: try reader.skipValue()
            }
        }
        guard let username, let keyID, let signature, let first, let last, let count, let count = Int(exactly: count) else {
            throw JSONReadError(message: "a signature needs \"u\", \"k\", \"f\", \"l\", \"n\" and \"s\"", offset: 0)
        }
        self.init(
            username: username, keyID: keyID, first: HLC(rawValue: first), last: HLC(rawValue: last), count: count, signature: signature,
            positions: positions, proof: proof)
    }
}

extension ChangeGroup {
    func write(to writer: inout JSONWriter) throws(JSONWriteError) {
        try writer.group(table: table, user: user, columns: columns, rows: rows) { (row, writer) throws(JSONWriteError) in try row.write(to: &writer) }
    }

    init(reading reader: inout JSONReader) throws(JSONReadError) {
        let group = try reader.group("a change group", withUser: true) { (reader) throws(JSONReadError) in try ChangeRow(reading: &reader) }
        self.init(table: group.table, user: group.user!, columns: group.columns, rows: group.rows)
    }
}

extension ChangeRow {
    /// The most bytes the row takes in a push message: its id, sequence number, meta and values,
    /// with their separators.
    public var maximumEncodedBytes: Int {
        var bytes = 36 + JSONWriter.maximumBytes(of: id)
        for value in values { bytes += 1 + JSONWriter.maximumBytes(of: value) }
        if let hlcs { bytes += 6 + 21 * hlcs.count }
        if let bases { bytes += bases.reduce(6) { $0 + 1 + ($1.map { 24 + JSONWriter.maximumBytes(of: $0.replica) } ?? 4) } }
        if let reasons { bytes += reasons.reduce(6) { $0 + 1 + ($1.map(JSONWriter.maximumBytes(of:)) ?? 4) } }
        return bytes
    }

    func write(to writer: inout JSONWriter) throws(JSONWriteError) {
        writer.byte(UInt8(ascii: "["))
        writer.string(id)
        writer.byte(UInt8(ascii: ","))
        writer.integer(seq.rawValue)
        writer.byte(UInt8(ascii: ","))
        if !hasMeta {
            writer.null()
        } else {
            // Nil members are left out, as the Codable conformance does.
            writer.byte(UInt8(ascii: "{"))
            var first = true
            func separate(_ writer: inout JSONWriter) {
                if !first { writer.byte(UInt8(ascii: ",")) }
                first = false
            }
            if let hlcs {
                separate(&writer)
                writer.key("h")
                writer.byte(UInt8(ascii: "["))
                for (index, hlc) in hlcs.enumerated() {
                    if index > 0 { writer.byte(UInt8(ascii: ",")) }
                    writer.integer(hlc.rawValue)
                }
                writer.byte(UInt8(ascii: "]"))
            }
            if let bases {
                separate(&writer)
                writer.key("b")
                writer.byte(UInt8(ascii: "["))
                for (index, base) in bases.enumerated() {
                    if index > 0 { writer.byte(UInt8(ascii: ",")) }
                    if let base {
                        writer.byte(UInt8(ascii: "["))
                        writer.integer(base.hlc.rawValue)
                        writer.byte(UInt8(ascii: ","))
                        writer.string(base.replica)
                        writer.byte(UInt8(ascii: "]"))
                    } else {
                        writer.null()
                    }
                }
                writer.byte(UInt8(ascii: "]"))
            }
            if let reasons {
                separate(&writer)
                writer.key("w")
                writer.byte(UInt8(ascii: "["))
                for (index, reason) in reasons.enumerated() {
                    if index > 0 { writer.byte(UInt8(ascii: ",")) }
                    if let reason { writer.string(reason) } else { writer.null() }
                }
                writer.byte(UInt8(ascii: "]"))
            }
            writer.byte(UInt8(ascii: "}"))
        }
        try writer.closeRow(values: values)
    }

    init(reading reader: inout JSONReader) throws(JSONReadError) {
        try reader.expect(UInt8(ascii: "["), "a change row [id, seq, meta, value…]")
        let id = try reader.string("the row's id")
        try reader.expect(UInt8(ascii: ","), "the row's sequence number")
        let seq = HLC(rawValue: try reader.integer("the row's sequence number"))
        try reader.expect(UInt8(ascii: ","), "the row's meta")
        var hlcs: [HLC]?
        var bases: [Version?]?
        var reasons: [String?]?
        if try !reader.consumeNull() {
            try reader.object("the row's meta") { (reader, key) throws(JSONReadError) in
                switch key {
                case "h":
                    if try reader.consumeNull() { break }
                    var read: [HLC] = []
                    try reader.array("the row's field HLCs \"h\"") { (reader) throws(JSONReadError) in
                        read.append(HLC(rawValue: try reader.integer("a field HLC")))
                    }
                    hlcs = read
                case "b":
                    if try reader.consumeNull() { break }
                    var read: [Version?] = []
                    try reader.array("the row's bases \"b\"") { (reader) throws(JSONReadError) in
                        read.append(try reader.consumeNull() ? nil : try Version(reading: &reader))
                    }
                    bases = read
                case "w":
                    if try reader.consumeNull() { break }
                    var read: [String?] = []
                    try reader.array("the row's reasons for change \"w\"") { (reader) throws(JSONReadError) in
                        read.append(try reader.consumeNull() ? nil : try reader.string("a reason for change"))
                    }
                    reasons = read
                default: try reader.skipValue()
                }
            }
        }
        let values = try reader.rowValues(in: "a change row")
        self.init(id: id, seq: seq, values: values, hlcs: hlcs, bases: bases, reasons: reasons)
    }
}

extension Version {
    init(reading reader: inout JSONReader) throws(JSONReadError) {
        try reader.expect(UInt8(ascii: "["), "a version [hlc, replica]")
        let hlc = HLC(rawValue: try reader.integer("a version's HLC"))
        try reader.expect(UInt8(ascii: ","), "a version's replica")
        let replica = try reader.string("a version's replica")
        try reader.expect(UInt8(ascii: "]"), "the end of a version [hlc, replica]")
        self.init(hlc: hlc, replica: replica)
    }
}

extension PullResponse {
    /// The response as JSON text.
    public func wireJSON() throws(JSONWriteError) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + recordCount * 256)
        writer.byte(UInt8(ascii: "{"))
        writer.key("groups")
        writer.byte(UInt8(ascii: "["))
        for (index, group) in groups.enumerated() {
            if index > 0 { writer.byte(UInt8(ascii: ",")) }
            try group.write(to: &writer)
        }
        writer.ascii("],")
        writer.key("cursor")
        writer.byte(UInt8(ascii: "{"))
        for (index, site) in cursor.keys.sorted().enumerated() {
            if index > 0 { writer.byte(UInt8(ascii: ",")) }
            writer.string(site)
            writer.byte(UInt8(ascii: ":"))
            writer.integer(cursor[site]!)
        }
        writer.ascii("},")
        writer.key("more")
        writer.bool(more)
        writer.byte(UInt8(ascii: ","))
        writer.key("hlc")
        writer.integer(hlc.rawValue)
        writer.byte(UInt8(ascii: "}"))
        return writer.bytes
    }

    /// Reads a response from JSON text.
    public init(wireJSON bytes: UnsafeRawBufferPointer) throws(JSONReadError) {
        var reader = JSONReader(bytes)
        var groups: [RecordGroup]?
        var cursor: [String: Int64]?
        var more: Bool?
        var hlc: HLC?
        try reader.object("a pull response") { (reader, key) throws(JSONReadError) in
            switch key {
            case "groups":
                var read: [RecordGroup] = []
                try reader.array("groups") { (reader) throws(JSONReadError) in read.append(try RecordGroup(reading: &reader)) }
                groups = read
            case "cursor":
                var read: [String: Int64] = [:]
                try reader.object("cursor") { (reader, site) throws(JSONReadError) in read[site] = try reader.integer("the cursor of site \(site)") }
                cursor = read
            case "more": more = try reader.bool("more")
            case "hlc": hlc = HLC(rawValue: try reader.integer("hlc"))
            default: try reader.skipValue()
            }
        }
        try reader.expectEnd()
        guard let groups, let cursor, let more, let hlc else {
            let missing = [("groups", groups == nil), ("cursor", cursor == nil), ("more", more == nil), ("hlc", hlc == nil)].first { $0.1 }!.0
            throw JSONReadError(message: "missing \"\(missing)\" in a pull response", offset: 0)
        }
        self.init(groups: groups, cursor: cursor, more: more, hlc: hlc)
    }
}

extension RecordGroup {
    func write(to writer: inout JSONWriter) throws(JSONWriteError) {
        try writer.group(table: table, user: nil, columns: columns, rows: rows) { (row, writer) throws(JSONWriteError) in try row.write(to: &writer) }
    }

    init(reading reader: inout JSONReader) throws(JSONReadError) {
        let group = try reader.group("a record group", withUser: false) { (reader) throws(JSONReadError) in try RecordRow(reading: &reader) }
        self.init(table: group.table, columns: group.columns, rows: group.rows)
    }
}

extension RecordRow {
    func write(to writer: inout JSONWriter) throws(JSONWriteError) {
        writer.byte(UInt8(ascii: "["))
        writer.string(id)
        writer.byte(UInt8(ascii: ","))
        writer.integer(stamps.base.version.hlc.rawValue)
        writer.byte(UInt8(ascii: ","))
        writer.string(stamps.base.version.replica)
        writer.byte(UInt8(ascii: ","))
        writer.string(stamps.base.user)
        writer.byte(UInt8(ascii: ","))
        if stamps.overrides.isEmpty {
            writer.null()
        } else {
            writer.byte(UInt8(ascii: "{"))
            for (index, field) in stamps.overrides.keys.sorted().enumerated() {
                let stamp = stamps.overrides[field]!
                if index > 0 { writer.byte(UInt8(ascii: ",")) }
                writer.string(field)
                writer.ascii(":[")
                writer.integer(stamp.version.hlc.rawValue)
                writer.byte(UInt8(ascii: ","))
                writer.string(stamp.version.replica)
                writer.byte(UInt8(ascii: ","))
                writer.string(stamp.user)
                writer.byte(UInt8(ascii: "]"))
            }
            writer.byte(UInt8(ascii: "}"))
        }
        try writer.closeRow(values: values)
    }

    init(reading reader: inout JSONReader) throws(JSONReadError) {
        try reader.expect(UInt8(ascii: "["), "a record row [id, hlc, replica, user, overrides, value…]")
        let id = try reader.string("the row's id")
        try reader.expect(UInt8(ascii: ","), "the row's HLC")
        let base = try Stamp(readingElementsOf: &reader)
        try reader.expect(UInt8(ascii: ","), "the row's overrides")
        var overrides: [String: Stamp] = [:]
        if try !reader.consumeNull() {
            try reader.object("the row's overrides") { (reader, field) throws(JSONReadError) in
                try reader.expect(UInt8(ascii: "["), "a stamp [hlc, replica, user]")
                overrides[field] = try Stamp(readingElementsOf: &reader)
                try reader.expect(UInt8(ascii: "]"), "the end of a stamp [hlc, replica, user]")
            }
        }
        let values = try reader.rowValues(in: "a record row")
        self.init(id: id, stamps: FieldStamps(base: base, overrides: overrides), values: values)
    }
}

extension Stamp {
    /// Reads `hlc, replica, user`: the elements of a stamp, inside an array the caller opened.
    init(readingElementsOf reader: inout JSONReader) throws(JSONReadError) {
        let hlc = HLC(rawValue: try reader.integer("a stamp's HLC"))
        try reader.expect(UInt8(ascii: ","), "a stamp's replica")
        let replica = try reader.string("a stamp's replica")
        try reader.expect(UInt8(ascii: ","), "a stamp's user")
        let user = try reader.string("a stamp's user")
        self.init(version: Version(hlc: hlc, replica: replica), user: user)
    }
}

extension JSONWriter {
    /// The values that end a row of either message, and the row's closing bracket.
    mutating func closeRow(values: [FieldValue]) throws(JSONWriteError) {
        for value in values {
            byte(UInt8(ascii: ","))
            try self.value(value)
        }
        byte(UInt8(ascii: "]"))
    }

    /// A group of either message: `{"t": table, "u": user, "c": [field…], "r": [row…]}`, `u` only in a push.
    mutating func group<Row>(
        table: String,
        user: String?,
        columns: [String],
        rows: [Row],
        _ writeRow: (Row, inout JSONWriter) throws(JSONWriteError) -> Void
    ) throws(JSONWriteError) {
        byte(UInt8(ascii: "{"))
        key("t")
        string(table)
        if let user {
            byte(UInt8(ascii: ","))
            key("u")
            string(user)
        }
        byte(UInt8(ascii: ","))
        key("c")
        strings(columns)
        byte(UInt8(ascii: ","))
        key("r")
        byte(UInt8(ascii: "["))
        for (index, row) in rows.enumerated() {
            if index > 0 { byte(UInt8(ascii: ",")) }
            try writeRow(row, &self)
        }
        ascii("]}")
    }
}

extension JSONReader {
    /// Reads a group written by ``JSONWriter/group(table:user:columns:rows:_:)``; `u` is required when `withUser`.
    mutating func group<Row>(
        _ what: String,
        withUser: Bool,
        _ readRow: (inout JSONReader) throws(JSONReadError) -> Row
    ) throws(JSONReadError) -> (table: String, user: String?, columns: [String], rows: [Row]) {
        var table: String?
        var user: String?
        var columns: [String]?
        var rows: [Row]?
        try object(what) { (reader, key) throws(JSONReadError) in
            switch key {
            case "t": table = try reader.string("the group's table \"t\"")
            case "u" where withUser: user = try reader.string("the group's user \"u\"")
            case "c": columns = try reader.strings("the group's fields \"c\"")
            case "r":
                var read: [Row] = []
                try reader.array("the group's rows \"r\"") { (reader) throws(JSONReadError) in read.append(try readRow(&reader)) }
                rows = read
            default: try reader.skipValue()
            }
        }
        let missing = [("t", table == nil), ("u", withUser && user == nil), ("c", columns == nil), ("r", rows == nil)].first { $0.1 }
        guard missing == nil, let table, let columns, let rows else {
            throw JSONReadError(message: "missing \"\(missing?.0 ?? "")\" in \(what)", offset: offset)
        }
        return (table, user, columns, rows)
    }

    /// The values that end a row of either message, through its closing bracket.
    mutating func rowValues(in what: String) throws(JSONReadError) -> [FieldValue] {
        var values: [FieldValue] = []
        while try hasNextElement(in: what) {
            values.append(try value("a field value"))
        }
        return values
    }

    /// An array of strings.
    mutating func strings(_ what: @autoclosure () -> String) throws(JSONReadError) -> [String] {
        var strings: [String] = []
        try array(what()) { (reader) throws(JSONReadError) in strings.append(try reader.string("an element of \(what())")) }
        return strings
    }
}
