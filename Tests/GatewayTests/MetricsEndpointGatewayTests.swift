import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 26: `metrics_listen` — gatewayd serves the page it writes to metrics.prom over HTTP, with a
/// stock wireguard-go client's traffic in it; curl fetches it, promtool (Prometheus's parser) judges it.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil && which("curl") != nil && which("promtool") != nil,
                "needs root, wireguard-go, wg, nft, curl and promtool"))
struct MetricsEndpointGatewayTests {
    func value(_ page: String, _ series: String) -> Double? {
        page.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func theGatewayServesItsCountersAndClientBytes() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", extra: "metrics_listen = \"[::1]:9469\"")
        try bed.startGateway()
        #expect(eventually(timeout: 5) { bed.gateway?.output.contains("metrics: http://[::1]:9469/metrics") == true }, "\(bed.gateway?.output ?? "")")
        let added = try bed.gatewayctl(["clients", "add", "alice"])
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: added.stdout)
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "IPv6 through the gateway")

        func scrape() -> String { (try? bed.exec(bed.gw, ["curl", "-sS", "--max-time", "5", "http://[::1]:9469/metrics"]).stdout) ?? "" }
        var page = ""
        #expect(eventually(timeout: 10) { page = scrape(); return (value(page, #"sixgate_client_bytes_total{client="alice",direction="rx"}"#) ?? 0) > 0 }, "\(page)")
        #expect((value(page, #"sixgate_client_bytes_total{client="alice",direction="tx"}"#) ?? 0) > 0, "\(page)")
        #expect((value(page, #"sixgate_client_last_handshake_seconds{client="alice"}"#) ?? 0) > 1_600_000_000, "\(page)")
        #expect(page.contains("sixgate_device_events_total{interface=\"\(bed.tun)\",counter="), "\(page)")
        let file = bed.stateDirectory + "/scraped.prom"
        try page.write(toFile: file, atomically: true, encoding: .utf8)
        let lint = try run(["/bin/sh", "-c", "promtool check metrics < \(file)"])
        #expect(lint.succeeded && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool: \(lint.stdout) \(lint.stderr)")
        // The textfile for node_exporter holds the same series.
        #expect(eventually(timeout: 15) {
            ((try? String(contentsOfFile: bed.stateDirectory + "/metrics.prom", encoding: .utf8)) ?? "").contains(#"sixgate_client_bytes_total{client="alice",direction="rx"}"#)
        })
        // Issue 27: its threads carry their names (top -H, /proc/PID/task/*/comm).
        if let pid = bed.gateway?.pid {
            let names = threadNames(pid)
            #expect(["sg-tun", "sg-udp", "sg-timers", "sg-uapi"].allSatisfy(names.contains), "\(names)")
        }
        bed.stopGateway()
        #expect(try bed.exec(bed.gw, ["curl", "-sS", "--max-time", "2", "http://[::1]:9469/metrics"], check: false).status != 0, "the port is closed after stop")
    }

    @Test func aBadListenAddressIsAConfigErrorNamingTheLine() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", extra: "metrics_listen = \"[::1]9469\"")
        let check = try bed.exec(bed.gw, ["\(builtProductsDirectory)/gatewayd", "--config", bed.configPath, "--check-config"], check: false)
        #expect(check.status != 0)
        #expect(check.stderr.contains("\(bed.configPath):2: metrics_listen: expected [IPV6]:PORT, e.g. [::1]:9469"), "\(check.stderr)")
    }
}

/// The names of process `pid`'s threads, as the kernel shows them.
func threadNames(_ pid: Int32) -> Set<String> {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return Set(tasks.compactMap { try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) })
}
