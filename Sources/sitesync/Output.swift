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

/// Text laid out in aligned columns, by the columns each cell takes on a terminal
/// (``TextRules/displayWidth(_:)``: wide characters take two, combining marks none). Cells come
/// from data, which may hold any character: control characters are shown escaped (`\u{1B}`), so
/// that a value cannot move the cursor, recolour the terminal or break the layout.
struct Table {
    var rows: [[String]]

    init(rows: [[String]]) {
        self.rows = rows.map { $0.map(TextRules.escapingControls) }
    }

    /// The rows aligned; `decorate` may colour a cell (row, column, text) after it is padded.
    func render(header: Bool, style: Style = .plain, decorate: ((Int, Int, String) -> String)? = nil) -> String {
        guard let width = rows.map(\.count).max(), width > 0 else { return "" }
        var widths = Array(repeating: 0, count: width)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], TextRules.displayWidth(cell)) }
        }
        var lines = rows.enumerated().map { rowIndex, row in
            row.enumerated().map { index, cell in
                let padded = index == row.count - 1 ? cell : TextRules.padded(cell, toWidth: widths[index])
                return decorate?(rowIndex, index, padded) ?? padded
            }.joined(separator: "  ")
        }
        if header, !lines.isEmpty {
            lines.insert(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "), at: 1)
        }
        return lines.joined(separator: "\n")
    }
}

/// ANSI colours, used only when standard output is a terminal and NO_COLOR is not set.
struct Style {
    let enabled: Bool

    static let plain = Style(enabled: false)

    static var standardOutput: Style {
        Style(enabled: isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil)
    }

    private func wrap(_ code: String, _ text: String) -> String { enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    func bold(_ text: String) -> String { wrap("1", text) }
    func red(_ text: String) -> String { wrap("31", text) }
    func green(_ text: String) -> String { wrap("32", text) }
    func yellow(_ text: String) -> String { wrap("33", text) }
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

/// A duration in the largest two units that matter: `4 d 2 h`, `3 h 12 min`, `40 s`.
func describeDuration(_ seconds: Int) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3_600, seconds % 3_600 / 60)
    if days > 0 { return hours > 0 ? "\(days) d \(hours) h" : "\(days) d" }
    if hours > 0 { return minutes > 0 ? "\(hours) h \(minutes) min" : "\(hours) h" }
    if minutes > 0 { return "\(minutes) min" }
    return "\(seconds) s"
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
