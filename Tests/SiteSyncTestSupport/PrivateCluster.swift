import Foundation
import LoopbackHTTP
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A PostgreSQL cluster of one test's own, in a temporary folder, on 127.0.0.1 and a free port:
/// for tests that stop or restart the database under a running server, which the shared cluster of
/// `SITESYNC_POSTGRES_URL` must never see.
///
/// PostgreSQL refuses to run as root: when the tests run as root (as CI does), the cluster belongs
/// to the `postgres` user the Debian package creates, as in `.ci/run`.
public final class PrivateCluster: Sendable {
    /// `postgres://sitesync@127.0.0.1:PORT/postgres`.
    public let url: String
    private let directory: String
    private let binaries: String
    private let port: Int
    private let asUser: [String]

    /// Creates and starts the cluster.
    public init() async throws {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        let version = try #require(
            versions.compactMap(Int.init).max(), "a private PostgreSQL cluster needs the Debian package postgresql (.ci/run installs it)"
        )
        binaries = "\(root)/\(version)/bin"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-cluster-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            asUser = ["/usr/sbin/runuser", "-u", "postgres", "--"]
            _ = try await Self.run(["/bin/chown", "postgres:", directory])
        } else {
            asUser = []
        }
        port = Loopback.freePort()
        url = "postgres://sitesync@127.0.0.1:\(port)/postgres"
        _ = try await Self.run(asUser + ["\(binaries)/initdb", "-D", "\(directory)/data", "-A", "trust", "-U", "sitesync", "--no-sync"])
        try await start()
    }

    /// Starts the cluster and waits until it takes connections.
    public func start() async throws {
        _ = try await Self.run(
            asUser + [
                "\(binaries)/pg_ctl", "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w",
                "-o", "-h 127.0.0.1 -p \(port) -k \(directory) -c fsync=off -c max_connections=50",
                "start",
            ]
        )
    }

    /// Stops the cluster at once (`-m immediate`, as a crash or a power cut would), or after its
    /// sessions end when `immediate` is false.
    public func stop(immediate: Bool = true) async throws {
        _ = try await Self.run(asUser + ["\(binaries)/pg_ctl", "-D", "\(directory)/data", "-m", immediate ? "immediate" : "fast", "-w", "stop"])
    }

    /// Stops the cluster, if it runs, and removes its folder.
    public func remove() async {
        _ = try? await Self.run(asUser + ["\(binaries)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func run(_ command: [String]) async throws -> String {
        let result = try await Subprocess.run(command[0], Array(command.dropFirst()))
        let output = String(decoding: result.stdout + result.stderr, as: UTF8.self)
        guard result.status == 0 else {
            throw POSIXError(.EIO, userInfo: [NSLocalizedDescriptionKey: "\(command.joined(separator: " ")) exited with \(result.status): \(output)"])
        }
        return output
    }
}
