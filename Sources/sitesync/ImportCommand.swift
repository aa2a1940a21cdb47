import ArgumentParser
import Foundation
import SiteSyncClient
import SiteSyncCore
import SwiftCSV

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import records from a CSV file: every row is checked first, then all are written or none.",
        discussion:
            "The first line names the fields; an `id` column updates existing records. Empty cells are empty fields. Bad rows are reported with their line number and field."
    )

    @OptionGroup var replica: ReplicaOptions

    @Argument(help: "The table, e.g. screenings.")
    var table: String

    @Argument(help: "The CSV file (RFC 4180, UTF-8).")
    var file: String

    @Option(help: "Why the rows change values that were synced already; kept with each change in the audit trail.")
    var reason: String?

    func run() throws {
        let replica = try replica.open(for: .write)
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
        let progress = ProgressLine(json: false)
        let ids: [String]
        do {
            ids = try replica.importRecords(table, rows, reason: reason) { done in
                progress.update("Checked and wrote", done: done, total: rows.count)
            }
            progress.finish()
        } catch {
            progress.finish()
            throw error
        }
        print("Imported \(ids.count) record\(ids.count == 1 ? "" : "s") into \(table).")
    }
}

/// CSV (RFC 4180) read with SwiftCSV, each record with the line it starts on.
///
/// SwiftCSV refuses text after a closing quote (`"ab"c`) but names no line, keeps an unclosed
/// quoted cell at the end of the file, drops the empty last cell of a file without a final line
/// break, and pads short rows when it builds its table. So the records are enumerated one by one,
/// counting the line breaks each holds, and those cases are checked here. Spaces before a cell
/// are not part of it.
enum CSVReader {
    struct Record {
        var line: Int
        var fields: [String]
    }

    static func records(_ text: String) throws -> [Record] {
        // A final line break, so that an empty last cell is kept as a cell.
        let text = text.isEmpty || text.last!.isNewline ? text : text + "\n"
        var records: [Record] = []
        var line = 1
        do {
            // The header row is read here too, so nothing is parsed by the initializer but it.
            let csv = try EnumeratedCSV(string: text, delimiter: .comma, loadColumns: false, rowLimit: 0)
            try csv.enumerateAsArray(startAt: 0, rowLimit: nil) { fields in
                records.append(Record(line: line, fields: fields))
                line += 1 + fields.reduce(0) { count, field in count + field.reduce(0) { $0 + ($1.isNewline ? 1 : 0) } }
            }
        } catch let error as CSVParseError {
            let detail: String
            switch error {
            case .quotation(let message):
                detail = "\(message) (after a closing quote, only a comma or a line break may follow; a quote inside a cell is written twice)"
            case .generic(let message): detail = message
            }
            throw ValidationError("Line \(line): not valid CSV: \(TextRules.escapingControls(detail)).")
        }
        // Quotes come in pairs in valid CSV: an odd count left a quoted cell open, in the last record.
        if text.reduce(0, { $0 + ($1 == "\"" ? 1 : 0) }) % 2 == 1 {
            throw ValidationError("Line \(records.last?.line ?? 1): a quoted cell is not closed.")
        }
        return records
    }
}
