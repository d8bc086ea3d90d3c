import Foundation
@testable import NDPProxy
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 26: `ndp-proxy --metrics-listen` serves the responder's counters to a scraper (curl inside
/// the proxy's namespace; Prometheus's promtool judges the page), and a reload does not set the
/// totals back.
@Suite(.enabled(if: isRoot && which("curl") != nil && which("promtool") != nil, "needs root, curl and promtool (scripts/setup.sh)"))
struct MetricsNamespaceTests {
    func value(_ page: String, _ series: String) -> UInt64? {
        page.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { UInt64($0.split(separator: " ").last ?? "") }
    }

    /// npd6's own command line (`-c FILE -l - -f`) with --metrics-listen added.
    @Test func countersAreServedAndSurviveAReload() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let path = bed.directory + "/npd6.conf"
        try "prefix=2001:db8:5:0:\ninterface=\(bed.uplink)\n".write(toFile: path, atomically: true, encoding: .utf8)
        let p = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "-c", path, "-l", "-", "-f",
                                       "--metrics-listen", "127.0.0.1:9470"], captureOutput: true)
        defer { p.stop() }
        #expect(eventually(timeout: 10) { p.output.contains("answering on \(bed.uplink)") }, "\(p.output)")
        #expect(p.output.contains("metrics: http://127.0.0.1:9470/metrics"), "\(p.output)")
        // Issue 27: the responder's thread carries its name (top -H, /proc/PID/task/*/comm).
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p.pid)/task")) ?? []
        let names = tasks.compactMap { try? String(contentsOfFile: "/proc/\(p.pid)/task/\($0)/comm", encoding: .utf8) }
        #expect(names.contains { $0.hasPrefix("sg-ndp-") }, "\(names)")
        func scrape() throws -> String { try bed.exec(bed.proxy, ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9470/metrics"]).stdout }

        let ispIndex = try RouteSocket(namespace: .named(bed.isp)).interfaceIndex(bed.ispLink)
        let mac: UInt64 = 0x0200_0000_0a02
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:5::200", source: "2001:db8:5::1", sourceMAC: mac))
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:9::5", source: "2001:db8:5::1", sourceMAC: mac))
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:5::201", source: "2001:db8:5::1", sourceMAC: mac, hopLimit: 254))
        let i = "{interface=\"\(bed.uplink)\"}"
        var page = ""
        #expect(eventually(timeout: 10) { page = (try? scrape()) ?? ""; return value(page, "sixgate_ndp_solicitations_total\(i)") == 3 }, "\(page)")
        #expect(value(page, "sixgate_ndp_advertisements_total\(i)") == 1)
        #expect(value(page, "sixgate_ndp_unanswered_total{interface=\"\(bed.uplink)\",reason=\"outside_prefix\"}") == 1, "\(page)")
        #expect(value(page, "sixgate_ndp_unanswered_total{interface=\"\(bed.uplink)\",reason=\"invalid\"}") == 1, "\(page)")
        let file = bed.directory + "/page.prom"
        try page.write(toFile: file, atomically: true, encoding: .utf8)
        let lint = try run(["/bin/sh", "-c", "promtool check metrics < \(file)"])
        #expect(lint.succeeded && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool: \(lint.stdout) \(lint.stderr)")

        // A changed config, reloaded: new responders, the totals carry on from where they were.
        try "prefix=2001:db8:6:0:\ninterface=\(bed.uplink)\n".write(toFile: path, atomically: true, encoding: .utf8)
        let pid = try #require(Int32(try bed.exec(bed.proxy, ["pgrep", "-n", "-f", "ndp-proxy -c \(path)"]).stdout.split(separator: "\n").first ?? ""))
        kill(pid, SIGHUP)
        #expect(eventually(timeout: 10) { p.output.contains("reload (SIGHUP): 1 rule(s)") }, "\(p.output)")
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:6::7", source: "2001:db8:5::1", sourceMAC: mac))
        #expect(eventually(timeout: 10) { page = (try? scrape()) ?? ""; return value(page, "sixgate_ndp_solicitations_total\(i)") == 4 }, "\(page)")
        #expect(value(page, "sixgate_ndp_advertisements_total\(i)") == 2, "\(page)")
    }

    @Test func aBadListenAddressStopsTheDaemonNamingIt() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let path = bed.directory + "/npd6.conf"
        try "prefix=2001:db8:5:0:\ninterface=\(bed.uplink)\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try bed.exec(bed.proxy, ["\(builtProductsDirectory)/ndp-proxy", "-c", path, "-l", "-", "-f", "--metrics-listen", "localhost:9470"], check: false)
        #expect(r.status == 1)
        #expect((r.stdout + r.stderr).contains("metrics_listen localhost:9470: \"localhost\" is not an IPv4 address"), "\(r.stdout) \(r.stderr)")
    }
}
