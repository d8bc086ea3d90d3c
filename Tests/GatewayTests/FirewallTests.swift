import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// gatewayd's firewall toward its clients, against a hostile "internet" (the ISP namespace and a far
/// host behind a 1300-byte link), stock wireguard-go clients, nft and traceroute.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil && which("traceroute") != nil,
                "needs root, wireguard-go, wg, nft and traceroute"))
struct FirewallTests {
    func clientStatus(_ bed: GatewayTestbed, _ name: String) throws -> [String: Any] {
        let status = try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any]
        return (status?["clients"] as? [[String: Any]])?.first { $0["name"] as? String == name } ?? [:]
    }

    /// The rules of gatewayd's forward chain, as nft lists them.
    func forwardRules(_ bed: GatewayTestbed) throws -> [String] {
        try bed.exec(bed.gw, ["nft", "list", "chain", "inet", "sixgate_\(bed.tun)", "forward"]).stdout
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.contains("accept") || $0.contains("drop") }
    }

    @Test func unsolicitedInboundIsDroppedWhatIsOpenedPassesAndIPv6KeepsWorking() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let far = "sg-gf-\(bed.id)"
        // A far host behind a 1300-byte link: the ISP router sends clients Packet Too Big for it (the
        // far host's own MTU stays 1500, so its SYN-ACK does not lower the client's MSS).
        try bed.addNamespace(far, linkedTo: bed.isp, "sgf\(bed.id)", "sgh\(bed.id)")
        try bed.exec(bed.isp, ["ip", "link", "set", "sgh\(bed.id)", "mtu", "1300"])
        try bed.exec(far, ["ip", "-6", "addr", "add", "2001:db8:fffe::2/64", "dev", "sgf\(bed.id)", "nodad"])
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:fffe::1/64", "dev", "sgh\(bed.id)", "nodad"])
        try bed.exec(far, ["ip", "-6", "route", "add", "default", "via", "2001:db8:fffe::1"])
        try bed.exec(bed.isp, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        // The operator's own table, which gatewayd must never touch.
        let operatorTable = "table inet operator_fw {\n chain forward_op {\n  type filter hook forward priority 10; policy accept;\n  counter\n }\n}\n"
        _ = try run(["sh", "-c", "printf '%s' '\(operatorTable)' | ip netns exec \(bed.gw) nft -f -"], check: true)

        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway()
        #expect(bed.gateway!.output.contains("firewall: new inbound connections to clients dropped"), "\(bed.gateway!.output)")

        // Bad --open values: refused naming the value, and nothing enrolled.
        for bad in ["tcp/0", "udp/70000", "icmp/1", "tcp/2000-1000", "tcp/ssh", "tcp"] {
            let r = try bed.gatewayctl(["clients", "add", "mallory", "--open", "tcp/22", "--open", bad], check: false)
            #expect(r.status != 0 && r.stderr.contains("\"\(bad)\""), "\(bad): \(r)")
        }
        #expect(try !bed.gatewayctl(["clients", "list"]).stdout.contains("mallory"))

        let alice = try bed.gatewayctl(["clients", "add", "alice", "--open", "tcp/18022", "--open", "udp/18000-18010"])
        #expect(alice.stdout.contains("new connections to: tcp/18022, udp/18000-18010"), "\(alice.stdout)")
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice.stdout)
        let bob = try bed.gatewayctl(["clients", "add", "bob"])
        try bed.startClient(in: bed.cl2, name: "sgx\(bed.id)", config: bob.stdout, endpoint: "203.0.113.129:51820")
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice through the gateway")
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "bob through the gateway")
        let aliceAddress = "2001:db8:1::4", bobAddress = "2001:db8:1::5"

        // Replies to the clients' own connections: TCP, UDP (a DNS-like exchange), ICMP echo.
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        #expect(try tcpTransfer(from: bed.cl, to: bed.isp, address: "2001:db8:ffff::1", port: 18080, bytes: payload) == payload)
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3, "IPv4 through NAT44")
        #expect(try udpExchange(from: bed.cl, to: bed.isp, address: "2001:db8:ffff::1", port: 18053), "a UDP answer comes back")

        // From the internet: closed ports dropped (TCP and UDP), opened ones pass, echo passes.
        #expect(try !tcpConnects(from: bed.isp, to: bed.cl, address: aliceAddress, port: 18023), "a closed TCP port")
        #expect(try udpDelivered(from: bed.isp, to: bed.cl, address: aliceAddress, port: 18020) == 0, "a closed UDP port")
        #expect(try tcpConnects(from: bed.isp, to: bed.cl, address: aliceAddress, port: 18022), "alice opened tcp/18022")
        #expect(try udpDelivered(from: bed.isp, to: bed.cl, address: aliceAddress, port: 18005) == 3, "alice opened udp/18000-18010")
        #expect(try !tcpConnects(from: bed.isp, to: bed.cl2, address: bobAddress, port: 18022), "what alice opened is not open on bob")
        #expect(try udpDelivered(from: bed.isp, to: bed.cl2, address: bobAddress, port: 18005) == 0)
        #expect(try bed.ping(from: bed.isp, aliceAddress) == 3, "echo requests pass (RFC 4890)")
        // Counted per client.
        let aliceNow = try clientStatus(bed, "alice")
        #expect((aliceNow["inboundDropped"] as? Int ?? 0) >= 4, "\(aliceNow)")
        #expect(((try clientStatus(bed, "bob"))["inboundDropped"] as? Int ?? 0) >= 4)
        #expect(((try clientStatus(bed, "alice"))["open"] as? [String]) == ["tcp/18022", "udp/18000-18010"])
        let statusText = try bed.gatewayctl(["status"]).stdout
        #expect(statusText.contains("open tcp/18022,udp/18000-18010  inbound dropped"), "\(statusText)")
        #expect(try bed.gatewayctl(["clients", "show", "alice"]).stdout.contains("new connections to: tcp/18022, udp/18000-18010"))
        #expect(eventually(timeout: 15) {
            ((try? String(contentsOfFile: bed.stateDirectory + "/metrics.prom", encoding: .utf8)) ?? "").contains("sixgate_client_inbound_dropped_total{client=\"alice\"}")
        }, "metrics.prom (written every 10 s) counts the drops per client")

        // PMTUD: the ISP router's Packet Too Big reaches alice and her TCP lowers its segment size.
        #expect(try tcpTransfer(from: bed.cl, to: far, address: "2001:db8:fffe::2", port: 18081, bytes: payload) == payload, "TCP over the 1300-byte hop")
        let pmtu = try bed.exec(bed.cl, ["ip", "-6", "route", "get", "2001:db8:fffe::2"]).stdout
        #expect(pmtu.contains("mtu 1300"), "the client learned the path MTU: \(pmtu)")
        // traceroute shows every hop (Time Exceeded and the final Port Unreachable pass).
        let trace = try bed.exec(bed.cl, ["traceroute", "-6", "-n", "-q", "1", "-w", "2", "-m", "6", "2001:db8:fffe::2"], timeout: 60).stdout
        let hops = trace.split(separator: "\n").dropFirst().map(String.init)
        #expect(hops.count == 3 && !hops.contains { $0.contains("*") } && hops.last?.contains("2001:db8:fffe::2") == true, "\(trace)")

        // Client to client: isolated by default, both ways and both families...
        #expect(try !tcpConnects(from: bed.cl2, to: bed.cl, address: aliceAddress, port: 18030))
        #expect(try !tcpConnects(from: bed.cl, to: bed.cl2, address: "192.0.2.3", port: 18030))
        // ...but an opened port is open to the other clients too.
        #expect(try tcpConnects(from: bed.cl2, to: bed.cl, address: aliceAddress, port: 18022))
        // Exempt both (live, through the control socket): they reach each other; the tunnel stays.
        let handshakeBefore = try clientStatus(bed, "alice")["lastHandshake"] as? Int
        let traffic = try BackgroundProcess(["ip", "netns", "exec", bed.cl, "ping", "-i", "0.2", "-c", "15", "2001:db8:ffff::1"], captureOutput: true)
        defer { traffic.stop() }
        #expect(try bed.gatewayctl(["clients", "isolate", "alice", "off"]).stdout.contains("alice: open tcp/18022 udp/18000-18010, not isolated"))
        _ = try bed.gatewayctl(["clients", "isolate", "bob", "off"])
        #expect(try tcpConnects(from: bed.cl2, to: bed.cl, address: aliceAddress, port: 18030))
        #expect(try tcpConnects(from: bed.cl, to: bed.cl2, address: "192.0.2.3", port: 18030))
        // Open and close live.
        _ = try bed.gatewayctl(["clients", "open", "bob", "tcp/18040"])
        #expect(try tcpConnects(from: bed.isp, to: bed.cl2, address: bobAddress, port: 18040))
        _ = try bed.gatewayctl(["clients", "close", "bob", "tcp/18040"])
        #expect(try !tcpConnects(from: bed.isp, to: bed.cl2, address: bobAddress, port: 18040))
        let badClose = try bed.gatewayctl(["clients", "close", "bob", "udp/9"], check: false)
        #expect(badClose.status != 0 && badClose.stderr.contains("not open for bob"), "\(badClose)")
        let badOpen = try bed.gatewayctl(["clients", "open", "alice", "tcp/1", "udp/0"], check: false)
        #expect(badOpen.status != 0 && badOpen.stderr.contains("\"udp/0\""), "\(badOpen)")
        #expect(((try clientStatus(bed, "alice"))["open"] as? [String]) == ["tcp/18022", "udp/18000-18010"], "nothing half-applied")
        traffic.process.waitUntilExit()
        #expect(traffic.output.contains("15 received"), "the tunnel carried on through every change: \(traffic.output)")
        #expect(try clientStatus(bed, "alice")["lastHandshake"] as? Int == handshakeBefore, "no new handshake")
        // SIGHUP: a record edited by hand.
        let bobFile = bed.stateDirectory + "/clients/bob"
        let text = try String(contentsOfFile: bobFile, encoding: .utf8)
        try (text + "open = [\"tcp/18041\"]\n").write(toFile: bobFile, atomically: true, encoding: .utf8)
        kill(bed.gateway!.pid, SIGHUP)
        #expect(eventually(timeout: 10) { (try? tcpConnects(from: bed.isp, to: bed.cl2, address: bobAddress, port: 18041)) == true }, "opened by SIGHUP")

        // kill -9 and restart: one copy of every rule; SIGTERM: the table is gone; the operator's
        // table is as it was.
        let rules = try forwardRules(bed)
        #expect(rules.count >= 10, "\(rules)")
        bed.stopGateway(signal: SIGKILL)
        try bed.startGateway()
        #expect(try forwardRules(bed) == rules)
        #expect(try !tcpConnects(from: bed.isp, to: bed.cl, address: aliceAddress, port: 18023), "closed after the restart too")
        // Something deletes the table under a running gatewayd: the watcher puts it back.
        try bed.exec(bed.gw, ["nft", "delete", "table", "inet", "sixgate_\(bed.tun)"])
        #expect(eventually(timeout: 10) { (try? forwardRules(bed)) == rules }, "\(bed.gateway!.output)")
        #expect(bed.gateway!.output.contains("was gone"))
        bed.stopGateway()
        let tables = try bed.exec(bed.gw, ["nft", "list", "tables"]).stdout
        #expect(!tables.contains("sixgate_\(bed.tun)"), "\(tables)")
        let op = try bed.exec(bed.gw, ["nft", "list", "table", "inet", "operator_fw"]).stdout
        #expect(op.contains("priority filter + 10; policy accept;") && op.contains("counter packets"), "\(op)")
    }

    @Test func firewallOffIsSaidLoudlyAndFiltersNothing() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", extra: "firewall = \"off\"")
        try bed.startGateway()
        #expect(bed.gateway!.output.contains("WARNING: firewall = \"off\""))
        let alice = try bed.gatewayctl(["clients", "add", "alice"])
        #expect(alice.stdout.contains("firewall is off"))
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice.stdout)
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })
        #expect(try tcpConnects(from: bed.isp, to: bed.cl, address: "2001:db8:1::4", port: 18023))
        #expect(try !bed.exec(bed.gw, ["nft", "list", "tables"]).stdout.contains("inet sixgate_"))
        #expect(try bed.gatewayctl(["status"]).stdout.contains("firewall OFF"))
        // Keys that mean nothing with the firewall off are refused, naming the line.
        try bed.writeConfig(ndpProxy: "kernel", extra: "firewall = \"off\"\nisolate_clients = false")
        let check = try run(["\(builtProductsDirectory)/gatewayd", "--config", bed.configPath, "--check-config"])
        #expect(!check.succeeded && check.stderr.contains("isolate_clients") && check.stderr.contains("firewall is \"off\""), "\(check)")
    }

    /// Issue 30: clients reach the gateway host only for replies, ICMP, echo and what
    /// `gateway_open` (or a DNS server on the gateway's own address) opens; no ICMP redirects go
    /// into the tunnel.
    @Test func theGatewayHostIsClosedToItsClientsAndSendsThemNoRedirects() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", extra: "isolate_clients = false")
        try bed.startGateway()
        let alice = try bed.gatewayctl(["clients", "add", "alice"])
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice.stdout)
        let bob = try bed.gatewayctl(["clients", "add", "bob"])
        try bed.startClient(in: bed.cl2, name: "sgx\(bed.id)", config: bob.stdout, endpoint: "203.0.113.129:51820")
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 })

        // A service on every gateway address (the tunnel's, the pool's, the uplink's): closed to clients...
        for address in ["2001:db8:1::3", "2001:db8:1::2", "192.0.2.1", "198.51.100.2"] {
            #expect(try !tcpConnects(from: bed.cl, to: bed.gw, address: address, port: 18090), "\(address) closed to clients")
        }
        #expect(try udpDelivered(from: bed.cl, to: bed.gw, address: "2001:db8:1::3", port: 53) == 0)
        // ...but open from the gateway's other side (this table filters only what comes from the tunnel).
        #expect(try tcpConnects(from: bed.isp, to: bed.gw, address: "2001:db8:1::2", port: 18090))
        // Echo and the replies to the gateway's own connections still work.
        #expect(try bed.ping(from: bed.cl, "2001:db8:1::3") == 3 && bed.ping(from: bed.cl, "192.0.2.1") == 3)
        let counters = (try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any])?["counters"] as? [String: Any]
        #expect((counters?["firewallDroppedToGateway"] as? Int ?? 0) >= 4, "\(String(describing: counters))")

        // Client to client (isolation off here): the kernel would redirect bob to alice; none goes out.
        func inRedirects() throws -> Int {
            let snmp = try bed.exec(bed.cl2, ["cat", "/proc/net/snmp6"]).stdout
            return snmp.split(separator: "\n").first { $0.hasPrefix("Icmp6InRedirects") }.flatMap { Int($0.split(whereSeparator: \.isWhitespace).last ?? "") } ?? -1
        }
        #expect(try inRedirects() == 0)
        #expect(try bed.ping(from: bed.cl2, "2001:db8:1::4") == 3)
        let after = (try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any])?["counters"] as? [String: Any]
        #expect((after?["firewallDroppedRedirects"] as? Int ?? 0) >= 1, "the kernel tried, the table stopped it: \(String(describing: after))")
        #expect(try inRedirects() == 0, "bob never got one")

        // PMTUD toward the gateway host: a Packet Too Big from a client reaches its stack (RFC 4890 §4.4.1).
        let ptbBefore = try snmp6(bed.gw, "Icmp6InPktTooBigs")
        try sendPacketTooBig(from: bed.cl, to: "2001:db8:1::3", about: "2001:db8:1::4")
        #expect(eventually(timeout: 5) { ((try? snmp6(bed.gw, "Icmp6InPktTooBigs")) ?? 0) > ptbBefore }, "the input chain lets Packet Too Big through")

        // Opened by config: gateway_open, and DNS when `dns` names the gateway's own address.
        bed.stopGateway()
        try bed.writeConfig(ndpProxy: "kernel", extra: "gateway_open = [\"tcp/18090\"]\ndns = [\"2001:db8:1::3\"]")
        try bed.startGateway()
        #expect(bed.gateway!.output.contains("clients reach this host only for replies, ICMP, echo and tcp/18090 udp/53 tcp/53"), "\(bed.gateway!.output)")
        #expect(eventually(timeout: 30) { (try? tcpConnects(from: bed.cl, to: bed.gw, address: "2001:db8:1::3", port: 18090)) == true })
        #expect(try !tcpConnects(from: bed.cl, to: bed.gw, address: "2001:db8:1::3", port: 18091))
        #expect(try udpDelivered(from: bed.cl, to: bed.gw, address: "2001:db8:1::3", port: 53) == 3)
    }
}
