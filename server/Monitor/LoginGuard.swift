import Foundation
import Synchronization

/// Failed sign-ins to the monitoring page, counted per client address and per token tried, on this
/// instance: after ``maximumFailures`` in ``window`` either is refused until the window has passed
/// since its oldest counted failure.
///
/// A token is 256 random bits, so guessing one is hopeless; the bound keeps a flood of attempts off
/// the store, and one leaked list of candidate tokens from being tried at speed. Counts live in the
/// instance's memory, bounded to ``maximumKeys`` addresses and tokens; several instances each count
/// their own, which a proxy's per-address limits cover (docs/DEPLOYMENT.md).
final class LoginGuard: Sendable {
    let maximumFailures: Int
    let window: Duration
    let maximumKeys: Int
    private let failures = Mutex<[String: [ContinuousClock.Instant]]>([:])

    init(maximumFailures: Int = 10, window: Duration = .seconds(900), maximumKeys: Int = 10_000) {
        self.maximumFailures = maximumFailures
        self.window = window
        self.maximumKeys = maximumKeys
    }

    /// How long `keys` (an address, a token's digest) must wait before another attempt; nil when they may try now.
    func wait(_ keys: [String], at now: ContinuousClock.Instant = .now) -> Duration? {
        failures.withLock { failures in
            keys.compactMap { key -> Duration? in
                let recent = (failures[key] ?? []).filter { now - $0 < window }
                guard recent.count >= maximumFailures, let oldest = recent.first else { return nil }
                return window - (now - oldest)
            }.max()
        }
    }

    /// Counts a failed attempt for each of `keys`.
    func fail(_ keys: [String], at now: ContinuousClock.Instant = .now) {
        failures.withLock { failures in
            if failures.count >= maximumKeys {
                failures = failures.filter { $0.value.contains { now - $0 < window } }
                // Still full of live entries: the oldest go first.
                if failures.count >= maximumKeys {
                    let keep = failures.sorted { ($0.value.last ?? now) > ($1.value.last ?? now) }.prefix(maximumKeys / 2)
                    failures = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
                }
            }
            for key in keys {
                failures[key] = Array(((failures[key] ?? []).filter { now - $0 < window } + [now]).suffix(maximumFailures))
            }
        }
    }

    /// Forgets a token's failures once it signed in.
    func succeed(_ key: String) {
        _ = failures.withLock { $0.removeValue(forKey: key) }
    }
}
