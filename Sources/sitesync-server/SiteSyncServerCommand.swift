import ArgumentParser
import Foundation
import Logging
import SiteSyncServer
import TrialRecords

@main
struct SiteSyncServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitesync-server",
        abstract: "The SiteSync central sync server.",
        subcommands: [Serve.self, Token.self]
    )
}

/// Options shared by every subcommand that opens the server database.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "Path of the server's SQLite database; created and migrated when missing.")
    var database = "sitesync-server.sqlite"
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the sync server.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind.")
    var port = 8080

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body accepted, in bytes.")
    var maximumBodyBytes = 32 * 1024 * 1024

    @Option(name: .customLong("max-clock-skew"), help: "Seconds a push may be stamped ahead of the server's clock.")
    var maximumClockSkew = 60

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535.") }
        guard maximumBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024.") }
        guard maximumClockSkew >= 1 else { throw ValidationError("--max-clock-skew must be at least 1 second.") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical.") }
    }

    func run() async throws {
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.databasePath = database.database
        configuration.host = host
        configuration.port = port
        configuration.maximumBodySize = maximumBodyBytes
        configuration.maximumClockSkew = .seconds(maximumClockSkew)
        var logger = Logger(label: "sitesync.server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let app = try buildApplication(configuration, logger: logger)
        try await app.runService()
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage bearer tokens.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token and print it alone on stdout; only its digest is stored.")

        @OptionGroup var database: DatabaseOptions

        @Option(help: "site (one site's records), reviewer (every site) or admin (tokens).")
        var role: Role

        @Option(help: "The site of a site token, for example S01.")
        var site: String?

        @Option(help: "A note saying whose token it is.")
        var label: String?

        func validate() throws {
            if role == .site, site == nil { throw ValidationError("A site token needs --site, for example --site S01.") }
            if role != .site, site != nil { throw ValidationError("A \(role.rawValue) token covers every site; do not give --site.") }
        }

        func run() async throws {
            let store = try SQLiteSyncStore(path: database.database, schema: TrialSchema.current)
            print(try await Tokens.create(in: store, role: role, site: site, label: label))
        }
    }
}

extension Role: ExpressibleByArgument {}
