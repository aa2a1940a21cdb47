import Foundation
import Testing

/// Data written on one laptop is read on others and by inspectors: whatever it holds, it is shown
/// and exported as inert text.
@Suite("Hostile text stays inert", .serialized)
struct HostileOutputTests {
    /// A terminal escape sequence: set the window title, clear the screen.
    static let escape = "\u{1B}]0;owned\u{07}\u{1B}[2J"

    /// RFC 4180 rows, for checking cells as a spreadsheet would read them.
    static func csvRows(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var cell = ""
        var quoted = false
        var scalars = Array(text.unicodeScalars)[...]
        while let scalar = scalars.popFirst() {
            if quoted {
                if scalar == "\"" {
                    if scalars.first == "\"" { cell.unicodeScalars.append(scalars.removeFirst()) } else { quoted = false }
                } else {
                    cell.unicodeScalars.append(scalar)
                }
            } else if scalar == "\"" {
                quoted = true
            } else if scalar == "," {
                row.append(cell)
                cell = ""
            } else if scalar == "\r", scalars.first == "\n" {
                scalars.removeFirst()
                row.append(cell)
                rows.append(row)
                (row, cell) = ([], "")
            } else {
                cell.unicodeScalars.append(scalar)
            }
        }
        if !row.isEmpty || !cell.isEmpty { rows.append(row + [cell]) }
        return rows
    }

    @Test("Formulas in the audit export are escaped, line breaks quoted; control characters in the CLI are shown escaped")
    func hostileText() async throws {
        try await Commands.inTemporaryFolder { cli in
            let (server, port) = try await cli.startServer(database: "sitesync-server.sqlite")
            defer { server.terminate() }
            let token = try cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "sitesync-server.sqlite"]).line
            #expect(try cli.sitesync("init", "--site", "S01", "--server", "http://127.0.0.1:\(port)", "--token", token, "--user", "@SUM(A1)").status == 0)
            let subject = try cli.sitesync("put", "subjects", "screening_no=S01-001").line
            let event = try cli.sitesync("put", "adverse_events", "subject_id=\(subject)", "term=\(Self.escape)Neutropenia", "onset_date=2026-11-20", "grade=2").line
            #expect(try cli.sitesync("sync").status == 0)
            let reason = "=HYPERLINK(\"http://example.invalid\")\r\n-2+3,forged row"
            #expect(try cli.sitesync("put", "adverse_events", "--id", event, "grade=3", "--reason", reason).status == 0)
            #expect(try cli.sitesync("sync").status == 0)
            // A line break alone (no comma or quote beside it) must still be quoted.
            #expect(try cli.sitesync("put", "adverse_events", "--id", event, "grade=4", "--reason", "Seen again\r\nat the visit").status == 0)
            #expect(try cli.sitesync("sync").status == 0)

            let csv = try cli.run("sitesync-server", ["audit", "export", "--format", "csv", "--database", "sitesync-server.sqlite"])
            #expect(csv.status == 0, "\(csv.stderr)")
            let rows = Self.csvRows(csv.stdout)
            let header = try #require(rows.first)
            #expect(rows.count > 2 && rows.allSatisfy { $0.count == header.count }, "a line break in a value stays inside its cell")
            let formulaStarts: Set<Unicode.Scalar> = ["=", "+", "-", "@", "\t", "\r"]
            let dangerous = rows.flatMap { $0 }.filter { $0.unicodeScalars.first.map(formulaStarts.contains) ?? false }
            #expect(dangerous.isEmpty, "no cell a spreadsheet reads as a formula: \(dangerous)")
            let reasons = rows.dropFirst().map { $0[header.firstIndex(of: "reason")!] }
            #expect(reasons.contains("'" + reason), "escaped with an apostrophe, otherwise whole")
            #expect(reasons.contains("Seen again\r\nat the visit"))
            #expect(rows.dropFirst().allSatisfy { $0[header.firstIndex(of: "user")!] == "'@SUM(A1)" })

            for shown in [
                try cli.sitesync("get", "adverse_events", event), try cli.sitesync("list", "adverse_events"),
                try cli.sitesync("history", "adverse_events", event),
            ] {
                #expect(shown.status == 0, "\(shown.stderr)")
                #expect(!shown.stdout.unicodeScalars.contains("\u{1B}") && !shown.stdout.unicodeScalars.contains("\u{07}"), "no raw control character")
                #expect(shown.stdout.contains("\\u{1B}]0;owned\\u{7}\\u{1B}[2JNeutropenia") || shown.stdout.contains("\\u{D}\\u{A}-2+3"))
            }
            // --json keeps the data exact, escaped as JSON escapes it.
            let json = try cli.sitesync("get", "adverse_events", event, "--json")
            #expect(json.stdout.contains("\\u001b]0;owned\\u0007\\u001b[2JNeutropenia"))
        }
    }
}
