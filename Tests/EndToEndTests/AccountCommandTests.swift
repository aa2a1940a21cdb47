import CommandLineOutput
import Foundation
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncTestSupport
import Testing
import TrialRecords

/// `sitesync-server user …`: people's accounts managed at the server, on either store.
@Suite("Account commands")
struct AccountCommandTests {
    @Test(
        "Accounts are added with a password from standard input or a file, listed without secrets, deactivated, reactivated and reset; bad input writes nothing; every change is audited",
        arguments: StoreKind.all)
    func lifecycle(kind: StoreKind) async throws {
        try await Commands.inTemporaryFolder { cli in
            let database = kind == .postgres ? try await PostgresTestDatabase.create() : cli.directory.appendingPathComponent("server.sqlite").path
            func user(_ arguments: [String], input: String? = nil) async throws -> Commands.Result {
                try await cli.run("sitesync-server", ["user"] + arguments + ["--database", database], input: input.map { Data($0.utf8) })
            }
            func listed() async throws -> [[String: Any]] {
                let list = try await user(["list", "--json"])
                #expect(list.status == 0, "\(list.stderr)")
                return list.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            }
            let password = "correct horse battery staple"

            let added = try await user(["add", "ana.lima", "--name", "Ana Lima", "--role", "coordinator", "--site", "S01"], input: password + "\n")
            #expect(added.status == 0, "\(added.stderr)")
            #expect(added.stdout.contains("Added ana.lima (Ana Lima), coordinator at S01."))
            try Data("a different long secret\n".utf8).write(to: cli.directory.appendingPathComponent("pw.txt"))
            let fromFile = try await user(["add", "dm", "--name", "Dana Moss", "--role", "data-manager", "--site", "*", "--password-file", "pw.txt"])
            #expect(fromFile.status == 0, "\(fromFile.stderr)")

            // Refused, naming the problem, and nothing written.
            let refusals: [([String], String?, String)] = [
                (["add", "Ana", "--name", "A", "--role", "coordinator", "--site", "S01"], password, "is not valid: a username is 2 to 64"),
                (["add", "short.pw", "--name", "B", "--role", "coordinator", "--site", "S01"], "too short\n", "too short: at least 12 characters"),
                (["add", "everywhere", "--name", "C", "--role", "coordinator", "--site", "*"], password, "works at named sites"),
                (["add", "nosite", "--name", "D", "--role", "monitor"], password, "Give the person's sites"),
                (["add", "badsite", "--name", "E", "--role", "monitor", "--site", "S 01"], password, "is not valid: a site id"),
                (["add", "ana.lima", "--name", "Other Ana", "--role", "monitor", "--site", "S01"], password, "is taken"),
                (["add", "argv", "--name", "F", "--role", "monitor", "--site", "S01", "--password", password], nil, "Unknown option '--password'"),
                (["add", "mine", "--name", "G", "--role", "monitor", "--site", "S01"], "mine-and-only-mine\n", "contains the username"),
                (["deactivate", "ana.lima"], nil, "Missing expected argument '--reason"),
                (["deactivate", "nobody", "--reason", "left"], nil, "No account is named nobody"),
                (["reactivate", "ana.lima"], nil, "is active"),
                (["password", "nobody"], password, "No account is named nobody"),
            ]
            for (arguments, input, message) in refusals {
                let refused = try await user(arguments, input: input)
                #expect(refused.status != 0 && refused.stderr.contains(message), "\(arguments): \(refused.stderr)")
            }

            var accounts = try await listed()
            #expect(accounts.map { $0["username"] as? String } == ["ana.lima", "dm"])
            let ana = try #require(accounts.first)
            #expect(ana["name"] as? String == "Ana Lima" && ana["role"] as? String == "coordinator" && ana["sites"] as? [String] == ["S01"])
            #expect(ana["state"] as? String == "active" && ana["last_sign_in_at"] is NSNull && (ana["created_at"] as? String)?.hasPrefix("20") == true)
            #expect(accounts[1]["sites"] as? [String] == ["*"])
            let table = try await user(["list"])
            #expect(
                table.stdout.contains("ana.lima") && table.stdout.contains("Ana Lima") && table.stdout.contains("never") && table.stdout.contains("2 accounts"))
            for output in [table.stdout, try await user(["list", "--json"]).stdout] {
                #expect(!output.contains("scrypt") && !output.contains(password), "no password or digest is listed")
            }

            // Deactivated with a reason, reactivated, given a new password.
            let deactivated = try await user(["deactivate", "ana.lima", "--reason", "Left the study team"])
            #expect(deactivated.status == 0 && deactivated.stdout.contains("Deactivated ana.lima."), "\(deactivated.stderr)")
            accounts = try await listed()
            #expect(accounts[0]["state"] as? String == "deactivated" && accounts[0]["deactivation_reason"] as? String == "Left the study team")
            #expect(try await user(["deactivate", "ana.lima", "--reason", "again"]).stderr.contains("deactivated already"))
            #expect(try await user(["reactivate", "ana.lima"]).status == 0)
            let reset = try await user(["password", "ana.lima"], input: "a brand new passphrase\n")
            #expect(reset.status == 0 && reset.stdout.contains("Set a new password for ana.lima."), "\(reset.stderr)")
            #expect(try await user(["password", "ana.lima"], input: "2short\n").stderr.contains("too short"))

            // Stored as a digest that verifies the new password only; the password is nowhere in the store.
            let stored = try await withStore(kind, database) { store in try await store.account(username: "ana.lima") }
            let encoded = try #require(stored?.passwordHash)
            let hash = try #require(PasswordHash(encoded: encoded))
            #expect(hash.cost == .standard)
            #expect(hash.verifies("a brand new passphrase") && !hash.verifies(password))
            if kind == .sqlite {
                for file in ["server.sqlite", "server.sqlite-wal"] {
                    let bytes = (try? Data(contentsOf: cli.directory.appendingPathComponent(file))) ?? Data()
                    #expect(bytes.range(of: Data(password.utf8)) == nil && bytes.range(of: Data("brand new passphrase".utf8)) == nil, "\(file)")
                }
            }

            // Every change is in the audit trail, with the operator who made it; refusals are not.
            let operatorName = OperatingUser.name
            let csv = try await cli.run("sitesync-server", ["audit", "accounts", "--format", "csv", "--database", database])
            #expect(csv.status == 0, "\(csv.stderr)")
            let lines = csv.stdout.split(separator: "\r\n").map(String.init)
            #expect(lines.first == "at,username,action,by,full_name,role,sites,reason")
            #expect(lines.count == 6, "\(csv.stdout)")
            #expect(lines[1].hasSuffix(",ana.lima,created,\(operatorName),Ana Lima,coordinator,S01,"))
            #expect(lines[2].hasSuffix(",dm,created,\(operatorName),Dana Moss,data-manager,*,"))
            #expect(lines[3].hasSuffix(",ana.lima,deactivated,\(operatorName),,,,Left the study team"))
            #expect(lines[4].hasSuffix(",ana.lima,reactivated,\(operatorName),,,,"))
            #expect(lines[5].hasSuffix(",ana.lima,password-reset,\(operatorName),,,,"))
            let jsonl = try await cli.run("sitesync-server", ["audit", "accounts", "--format", "jsonl", "--database", database]).stdout
            let first = try #require(try JSONSerialization.jsonObject(with: Data(jsonl.split(separator: "\n")[0].utf8)) as? [String: Any])
            #expect(first["full_name"] as? String == "Ana Lima" && first["sites"] as? [String] == ["S01"] && first["by"] as? String == operatorName)
            #expect(!jsonl.contains("scrypt") && !csv.stdout.contains("scrypt"))
        }
    }

    private func withStore<T: Sendable>(_ kind: StoreKind, _ database: String, _ body: @Sendable (any SyncStore) async throws -> T) async throws -> T {
        if kind == .sqlite { return try await body(try SQLiteSyncStore(path: database, schema: TrialSchema.current)) }
        let store = try PostgresSyncStore(url: database, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        return try await store.withRunning { try await body(store) }
    }
}
