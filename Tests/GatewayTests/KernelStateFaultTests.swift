import Foundation
import SixgateTestSupport
import Testing

/// Fault injection: what gatewayd put in the kernel is taken away under it, and it puts it back
/// without a restart and says so: the uplink going down and up (the kernel flushes its proxy
/// entries), an operator's `ip -6 route flush` on the tunnel, the uplink deleted and made again
/// (a new index, proxy_ndp off).
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct KernelStateFaultTests {
    @Test func proxyEntriesRoutesAndTheUplinkComeBackWithoutARestart() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        // With NAT64: the translator's routes (one IPv4) must stay on its interface through all of it.
        let xlat = "sgn\(bed.id)"
        try bed.writeConfig(ndpProxy: "kernel", tables: "[nat64]\nenabled = true\nprefix = \"2001:db8:64::/96\"\npool = \"203.0.113.64/26\"\ninterface = \"\(xlat)\"\n")
        try bed.startGateway()
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        func works() -> Bool { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }
        #expect(eventually(timeout: 30, works))
        /// What the operator's network configuration does when the uplink is back (IPv6 addresses
        /// go with a link that goes down, unless keep_addr_on_down).
        func operatorRoutes() throws {
            try bed.exec(bed.gw, ["ip", "-6", "addr", "replace", "2001:db8:1::2/64", "dev", bed.uplink, "nodad"])
            try bed.exec(bed.gw, ["ip", "-6", "route", "replace", "default", "via", "2001:db8:1::1", "dev", bed.uplink])
            try bed.exec(bed.gw, ["ip", "route", "replace", "default", "via", "198.51.100.1"])
            try bed.exec(bed.isp, ["ip", "-6", "neigh", "flush", "dev", bed.ispSide])
        }

        // 1. The uplink goes down and up: its proxy entries are flushed by the kernel.
        try bed.exec(bed.gw, ["ip", "link", "set", bed.uplink, "down"])
        try bed.exec(bed.gw, ["ip", "link", "set", bed.uplink, "up"])
        #expect(try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout.isEmpty, "the kernel flushed them")
        try operatorRoutes()
        #expect(eventually(timeout: 10) { bed.gateway?.output.contains("restored 1 proxy entry on \(bed.uplink)") == true }, "\(bed.gateway?.output ?? "")")
        #expect(eventually(timeout: 20, works), "the ISP reaches the client again")

        // 2. Someone flushes the tunnel's routes.
        try bed.exec(bed.gw, ["ip", "-6", "route", "flush", "dev", bed.tun])
        #expect(eventually(timeout: 10) { bed.gateway?.output.contains("restored 1 route(s) (2001:db8:1::4/128)") == true }, "\(bed.gateway?.output ?? "")")
        #expect(eventually(timeout: 20, works))

        // 3. The uplink is deleted and made again (new index, proxy_ndp off, no addresses).
        try bed.exec(bed.gw, ["ip", "link", "del", bed.uplink])
        #expect(eventually(timeout: 10) { bed.gateway?.output.contains("uplink \(bed.uplink) is gone") == true }, "\(bed.gateway?.output ?? "")")
        // A client enrolled while the uplink is gone: the kernel refuses its proxy entry (a netlink
        // error, said with the object and why); it is enrolled anyway and gets the entry later.
        let bob = try bed.gatewayctl(["clients", "add", "bob"], check: false)
        #expect(bob.succeeded, "\(bob.stdout) \(bob.stderr)")
        #expect(bed.gateway?.output.contains("client bob: proxy entry 2001:db8:1::5 on \(bed.uplink):") == true, "\(bed.gateway?.output ?? "")")
        try run(["ip", "link", "add", bed.ispSide, "netns", bed.isp, "type", "veth", "peer", "name", bed.uplink, "netns", bed.gw], check: true)
        try bed.exec(bed.isp, ["ip", "link", "set", bed.ispSide, "up"])
        try bed.exec(bed.gw, ["ip", "link", "set", bed.uplink, "up"])
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", bed.ispSide, "nodad"])
        try bed.exec(bed.isp, ["ip", "addr", "add", "198.51.100.1/25", "dev", bed.ispSide])
        try bed.exec(bed.gw, ["ip", "addr", "add", "198.51.100.2/25", "dev", bed.uplink])
        try operatorRoutes()
        #expect(eventually(timeout: 10) { bed.gateway?.output.contains("uplink \(bed.uplink) is back") == true }, "\(bed.gateway?.output ?? "")")
        #expect(eventually(timeout: 20, works), "and the internet with it: \(bed.gateway?.output ?? "")")
        #expect(try bed.exec(bed.gw, ["sysctl", "-n", "net.ipv6.conf.\(bed.uplink).proxy_ndp"]).stdout.hasPrefix("1"))
        let proxies = try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout
        #expect(proxies.contains("2001:db8:1::4") && proxies.contains("2001:db8:1::5"), "bob's entry came with the uplink: \(proxies)")

        // The uplink's IPv4 address changes (a new lease from the ISP): NAT44 follows by itself.
        try bed.exec(bed.gw, ["ip", "addr", "del", "198.51.100.2/25", "dev", bed.uplink])
        try bed.exec(bed.gw, ["ip", "addr", "add", "198.51.100.3/25", "dev", bed.uplink])
        try bed.exec(bed.gw, ["ip", "route", "replace", "default", "via", "198.51.100.1"])
        #expect(eventually(timeout: 10) { (try? bed.ping(from: bed.cl, "203.0.113.1", count: 1)) == 1 }, "NAT44 from the new address")
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3, "NAT44 follows the uplink by name")
        #expect(try bed.ping(from: bed.cl, "2001:db8:64::cb00:7101") == 3, "and NAT64 still works")
        let v4 = try bed.exec(bed.gw, ["ip", "route", "show", "203.0.113.64/26"]).stdout
        let v6 = try bed.exec(bed.gw, ["ip", "-6", "route", "show", "2001:db8:64::/96"]).stdout
        #expect(v4.contains("dev \(xlat)") && v6.contains("dev \(xlat)"), "the translator's routes stayed on it: \(v4) \(v6)")
        #expect(bed.gateway?.output.contains("restored") == true)
        #expect(bed.gateway?.output.components(separatedBy: "restored").count ?? 0 <= 6, "only what was taken is restored: \(bed.gateway?.output ?? "")")
        #expect(bed.gateway?.process.isRunning == true)
    }

    /// Issue 28: the watcher restores every kernel setting gatewayd turned on, forwarding included.
    @Test func forwardingTurnedOffUnderARunningGatewayComesBack() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        #expect(try bed.startGatewayWithAlice())
        try bed.exec(bed.gw, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0", "net.ipv4.ip_forward=0"])
        #expect(eventually(timeout: 10) {
            let o = bed.gateway?.output ?? ""
            return o.contains("restored net.ipv6.conf.all.forwarding = 1") && o.contains("restored net.ipv4.ip_forward = 1")
        }, "\(bed.gateway?.output ?? "")")
        #expect(eventually(timeout: 10) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3)
        // Stop leaves forwarding on (it may serve others on this host; docs/gatewayd.toml.example).
        bed.stopGateway()
        #expect(try bed.exec(bed.gw, ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout.hasPrefix("1"))
    }
}
