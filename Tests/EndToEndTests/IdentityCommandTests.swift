import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import Testing
import TrialRecords

/// `sitesync init` enrolment, a copied file refused and rejoined, and `clock reset`, run as commands;
/// and the upgrade of a replica from before replica credentials.
@Suite("Replica identity, as a person meets it", .serialized)
struct IdentityCommandTests {
    @Test("init enrols; a copied file is refused with what to do; init --rejoin fixes it; clock reset reports")
    func copiedFileAndRejoin() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-identity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cli = Commands(directory: directory, environment: ["SITESYNC_DB": ""])
        let (server, port) = try await cli.startServer(database: "server.sqlite")
        defer { server.terminate() }
        let token = try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "server.sqlite"]).line

        let initialised = try await cli.sitesync(
            "init", "--db", "a.sqlite", "--site", "S01", "--server", "http://127.0.0.1:\(port)", "--token", token, "--user", "A. Rivera")
        #expect(initialised.status == 0)
        #expect(initialised.stdout.contains("Enrolled with http://127.0.0.1:\(port)"))
        try await cli.signIn(db: "a.sqlite", database: "server.sqlite")
        let status = try JSONSerialization.jsonObject(with: Data(try await cli.sitesync("status", "--db", "a.sqlite", "--json").stdout.utf8)) as? [String: Any]
        #expect(status?["enrolled"] as? Bool == true)
        #expect(try await cli.sitesync("put", "--db", "a.sqlite", "subjects", "screening_no=S01-001").status == 0)
        #expect(try await cli.sitesync("sync", "--db", "a.sqlite").status == 0)

        // The file is copied to a second machine; both record offline, the original syncs first
        try FileManager.default.copyItem(at: directory.appendingPathComponent("a.sqlite"), to: directory.appendingPathComponent("copy.sqlite"))
        // Whoever uses the copy signs in on it: the copy is signed in as nobody.
        #expect(try await cli.sitesync("whoami", "--db", "copy.sqlite").status == 1)
        try await cli.signIn(db: "copy.sqlite", database: "server.sqlite")
        let mine = try await cli.sitesync("put", "--db", "copy.sqlite", "subjects", "screening_no=S01-002").line
        #expect(try await cli.sitesync("put", "--db", "a.sqlite", "subjects", "screening_no=S01-003").status == 0)
        #expect(try await cli.sitesync("sync", "--db", "a.sqlite").status == 0)
        let refused = try await cli.sitesync("sync", "--db", "copy.sqlite")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("replica_diverged") && refused.stderr.contains("sitesync init --rejoin"))

        // The file keeps no enrolment token once enrolled: not in a column, not anywhere in its bytes.
        for file in ["a.sqlite", "a.sqlite-wal", "copy.sqlite", "copy.sqlite-wal"] {
            let bytes = (try? Data(contentsOf: directory.appendingPathComponent(file))) ?? Data()
            #expect(bytes.range(of: Data(token.utf8)) == nil, "\(file) holds the enrolment token")
        }
        let withoutToken = try await cli.sitesync("init", "--db", "copy.sqlite", "--rejoin")
        #expect(withoutToken.status != 0 && withoutToken.stderr.contains("--rejoin needs an enrolment token"), "\(withoutToken.stderr)")
        try Data(token.utf8).write(to: directory.appendingPathComponent("token.txt"))
        let rejoined = try await cli.sitesync("init", "--db", "copy.sqlite", "--rejoin", "--token-file", "token.txt")
        #expect(rejoined.status == 0)
        #expect(rejoined.stdout.contains("is now replica") && rejoined.stdout.contains("Enrolled with"))
        let caughtUp = try await cli.sitesync("sync", "--db", "copy.sqlite")
        #expect(caughtUp.line == "Pushed 1, pulled 1, conflicts 0.", "\(caughtUp.stdout) \(caughtUp.stderr)")
        #expect(try await cli.sitesync("sync", "--db", "a.sqlite").line == "Pushed 0, pulled 1, conflicts 0.")
        #expect(try await cli.sitesync("get", "--db", "a.sqlite", "subjects", mine).stdout.contains("S01-002"))

        // --rejoin keeps the site, server and user
        #expect(try await cli.sitesync("init", "--db", "a.sqlite", "--rejoin", "--site", "S02").stderr.contains("--rejoin keeps the replica's site"))

        // A stolen laptop's credential revoked: the file cannot enrol itself again, and the
        // enrolment token it was set up with, once revoked too, enrols nothing.
        let stolen = try #require(try Replica.open(path: directory.appendingPathComponent("a.sqlite").path, schema: TrialSchema.current).identity)
        #expect(try await cli.run("sitesync-server", ["token", "revoke", "--replica", stolen.replicaID, "--database", "server.sqlite"]).status == 0)
        #expect(try await cli.sitesync("sync", "--db", "a.sqlite").stderr.contains("revoked"))
        #expect(try await cli.sitesync("init", "--db", "a.sqlite", "--rejoin").stderr.contains("--rejoin needs an enrolment token"))

        let reset = try await cli.sitesync("clock", "reset", "--db", "a.sqlite")
        #expect(reset.status == 0 && reset.stdout.contains("is not ahead"))
    }

    @Test("A replica from before replica credentials enrols under its own id at its next sync and loses nothing")
    func upgradedReplica() async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try await b.sync()
            // As the upgrade leaves it: the server knows what a pushed but holds no credential for
            // it, and a's file holds the site token, no credential, and no acknowledged sequence number.
            let replica = a.replica.identity!.replicaID
            try await #require(server.store as? SQLiteSyncStore).writer.write { db in
                try db.execute(sql: "DELETE FROM tokens WHERE replica_id = ?", arguments: [replica])
            }
            try await a.replica.writer.write { db in
                try db.execute(
                    sql: "UPDATE _sitesync_meta SET token = ?, enrolled = 0, credential = NULL, acked = NULL, unconfirmed = '[]'", arguments: [server.s01]
                )
            }
            let upgraded = try Replica.open(path: a.replica.writer.path, schema: TrialSchema.current)
            #expect(upgraded.identity?.isEnrolled == false)
            try upgraded.put("subjects", id: id, ["status": .text("enrolled")], reason: "Corrected from the source document")
            let laptop = Laptop(replica: upgraded, transport: try HTTPTransport(replica: upgraded))
            #expect(try await laptop.sync().pushed == 1)
            #expect(upgraded.identity?.replicaID == replica && upgraded.identity?.isEnrolled == true)
            try await b.sync()
            #expect(try b.replica.get("subjects", id: id)?["status"] == .text("enrolled"))
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
        }
    }
}
