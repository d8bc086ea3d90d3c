// One scrape's worth of Prometheus text, from counters the daemons already keep. The exposition
// format (names, HELP/TYPE lines, label escaping) is swift-prometheus's: a page is a fresh
// PrometheusCollectorRegistry filled with the values read at that moment, so a counter's value is
// what the daemon counted, not what this module saw.
import Prometheus

/// The metrics of one moment, as Prometheus text (`text/plain; version=0.0.4`).
///
/// ```swift
/// var page = MetricsPage()
/// page.counter("sixgate_ndp_solicitations_total", help: "Neighbour solicitations seen.",
///              labels: [("interface", "eth0")], value: 42)
/// let text = page.text   // # HELP …, # TYPE … counter, sixgate_ndp_solicitations_total{interface="eth0"} 42
/// ```
public struct MetricsPage {
    let registry = PrometheusCollectorRegistry()

    public init() {}

    /// A counter (a total that only grows while the daemon runs). Label values may hold any text:
    /// quotes, backslashes and newlines are escaped as the exposition format says.
    public mutating func counter(_ name: String, help: String, labels: [(String, String)] = [], value: UInt64) {
        registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels).increment(by: Int64(clamping: value))
    }

    /// A gauge (a value that goes up and down, or a time in seconds since the epoch).
    public mutating func gauge(_ name: String, help: String, labels: [(String, String)] = [], value: Double) {
        registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels).set(value)
    }

    /// The whole name in `metricName` (an empty unit is left out of the name).
    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The page as UTF-8 bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        registry.emit(into: &out)
        return out
    }

    /// The page as text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The content type a scraper expects for this format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
