import CommandLineOutput
import Foundation
import SiteSyncClient
import SiteSyncCore
import Synchronization
import TrialRecords

/// A record's `--json` shape: `id`, `site_id` and every field, numbers as JSON numbers; adverse
/// events also carry their derived safety flags.
struct RecordJSON: Encodable {
    let record: StoredRecord
    let safety: Safety.Flags?

    init(_ record: StoredRecord, safety: Safety.Flags? = nil) {
        self.record = record
        self.safety = safety
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(record.id, forKey: Key(stringValue: "id"))
        for field in record.fields {
            try container.encode(field.value, forKey: Key(stringValue: field.name))
        }
        if let safety {
            try container.encode(safety.day, forKey: Key(stringValue: "days_after_infusion"))
            try container.encode(safety.dltWindow, forKey: Key(stringValue: "dlt_window"))
            try container.encode(safety.dltCandidate, forKey: Key(stringValue: "dlt_candidate"))
            try container.encode(safety.srcReview, forKey: Key(stringValue: "src_review"))
        }
    }
}

/// Where a line goes.
enum OutputStream {
    case standardOutput, standardError
}

/// Writes one line at once, unbuffered: a long-running command's lines reach a pipe as they happen.
func printLine(_ line: String, to stream: OutputStream = .standardOutput) {
    let handle = stream == .standardOutput ? FileHandle.standardOutput : FileHandle.standardError
    handle.write(Data((line + "\n").utf8))
}

/// Writes a value as one line of JSON with sorted keys, unbuffered (JSON lines).
func printJSONLine(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return }
    printLine(String(decoding: data, as: UTF8.self))
}

/// Prints a value as pretty JSON with sorted keys.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

extension FieldValue {
    /// The value as shown in tables: empty fields as "(empty)".
    var shown: String { displayText ?? "(empty)" }
}

/// The safety flags of adverse events, from the infusions this replica holds.
struct SafetyFlags {
    private let infusionDates: [String: String]

    init(_ replica: Replica) throws {
        let bySubject = Dictionary(grouping: try replica.list("infusions").map(\.values)) { $0["subject_id"]?.displayText ?? "" }
        infusionDates = bySubject.compactMapValues { Safety.infusionDate($0) }
    }

    /// The subject's infusion date, if recorded here.
    func infusionDate(subject: String) -> String? { infusionDates[subject] }

    /// The flags of `record` when it is an adverse event.
    func flags(_ record: StoredRecord) -> Safety.Flags? {
        guard record.table == TrialSchema.adverseEvents.name else { return nil }
        return Safety.flags(event: record.values, infusionDate: record["subject_id"]?.displayText.flatMap { infusionDates[$0] })
    }

    static func text(_ flag: Bool?) -> String { flag.map { $0 ? "yes" : "no" } ?? "unknown" }
}

/// One line of progress on the terminal, for work that runs longer than about a second: records
/// done of the total, the rate, and the time left when the total is known. Redrawn in place on
/// standard error at most ten times a second, and cleared at the end; never shown with `--json`
/// or when standard output is not a terminal (a pipe, a file, a script).
final class ProgressLine: Sendable {
    private struct State {
        var started = ContinuousClock.now
        var label = ""
        /// The label's first report: the rate counts what was done after it, over the time since.
        var first = (at: ContinuousClock.now, done: 0)
        var drawn: ContinuousClock.Instant?
    }

    private let enabled: Bool
    private let state = Mutex(State())

    init(json: Bool) {
        enabled = !json && isatty(STDOUT_FILENO) == 1 && isatty(STDERR_FILENO) == 1
    }

    /// Reports `done` records of `total` (nil when unknown) under `label`, such as "Pushed".
    func update(_ label: String, done: Int, total: Int?) {
        guard enabled else { return }
        let line = state.withLock { state -> String? in
            let now = ContinuousClock.now
            if state.label != label { (state.label, state.first) = (label, (now, done)) }
            guard now - state.started >= .seconds(1), state.drawn.map({ now - $0 >= .milliseconds(100) }) ?? true else { return nil }
            state.drawn = now
            let seconds = Double((now - state.first.at) / .milliseconds(1)) / 1000
            var line = "\(label) \(done.formatted())\(total.map { " of \($0.formatted())" } ?? "") records"
            if seconds > 0, done > state.first.done {
                let rate = Double(done - state.first.done) / seconds
                line += "  \(Int(rate).formatted())/s"
                if let total, total > done { line += "  \(describeDuration(Int((Double(total - done) / rate).rounded(.up)))) left" }
            }
            return line
        }
        if let line { FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8)) }
    }

    /// Clears the line, if one was drawn.
    func finish() {
        guard enabled, state.withLock({ $0.drawn != nil }) else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
