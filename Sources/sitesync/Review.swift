import ArgumentParser
import CommandLineOutput
import Foundation
import SiteSyncClient
import SiteSyncCore

struct Conflicts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Review values overwritten by concurrent edits; works offline on what was last pulled.",
        subcommands: [ListConflicts.self, ShowConflict.self, ResolveConflict.self]
    )

    struct ListConflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List conflicts, newest first; open ones unless --all.")

        @OptionGroup var replica: ReplicaOptions
        @OptionGroup var output: OutputOptions

        @Flag(help: "Include resolved conflicts.")
        var all = false

        @Option(help: "Only this site.")
        var site: String?

        @Option(help: "Only records of this table.")
        var table: String?

        @Flag(help: "Print only the conflict ids, one per line (for scripts).")
        var ids = false

        func run() throws {
            let conflicts = try replica.open(for: .read).conflicts(includeResolved: all, site: site, table: table)
            if ids {
                for conflict in conflicts { print(conflict.id) }
                return
            }
            if output.json {
                try printJSON(conflicts)
                return
            }
            let style = Style.standardOutput
            let header = ["id", "status", "table", "record", "field", "kept", "by", "overwritten", "by", "detected"]
            let rows = conflicts.map { conflict in
                [
                    conflict.id, conflict.status.rawValue, conflict.table, conflict.recordID, conflict.field,
                    conflict.winner.value.shown, conflict.winner.user ?? conflict.winner.replica,
                    conflict.loser.value.shown, conflict.loser.user ?? conflict.loser.replica,
                    conflict.detectedAt,
                ]
            }
            print(
                Table(rows: [header] + rows).render(header: true, style: style) { row, column, cell in
                    guard row > 0 else { return style.bold(cell) }
                    switch column {
                    case 1: return cell == "open" ? style.yellow(cell) : style.green(cell)
                    case 5: return style.green(cell)
                    case 7: return style.red(cell)
                    default: return cell
                    }
                })
            print("\(conflicts.count) conflict\(conflicts.count == 1 ? "" : "s")")
        }
    }

    struct ShowConflict: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show both sides of a conflict and the field's current value.")

        @OptionGroup var replica: ReplicaOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "The conflict id.")
        var id: String

        func run() throws {
            let detail = try replica.open(for: .read).conflict(id: id)
            if output.json {
                try printJSON(detail)
                return
            }
            let conflict = detail.conflict
            let style = Style.standardOutput
            let safe = TextRules.escapingControls
            print(
                "\(style.bold("Conflict \(safe(conflict.id))")): \(safe(conflict.table)) \(safe(conflict.recordID)), field \(style.bold(safe(conflict.field))) (site \(safe(conflict.site)))"
            )
            print("detected \(conflict.detectedAt), \(conflict.isOpen ? style.yellow("open") : style.green("resolved"))")
            print("")
            let sides = [
                ["", "kept (winner)", "overwritten (loser)"],
                ["value", conflict.winner.value.shown, conflict.loser.value.shown],
                ["written at", conflict.winner.hlc.iso8601, conflict.loser.hlc.iso8601],
                ["user", conflict.winner.user ?? "", conflict.loser.user ?? ""],
                ["replica", conflict.winner.replica, conflict.loser.replica],
            ]
            print(
                Table(rows: sides).render(header: true, style: style) { row, column, cell in
                    row == 0 || column == 0 ? style.bold(cell) : column == 1 ? style.green(cell) : style.red(cell)
                })
            print("")
            print("current value: \(detail.current.map { safe($0.shown) } ?? "(record not on this laptop)")")
            if let resolution = conflict.resolution {
                print("resolved: \(resolution.decision.rawValue) by \(safe(resolution.reviewer)) at \(safe(resolution.resolvedAt))")
                print("reason:   \(safe(resolution.reason))")
            }
        }
    }

    struct ResolveConflict: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resolve",
            abstract: "Decide a conflict with a reason; the decision syncs at the next `sitesync sync`.",
            discussion:
                "The decided value is written as a new change, so it wins on every laptop; the conflict is marked resolved with your name, the decision, the reason and the time."
        )

        @OptionGroup var replica: ReplicaOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "The conflict id.")
        var id: String

        @Flag(help: "Keep the value that won.")
        var keepWinner = false

        @Flag(help: "Restore the value that was overwritten.")
        var takeLoser = false

        @Option(help: "Write this value instead (typed as for `put`; empty clears the field).")
        var value: String?

        @Option(help: "Why; mandatory, kept in the audit trail.")
        var reason: String

        func validate() throws {
            let chosen = [keepWinner, takeLoser, value != nil].filter { $0 }.count
            guard chosen == 1 else { throw ValidationError("Choose exactly one of --keep-winner, --take-loser or --value VALUE.") }
            guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must not be empty.") }
        }

        func run() throws {
            let replica = try replica.open(for: .resolve)
            let choice: ResolutionChoice
            if keepWinner {
                choice = .keepWinner
            } else if takeLoser {
                choice = .takeLoser
            } else {
                let conflict = try replica.conflict(id: id).conflict
                let table = try replica.schema.table(conflict.table)
                guard let column = table.column(conflict.field) else { throw ValidationError("Unknown field \(conflict.field).") }
                choice = .value(try column.parse(value ?? "", table: table.name))
            }
            let resolved = try replica.resolve(conflict: id, choice, reason: reason)
            if output.json {
                try printJSON(resolved)
            } else {
                print("Resolved conflict \(resolved.id) (\(resolved.resolution?.decision.rawValue ?? "")); it syncs at the next `sitesync sync`.")
            }
        }
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every change the server received for a record, with conflicts and resolutions.",
        discussion: "Needs the server; offline it says so and shows what this laptop knows: each field's last write."
    )

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var record: RecordArguments

    func run() async throws {
        let replica = try replica.open(for: .read)
        _ = try replica.schema.table(record.table)
        let history: RecordHistory
        do {
            history = try await HTTPTransport(replica: replica, timeout: 15).history(table: record.table, id: record.id)
        } catch let error as SyncError where error.isUnreachable {
            FileHandle.standardError.write(Data("\(error.message)\nShowing what this laptop knows: the last write of each field.\n".utf8))
            history = try replica.localHistory(record.table, id: record.id)
        }
        if output.json {
            try printJSON(history)
            return
        }
        let style = Style.standardOutput
        print(style.bold(TextRules.escapingControls("\(history.table) \(history.recordID)")) + (history.source == "server" ? "" : " (this laptop only)"))
        var rows: [[String]] = [["time", "user", "replica", "field", "change", "reason", "outcome", "conflict"]]
        for entry in history.entries {
            if entry.kind == "resolution" {
                rows.append([
                    entry.at, entry.user, entry.replica, entry.field ?? "", "resolved: \(entry.decision ?? "")", entry.reason ?? "", "resolution",
                    entry.conflict ?? "",
                ])
            } else {
                for change in entry.changes ?? [] {
                    let text = history.source == "server" ? "\(change.old.shown) -> \(change.new.shown)" : change.new.shown
                    rows.append([entry.at, entry.user, entry.replica, change.field, text, change.reason ?? "", change.outcome, change.conflict ?? ""])
                }
            }
        }
        print(
            Table(rows: rows).render(header: true, style: style) { row, column, cell in
                guard row > 0 else { return style.bold(cell) }
                guard column == 6 else { return cell }
                switch cell {
                case "superseded": return style.red(cell)
                case "resolution": return style.green(cell)
                default: return cell
                }
            })
    }
}
