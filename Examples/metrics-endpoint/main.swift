// metrics-endpoint: SixgateMetrics in a program of its own. Serves this machine's load averages and
// the number of scrapes at http://ADDRESS/metrics until interrupted.
//   metrics-endpoint [ADDRESS]     (default 127.0.0.1:9469; port 0: the kernel picks one)
//   curl -s http://127.0.0.1:9469/metrics
import SixgateMetrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

let scrapes = Atomic<UInt64>(0)

/// One page: read /proc/loadavg at scrape time, count the scrape.
@Sendable func page() throws -> [UInt8] {
    var page = MetricsPage()
    let n = scrapes.add(1, ordering: .relaxed).newValue
    page.counter("example_scrapes_total", help: "Pages served by this example.", value: n)
    if let f = fopen("/proc/loadavg", "r") {
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 128)
        if fgets(&line, Int32(line.count), f) != nil {
            let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let fields = text.split(separator: " ").prefix(3).compactMap { Double($0) }
            for (window, value) in zip(["1m", "5m", "15m"], fields) {
                page.gauge("example_load_average", help: "The kernel's load average.", labels: [("window", window)], value: value)
            }
        }
    }
    return page.bytes
}

let address = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:9469"
// Blocked before the server's thread starts, so that it inherits the mask and sigwait gets them.
var signals = sigset_t()
sigemptyset(&signals)
sigaddset(&signals, SIGINT)
sigaddset(&signals, SIGTERM)
pthread_sigmask(SIG_BLOCK, &signals, nil)
do {
    let endpoint = try MetricsEndpoint(listen: address, render: page)
    print("serving \(endpoint.url)")
    fflush(nil)   // all streams: stdout may be a pipe or a file
    var received: Int32 = 0
    sigwait(&signals, &received)
    endpoint.stop()
} catch {
    let message = "metrics-endpoint: \(error)\n"
    _ = message.withCString { write(2, $0, strlen($0)) }
    exit(1)
}
