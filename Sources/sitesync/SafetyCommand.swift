import ArgumentParser
import CommandLineOutput
import Foundation
import SiteSyncClient
import SiteSyncCore
import TrialRecords

struct SafetyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safety",
        abstract: "List a subject's adverse events with their DLT window, DLT candidate and SRC review flags.",
        discussion: "Day 0 is the CAR-T infusion; the DLT window runs to day 28. Grade 3 or 4 events after day 28 go to the safety review committee."
    )

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The subject's id.")
    var subjectID: String

    struct Report: Encodable {
        let subjectID: String
        let infusionDate: String?
        let events: [RecordJSON]

        enum CodingKeys: String, CodingKey {
            case subjectID = "subject_id", infusionDate = "infusion_date", events
        }
    }

    func run() throws {
        let replica = try replica.open(for: .read)
        guard let subject = try replica.get("subjects", id: subjectID), !subject.isDeleted else {
            throw ReplicaError.recordNotFound(table: "subjects", id: subjectID)
        }
        let safety = try SafetyFlags(replica)
        let events = try replica.list(TrialSchema.adverseEvents.name)
            .filter { $0["subject_id"] == .text(subjectID) }
            .sorted { ($0["onset_date"]?.displayText ?? "") < ($1["onset_date"]?.displayText ?? "") }
        if output.json {
            try printJSON(
                Report(
                    subjectID: subjectID, infusionDate: safety.infusionDate(subject: subjectID), events: events.map { RecordJSON($0, safety: safety.flags($0)) }
                ))
            return
        }
        let style = Style.standardOutput
        print(style.bold("Subject \(subjectID)") + ", infusion " + (safety.infusionDate(subject: subjectID) ?? "not recorded"))
        let rows = events.map { event -> [String] in
            let flags = safety.flags(event)
            return [
                event["term"]?.displayText ?? "", event["onset_date"]?.displayText ?? "", event["grade"]?.displayText ?? "",
                event["grading_scale"]?.displayText ?? "", flags?.day.map { "day \($0)" } ?? "",
                SafetyFlags.text(flags?.dltWindow), SafetyFlags.text(flags?.dltCandidate), SafetyFlags.text(flags?.srcReview),
            ]
        }
        print(
            Table(rows: [["term", "onset", "grade", "scale", "day", "dlt_window", "dlt_candidate", "src_review"]] + rows).render(header: true, style: style) {
                row, column, cell in
                guard row > 0 else { return style.bold(cell) }
                return (column == 6 || column == 7) && cell.hasPrefix("yes") ? style.red(cell) : cell
            })
        print("\(events.count) adverse event\(events.count == 1 ? "" : "s")")
    }
}
