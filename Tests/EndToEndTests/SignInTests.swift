import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

/// People signing in on laptops, over real loopback HTTP, on both stores: first sign-in at the
/// server, later ones offline, lockouts, timeouts, copies of the file, and the server's changes
/// reaching the laptop at its next sync.
@Suite("Sign-in on a laptop")
struct SignInTests {
    static let password = "correct horse battery"

    /// A password's digest at a low cost: these tests run beside others on two cores, and the
    /// server verifies whatever cost a digest names.
    static func hash(_ password: String) throws -> String {
        try PasswordHash(password: password, cost: .init(logN: 10, blockSize: 8, parallelism: 1)).encoded
    }

    /// Creates `username` on the server with ``password``.
    static func addPerson(
        _ server: LiveServer, _ username: String, name: String, role: PersonRole = .coordinator, sites: [String] = ["S01"], password: String = password
    ) async throws {
        _ = try await server.store.changeAccount(
            username, .create(fullName: name, role: role, sites: sites, passwordHash: try Self.hash(password)),
            at: Date().formatted(.iso8601), by: "test")
    }

    @Test(
        "The first sign-in goes to the server and registers a key; later ones are offline; five wrong passwords lock the person out", arguments: StoreKind.all)
    func firstAndOffline(kind: StoreKind) async throws {
        try await LiveServer.run(store: kind) { server in
            try await Self.addPerson(server, "ana", name: "Ana Lima")
            let wall = Mutex(HybridLogicalClock.systemMilliseconds())
            let path = server.directory.appendingPathComponent("a.sqlite").path
            let replica = try Replica.open(path: path, schema: TrialSchema.current, wallClock: { wall.withLock { $0 } })
            try replica.initialize(site: "S01", user: "Laptop A", serverURL: server.url, token: server.s01)
            let transport = try HTTPTransport(replica: replica)
            try await SyncEngine(replica: replica, transport: transport).enrol()
            let replicaID = try #require(replica.identity?.replicaID)

            #expect(try replica.signedInPerson() == nil)
            #expect(throws: ReplicaError.signInRequired) { try replica.requireSignedIn() }
            // The first sign-in needs the server.
            let offlineFirst = await #expect(throws: ReplicaError.signInRefused) {
                try await replica.signIn(username: "ana", password: Self.password, server: nil)
            }
            #expect("\(offlineFirst.map { "\($0)" } ?? "")".contains("needs the server"))
            let wrong = await #expect(throws: ReplicaError.signInRefused) {
                try await replica.signIn(username: "ana", password: "not the password", server: transport)
            }
            #expect("\(wrong.map { "\($0)" } ?? "")".contains("4 attempts left"))

            let person = try await replica.signIn(username: "ana", password: Self.password, server: transport)
            #expect(person.username == "ana" && person.name == "Ana Lima" && person.role == .coordinator && person.sites == ["S01"])
            #expect(try replica.signedInPerson()?.username == "ana")
            // The server registered the laptop's key for ana and recorded the sign-in.
            let keys = try await server.store.personKeys(replica: replicaID)
            #expect(keys.map(\.username) == ["ana"] && keys.first?.keyID == person.keyID)
            #expect(try await server.store.account(username: "ana")?.lastSignInAt != nil)

            // The session is kept outside the replica file, readable by its owner only; the file
            // holds no private key, only the one the password wraps.
            let sessions = try FileManager.default.contentsOfDirectory(atPath: Self.sessionDirectory.path).filter { $0.hasPrefix(replicaID) }
            #expect(sessions.count == 1)
            let mode =
                try FileManager.default.attributesOfItem(atPath: Self.sessionDirectory.appendingPathComponent(sessions[0]).path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let session = try #require(FileManager.default.contents(atPath: Self.sessionDirectory.appendingPathComponent(sessions[0]).path))
            let privateKey = try #require((try JSONSerialization.jsonObject(with: session) as? [String: Any])?["privateKey"] as? String)
            let fileBytes = try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
            #expect(fileBytes.range(of: try #require(Data(base64Encoded: privateKey))) == nil, "the replica file holds the private key in the clear")

            // Signed out; then in again offline, against what the laptop learnt.
            #expect(try replica.signOut() == "ana")
            #expect(try replica.signedInPerson() == nil)
            #expect(try await replica.signIn(username: "ana", password: Self.password, server: nil).keyID == person.keyID)

            // 15 minutes without a command end the sign-in; each command extends it.
            wall.withLock { $0 += 14 * 60_000 }
            #expect(try replica.requireSignedIn().username == "ana")
            wall.withLock { $0 += 14 * 60_000 }
            #expect(try replica.signedInPerson()?.username == "ana")
            wall.withLock { $0 += 2 * 60_000 }
            #expect(try replica.signedInPerson() == nil)

            // Five wrong passwords in a row lock ana out on this laptop for 15 minutes, even with the right one.
            for attempt in 1...5 {
                let refused = await #expect(throws: ReplicaError.signInRefused) {
                    try await replica.signIn(username: "ana", password: "wrong \(attempt) wrong", server: nil)
                }
                if attempt == 5 { #expect("\(refused.map { "\($0)" } ?? "")".contains("locked out")) }
            }
            let locked = await #expect(throws: ReplicaError.signInRefused) { try await replica.signIn(username: "ana", password: Self.password, server: nil) }
            #expect("\(locked.map { "\($0)" } ?? "")".contains("locked out on this laptop until"))
            wall.withLock { $0 += 16 * 60_000 }
            #expect(try await replica.signIn(username: "ana", password: Self.password, server: nil).username == "ana")

            // A copy of the file, at another path, shares no sign-in.
            let copyPath = server.directory.appendingPathComponent("copy.sqlite").path
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: path + suffix) {
                try FileManager.default.copyItem(atPath: path + suffix, toPath: copyPath + suffix)
            }
            let copy = try Replica.open(path: copyPath, schema: TrialSchema.current, wallClock: { wall.withLock { $0 } })
            #expect(try copy.signedInPerson() == nil)
            #expect(throws: ReplicaError.signInRequired) { try copy.requireSignedIn() }
        }
    }

    @Test(
        "The server refuses a person of another site and a wrong password; a deactivation or a new password at the server reaches the laptop at its next sync",
        arguments: StoreKind.all)
    func serverChanges(kind: StoreKind) async throws {
        try await LiveServer.run(store: kind) { server in
            try await Self.addPerson(server, "ana", name: "Ana Lima")
            try await Self.addPerson(server, "bo", name: "Bo Berg", sites: ["S02"])
            let a = try server.laptop("a")
            let transport = try HTTPTransport(replica: a.replica)
            try await a.sync()

            let otherSite = await #expect(throws: ReplicaError.signInRefused) {
                try await a.replica.signIn(username: "bo", password: Self.password, server: transport)
            }
            #expect("\(otherSite.map { "\($0)" } ?? "")".contains("works at S02, not at S01"))
            // An enrolment token signs nobody in: people sign in on an enrolled laptop.
            let enrolment = HTTPTransport(serverURL: server.url, token: server.s01, schemaVersion: TrialSchema.current.version)
            let refused = await #expect(throws: SyncError.self) {
                try await enrolment.signIn(SignInRequest(username: "ana", password: Self.password, publicKey: Data(count: 32).base64EncodedString()))
            }
            #expect(refused?.status == 403)
            let unknown = await #expect(throws: ReplicaError.signInRefused) {
                try await a.replica.signIn(username: "nobody", password: Self.password, server: transport)
            }
            #expect("\(unknown.map { "\($0)" } ?? "")".contains("wrong"))

            // A password reset at the server: the laptop forgets the key at its next sync, and the
            // next sign-in needs the server and the new password.
            try await a.replica.signIn(username: "ana", password: Self.password, server: transport)
            let reset = try Self.hash("a brand new passphrase")
            _ = try await server.store.changeAccount(
                "ana", .resetPassword(passwordHash: reset), at: Date().addingTimeInterval(1).formatted(.iso8601), by: "test")
            #expect(try a.replica.signedInPerson()?.username == "ana", "until the laptop hears of it")
            try await a.sync()
            #expect(try a.replica.signedInPerson() == nil, "the sync ended the sign-in")
            await #expect(throws: ReplicaError.signInRefused) { try await a.replica.signIn(username: "ana", password: Self.password, server: nil) }
            await #expect(throws: ReplicaError.signInRefused) { try await a.replica.signIn(username: "ana", password: Self.password, server: transport) }
            let again = try await a.replica.signIn(username: "ana", password: "a brand new passphrase", server: transport)
            #expect(try await server.store.personKeys(replica: try #require(a.replica.identity?.replicaID)).map(\.keyID).contains(again.keyID))

            // A deactivation: the sign-in ends at the next sync, and offline sign-ins are refused.
            _ = try await server.store.changeAccount("ana", .deactivate(reason: "Left the team"), at: Date().formatted(.iso8601), by: "test")
            try await a.sync()
            #expect(try a.replica.signedInPerson() == nil)
            let deactivated = await #expect(throws: ReplicaError.signInRefused) {
                try await a.replica.signIn(username: "ana", password: "a brand new passphrase", server: nil)
            }
            #expect("\(deactivated.map { "\($0)" } ?? "")".contains("deactivated"))
        }
    }

    @Test("sitesync login reads the password from standard input or a file, whoami shows the person, logout ends the sign-in")
    func commands() async throws {
        try await Commands.inTemporaryFolder { cli in
            let server = try await cli.startServerAndInit(user: "Laptop A")
            defer { server.terminate() }
            #expect(try await cli.sitesync("logout").stdout.contains("Signed out coordinator."))
            let added = try await cli.run(
                "sitesync-server",
                ["user", "add", "ana", "--name", "Ana Lima", "--role", "coordinator", "--site", "S01", "--database", "sitesync-server.sqlite"],
                input: Data((Self.password + "\n").utf8))
            #expect(added.status == 0, "\(added.stderr)")

            let nobody = try await cli.sitesync("whoami")
            #expect(nobody.status == 1 && nobody.stderr.contains("Nobody is signed in on this laptop: run `sitesync login USERNAME`"))
            let wrong = try await cli.run("sitesync", ["login", "ana", "--password-file", "-"], input: Data("not it at all\n".utf8))
            #expect(wrong.status != 0 && wrong.stderr.contains("The username or the password is wrong; 4 attempts left"), "\(wrong.stderr)")
            let login = try await cli.run("sitesync", ["login", "ana", "--password-file", "-"], input: Data((Self.password + "\n").utf8))
            #expect(login.status == 0 && login.stdout.contains("Signed in as ana (Ana Lima), coordinator"), "\(login.stderr)")

            let whoami = try await cli.sitesync("whoami", "--json")
            let person = try JSONDecoder().decode(SignedInPerson.self, from: Data(whoami.stdout.utf8))
            #expect(person.username == "ana" && person.name == "Ana Lima" && person.sites == ["S01"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(whoami.stdout.utf8)) as? [String: Any])
            #expect(object["user"] as? String == "Ana Lima" && object["username"] as? String == "ana" && object["ends_at"] is String)
            #expect(try await cli.sitesync("whoami").stdout.contains("Ana Lima"))
            // The key the laptop registered for ana, as an inspector reads it.
            let keys = try await cli.run("sitesync-server", ["audit", "keys", "--format", "jsonl", "--database", "sitesync-server.sqlite"])
            let listed = keys.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
            #expect(listed.map { $0["username"] } == ["coordinator", "ana"])
            let key = try #require(listed.last)
            #expect(key["username"] == "ana" && key["key_id"] == person.keyID && Data(base64Encoded: key["public_key"] ?? "")?.count == 32)
            let csvKeys = try await cli.run("sitesync-server", ["audit", "keys", "--format", "csv", "--database", "sitesync-server.sqlite"]).stdout
            #expect(csvKeys.hasPrefix("key_id,username,replica,public_key,registered_at\r\n") && csvKeys.contains("\r\n\(person.keyID),ana,"))

            // Offline, from a file: the server stopped.
            server.terminate()
            await server.exit()
            #expect(try await cli.sitesync("logout").stdout.contains("Signed out ana."))
            try Data((Self.password + "\n").utf8).write(to: cli.directory.appendingPathComponent("pw.txt"))
            let offline = try await cli.sitesync("login", "ana", "--password-file", "pw.txt")
            #expect(offline.status == 0, "\(offline.stderr)")
            #expect(try await cli.sitesync("logout").status == 0)
            #expect(try await cli.sitesync("logout").stdout.contains("Nobody was signed in."))
            #expect(try await cli.sitesync("whoami").status == 1)
        }
    }

    @Test("Reading and writing records need a signed-in person whose role allows it; anyone else is refused, naming why, and nothing is written")
    func gates() async throws {
        try await Commands.inTemporaryFolder { cli in
            let server = try await cli.startServerAndInit(user: "Laptop A")
            defer { server.terminate() }
            let id = try await cli.sitesync("put", "subjects", "screening_no=S01-001").line
            #expect(UUID(uuidString: id) != nil)
            #expect(try await cli.sitesync("logout").status == 0)
            func pending() throws -> Int {
                try Replica.open(path: cli.directory.appendingPathComponent("sitesync.sqlite").path, schema: TrialSchema.current).pendingCount()
            }
            for arguments in [
                ["put", "subjects", "screening_no=S01-002"], ["put", "subjects", "--id", id, "sex=F"], ["delete", "subjects", id, "--reason", "Duplicate"],
                ["get", "subjects", id], ["list", "subjects"], ["status"], ["conflicts", "list"], ["safety", id],
            ] {
                let refused = try await cli.run("sitesync", arguments)
                #expect(refused.status != 0, "\(arguments)")
                #expect(refused.stderr.contains("Nobody is signed in on this laptop: run `sitesync login USERNAME` first"), "\(arguments): \(refused.stderr)")
            }
            #expect(try pending() == 1, "nothing was written")

            // A monitor reads, and writes nothing.
            try await cli.signIn("mo.nitor", role: "monitor")
            #expect(try await cli.sitesync("get", "subjects", id).stdout.contains("S01-001"))
            let monitorPut = try await cli.sitesync("put", "subjects", "screening_no=S01-003")
            #expect(
                monitorPut.status != 0
                    && monitorPut.stderr.contains("mo.nitor is a monitor: entering, correcting and deleting records needs a coordinator or an investigator"))
            #expect(try await cli.sitesync("conflicts", "resolve", "c1", "--keep-winner", "--reason", "x").stderr.contains("resolving conflicts needs"))
            // A data manager reads and resolves, and enters nothing.
            try await cli.signIn("dm", role: "data-manager")
            #expect(try await cli.sitesync("conflicts", "list").status == 0)
            #expect(try await cli.sitesync("delete", "subjects", id, "--reason", "Duplicate").stderr.contains("dm is a data-manager"))
            #expect(try pending() == 1, "nothing was written")

            // Syncing needs no one: it moves what signed-in people wrote.
            #expect(try await cli.sitesync("logout").status == 0)
            #expect(try await cli.sitesync("sync").line == "Pushed 1, pulled 0, conflicts 0.")
        }
    }

    static var sessionDirectory: URL {
        let environment = ProcessInfo.processInfo.environment
        if let directory = environment["SITESYNC_SESSION_DIR"], !directory.isEmpty { return URL(fileURLWithPath: directory) }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return URL(fileURLWithPath: runtime).appendingPathComponent("sitesync") }
        return FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-\(getuid())")
    }
}
