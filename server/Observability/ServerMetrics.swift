import Foundation
import Prometheus
import SiteSyncCore
import Synchronization

/// The server's metrics, in a Prometheus registry of the application's own (not a process-wide
/// one), each with its `# HELP` text, served at `/metrics` in the Prometheus text format
/// (docs/MONITORING.md lists every series).
public final class ServerMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry

    let pushedRecords: Prometheus.Counter
    let pulledRecords: Prometheus.Counter
    let fieldChanges: Prometheus.Counter
    let conflicts: Prometheus.Counter
    let pushApply: DurationHistogram
    let pull: DurationHistogram
    /// The labelled series made so far, by their labels: looking one up is a dictionary read under
    /// a lock of this type's, and the open conflicts' sites are needed again to set them to 0.
    private let requests = LabelledMetrics<RequestKey, Prometheus.Counter>()
    private let refusals = LabelledMetrics<String, Prometheus.Counter>()
    private let openConflicts = LabelledMetrics<String, Prometheus.Gauge>()

    /// Seconds, from a millisecond to a minute: an applied push or a pull page.
    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(60),
    ]

    /// Creates the metrics in a new registry.
    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        pushedRecords = registry.makeCounter(descriptor: Series.pushedRecords)
        pulledRecords = registry.makeCounter(descriptor: Series.pulledRecords)
        fieldChanges = registry.makeCounter(descriptor: Series.fieldChanges)
        conflicts = registry.makeCounter(descriptor: Series.conflicts)
        pushApply = registry.makeDurationHistogram(descriptor: Series.pushApply, buckets: Self.latencyBuckets)
        pull = registry.makeDurationHistogram(descriptor: Series.pull, buckets: Self.latencyBuckets)
    }

    /// Every series: its name, in the `sitesync` namespace, and its `# HELP` text (a descriptor is
    /// not `Sendable`, so each is made where it is used).
    private enum Series {
        static var pushedRecords: MetricNameDescriptor { series("push_records", unit: "total", help: "Records received in pushes applied.") }
        static var pulledRecords: MetricNameDescriptor { series("pull_records", unit: "total", help: "Records sent in pull pages.") }
        static var fieldChanges: MetricNameDescriptor {
            series(
                "field_changes", unit: "total", help: "Field changes received in pushes applied, as the audit trail records them.")
        }
        static var conflicts: MetricNameDescriptor { series("conflicts", unit: "total", help: "Conflicts logged: values that lost to a concurrent write.") }
        static var pushApply: MetricNameDescriptor {
            series(
                "push_apply_duration", unit: "seconds", help: "Time to apply a push in the store, from checked to committed.")
        }
        static var pull: MetricNameDescriptor { series("pull_duration", unit: "seconds", help: "Time to read a pull page from the store, waiting excluded.") }
        static var requests: MetricNameDescriptor {
            series("http_requests", unit: "total", help: "HTTP requests answered, by method, route pattern and status.")
        }
        static var refusals: MetricNameDescriptor { series("refusals", unit: "total", help: "Requests refused, by error code (docs/PROTOCOL.md).") }
        static var openConflicts: MetricNameDescriptor {
            series(
                "open_conflicts", unit: "", help: "Conflicts not yet resolved, by site, read from the store at each scrape.")
        }

        static func series(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "sitesync", metricName: name, unitName: unit, helpText: help)
        }
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
            registry.makeCounter(descriptor: Series.requests, labels: [("method", method), ("route", route), ("status", String(status))])
        }.increment()
    }

    /// Counts a request refused with the error `code`.
    func refusal(_ code: String) {
        refusals.metric(code) {
            registry.makeCounter(descriptor: Series.refusals, labels: [("code", code)])
        }.increment()
    }

    /// Records an applied push: records received, field changes applied, conflicts logged, time taken.
    func pushApplied(records: Int, fieldChanges changes: Int, conflicts logged: Int, duration: Duration) {
        pushedRecords.increment(by: Int64(records))
        fieldChanges.increment(by: Int64(changes))
        conflicts.increment(by: Int64(logged))
        pushApply.record(duration)
    }

    /// Records a pull page answered.
    func pulled(records: Int, duration: Duration) {
        pulledRecords.increment(by: Int64(records))
        pull.record(duration)
    }

    /// Sets the open conflicts of every site; sites that had some and have none now read 0.
    func setOpenConflicts(_ counts: [String: Int]) {
        for site in openConflicts.keys.union(counts.keys) {
            openConflicts.metric(site) {
                registry.makeGauge(descriptor: Series.openConflicts, labels: [("site", site)])
            }
            .set(Int64(counts[site] ?? 0))
        }
    }

    /// The metrics in the Prometheus text format, with a `# HELP` line for each.
    public func render() -> String {
        registry.emitToString()
    }
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
