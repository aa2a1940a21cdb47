import ArgumentParser
import CommandLineOutput
import Foundation
import SiteSyncClient
import SiteSyncCore

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign in on this laptop: reading and writing records need a signed-in person.",
        discussion: """
            The password is asked for on the terminal (or read with --password-file; - for standard input). A \
            person's first sign-in on a laptop needs the server; later ones work offline. A sign-in lasts until \
            `sitesync logout` or 15 minutes without a command; signing in ends the previous person's. Five wrong \
            passwords in a row lock the person out on this laptop for 15 minutes.
            """
    )

    @OptionGroup var replica: ReplicaOptions

    @Argument(help: "Your username, as the trial's administrator created it.")
    var username: String

    @Option(name: .customLong("password-file"), help: "Read the password from the first line of this file (- for standard input).")
    var passwordFile: String?

    func run() async throws {
        let replica = try replica.open()
        let password = try PasswordInput.read(file: passwordFile, prompt: "Password for \(username): ")
        let person = try await replica.signIn(username: username, password: password, server: try HTTPTransport(replica: replica))
        print(
            "Signed in as \(person.username) (\(TextRules.escapingControls(person.name))), \(person.role.rawValue), until \(person.endsAt) without a command.")
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sign out of this laptop.")

    @OptionGroup var replica: ReplicaOptions

    func run() throws {
        if let username = try replica.open().signOut() {
            print("Signed out \(username).")
        } else {
            print("Nobody was signed in.")
        }
    }
}

struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Show who is signed in on this laptop, and when the sign-in ends; exit 1 when nobody is.")

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard let person = try replica.open().signedInPerson() else {
            FileHandle.standardError.write(Data("Nobody is signed in on this laptop: run `sitesync login USERNAME`.\n".utf8))
            throw ExitCode(1)
        }
        if output.json {
            try printJSON(person)
        } else {
            print(
                Table(rows: [
                    ["username", person.username], ["user", person.name], ["role", person.role.rawValue], ["sites", person.sites.joined(separator: ", ")],
                    ["until", "\(person.endsAt) without a command"],
                ]).render(header: false))
        }
    }
}
