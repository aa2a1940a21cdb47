import ArgumentParser
import Foundation
import SiteSyncClient
import SiteSyncCore

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import records from a CSV file: every row is checked first, then all are written or none.",
        discussion: "The first line names the fields; an `id` column updates existing records. Empty cells are empty fields. Bad rows are reported with their line number and field."
    )

    @OptionGroup var replica: ReplicaOptions

    @Argument(help: "The table, e.g. screenings.")
    var table: String

    @Argument(help: "The CSV file (RFC 4180, UTF-8).")
    var file: String

    @Option(help: "Why the rows change values that were synced already; kept with each change in the audit trail.")
    var reason: String?

    func run() throws {
        let replica = try replica.open()
        let schema = try replica.schema.table(table)
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ValidationError("Cannot read \(file) as UTF-8 text.")
        }
        let records = try CSVReader.records(text)
        guard let header = records.first?.fields, !header.isEmpty else { throw ValidationError("\(file) is empty; its first line must name the fields.") }
        var rows: [ImportRow] = []
        var problems: [ImportError.Problem] = []
        for record in records.dropFirst() where !(record.fields.count == 1 && record.fields[0].isEmpty) {
            guard record.fields.count == header.count else {
                problems.append(.init(line: record.line, message: "has \(record.fields.count) cells for \(header.count) fields"))
                continue
            }
            let cells = zip(header, record.fields)
            let id = cells.first { $0.0 == "id" }.map(\.1).flatMap { $0.isEmpty ? nil : $0 }
            do {
                rows.append(ImportRow(line: record.line, id: id, values: try schema.parse(cells.filter { $0.0 != "id" }.map { (field: $0.0, text: $0.1) })))
            } catch {
                problems.append(.init(line: record.line, message: error.description))
            }
        }
        guard problems.isEmpty else { throw ImportError(problems: problems) }
        let ids = try replica.importRecords(table, rows, reason: reason)
        print("Imported \(ids.count) record\(ids.count == 1 ? "" : "s") into \(table).")
    }
}

/// A strict RFC 4180 reader that remembers the line each record starts on.
enum CSVReader {
    struct Record {
        var line: Int
        var fields: [String]
    }

    static func records(_ text: String) throws -> [Record] {
        var records: [Record] = []
        var fields: [String] = []
        var field = ""
        var quoted = false
        var line = 1
        var start = 1
        var characters = Array(text).makeIterator()
        var pending = characters.next()
        while let character = pending {
            pending = characters.next()
            if quoted {
                if character == "\"" {
                    if pending == "\"" {
                        field.append("\"")
                        pending = characters.next()
                    } else {
                        quoted = false
                    }
                } else {
                    if character == "\n" || character == "\r\n" { line += 1 }
                    field.append(character)
                }
                continue
            }
            switch character {
            case "\"" where field.isEmpty:
                quoted = true
            case ",":
                fields.append(field)
                field = ""
            case "\n", "\r\n", "\r":
                fields.append(field)
                records.append(Record(line: start, fields: fields))
                fields = []
                field = ""
                line += 1
                start = line
            default:
                field.append(character)
            }
        }
        if quoted { throw ValidationError("Line \(start): a quoted cell is not closed.") }
        if !field.isEmpty || !fields.isEmpty {
            fields.append(field)
            records.append(Record(line: start, fields: fields))
        }
        return records
    }
}
