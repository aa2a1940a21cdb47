import ArgumentParser
import CommandLineOutput
import SiteSyncClient

/// `sitesync explain`: the changes written with plain SQL that wait for a reason, and giving one.
struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the changes written with plain SQL that wait for a reason for change, or give one.",
        discussion: """
            A synced value changed outside SiteSync (the sqlite3 shell, a site's script) is tracked \
            but has no reason for change, which the server requires. Such a record stays on the \
            laptop, unpushed, until a person gives the reason: `sitesync explain TABLE ID --reason \
            TEXT`. Without arguments, the command lists what waits.
            """
    )

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The table of the record to explain.")
    var table: String?

    @Argument(help: "The record id.")
    var id: String?

    @Option(help: "Why the values changed; kept in the audit trail.")
    var reason: String?

    func validate() throws {
        switch (table, id, reason) {
        case (nil, nil, nil), (.some, .some, .some): return
        case (nil, nil, .some): throw ValidationError("--reason needs the record it explains: sitesync explain TABLE ID --reason TEXT.")
        case (.some, nil, _): throw ValidationError("Missing the record id: sitesync explain TABLE ID --reason TEXT.")
        default: throw ValidationError("Missing --reason: why the values written with plain SQL changed.")
        }
    }

    func run() throws {
        let replica = try replica.open(for: .write)
        if let table, let id, let reason {
            let fields = try replica.explain(table, id: id, reason: reason)
            print("Explained \(fields.joined(separator: ", ")) of \(table) \(id); it is pushed at the next sync.")
            return
        }
        let waiting = try replica.unexplainedChanges()
        if output.json {
            try printJSON(waiting)
        } else if waiting.isEmpty {
            print("No change waits for a reason.")
        } else {
            print(
                Table(rows: [["table", "id", "fields", "changed at"]] + waiting.map { [$0.table, $0.id, $0.fields.joined(separator: ", "), $0.changedAt] })
                    .render(header: true))
        }
    }
}
