import Foundation

/// The bar chart of changes received per day, drawn as SVG on the server: one bar per day, the
/// most recent on the right, each with its date and count as its title (a tooltip, and what a
/// screen reader reads). Only numbers and dates go into it, never a record's value.
struct ChangesChart {
    /// The days shown, oldest first (`YYYY-MM-DD`).
    var days: [String]
    /// Changes per day; days absent had none.
    var counts: [String: Int]

    /// The `count` days up to and including `today`'s date, in UTC.
    static func days(endingAt today: Date, count: Int) -> [String] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return (0..<count).reversed().map { offset in
            let day = calendar.date(byAdding: .day, value: -offset, to: today)!
            return day.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!).year().month().day())
        }
    }

    /// A coordinate with one decimal.
    private static func number(_ value: Double) -> String { String(format: "%.1f", value) }

    var svg: String {
        let (width, height, left, bottom, top) = (720.0, 180.0, 44.0, 22.0, 10.0)
        let values = days.map { counts[$0] ?? 0 }
        let total = values.reduce(0, +)
        let peak = max(values.max() ?? 0, 1)
        let slot = (width - left) / Double(max(days.count, 1))
        let plot = height - bottom - top
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(width)) \(Int(height))" width="\(Int(width))" height="\(Int(height))" \
            style="max-width: 100%; height: auto" role="img" \
            aria-label="Changes received per day, \(days.first ?? "") to \(days.last ?? ""): \(total) in all">
            <line x1="\(left)" y1="\(top + plot)" x2="\(width)" y2="\(top + plot)" stroke="#aab2bd"/>
            <text x="\(left - 6)" y="\(top + 4)" text-anchor="end">\(peak)</text>
            <text x="\(left - 6)" y="\(top + plot)" text-anchor="end">0</text>

            """
        for (index, day) in days.enumerated() {
            let value = values[index]
            let barHeight = plot * Double(value) / Double(peak)
            let x = left + Double(index) * slot + slot * 0.15
            svg +=
                "<rect x=\"\(Self.number(x))\" y=\"\(Self.number(top + plot - barHeight))\" width=\"\(Self.number(slot * 0.7))\" "
                + "height=\"\(Self.number(barHeight))\" fill=\"#3b6ea5\"><title>\(day): \(value) change(s)</title></rect>\n"
            // Every seventh day is labelled, and the last; none so close to the last that they overlap.
            if (index % 7 == 0 && index < days.count - 4) || index == days.count - 1 {
                let last = index == days.count - 1
                svg +=
                    "<text x=\"\(Self.number(last ? width : x + slot * 0.35))\" y=\"\(Self.number(height - 6))\" "
                    + "text-anchor=\"\(last ? "end" : "middle")\">\(day.dropFirst(5))</text>\n"
            }
        }
        return svg + "</svg>\n<p class=\"muted\">\(total) change(s) received in the last \(days.count) days.</p>"
    }
}
