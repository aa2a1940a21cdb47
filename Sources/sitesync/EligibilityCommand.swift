import ArgumentParser
import CommandLineOutput
import Foundation
import SiteSyncClient
import SiteSyncCore
import TrialRecords

struct EligibilityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eligibility",
        abstract: "Evaluate every inclusion criterion against the subject's latest screening, offline.",
        discussion: "Each criterion is pass, fail or missing, with the measured value and the threshold; the verdict is eligible, ineligible or incomplete."
    )

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The subject's id.")
    var subjectID: String

    func run() throws {
        let replica = try replica.open(for: .read)
        guard let subject = try replica.get("subjects", id: subjectID), !subject.isDeleted else {
            throw ReplicaError.recordNotFound(table: "subjects", id: subjectID)
        }
        // The latest screening visit: by date, then the last recorded.
        let screening = try replica.list("screenings")
            .filter { $0["subject_id"] == .text(subjectID) }
            .enumerated()
            .max { ($0.element["date"]?.displayText ?? "", $0.offset) < ($1.element["date"]?.displayText ?? "", $1.offset) }?
            .element
        let report = Eligibility.evaluate(subjectID: subjectID, subject: subject.values, screening: screening?.values)
        if output.json {
            try printJSON(report)
            return
        }
        let style = Style.standardOutput
        print(style.bold("Subject \(subjectID)") + ", screening \(report.screeningDate.map { "of \($0)" } ?? "not recorded")")
        let rows = report.criteria.map { [$0.criterion, $0.result.rawValue, $0.measured ?? "", $0.threshold + ($0.note.map { " — \($0)" } ?? "")] }
        print(
            Table(rows: [["criterion", "result", "measured", "threshold"]] + rows).render(header: true, style: style) { row, column, cell in
                guard row > 0 else { return style.bold(cell) }
                guard column == 1 else { return cell }
                return cell.hasPrefix("pass") ? style.green(cell) : cell.hasPrefix("fail") ? style.red(cell) : style.yellow(cell)
            })
        let verdict = report.verdict.rawValue.uppercased()
        print("verdict: " + (report.verdict == .eligible ? style.green(verdict) : report.verdict == .ineligible ? style.red(verdict) : style.yellow(verdict)))
    }
}

extension StoredRecord {
    /// The record's fields by name, `id` included.
    var values: [String: FieldValue] {
        var values = Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0.value) })
        values["id"] = .text(id)
        return values
    }
}
