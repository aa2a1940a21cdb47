import ArgumentParser
import SiteSyncClient

struct ClockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clock",
        abstract: "Repair the replica's clock.",
        subcommands: [Reset.self]
    )

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set back a clock that ran ahead of this laptop's, and stamp the pending changes again.",
            discussion: """
                For a replica whose pushes the server refuses with clock_skew although the laptop's clock \\
                is right now (it was wrong when the changes were made, or a server answered with a wrong \\
                clock). Pending changes keep their values and are stamped at the corrected time; nothing \\
                is lost. Fix the laptop's date and time first.
                """
        )

        @OptionGroup var replica: ReplicaOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let reset = try replica.open(for: .write).resetClock()
            if output.json {
                try printJSON(reset)
            } else if reset.wasAhead {
                print("Clock set back to \(reset.clock); \(reset.restamped) pending record\(reset.restamped == 1 ? "" : "s") stamped again.")
            } else {
                print("The clock (\(reset.clock)) is not ahead of this laptop's; nothing changed.")
            }
        }
    }
}
