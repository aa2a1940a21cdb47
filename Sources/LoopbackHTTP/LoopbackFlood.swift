import Foundation

/// Threads that send requests of a few kinds in a loop until stopped, and count the statuses they
/// get: one client flooding a server. Plain threads, since each request blocks on its socket.
public final class LoopbackFlood: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: [Int: Int]] = [:]
    private var stopped = false

    public init() {}

    /// Starts `threads` threads sending `kind` with `send`, which answers the response's status
    /// (nil when there was none).
    public func start(_ kind: String, threads: Int, _ send: @escaping @Sendable () -> Int?) {
        for _ in 0..<threads {
            Thread.detachNewThread { [self] in
                while !isStopped { record(kind, send()) }
            }
        }
    }

    /// Stops the threads after their current request.
    public func stop() { lock.withLock { stopped = true } }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func record(_ kind: String, _ status: Int?) { lock.withLock { counts[kind, default: [:]][status ?? 0, default: 0] += 1 } }

    /// Per kind, how many requests got each status (0: no answer).
    public var summary: [String: [Int: Int]] { lock.withLock { counts } }

    /// The summary on one line: `kind: 12×413 3×429; …`.
    public var summaryLine: String {
        summary.sorted { $0.key < $1.key }.map { kind, statuses in
            "\(kind): " + statuses.sorted { $0.key < $1.key }.map { "\($0.value)×\($0.key)" }.joined(separator: " ")
        }.joined(separator: "; ")
    }

    /// A process's resident memory in bytes, from /proc: now (`VmRSS`) or at its peak (`VmHWM`).
    public static func memory(of pid: Int32, _ field: String) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("\(field):") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
}
