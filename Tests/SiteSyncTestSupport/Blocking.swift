import Foundation

/// Blocking work awaited from async tests on a thread of its own.
///
/// Neither shared pool may be blocked. Swift's cooperative pool has one thread per core, two on the
/// CI machine, and every test's server in the process answers on it; Dispatch's global pool grows
/// only slowly past one thread per core on Linux, and GRDB's queues run on it. A test that blocks
/// either (reading a subprocess's output, waiting for one to exit) stalled other tests' requests
/// past their clients' 20 s timeout at the start of a run, when every suite starts at once.
public enum Blocking {
    /// Runs `work` on a new thread and returns its result.
    public static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: work()) }.start()
        }
    }
}
