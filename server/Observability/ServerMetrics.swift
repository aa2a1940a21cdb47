import Foundation
import Metrics
import Prometheus
import SiteSyncCore
import Synchronization

/// The server's metrics, recorded through swift-metrics into a Prometheus registry of the
/// application's own (not the process-wide `MetricsSystem`), and served at `/metrics` in the
/// Prometheus text format (docs/MONITORING.md lists every series).
public final class ServerMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    let pushedRecords: Metrics.Counter
    let pulledRecords: Metrics.Counter
    let fieldChanges: Metrics.Counter
    let conflicts: Metrics.Counter
    let pushApply: Metrics.Timer
    let pull: Metrics.Timer
    private let requests = LabelledMetrics<RequestKey, Metrics.Counter>()
    private let refusals = LabelledMetrics<String, Metrics.Counter>()
    private let openConflicts = LabelledMetrics<String, Metrics.Gauge>()

    /// Seconds, from a millisecond to a minute: an applied push or a pull page.
    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(60),
    ]

    /// Creates the metrics in a new registry.
    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.latencyBuckets
        self.registry = registry
        self.factory = factory
        pushedRecords = Metrics.Counter(label: "sitesync_push_records_total", factory: factory)
        pulledRecords = Metrics.Counter(label: "sitesync_pull_records_total", factory: factory)
        fieldChanges = Metrics.Counter(label: "sitesync_field_changes_total", factory: factory)
        conflicts = Metrics.Counter(label: "sitesync_conflicts_total", factory: factory)
        pushApply = Metrics.Timer(label: "sitesync_push_apply_duration_seconds", preferredDisplayUnit: .seconds, factory: factory)
        pull = Metrics.Timer(label: "sitesync_pull_duration_seconds", preferredDisplayUnit: .seconds, factory: factory)
    }

    private struct RequestKey: Hashable {
        var method: String
        var route: String
        var status: Int
    }

    /// Counts a request answered with `status` on `route` (the route's pattern, such as
    /// `/v1/push/{id}`, so that ids do not make new series).
    func request(method: String, route: String, status: Int) {
        requests.metric(RequestKey(method: method, route: route, status: status)) {
            Metrics.Counter(
                label: "sitesync_http_requests_total", dimensions: [("method", method), ("route", route), ("status", String(status))], factory: factory
            )
        }.increment()
    }

    /// Counts a request refused with the error `code`.
    func refusal(_ code: String) {
        refusals.metric(code) { Metrics.Counter(label: "sitesync_refusals_total", dimensions: [("code", code)], factory: factory) }.increment()
    }

    /// Records an applied push: records received, field changes applied, conflicts logged, time taken.
    func pushApplied(records: Int, fieldChanges changes: Int, conflicts logged: Int, duration: Duration) {
        pushedRecords.increment(by: records)
        fieldChanges.increment(by: changes)
        conflicts.increment(by: logged)
        pushApply.recordNanoseconds(duration.nanoseconds)
    }

    /// Records a pull page answered.
    func pulled(records: Int, duration: Duration) {
        pulledRecords.increment(by: records)
        pull.recordNanoseconds(duration.nanoseconds)
    }

    /// Sets the open conflicts of every site; sites that had some and have none now read 0.
    func setOpenConflicts(_ counts: [String: Int]) {
        for site in openConflicts.keys.union(counts.keys) {
            openConflicts.metric(site) { Metrics.Gauge(label: "sitesync_open_conflicts", dimensions: [("site", site)], factory: factory) }
                .record(counts[site] ?? 0)
        }
    }

    /// The metrics in the Prometheus text format, with a `# HELP` line for each.
    public func render() -> String {
        var text = ""
        for line in registry.emitToString().split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst("# TYPE ".count).split(separator: " ").first, let help = Self.help[String(name)] {
                text += "# HELP \(name) \(help)\n"
            }
            text += line + "\n"
        }
        return text
    }

    static let help = [
        "sitesync_http_requests_total": "HTTP requests answered, by method, route pattern and status.",
        "sitesync_refusals_total": "Requests refused, by error code (docs/PROTOCOL.md).",
        "sitesync_push_records_total": "Records received in pushes applied.",
        "sitesync_pull_records_total": "Records sent in pull pages.",
        "sitesync_field_changes_total": "Field changes received in pushes applied, as the audit trail records them.",
        "sitesync_conflicts_total": "Conflicts logged: values that lost to a concurrent write.",
        "sitesync_push_apply_duration_seconds": "Time to apply a push in the store, from checked to committed.",
        "sitesync_pull_duration_seconds": "Time to read a pull page from the store, waiting excluded.",
        "sitesync_open_conflicts": "Conflicts not yet resolved, by site, read from the store at each scrape.",
    ]
}

/// The metrics of one name, by their labels, made on first use and kept: looking one up is a
/// dictionary read under a lock, not a lookup in the registry.
private final class LabelledMetrics<Key: Hashable & Sendable, Metric: Sendable>: Sendable {
    private let metrics = Mutex<[Key: Metric]>([:])

    /// The metric for `key`, made by `make` the first time.
    func metric(_ key: Key, make: () -> Metric) -> Metric {
        metrics.withLock { metrics in
            if let metric = metrics[key] { return metric }
            let metric = make()
            metrics[key] = metric
            return metric
        }
    }

    /// The keys with a metric.
    var keys: Set<Key> { metrics.withLock { Set($0.keys) } }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
