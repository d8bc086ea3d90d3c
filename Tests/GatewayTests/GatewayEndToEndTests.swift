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

        // 4. kill -9 mid-traffic, start again: it reconciles, traffic resumes, nothing doubled.
        let traffic = try BackgroundProcess(["ip", "netns", "exec", bed.cl, "ping", "-i", "0.2", "-c", "150", "2001:db8:ffff::1"], captureOutput: true)
        defer { traffic.stop() }
        usleep(500_000)
        bed.stopGateway(signal: SIGKILL)
        try bed.startGateway()
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "traffic resumes after a restart")
        let (routes, proxies) = try kernelState(bed)
        #expect(routes.count == 2 && routes.contains { $0.hasPrefix("2001:db8:1::4 ") } && routes.contains { $0.hasPrefix("2001:db8:1::5 ") }, "\(routes)")
        #expect(proxies.count == 2, "\(proxies)")

        // 5. SIGTERM: nothing of Sixgate's is left in the kernel; the leases are.
        bed.stopGateway()
        let after = try kernelState(bed)
        #expect(after.routes.isEmpty, "\(after.routes)")
        #expect(after.proxies.isEmpty, "\(after.proxies)")
        #expect(try bed.exec(bed.gw, ["ip", "link", "show", bed.tun], check: false).status != 0, "the TUN device is gone")
        #expect(!(try bed.exec(bed.gw, ["nft", "list", "tables"]).stdout.contains("sixgate")))
        #expect(!FileManager.default.fileExists(atPath: bed.stateDirectory + "/control.sock"))
        let leases = try bed.gatewayctl(["leases"]).stdout
        #expect(leases.contains("2001:db8:1::4/128\talice\tactive") && leases.contains("192.0.2.3/32\tbob\tactive"), "\(leases)")
    }
}
