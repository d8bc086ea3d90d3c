import Foundation
@testable import NDPProxy
import PacketKit
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

struct NDPPDConfigTests {
    static let sample = "/usr/share/doc/ndppd/ndppd.conf-dist"

    @Test(.enabled(if: FileManager.default.fileExists(atPath: NDPPDConfigTests.sample), "install ndppd (setup.sh does)"))
    func theSampleNdppdShipsIsAccepted() throws {
        let rules = try NDPProxyConfig.parse(try String(contentsOfFile: Self.sample, encoding: .utf8), path: Self.sample)
        #expect(rules.count == 1)
        #expect(rules[0].interface == "eth0" && rules[0].routerFlag)
        #expect(rules[0].autoPrefixes == [IPv6Prefix("1111::/128")!] && rules[0].prefixes.isEmpty)
        #expect(rules[0].routeTTL == 30)
    }

    @Test func blocksMethodsAndErrors() throws {
        let rules = try NDPPDConfig.parse("""
            route-ttl 5000
            proxy eth0 {
                router no
                rule 2001:db8:1::/64 { static }
                rule 2001:db8:2::/64 {
                    auto
                }
                rule 2001:db8:3::5
            }
            proxy eth1 { rule 2001:db8:4::/64 { auto } }
            """, path: "ndppd.conf")
        #expect(rules.map(\.interface) == ["eth0", "eth1"])
        #expect(rules[0].prefixes == [IPv6Prefix("2001:db8:1::/64")!, IPv6Prefix("2001:db8:3::5/128")!] && !rules[0].routerFlag)
        #expect(rules[0].autoPrefixes == [IPv6Prefix("2001:db8:2::/64")!] && rules[0].routeTTL == 5)
        #expect(rules[0].verdict(for: IPv6Address("2001:db8:2::9")!, localAddresses: []) == .answerIfRouted)
        func error(_ text: String) -> String {
            do { _ = try NDPPDConfig.parse(text, path: "/etc/ndppd.conf"); return "accepted" } catch { return error.description }
        }
        #expect(error("proxy eth0 {\n  rule 2001:db8::/64 {\n    iface eth1\n  }\n  rule 2001:db8:1::/64 {\n    iface eth2\n  }\n}\n")
            .hasPrefix("/etc/ndppd.conf:7: rule: one proxy block asks one inner interface"))
        #expect(error("proxy eth0 {\n  rule 2001:db8::zz/64 { auto }\n}\n").hasPrefix("/etc/ndppd.conf:2: rule:"))
        #expect(error("proxy eth0 {\n  router maybe\n  rule 2001:db8::/64\n}\n").hasPrefix("/etc/ndppd.conf:2: router:"))
        #expect(error("proxy eth0 {\n  rule 2001:db8::/64 { auto static }\n}\n").contains("mutually exclusive"))
        #expect(error("proxy eth0 {\n  rule 2001:db8::/129 { static }\n}\n").hasPrefix("/etc/ndppd.conf:2: rule:"))
        #expect(error("prox eth0 {\n}\n").hasPrefix("/etc/ndppd.conf:1: prox: unknown option"))
    }
}

@Suite(.enabled(if: isRoot && which("tcpdump") != nil && which("ndisc6") != nil, "needs root, tcpdump and ndisc6"))
struct AutoRuleNamespaceTests {
    /// ndppd's `auto`: answer only for targets the kernel routes through another interface.
    @Test func autoAnswersOnlyForTargetsRoutedElsewhere() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let config = "proxy \(bed.uplink) {\n    router yes\n    rule 2001:db8:5::/64 {\n        auto\n    }\n}\n"
        try config.write(toFile: bed.directory + "/ndppd.conf", atomically: true, encoding: .utf8)
        let proxy = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", bed.directory + "/ndppd.conf"], captureOutput: true)
        defer { proxy.stop() }
        #expect(eventually(timeout: 10) { proxy.output.contains("answering on") }, "\(proxy.output)")
        let lines = try bed.capture {
            for target in ["2001:db8:5::100", "2001:db8:5::200"] {
                _ = try bed.exec(bed.isp, ["ndisc6", "-1", "-r", "1", "-w", "300", target, bed.ispLink], check: false)
            }
        }
        #expect(lines.filter { $0.contains("neighbor advertisement") && $0.contains("tgt is 2001:db8:5::100,") }.count == 1, "routed to the host: \(lines)")
        #expect(lines.filter { $0.contains("neighbor advertisement") && $0.contains("tgt is 2001:db8:5::200,") }.isEmpty, "on-link on the uplink itself")
        #expect(try bed.exec(bed.isp, ["ping", "-c", "2", "-i", "0.3", "-W", "2", "2001:db8:5::100"], check: false).succeeded)
        kill(proxy.pid, SIGUSR1)
        #expect(eventually(timeout: 5) { proxy.output.contains("not-routed 1 ") }, "\(proxy.output)")
    }
}

/// Issue 29, point 2 (signals as npd6 and ndppd use them): SIGUSR2 dumps instead of killing,
/// SIGUSR1 reloads an npd6.conf (npd6's init script), SIGHUP reloads, an invalid file is said with
/// file:line and the running rules stay. Checked on the wire with tcpdump.
@Suite(.enabled(if: isRoot && which("tcpdump") != nil && which("ndisc6") != nil, "needs root, tcpdump and ndisc6"))
struct SignalNamespaceTests {
    @Test func usr2DumpsUsr1AndHupReloadAndABadFileKeepsTheRunningRules() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let path = bed.directory + "/npd6.conf"
        func write(_ address: String) throws {
            try "prefix=2001:db8:5::\ninterface=\(bed.uplink)\nlisttype=white\naddrlist=\(address)\n".write(toFile: path, atomically: true, encoding: .utf8)
        }
        func answered() throws -> Set<String> {
            let lines = try bed.capture {
                for target in ["2001:db8:5::100", "2001:db8:5::101"] {
                    _ = try bed.exec(bed.isp, ["ndisc6", "-1", "-r", "1", "-w", "300", target, bed.ispLink], check: false)
                }
            }
            return Set(["2001:db8:5::100", "2001:db8:5::101"].filter { t in lines.contains { $0.contains("neighbor advertisement") && $0.contains("tgt is \(t),") } })
        }
        try write("2001:db8:5::100")
        let proxy = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", path], captureOutput: true)
        defer { proxy.stop() }
        #expect(eventually(timeout: 10) { proxy.output.contains("answering on") }, "\(proxy.output)")
        #expect(try answered() == ["2001:db8:5::100"])

        kill(proxy.pid, SIGUSR2)
        #expect(eventually(timeout: 5) { proxy.output.contains("rule: \(bed.uplink) answer prefixes 2001:db8:5::/48") }, "\(proxy.output)")
        #expect(proxy.process.isRunning, "SIGUSR2 does not end it")

        try write("2001:db8:5::101")
        kill(proxy.pid, SIGUSR1)
        #expect(eventually(timeout: 5) { proxy.output.contains("reload (SIGUSR1): 1 rule(s)") }, "\(proxy.output)")
        #expect(eventually(timeout: 5) { (try? answered()) == ["2001:db8:5::101"] })

        try "prefix=not-a-prefix\ninterface=\(bed.uplink)\n".write(toFile: path, atomically: true, encoding: .utf8)
        kill(proxy.pid, SIGHUP)
        #expect(eventually(timeout: 5) { proxy.output.contains("keeping the running rules") }, "\(proxy.output)")
        #expect(proxy.output.contains("\(path):1"), "the error names the file and line: \(proxy.output)")
        #expect(proxy.process.isRunning)
        #expect(try answered() == ["2001:db8:5::101"], "the running rules stayed")
    }
}
