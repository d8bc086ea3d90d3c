// The /metrics endpoint against clients no one here wrote: curl fetches it, Prometheus's own
// parser (promtool check metrics) judges the page. Loopback only, port 0 (the kernel picks).
import Foundation
import SixgateMetrics
import SixgateTestSupport
import Testing

@Suite struct MetricsPageTests {
    @Test func escapesLabelValuesAndGroupsByName() {
        var page = MetricsPage()
        page.counter("sixgate_test_events_total", help: "Events.", labels: [("client", "a\"b\\c\nd")], value: 3)
        page.counter("sixgate_test_events_total", help: "Events.", labels: [("client", "plain")], value: UInt64.max)
        page.gauge("sixgate_test_seen_seconds", help: "Seen.", value: 1.5)
        let text = page.text
        // The exposition format escapes \, " and newline in label values (Prometheus text format 0.0.4).
        #expect(text.contains(#"sixgate_test_events_total{client="a\"b\\c\nd"} 3"#))
        // A counter beyond Int64 is clamped, not wrapped into a negative number.
        #expect(text.contains(#"sixgate_test_events_total{client="plain"} 9223372036854775807"#))
        #expect(text.components(separatedBy: "# TYPE sixgate_test_events_total counter").count == 2)
        #expect(text.contains("# HELP sixgate_test_seen_seconds Seen."))
        #expect(text.contains("sixgate_test_seen_seconds 1.5"))
    }

    @Test func promtoolAcceptsThePage() throws {
        guard let promtool = which("promtool") else { throw TestSupportError.missingProgram("promtool") }
        var page = MetricsPage()
        page.counter("sixgate_test_packets_total", help: "Packets by reason.", labels: [("reason", "ok"), ("interface", "wg0")], value: 7)
        page.counter("sixgate_test_packets_total", help: "Packets by reason.", labels: [("reason", "bad \"x\""), ("interface", "wg0")], value: 1)
        page.gauge("sixgate_test_last_handshake_seconds", help: "Last handshake.", labels: [("client", "alice")], value: 1_700_000_000)
        let file = NSTemporaryDirectory() + "sg-metrics-\(uniqueSuffix()).prom"
        try Data(page.bytes).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try run(["/bin/sh", "-c", "\(promtool) check metrics < \(file)"])
        #expect(r.succeeded, "promtool: \(r.stdout) \(r.stderr)")
        // promtool lints too: a counter without _total or a missing HELP would be named here.
        #expect(r.stdout.isEmpty && r.stderr.isEmpty, "promtool: \(r.stdout) \(r.stderr)")
    }
}

@Suite struct MetricsEndpointTests {
    @Test func parsesListenAddresses() throws {
        #expect(try MetricsListenAddress(parsing: "127.0.0.1:9469") == MetricsListenAddress(parsing: "127.0.0.1:9469"))
        let v6 = try MetricsListenAddress(parsing: "[::1]:0")
        #expect(v6.host == "::1" && v6.port == 0 && v6.isIPv6 && v6.description == "[::1]:0")
        for bad in ["localhost:9469", "127.0.0.1", "::1:9469", "[::1]9469", "127.0.0.1:65536", "127.0.0.1:x", "[fe80::zz]:1"] {
            #expect(throws: MetricsEndpointError.self, "\(bad)") { try MetricsListenAddress(parsing: bad) }
        }
        do { _ = try MetricsListenAddress(parsing: "localhost:9469") } catch {
            #expect(error.description == "metrics_listen localhost:9469: \"localhost\" is not an IPv4 address (a name is not looked up)")
        }
    }

    @Test func servesMetricsToCurlOverIPv4AndIPv6() throws {
        guard which("curl") != nil else { throw TestSupportError.missingProgram("curl") }
        for listen in ["127.0.0.1:0", "[::1]:0"] {
            let scrapes = Counter()
            let endpoint = try MetricsEndpoint(listen: listen) {
                var page = MetricsPage()
                page.counter("sixgate_test_scrapes_total", help: "Scrapes.", value: scrapes.next())
                return page.bytes
            }
            defer { endpoint.stop() }
            #expect(endpoint.port != 0)
            let host = listen.hasPrefix("[") ? "[::1]" : "127.0.0.1"
            let url = "http://\(host):\(endpoint.port)"
            let first = try run(["curl", "-sS", "-D", "-", "--max-time", "5", url + "/metrics"], check: true).stdout
            #expect(first.hasPrefix("HTTP/1.1 200"))
            #expect(first.lowercased().contains("content-type: text/plain; version=0.0.4; charset=utf-8"))
            #expect(first.contains("sixgate_test_scrapes_total 1"))
            // Each scrape renders anew.
            #expect(try run(["curl", "-sS", "--max-time", "5", url + "/metrics"], check: true).stdout.contains("sixgate_test_scrapes_total 2"))
            // HEAD: headers, no body; other paths 404; other methods 405 with Allow.
            let head = try run(["curl", "-sS", "-I", "--max-time", "5", url + "/metrics"], check: true).stdout
            #expect(head.hasPrefix("HTTP/1.1 200") && !head.contains("sixgate_test_scrapes_total"))
            #expect(try run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", url + "/nope"]).stdout == "404")
            let post = try run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "POST", "--data", "x=1", "--max-time", "5", url + "/metrics"]).stdout
            #expect(post.hasPrefix("HTTP/1.1 405") && post.lowercased().contains("allow: get, head"), "\(post)")
        }
    }

    @Test func aPortInUseIsNamedAndStopFreesThePort() throws {
        let first = try MetricsEndpoint(listen: "127.0.0.1:0") { [] }
        let port = first.port
        do {
            _ = try MetricsEndpoint(listen: "127.0.0.1:\(port)") { [] }
            Issue.record("a second endpoint bound a port in use")
        } catch {
            #expect(error.description == "metrics_listen 127.0.0.1:\(port): bind: Address already in use")
        }
        first.stop()
        first.stop()
        // The listening socket went with the server: the port can be bound again at once.
        let again = try MetricsEndpoint(listen: "127.0.0.1:\(port)") { [] }
        again.stop()
    }

    @Test func aSlowClientDoesNotBlockOthers() throws {
        guard which("curl") != nil else { throw TestSupportError.missingProgram("curl") }
        let endpoint = try MetricsEndpoint(listen: "127.0.0.1:0") { Array("x 1\n".utf8) }
        defer { endpoint.stop() }
        // A client that connects and says nothing holds a connection, not the server.
        let idle = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(idle) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = endpoint.port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(idle, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(connected == 0)
        let r = try run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:\(endpoint.port)/metrics"])
        #expect(r.succeeded && r.stdout == "x 1\n", "\(r.stderr)")
    }
}

final class Counter: @unchecked Sendable {
    let lock = NSLock()
    var value: UInt64 = 0
    func next() -> UInt64 { lock.withLock { value += 1; return value } }
}
