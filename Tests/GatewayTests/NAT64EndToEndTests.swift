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

/// 464XLAT end to end: gatewayd's `[nat64] clat = true` gives the client a CLAT address in its
/// lease, tunnel-client's `[clat]` runs a translator on a TUN of its own, and a program on the
/// IPv6-only client reaches 203.0.113.1 by its IPv4 literal (ping and TCP) through both translators.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct CLATEndToEndTests {
    @Test func anIPv4LiteralWorksThroughTheClientsCLATAndTheGatewaysNAT64() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let xlat = "sgn\(bed.id)", tun = "sgk\(bed.id)", clat = "sgl\(bed.id)"
        try bed.writeConfig(ndpProxy: "kernel", ipv4: "enabled = false",
                            tables: "[nat64]\nenabled = true\nprefix = \"2001:db8:64::/96\"\npool = \"203.0.113.64/26\"\ninterface = \"\(xlat)\"\nclat = true\n")
        try bed.startGateway()
        var text = try bed.gatewayctl(["clients", "add", "alice", "--format", "tunnel-client"]).stdout
        #expect(text.contains("ipv4 = \"default\"") && text.hasSuffix("[clat]\nenabled = true\n"), "the printed config takes IPv4 through a CLAT:\n\(text)")
        text = text.replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"\(tun)\"") + "interface = \"\(clat)\"\n"
        let client = try bed.startTunnelClient(in: bed.cl, config: text, name: "alice")
        var status: [String: Any] = [:]
        #expect(eventually(timeout: 20) { status = (try? bed.tunnelClientStatus("alice")) ?? [:]; return status["clat"] != nil }, "\(status) \(client.output)")
        #expect(status["clat"] as? String == "192.0.0.2 <-> 2001:db8:1::5 via 2001:db8:64::/96 on \(clat)", "\(status)")
        #expect((status["addresses"] as? [String])?.contains("2001:db8:1::4/128") == true)
        let v4 = try bed.exec(bed.cl, ["ip", "-j", "-4", "addr", "show", "dev", clat]).stdout
        #expect(v4.contains("\"local\":\"192.0.0.2\""), "\(v4)")
        let mtu = try bed.exec(bed.cl, ["ip", "-j", "link", "show", "dev", clat]).stdout
        #expect(mtu.contains("\"mtu\":1400"), "the tunnel's 1420 less 20: \(mtu)")

        // The IPv4 literal: ping and a TCP transfer to 203.0.113.1, which the client has no IPv4 path to but the CLAT.
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "203.0.113.1", count: 1)) == 1 }, "\(client.output)")
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3)
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2246822519 >> 7) }
        #expect(try tcpTransfer(from: bed.cl, to: bed.isp, address: "203.0.113.1", port: 18096, bytes: payload, listenAddress: "203.0.113.1") == payload)
        // DNS64-style traffic from the host's own address still works beside it.
        #expect(try bed.ping(from: bed.cl, "2001:db8:64::cb00:7101") == 3)

        // The gateway: a CLAT address the client may send from, mapped to an IPv4 address of its own.
        let json = try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any]
        let alice = (json?["clients"] as? [[String: Any]])?.first
        #expect(alice?["nat64Address"] as? String == "203.0.113.66/32", "\(String(describing: alice))")
        #expect(alice?["clatAddress"] as? String == "2001:db8:1::5/128" && alice?["clatNAT64Address"] as? String == "203.0.113.67/32", "\(String(describing: alice))")
        #expect((alice?["addresses"] as? [String]) == ["2001:db8:1::4/128"], "the CLAT's address is listed apart")
        let allowed = try bed.exec(bed.gw, ["wg", "show", bed.tun, "allowed-ips"]).stdout
        #expect(allowed.contains("2001:db8:1::5/128") && !allowed.contains("203.0.113.67"), "\(allowed)")
        let proxies = try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout
        #expect(proxies.contains("2001:db8:1::4") && !proxies.contains("2001:db8:1::5"), "the CLAT address is reached through the translator only: \(proxies)")

        // Stopping the client takes the CLAT's interface and routes with it.
        client.stop(grace: 10)
        #expect(try bed.exec(bed.cl, ["ip", "link", "show", clat], check: false).succeeded == false, "\(client.output)")
        let routes = try bed.exec(bed.cl, ["ip", "-4", "route", "show"]).stdout
        #expect(!routes.contains("default") && !routes.contains(clat), "\(routes)")
    }
}
