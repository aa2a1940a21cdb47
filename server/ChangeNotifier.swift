import ServiceLifecycle
import Synchronization

/// Wakes the pulls that wait for changes (`wait=` on `GET /v1/pull`, docs/PROTOCOL.md "Waiting for
/// changes") when a push commits records of a site they read.
///
/// A waiting pull registers before it reads, so a push that commits between its read and its wait
/// still wakes it. A replica is not woken by its own pushes: it holds those changes already. Waking
/// is a hint, never a source of data: a woken pull reads the store again, so a spurious wake costs
/// one empty read and a missed one (a push on another instance) costs at most the wait.
final class ChangeNotifier: Sendable {
    private struct Waiter {
        /// The sites the pull reads; nil for every site.
        var sites: Set<String>?
        var replica: String?
        var continuation: AsyncStream<Void>.Continuation
    }

    private struct State {
        var nextID: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
    }

    private let state = Mutex(State())

    init() {}

    /// Records that a push of `replica` committed records of `sites` (nil when not every site is
    /// known before the store reads the records): wakes every other replica's pull that reads one.
    func committed(sites: Set<String>?, by replica: String?) {
        let woken = state.withLock { state in
            state.waiters.values.filter { waiter in
                guard replica == nil || waiter.replica != replica else { return false }
                guard let sites, let read = waiter.sites else { return true }
                return !read.isDisjoint(with: sites)
            }.map(\.continuation)
        }
        for continuation in woken { continuation.yield() }
    }

    /// Runs `read`; when it finds nothing (`isEmpty`), waits up to `timeout` for a push committing
    /// records of `sites` (nil: any site) by another replica than `replica`, and reads once more.
    ///
    /// A graceful shutdown of the server ends the wait at once, answering the first read: the
    /// client asks again, of another instance or of this one restarted.
    func read<Result>(
        sites: Set<String>?,
        replica: String?,
        timeout: Duration,
        isEmpty: (Result) -> Bool,
        _ read: () async throws -> Result
    ) async throws -> Result {
        guard timeout > .zero else { return try await read() }
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            state.nextID += 1
            state.waiters[state.nextID] = Waiter(sites: sites, replica: replica, continuation: continuation)
            return state.nextID
        }
        defer {
            _ = state.withLock { $0.waiters.removeValue(forKey: id) }
            continuation.finish()
        }
        let first = try await read()
        guard isEmpty(first) else { return first }
        let woken = await withGracefulShutdownHandler {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for await _ in stream { return true }
                    return false
                }
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return false
                }
                let woken = await group.next() ?? false
                group.cancelAll()
                return woken
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
        guard woken, !Task.isCancelled else { return first }
        return try await read()
    }
}
