import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// gatewayd end to end, against stock wireguard-go clients configured from what gatewayctl printed.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct GatewayEndToEndTests {
    /// Sixgate's routes (protocol 74) and proxy entries in the gateway's namespace.
    func kernelState(_ bed: GatewayTestbed) throws -> (routes: [String], proxies: [String]) {
        let routes = try bed.exec(bed.gw, ["ip", "-6", "route", "show", "proto", "74"]).stdout.split(separator: "\n").map(String.init)
        let proxies = try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy", "dev", bed.uplink]).stdout.split(separator: "\n").map(String.init)
        return (routes, proxies)
    }

    /// `tunnel_queues = 2`: the gateway's tunnel runs two reader pairs (multi-queue TUN, two UDP
    /// sockets on the port) and says so; a stock client reaches the internet host both ways.
    @Test func twoTunnelQueuesCarryAClient() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", extra: "tunnel_queues = 2")
        try bed.startGateway()
        #expect(bed.gateway?.output.contains("offloads: 2 queues") == true, "\(bed.gateway?.output ?? "")")
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "IPv6 through the gateway")
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3, "IPv4 through NAT44")
        let sockets = try bed.exec(bed.gw, ["ss", "-uanp"]).stdout.split(separator: "\n").filter { $0.contains(":51820") && $0.contains("gatewayd") }
        #expect(sockets.count == 2, "\(sockets)")
    }

    @Test func clientsReachTheInternetOverIPv6AndIPv4AndCannotSpoof() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }

        // 1. Without NDP proxying the ISP router cannot find the client's address: echo requests
        //    go out, replies never come back.
        try bed.writeConfig(ndpProxy: "off")
        try bed.startGateway()
        let added = try bed.gatewayctl(["clients", "add", "alice"])
        #expect(added.stdout.contains("Address = 2001:db8:1::4/128, 192.0.2.2/32"), "\(added.stdout)")
        #expect(added.stdout.contains("Endpoint = 198.51.100.129:51820"))
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: added.stdout)
        #expect(try bed.ping(from: bed.cl, "2001:db8:1::3") > 0, "the gateway's own tunnel address answers")
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1") == 0, "without NDP proxying no reply can come back")
        bed.stopGateway()

        // 2. With kernel proxy entries it works, IPv6 and IPv4 (NAT44), ping and a TCP transfer.
        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway()
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "IPv6 through the gateway")
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1") == 3)
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3, "IPv4 through NAT44")
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        #expect(try tcpTransfer(from: bed.cl, to: bed.isp, address: "2001:db8:ffff::1", port: 18080, bytes: payload) == payload)
        #expect(try tcpTransfer(from: bed.cl, to: bed.isp, address: "203.0.113.1", port: 18081, bytes: payload) == payload)
        // The ISP sees the NAT44 address, not the pool's.
        let conntrack = try bed.exec(bed.isp, ["ip", "-4", "neigh", "show", "dev", bed.ispSide]).stdout
        #expect(conntrack.contains("198.51.100.2"))

        // 3. A second client cannot use the first one's address: dropped and counted.
        let bob = try bed.gatewayctl(["clients", "add", "bob"])
        #expect(bob.stdout.contains("Address = 2001:db8:1::5/128, 192.0.2.3/32"), "\(bob.stdout)")
        try bed.startClient(in: bed.cl2, name: "sgx\(bed.id)", config: bob.stdout, endpoint: "203.0.113.129:51820")
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 })
        try bed.exec(bed.cl2, ["ip", "-6", "addr", "add", "2001:db8:1::4/128", "dev", "sgx\(bed.id)", "nodad"])
        #expect(try bed.ping(from: bed.cl2, "2001:db8:ffff::1", source: "2001:db8:1::4") == 0)
        let status = try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any]
        let counters = status?["counters"] as? [String: Any]
        #expect(((counters?["droppedAllowedIPs"] as? Int) ?? 0) >= 3, "\(String(describing: counters))")
        let names = (status?["clients"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["alice", "bob"])

        // 4. SIGHUP re-reads the clients folder: a client file written by hand becomes a peer
        //    (without disturbing alice's session), a removed one stops being one.
        let carolKey = try run(["sh", "-c", "wg genkey | wg pubkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try "public_key = \"\(carolKey)\"\n".write(toFile: bed.stateDirectory + "/clients/carol", atomically: true, encoding: .utf8)
        func peers() throws -> [String] { try bed.exec(bed.gw, ["wg", "show", bed.tun, "peers"]).stdout.split(separator: "\n").map(String.init) }
        #expect(try peers().count == 2)
        kill(bed.gateway!.pid, SIGHUP)
        #expect(eventually(timeout: 10) { (try? peers().contains(carolKey)) == true })
        #expect(try bed.gatewayctl(["clients", "list"]).stdout.contains("carol\t\(carolKey)\t2001:db8:1::6/128 192.0.2.4/32"))
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1) == 1)
        unlink(bed.stateDirectory + "/clients/carol")
        kill(bed.gateway!.pid, SIGHUP)
        #expect(eventually(timeout: 10) { (try? peers().count) == 2 })

        // 5. kill -9 mid-traffic, start again: it reconciles, traffic resumes, nothing doubled.
        let traffic = try BackgroundProcess(["ip", "netns", "exec", bed.cl, "ping", "-i", "0.2", "-c", "150", "2001:db8:ffff::1"], captureOutput: true)
        defer { traffic.stop() }
        usleep(500_000)
        bed.stopGateway(signal: SIGKILL)
        try bed.startGateway()
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "traffic resumes after a restart")
        let (routes, proxies) = try kernelState(bed)
        #expect(routes.count == 2 && routes.contains { $0.hasPrefix("2001:db8:1::4 ") } && routes.contains { $0.hasPrefix("2001:db8:1::5 ") }, "\(routes)")
        #expect(proxies.count == 2, "\(proxies)")

        // 6. The built-in responder instead of kernel entries: the stale kernel entries go, the ISP
        //    router's solicitations are answered by gatewayd itself, traffic flows.
        bed.stopGateway()
        try bed.writeConfig(ndpProxy: "responder")
        try bed.startGateway()
        try bed.exec(bed.isp, ["ip", "-6", "neigh", "flush", "dev", bed.ispSide])
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "IPv6 with the responder")
        #expect(try kernelState(bed).proxies.isEmpty, "no kernel proxy entries in responder mode")
        let ispNeighbours = try bed.exec(bed.isp, ["ip", "-6", "neigh", "show", "2001:db8:1::4"]).stdout
        #expect(ispNeighbours.contains("lladdr") && ispNeighbours.contains("router"), "\(ispNeighbours)")

        // 7. SIGTERM: nothing of Sixgate's is left in the kernel; the leases are.
        bed.stopGateway()
        let after = try kernelState(bed)
        #expect(after.routes.isEmpty, "\(after.routes)")
        #expect(after.proxies.isEmpty, "\(after.proxies)")
        #expect(try bed.exec(bed.gw, ["ip", "link", "show", bed.tun], check: false).status != 0, "the TUN device is gone")
        #expect(!(try bed.exec(bed.gw, ["nft", "list", "tables"]).stdout.contains("sixgate")))
        #expect(!FileManager.default.fileExists(atPath: bed.stateDirectory + "/control.sock"))
        // The hooks ran with the facts in their environment.
        let hooks = (try? String(contentsOfFile: bed.hookLog, encoding: .utf8)) ?? ""
        #expect(hooks.hasPrefix("up \(bed.tun)"), "\(hooks)")
        #expect(hooks.contains("client-connect \(bed.tun) alice 2001:db8:1::4/128 192.0.2.2/32\n"), "\(hooks)")
        #expect(hooks.contains("client-connect \(bed.tun) bob 2001:db8:1::5/128 192.0.2.3/32\n"), "\(hooks)")
        #expect(hooks.hasSuffix("down \(bed.tun)  \n"), "\(hooks)")
        let leases = try bed.gatewayctl(["leases"]).stdout
        #expect(leases.contains("2001:db8:1::4/128\talice\tactive") && leases.contains("192.0.2.3/32\tbob\tactive"), "\(leases)")
    }
}

@Suite(.enabled(if: isRoot && which("nft") != nil, "needs root and nft"))
struct UplinkRouteTests {
    /// An uplink address without an on-link prefix (a /128, as some ISPs assign): gatewayd adds the
    /// host route to the ISP router that howtos add by hand, keeps it across restarts, and removes it.
    @Test func aHostRouteToTheISPRouterIsAddedWhenItIsNotOnLink() throws {
        let pair = try NamespacePair(tag: "gwu")
        defer { pair.destroy() }
        let dir = "/tmp/sg-gwu-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try pair.exec(pair.left, ["ip", "-6", "addr", "del", "2001:db8:5::1/64", "dev", pair.leftInterface])
        try pair.exec(pair.left, ["ip", "-6", "addr", "add", "2001:db8:5::2/128", "dev", pair.leftInterface, "nodad"])
        try pair.exec(pair.right, ["ip", "-6", "addr", "del", "2001:db8:5::2/64", "dev", pair.rightInterface])
        try pair.exec(pair.right, ["ip", "-6", "addr", "add", "2001:db8:5::1/64", "dev", pair.rightInterface, "nodad"])
        let tun = "sgv\(uniqueSuffix())"
        let config = dir + "/gatewayd.toml"
        try """
            state_directory = "\(dir)"
            interface = "\(tun)"
            listen_port = 51821
            [uplink]
            interface = "\(pair.leftInterface)"
            [ipv6]
            prefix = "2001:db8:5::/64"
            [ipv4]
            enabled = false
            """.write(toFile: config, atomically: true, encoding: .utf8)
        defer { unlink("/var/run/wireguard/\(tun).sock") }
        for round in 0..<2 {
            let g = try BackgroundProcess(["ip", "netns", "exec", pair.left, "\(builtProductsDirectory)/gatewayd", "--config", config], captureOutput: true)
            defer { g.stop() }
            #expect(eventually(timeout: 15) { g.output.contains("up: \(tun)") }, "\(g.output)")
            let routes = try pair.exec(pair.left, ["ip", "-6", "route", "show", "proto", "74"]).stdout
            #expect(routes.split(separator: "\n").map { $0.split(separator: " ").prefix(3).joined(separator: " ") } == ["2001:db8:5::1 dev \(pair.leftInterface)"], "round \(round): \(routes)")
            #expect(try pair.exec(pair.left, ["ping", "-c", "1", "-W", "2", "2001:db8:5::1"], check: false).succeeded)
            if round == 0 { kill(g.pid, SIGKILL); g.process.waitUntilExit() } else { g.stop(grace: 10) }
        }
        #expect(try pair.exec(pair.left, ["ip", "-6", "route", "show", "proto", "74"]).stdout.isEmpty)
    }
}
