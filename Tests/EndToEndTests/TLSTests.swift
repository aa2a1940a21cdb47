import Foundation
import Hummingbird
import HummingbirdTesting
import SiteSyncClient
import SiteSyncCore
import SiteSyncTestSupport
import Synchronization
import Testing

/// HTTPS between laptops and the server: the server presents a certificate, the laptop checks it
/// against the private authority it was given, and plain HTTP is refused off loopback.
@Suite("TLS", .serialized)
struct TLSTests {
    /// Runs `openssl` in `folder`.
    private func openssl(_ arguments: [String], in folder: URL) async throws {
        let run = try await Subprocess.run("/usr/bin/openssl", arguments, directory: folder.path)
        #expect(run.status == 0, "openssl \(arguments.joined(separator: " "))")
    }

    /// A certificate authority `name`.pem / `name`.key, made here.
    private func authority(_ name: String, in folder: URL) async throws {
        try await openssl(
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(name).key", "-out", "\(name).pem",
                "-days", "2", "-subj", "/CN=\(name)", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            ],
            in: folder
        )
    }

    /// A server certificate `name`.pem / `name`.key for `names` (subjectAltName entries), signed by `ca`.
    private func certificate(_ name: String, names: String, signedBy ca: String, in folder: URL) async throws {
        try await openssl(
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(name).key", "-out", "\(name).csr", "-subj",
                "/CN=\(name)",
            ], in: folder)
        try Data("subjectAltName=\(names)\nextendedKeyUsage=serverAuth\n".utf8).write(to: folder.appendingPathComponent("\(name).ext"))
        try await openssl(
            [
                "x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial", "-out", "\(name).pem", "-days", "2",
                "-extfile", "\(name).ext",
            ],
            in: folder
        )
    }

    @Test("A laptop syncs over HTTPS with its private CA; a wrong CA, a wrong host name and an untrusted certificate are refused")
    func privateAuthority() async throws {
        try await Commands.inTemporaryFolder { cli in
            try await authority("ca", in: cli.directory)
            try await authority("other-ca", in: cli.directory)
            try await certificate("server", names: "IP:127.0.0.1,DNS:localhost", signedBy: "ca", in: cli.directory)
            try await certificate("elsewhere", names: "DNS:sync.example.org", signedBy: "ca", in: cli.directory)

            let (server, port) = try await cli.startServer(database: "server.sqlite", arguments: ["--tls-cert", "server.pem", "--tls-key", "server.key"])
            defer { server.terminate() }
            let token = try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "server.sqlite"]).line
            try Data(token.utf8).write(to: cli.directory.appendingPathComponent("token.txt"))
            func laptop(_ name: String, port: Int, ca: String?) async throws -> (Commands, Commands.Result) {
                let commands = Commands(directory: cli.directory, environment: ["SITESYNC_DB": cli.directory.appendingPathComponent("\(name).sqlite").path])
                var arguments = ["init", "--site", "S01", "--server", "https://127.0.0.1:\(port)", "--token-file", "token.txt", "--user", name]
                if let ca { arguments += ["--ca-cert", ca] }
                return (commands, try await commands.run("sitesync", arguments))
            }

            let (a, initA) = try await laptop("a", port: port, ca: "ca.pem")
            #expect(initA.status == 0 && initA.stdout.contains("Enrolled with https://127.0.0.1:\(port)"), "\(initA.stdout)\(initA.stderr)")
            try await a.signIn(database: "server.sqlite")
            #expect(try await a.sitesync("put", "subjects", "screening_no=S01-001").status == 0)
            let synced = try await a.sitesync("sync")
            #expect(synced.status == 0 && synced.line.contains("Pushed 1"), "\(synced.stderr)")

            // Signed by another authority: not enrolled, and the sync says why.
            let (b, initB) = try await laptop("b", port: port, ca: "other-ca.pem")
            #expect(!initB.stdout.contains("Enrolled"))
            let refused = try await b.sitesync("sync")
            #expect(refused.status != 0 && refused.stderr.contains("TLS certificate this laptop does not accept"), "\(refused.stderr)")

            // The system's authorities do not know the private one.
            let (c, _) = try await laptop("c", port: port, ca: nil)
            let untrusted = try await c.sitesync("sync")
            #expect(untrusted.status != 0 && untrusted.stderr.contains("TLS certificate this laptop does not accept"), "\(untrusted.stderr)")
            #expect(!untrusted.stderr.contains("cannot be reached"), "named as untrusted, not unreachable: \(untrusted.stderr)")

            // The right authority, the wrong host name.
            let (other, otherPort) = try await cli.startServer(
                database: "server.sqlite", arguments: ["--tls-cert", "elsewhere.pem", "--tls-key", "elsewhere.key"])
            defer { other.terminate() }
            let (d, _) = try await laptop("d", port: otherPort, ca: "ca.pem")
            let wrongHost = try await d.sitesync("sync")
            #expect(wrongHost.status != 0 && wrongHost.stderr.contains("TLS certificate this laptop does not accept"), "\(wrongHost.stderr)")

            // Not a certificate: refused before anything is written.
            try Data("not a certificate".utf8).write(to: cli.directory.appendingPathComponent("bad.pem"))
            let (_, bad) = try await laptop("e", port: port, ca: "bad.pem")
            #expect(bad.status != 0 && bad.stderr.contains("not a PEM certificate"))
            #expect(!FileManager.default.fileExists(atPath: cli.directory.appendingPathComponent("e.sqlite").path))
        }
    }

    @Test("serve refuses plain HTTP off loopback unless told a proxy terminates TLS, and names an unreadable certificate")
    func plainHTTPRefused() async throws {
        try await Commands.inTemporaryFolder { cli in
            // Refused in argument validation, before anything binds.
            let open = try await cli.run("sitesync-server", ["serve", "--database", "server.sqlite", "--host", "0.0.0.0", "--port", "0"])
            #expect(open.status != 0 && open.stderr.contains("Refusing to serve plain HTTP on 0.0.0.0") && open.stderr.contains("--insecure-http"))
            let half = try await cli.run("sitesync-server", ["serve", "--database", "server.sqlite", "--tls-cert", "server.pem"])
            #expect(half.status != 0 && half.stderr.contains("--tls-cert and --tls-key together"))
            let missing = try await cli.run(
                "sitesync-server", ["serve", "--database", "server.sqlite", "--tls-cert", "missing.pem", "--tls-key", "missing.key"])
            #expect(missing.status != 0 && missing.stderr.contains("missing.pem"))
            // A host *name* that starts like a loopback address is not one.
            for host in ["127.example.org", "127.0.0.1.nip.io", "localhost"] {
                let named = try await cli.run("sitesync-server", ["serve", "--database", "server.sqlite", "--host", host, "--port", "0"])
                #expect(named.status != 0 && named.stderr.contains("Refusing to serve plain HTTP on \(host)"), "\(host): \(named.stderr)")
            }
        }
    }

    @Test("init refuses plain HTTP to a server that is not a loopback address, unless told the network is trusted")
    func plainHTTPToRemoteRefused() async throws {
        try await Commands.inTemporaryFolder { cli in
            try Data("sst_unused".utf8).write(to: cli.directory.appendingPathComponent("token.txt"))
            let laptop = Commands(directory: cli.directory, environment: ["SITESYNC_DB": cli.directory.appendingPathComponent("a.sqlite").path])
            for server in ["http://203.0.113.7:8080", "http://sync.example.org", "http://127.example.org:8080", "http://localhost:8080"] {
                let refused = try await laptop.run("sitesync", ["init", "--site", "S01", "--server", server, "--token-file", "token.txt", "--user", "A"])
                #expect(
                    refused.status != 0 && refused.stderr.contains("is not a loopback address") && refused.stderr.contains("--insecure-http"),
                    "\(server): \(refused.stderr)")
                #expect(!FileManager.default.fileExists(atPath: cli.directory.appendingPathComponent("a.sqlite").path), "nothing created")
            }
        }
    }
}

/// A laptop follows no redirect: it would carry the bearer credential to another origin, or from
/// `https` to plain `http` (issue "Nothing lost when the database fails", hole 7).
@Suite("Redirects")
struct RedirectTests {
    @Test("A redirect to another origin is refused naming it, and the credential never reaches the other origin")
    func noRedirect() async throws {
        let seen = Mutex<[String]>([])
        let elsewhere = Router()
        elsewhere.get("**") { request, _ -> String in
            seen.withLock { $0.append(request.headers[.authorization] ?? "(no credential)") }
            return "{}"
        }
        try await Application(router: elsewhere, configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { other in
            let redirecting = Router()
            redirecting.get("**") { request, _ -> Response in
                Response(status: .temporaryRedirect, headers: [.location: "http://127.0.0.1:\(other.port!)\(request.uri.path)"])
            }
            try await Application(router: redirecting, configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { client in
                let transport = HTTPTransport(serverURL: URL(string: "http://127.0.0.1:\(client.port!)")!, token: "ssr_secret", schemaVersion: 2)
                let error = await #expect(throws: SyncError.self) {
                    try await transport.pull(PullRequest(cursor: [:], limit: 10, replica: "r1"))
                }
                #expect(error?.message.contains("a redirect to http://127.0.0.1:\(other.port!)") == true, "\(String(describing: error))")
                #expect(error?.message.contains("follows no redirect") == true)
            }
        }
        #expect(seen.withLock { $0 }.isEmpty, "the other origin got no request")
    }
}
