import Foundation
import SiteSyncCore

/// Text laid out in aligned columns, by the columns each cell takes on a terminal
/// (``TextRules/displayWidth(_:)``: wide characters take two, combining marks none). Cells come
/// from data, which may hold any character: control characters are shown escaped (`\u{1B}`), so
/// that a value cannot move the cursor, recolour the terminal or break the layout.
public struct Table: Sendable {
    /// The cells, row by row, control characters escaped; the first row is the header when there is one.
    public var rows: [[String]]

    /// A table of `rows`, escaping the control characters of every cell.
    public init(rows: [[String]]) {
        self.rows = rows.map { $0.map(TextRules.escapingControls) }
    }

    /// The rows aligned; `decorate` may colour a cell (row, column, text) after it is padded.
    public func render(header: Bool, style: Style = .plain, decorate: ((Int, Int, String) -> String)? = nil) -> String {
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
public struct Style: Sendable {
    /// Whether text is coloured at all.
    public let enabled: Bool

    /// A style that colours text when `enabled`.
    public init(enabled: Bool) {
        self.enabled = enabled
    }

    /// No colour, for files, pipes and tests.
    public static let plain = Style(enabled: false)

    /// Colour when standard output is a terminal and NO_COLOR is not set.
    public static var standardOutput: Style {
        Style(enabled: isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil)
    }

    private func wrap(_ code: String, _ text: String) -> String { enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    public func bold(_ text: String) -> String { wrap("1", text) }
    public func red(_ text: String) -> String { wrap("31", text) }
    public func green(_ text: String) -> String { wrap("32", text) }
    public func yellow(_ text: String) -> String { wrap("33", text) }
}
