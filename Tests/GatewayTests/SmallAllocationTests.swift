import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 24's small allocations, end to end: a provider that gives only three single addresses on
/// the uplink's link (`ipv6.addresses`). The first is the gateway's own; a stock wireguard-go client
/// and a tunnel-client get the other two, each answered for on the uplink by a kernel proxy entry,
/// and reach the internet host; a third client is refused with the pool named and its size.
@Suite("Small allocations", .enabled(if: isRoot && which("wireguard-go") != nil, "needs root and wireguard-go"))
struct SmallAllocationTests {
    @Test func aListOfSingleAddressesIsHandedOutAndRunsOutClearly() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", ipv6: """
            prefix = "2001:db8:1::/64"
            addresses = ["2001:db8:1::a", "2001:db8:1::b", "2001:db8:1::c"]
            """)
        try bed.startGateway()
        #expect(try bed.exec(bed.gw, ["ip", "-6", "addr", "show", "dev", bed.tun]).stdout.contains("2001:db8:1::a/128"), "the first is the gateway's")
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        #expect(alice.contains("Address = 2001:db8:1::b/128"), "\(alice)")
        let wg = "sgw\(bed.id)"
        try bed.startClient(in: bed.cl, name: wg, config: alice)
        let (carol, tun) = try bed.startTunnelClientOnSecondCarrier("carol")
        #expect(eventually(timeout: 20) { ((try? bed.exec(bed.cl2, ["ip", "-6", "addr", "show", "dev", tun], check: false).stdout) ?? "").contains("2001:db8:1::c/128") }, "\(carol.output)")
        let proxies = try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout
        #expect(proxies.contains("2001:db8:1::b ") && proxies.contains("2001:db8:1::c ") && !proxies.contains("2001:db8:1::4"), "\(proxies)")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice from ::b")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "carol from ::c")
        // A third client: refused, the pool and its size named, nothing half-made.
        let dave = try bed.gatewayctl(["clients", "add", "dave"], check: false)
        #expect(!dave.succeeded && dave.stderr.contains("pool ipv6 is exhausted: all 3 slots are leased or reserved"), "\(dave.stdout)\(dave.stderr)")
        #expect(!(try bed.gatewayctl(["clients", "list"]).stdout.contains("dave")))
        // alice keeps hers across a gatewayd restart.
        bed.gateway?.stop()
        try bed.startGateway()
        #expect(try bed.gatewayctl(["leases"]).stdout.contains("2001:db8:1::b/128\talice\tactive"))
    }
}
