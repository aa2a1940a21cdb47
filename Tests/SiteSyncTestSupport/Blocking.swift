import Foundation

/// Blocking work awaited from async tests without holding a thread of Swift's cooperative pool.
///
/// The pool has one thread per core, two on the CI machine; every test's server in the process
/// answers on it. A test that blocks it (reading a subprocess's output, waiting for one to exit)
/// stalls every other test's requests meanwhile, long enough for their clients to time out.
public enum Blocking {
    /// Runs `work` on a thread of Dispatch's and returns its result.
    public static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}
