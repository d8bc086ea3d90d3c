import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// gatewayd's NAT64 ([nat64]): a tunnel-client with IPv6 only reaches the IPv4-only "internet" host
/// 203.0.113.1 at its NAT64 name through the gateway's translator, which maps the client's address
/// to its own NAT64 address (a lease) and hands it to NAT44; the lease tells the client the prefix.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct NAT64EndToEndTests {
    @Test func anIPv6OnlyClientReachesAnIPv4HostThroughTheGatewaysNAT64() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let xlat = "sgn\(bed.id)"
        // No IPv4 service of the tunnel's own: IPv4 only through NAT64.
        try bed.writeConfig(ndpProxy: "kernel", ipv4: "enabled = false",
                            tables: "[nat64]\nenabled = true\nprefix = \"2001:db8:64::/96\"\npool = \"203.0.113.64/26\"\ninterface = \"\(xlat)\"\n")
        try bed.startGateway()
        #expect(bed.gateway?.output.contains("nat64: 2001:db8:64::/96 on \(xlat)") == true, "\(bed.gateway?.output ?? "")")

        var text = try bed.gatewayctl(["clients", "add", "alice", "--format", "tunnel-client"]).stdout
        let tun = "sgk\(bed.id)"
        text = text.replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"\(tun)\"")
        let client = try bed.startTunnelClient(in: bed.cl, config: text, name: "alice")
        // The lease carries the prefix; the client shows it.
        var status: [String: Any] = [:]
        #expect(eventually(timeout: 20) { status = (try? bed.tunnelClientStatus("alice")) ?? [:]; return status["nat64Prefix"] as? String == "2001:db8:64::/96" },
                "\(status) \(client.output)")
        #expect((status["addresses"] as? [String]) == ["2001:db8:1::4/128"], "no IPv4 of its own")

        // ping and a TCP transfer to 203.0.113.1 as 2001:db8:64::cb00:7101.
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:64::cb00:7101", count: 1)) == 1 }, "\(client.output)")
        #expect(try bed.ping(from: bed.cl, "2001:db8:64::cb00:7101") == 3)
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 9) }
        #expect(try tcpTransfer(from: bed.cl, to: bed.isp, address: "2001:db8:64::cb00:7101", port: 18095, bytes: payload, listenAddress: "203.0.113.1") == payload)

        // The client's NAT64 address is a lease of its own, not an address it may send from.
        let json = try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any]
        let alice = (json?["clients"] as? [[String: Any]])?.first
        #expect(alice?["nat64Address"] as? String == "203.0.113.66/32", "\(String(describing: alice))")
        #expect((alice?["addresses"] as? [String]) == ["2001:db8:1::4/128"])
        let allowed = try bed.exec(bed.gw, ["wg", "show", bed.tun, "allowed-ips"]).stdout
        #expect(allowed.contains("2001:db8:1::4/128") && !allowed.contains("203.0.113.66"), "\(allowed)")
        let counters = json?["counters"] as? [String: Any]
        #expect(((counters?["nat64Translated6to4"] as? Int) ?? 0) > 10 && ((counters?["nat64Translated4to6"] as? Int) ?? 0) > 10, "\(String(describing: counters))")
        // The ISP saw the gateway's uplink address (NAT44 behind the translator), not the pool's.
        let seen = try bed.exec(bed.isp, ["ip", "-4", "neigh", "show", "dev", bed.ispSide]).stdout
        #expect(seen.contains("198.51.100.2"), "\(seen)")

        // A second client enrolled while running gets its mapping without a restart.
        let bob = try bed.gatewayctl(["clients", "add", "bob"]).stdout
        try bed.startClient(in: bed.cl2, name: "sgx\(bed.id)", config: bob, endpoint: "203.0.113.129:51820")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:64::cb00:7101", count: 1)) == 1 }, "the new client's mapping took effect")
        bed.stopGateway()
        #expect(try bed.exec(bed.gw, ["ip", "link", "show", xlat], check: false).succeeded == false, "the translator's interface is gone after stop")
    }
}
