// Several gateways as one (issue 25), with real engines started by the tests: a PostgreSQL server
// (initdb in a temporary folder), two gatewayd processes in namespaces of their own, stock
// wireguard-go as the client, `wg` reading each gateway's peers through its UAPI socket.
import Foundation
import SixgateTestSupport
import TunnelGateway
import Testing

@Suite(.enabled(if: isRoot && PostgresServer.binDirectory != nil && which("wireguard-go") != nil && which("wg") != nil, "needs root, PostgreSQL and wireguard-go"))
struct GroupTests {
    /// A client enrolled on gateway A is a peer of gateway B with the same addresses; its handshake
    /// with A shows on B's status; removed on B, it is gone from A. With the database away, A keeps
    /// its clients and its status, an enrolment fails naming the database, and once the server is
    /// back A enrols again by itself and B hears of it.
    @Test func twoGatewaysShareClientsAndLeases() throws {
        let bed = try GroupTestbed()
        defer { bed.destroy() }
        try bed.writeConfig("a")
        try bed.writeConfig("b")
        try bed.startGateway("a")
        try bed.startGateway("b")
        #expect(bed.log("b").contains("gateway gw-b of the group on sixgate on \(bed.database.directory):5432"), "\(bed.log("b"))")

        let alice = try bed.gatewayctl("a", ["clients", "add", "alice"]).stdout
        #expect(alice.contains("Endpoint = 198.51.100.200:51820"), "\(alice)")
        guard let address = alice.split(separator: "\n").first(where: { $0.hasPrefix("Address = ") }) else { Issue.record("no Address line in \(alice)"); return }
        // The prefix is routed: ::1 is no ISP router's here, and the first client's.
        #expect(address == "Address = 2001:db8:1000::1/128, 192.0.2.2/32")
        // B: the same peer, allowed IPs and route, seen by `wg` and `ip` (not by our own status).
        let publicKey = try bed.clients(on: "a")["alice"]?["publicKey"] as? String ?? "?"
        #expect(eventually(timeout: 10) {
            (try? bed.exec(bed.gwb, ["wg", "show", bed.tun + "b", "allowed-ips"]).stdout)?.contains("\(publicKey)\t2001:db8:1000::1/128 192.0.2.2/32") ?? false
        }, "B did not take alice as a peer: \((try? bed.exec(bed.gwb, ["wg", "show", bed.tun + "b", "allowed-ips"]).stdout) ?? "")\n\(bed.log("b"))")
        #expect(try bed.exec(bed.gwb, ["ip", "-6", "route", "show", "2001:db8:1000::1/128"]).stdout.contains("dev \(bed.tun)b proto 74"))
        #expect(try bed.clients(on: "b")["alice"]?["addresses"] as? [String] == ["2001:db8:1000::1/128", "192.0.2.2/32"])

        // Alice connects to A (through the upstream router, to A's own address): B's status says so.
        try bed.exec(bed.up, ["ip", "route", "add", GroupTestbed.anycast + "/32", "via", bed.sites["a"]!.v4])
        try bed.exec(bed.up, ["ip", "-6", "route", "add", "2001:db8:1000::/64", "via", bed.sites["a"]!.v6])
        try bed.startStockClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1")) == 1 }, "\(bed.log("a"))")
        #expect(eventually(timeout: 10) { (try? bed.clients(on: "b")["alice"]?["gateway"] as? String) == "gw-a" })
        #expect(try bed.gatewayctl("b", ["status"]).stdout.contains("on gw-a ("))

        // Removed on B: A drops the peer.
        try bed.gatewayctl("b", ["clients", "remove", "alice"])
        #expect(eventually(timeout: 10) { (try? bed.exec(bed.gwa, ["wg", "show", bed.tun + "a", "peers"]).stdout)?.isEmpty ?? false }, "\(bed.log("a"))")
        #expect(eventually(timeout: 5) { bed.log("a").contains("group: 0 client(s) enrolled and 1 removed on other gateways") }, "\(bed.log("a").split(separator: "\n").filter { $0.contains("group") }.joined(separator: "\n"))")

        // The database goes away.
        _ = try bed.gatewayctl("a", ["clients", "add", "carol"])
        #expect(eventually(timeout: 10) { (try? bed.clients(on: "b")["carol"]) != nil })
        bed.database.pause()
        let refused = try bed.gatewayctl("a", ["clients", "add", "bob"], check: false)
        #expect(!(refused.succeeded))
        #expect(refused.stderr.contains("sixgate on \(bed.database.directory):5432"), "\(refused.stderr)")
        #expect(eventually(timeout: 10) { bed.log("a").contains("group: lost the database") }, "\(bed.log("a"))")
        #expect((try bed.clients(on: "a")["carol"]) != nil, "status works from what the gateway holds")
        #expect(try bed.exec(bed.gwa, ["wg", "show", bed.tun + "a", "peers"]).stdout.contains(try bed.clients(on: "a")["carol"]?["publicKey"] as? String ?? "?"))
        try bed.database.start()
        #expect(eventually(timeout: 30) { bed.log("a").contains("is back") }, "\(bed.log("a"))")
        let bob = try bed.gatewayctl("a", ["clients", "add", "bob"])
        #expect(bob.stdout.contains("Address = 2001:db8:1000::"), "\(bob.stderr)")
        #expect(eventually(timeout: 10) { (try? bed.clients(on: "b")["bob"]) != nil }, "\(bed.log("b"))")
        #expect(bed.gateways["a"]?.process.isRunning == true && bed.gateways["b"]?.process.isRunning == true)
    }
}

@Suite(.enabled(if: isRoot && PostgresServer.binDirectory != nil && which("bird") != nil && which("birdc") != nil && which("wireguard-go") != nil,
                "needs root, PostgreSQL, bird2 and wireguard-go"))
struct GroupFailoverTests {
    /// The largest gap between consecutive replies of `ping -D` output, in seconds, and the count.
    static func longestGap(_ output: String) -> (gap: Double, replies: Int) {
        let times = output.split(separator: "\n").compactMap { line -> Double? in
            guard line.contains("bytes from"), line.hasPrefix("["), let close = line.firstIndex(of: "]") else { return nil }
            return Double(line[line.index(after: line.startIndex)..<close])
        }
        var gap = 0.0
        for (a, b) in zip(times, times.dropFirst()) { gap = max(gap, b - a) }
        return (gap, times.count)
    }

    /// Two gateways of a group behind an upstream router, BGP with BFD from each (BIRD on all three),
    /// one WireGuard identity and an anycast endpoint. A stock wireguard-go client (on the anycast
    /// address, the upstream's best path to which is A) and tunnel-client (given A's and B's own
    /// addresses) enrol on gateway A and reach the internet host; A is killed (SIGKILL): both reach
    /// it again through B with the same addresses, and the time is printed. A returns: one route per client upstream, the leases as they were. Then A's
    /// uplink is pulled: BFD, and B again.
    @Test func failoverByBGPAndAnycast() throws {
        let bed = try GroupTestbed()
        defer { bed.destroy() }
        for gw in ["a", "b"] {
            try bed.writeConfig(gw, extra: "announce_table = 7474\nanycast = [\"\(GroupTestbed.anycast)\"]\nbird_socket = \"\(bed.directory)/bird-\(gw).ctl\"")
        }
        try bed.startGateway("a")
        try bed.startGateway("b")
        try bed.startUpstreamBIRD()
        try bed.startGatewayBIRD("a")
        try bed.startGatewayBIRD("b")
        #expect(eventually(timeout: 40) { bed.establishedSessions() == ["gwa4", "gwa6", "gwb4", "gwb6"] }, "\((try? bed.birdc("up", ["show", "protocols"])) ?? "")")
        // The doctor reads BIRD's sessions through birdc.
        let doctor = try bed.gatewayctl("a", ["doctor", "--capture-seconds", "0", "--json"], check: false).stdout
        let checks = ((try? JSONSerialization.jsonObject(with: Data(doctor.utf8)) as? [String: Any])?["checks"] as? [[String: Any]]) ?? []
        let bgp = checks.first { $0["id"] as? String == "group.bgp" }
        #expect(bgp?["status"] as? String == "ok", "\(bgp ?? [:])")
        #expect(eventually(timeout: 10) { (try? bed.exec(bed.up, ["ip", "route", "show", GroupTestbed.anycast]).stdout)?.contains("via 198.51.100.2 ") ?? false }, "the anycast address is routed to A: \((try? bed.exec(bed.up, ["ip", "route"]).stdout) ?? "")")

        // Alice (stock wireguard-go) and tc (tunnel-client) enrol on A.
        let alice = try bed.gatewayctl("a", ["clients", "add", "alice"]).stdout
        try bed.startStockClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        let aliceAddress = "2001:db8:1000::1"
        #expect(alice.contains("Address = \(aliceAddress)/128"), "\(alice)")
        let tcTun = "sgk\(bed.id)"
        // tunnel-client gets both gateways' own addresses (no anycast): it moves by itself.
        let tcConfig = try bed.gatewayctl("a", ["clients", "add", "tc", "--format", "tunnel-client"]).stdout
            .replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"\(tcTun)\"")
            .replacingOccurrences(of: "endpoint = \"\(GroupTestbed.anycast):51820\"", with: "endpoint = [\"198.51.100.2:51820\", \"198.51.100.10:51820\"]")
        #expect(tcConfig.contains("198.51.100.10:51820"), "\(tcConfig)")
        let tcPath = bed.directory + "/tc.toml"
        try tcConfig.write(toFile: tcPath, atomically: true, encoding: .utf8)
        chmod(tcPath, 0o600)
        let tc = try bed.background(in: bed.cl2, ["\(builtProductsDirectory)/tunnel-client", "--config", tcPath, "--state-file", bed.directory + "/tc.json"])
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1")) == 1 }, "alice: \(bed.log("a"))")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1")) == 1 }, "tc: \(tc.output)\n\(bed.log("a"))")
        #expect(try bed.ping(from: bed.cl, "203.0.113.200") == 1, "IPv4 through A's NAT44")
        #expect(eventually(timeout: 10) { (try? bed.exec(bed.up, ["ip", "-6", "route", "show", aliceAddress]).stdout)?.contains("via 2001:db8:a::2") ?? false })
        let leasesBefore = try bed.database.psql("SELECT pool, prefix, client, released_at IS NULL FROM leases ORDER BY pool, prefix")

        func failover(_ what: String, _ act: () throws -> Void) throws -> (stock: Double, tunnelClient: Double) {
            let p1 = try bed.background(in: bed.cl, ["ping", "-D", "-n", "-i", "0.1", "-W", "1", "-c", "200", "2001:db8:ffff::1"])
            let p2 = try bed.background(in: bed.cl2, ["ping", "-D", "-n", "-i", "0.1", "-W", "1", "-c", "200", "2001:db8:ffff::1"])
            usleep(1_500_000)
            try act()
            #expect(eventually(timeout: 40) { !p1.process.isRunning && !p2.process.isRunning })
            let (g1, n1) = Self.longestGap(p1.output), (g2, n2) = Self.longestGap(p2.output)
            print("group failover (\(what)): stock wireguard-go client back after \(String(format: "%.2f", g1)) s (\(n1)/200 replies), tunnel-client after \(String(format: "%.2f", g2)) s (\(n2)/200)")
            #expect(n1 > 100, "the stock client came back: \(p1.output.suffix(300))")
            #expect(n2 > 100, "tunnel-client came back: \(p2.output.suffix(300))")
            return (g1, g2)
        }

        // A is killed: its TUN goes, so its routes in table 7474 go, BIRD withdraws them, the
        // upstream routes the anycast address to B, B answers the first packet without a session
        // with a handshake (the group's sessions table says whose endpoint it is).
        let killed = try failover("gatewayd A killed with SIGKILL") { bed.stopGateway("a", signal: SIGKILL) }
        #expect(killed.stock < 5, "under one WireGuard handshake retry (5 s)")
        #expect(killed.tunnelClient < 5, "tunnel-client moved to B's endpoint: \(tc.output)")
        #expect(tc.output.contains("the gateway at 198.51.100.2:51820 does not answer"), "\(tc.output)")
        #expect(try bed.exec(bed.up, ["ip", "-6", "route", "show", aliceAddress]).stdout.contains("via 2001:db8:b::2"))
        #expect(try bed.ping(from: bed.cl, "203.0.113.200") == 1, "IPv4 through B's NAT44 (A's connection tracking is gone: new flows only)")
        #expect(try bed.clients(on: "b")["alice"]?["gateway"] as? String == "gw-b")
        #expect(try bed.exec(bed.cl, ["ip", "-6", "addr", "show", "dev", "sgw\(bed.id)"]).stdout.contains(aliceAddress), "the same address")

        // A returns: the clients come back to it (the upstream prefers A), one route each upstream,
        // the leases as they were.
        try bed.startGateway("a")
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1")) == 1 })
        #expect(eventually(timeout: 20) {
            let routes = (try? bed.exec(bed.up, ["ip", "-6", "route", "show", aliceAddress]).stdout) ?? ""
            return routes.split(separator: "\n").count == 1 && routes.contains("via 2001:db8:a::2")
        }, "alice back on A, one route upstream: \((try? bed.exec(bed.up, ["ip", "-6", "route", "show", aliceAddress]).stdout) ?? "")")
        #expect(try bed.database.psql("SELECT pool, prefix, client, released_at IS NULL FROM leases ORDER BY pool, prefix") == leasesBefore, "no lease lost or doubled")
        let announcedA = try bed.exec(bed.gwa, ["ip", "-6", "route", "show", "table", "7474"]).stdout
        let announcedB = try bed.exec(bed.gwb, ["ip", "-6", "route", "show", "table", "7474"]).stdout
        #expect(eventually(timeout: 10) {
            let a = (try? bed.exec(bed.gwa, ["ip", "-6", "route", "show", "table", "7474", aliceAddress]).stdout) ?? ""
            let b = (try? bed.exec(bed.gwb, ["ip", "-6", "route", "show", "table", "7474", aliceAddress]).stdout) ?? ""
            return (a.isEmpty) != (b.isEmpty)
        }, "alice announced by one gateway: A \(announcedA) B \(announcedB)")

        // A's uplink is pulled: BFD tells the upstream within about 0.3 s.
        let pulled = try failover("A's uplink pulled") { try bed.exec(bed.gwa, ["ip", "link", "set", bed.sites["a"]!.uplink, "down"]) }
        #expect(pulled.stock < 5)
        #expect(pulled.tunnelClient < 5)
        #expect(try bed.exec(bed.up, ["ip", "-6", "route", "show", aliceAddress]).stdout.contains("via 2001:db8:b::2"))
        #expect(bed.gateways["b"]?.process.isRunning == true)
    }
}

@Suite(.enabled(if: isRoot && PostgresServer.binDirectory != nil && which("bird") != nil, "needs root, PostgreSQL and bird2"))
struct GroupBGPDoctorTests {
    func doctorCheck(_ bed: GroupTestbed, _ id: String) throws -> [String: Any] {
        let out = try bed.gatewayctl("a", ["doctor", "--capture-seconds", "0", "--json"], check: false).stdout
        let checks = ((try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])?["checks"] as? [[String: Any]]) ?? []
        return checks.first { $0["id"] as? String == id } ?? [:]
    }

    /// Bad input: BIRD not running, BIRD without the snippet, a session that is not Established:
    /// each a problem that says what and how to fix it; gatewayd runs on meanwhile.
    @Test func doctorSaysWhatIsWrongWithBIRD() throws {
        let bed = try GroupTestbed()
        defer { bed.destroy() }
        try bed.writeConfig("a", extra: "announce_table = 7474\nbird_socket = \"\(bed.directory)/bird-a.ctl\"")
        try bed.startGateway("a")
        var check = try doctorCheck(bed, "group.bgp")
        #expect(check["status"] as? String == "problem")
        #expect((check["summary"] as? String ?? "").contains("BIRD does not answer on \(bed.directory)/bird-a.ctl"), "\(check)")
        #expect((check["fix"] as? [String])?.first == "systemctl start bird")

        try bed.startBIRD(in: bed.gwa, name: "a", config: "router id 198.51.100.2;\nprotocol device { scan time 10; }\n")
        check = try doctorCheck(bed, "group.bgp")
        #expect((check["summary"] as? String ?? "").contains("does not learn table 7474"), "\(check)")

        // The snippet and a session toward a neighbour that does not answer (no BIRD upstream).
        bed.birds["a"]?.stop()
        let snippet = try bed.gatewayctl("a", ["bird-config"]).stdout
        try snippet.write(toFile: bed.directory + "/a/sixgate.conf", atomically: true, encoding: .utf8)
        try bed.startBIRD(in: bed.gwa, name: "a", config: """
            router id 198.51.100.2;
            protocol device { scan time 10; }
            include "\(bed.directory)/a/sixgate.conf";
            protocol bgp upstream6 from sixgate_upstream6 { local as 64501; neighbor 2001:db8:a::1 as 64500; }
            """)
        check = try doctorCheck(bed, "group.bgp")
        #expect(check["status"] as? String == "problem")
        #expect((check["summary"] as? String ?? "").contains("not Established: upstream6"), "\(check)")
        #expect((check["fix"] as? [String]) ?? [] == ["birdc show protocols all upstream6"])
        #expect(bed.gateways["a"]?.process.isRunning == true)
    }
}

@Suite(.enabled(if: isRoot && PostgresServer.binDirectory != nil, "needs root and PostgreSQL"))
struct GroupConcurrencyTests {
    /// Two running gateways enrol 2,000 clients at the same time (1,000 each, through their control
    /// sockets, on two threads) against one PostgreSQL: no enrolment lost, no address given twice,
    /// and each gateway ends with all 2,000 as peers with the same allowed IPs (`wg show`).
    @Test func twoGatewaysEnrol2000ClientsAtOnce() throws {
        let bed = try GroupTestbed()
        defer { bed.destroy() }
        // 2,000 IPv4 addresses: the benchmarking range (RFC 2544), inside the test's namespaces.
        try bed.writeConfig("a", ipv4Pool: "198.18.0.0/20")
        try bed.writeConfig("b", ipv4Pool: "198.18.0.0/20")
        try bed.startGateway("a")
        try bed.startGateway("b")
        let configs = try ["a", "b"].map { gw in
            try GatewayConfiguration(text: String(contentsOfFile: bed.configPath(gw), encoding: .utf8), path: bed.configPath(gw))
        }
        final class Box: @unchecked Sendable { var errors: [String] = []; var addresses: [String: [String]] = [:]; let lock = NSLock() }
        let box = Box()
        let perGateway = 1_000
        let group = DispatchGroup()
        let started = Date()
        for g in 0..<2 {
            DispatchQueue.global().async(group: group) {
                for i in 0..<perGateway {
                    let name = "gw\(g)-c\(i)"
                    let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
                    do {
                        let (client, live) = try GatewayAdmin.addClient(configs[g], name: name, publicKey: key)
                        box.lock.lock(); box.addresses[name] = client.addresses; if !live { box.errors.append("\(name): not live") }; box.lock.unlock()
                    } catch {
                        box.lock.lock(); box.errors.append("\(name) on \(g): \(error)"); box.lock.unlock()
                    }
                }
            }
        }
        #expect(group.wait(timeout: .now() + 600) == .success)
        let elapsed = Date().timeIntervalSince(started)
        print(String(format: "two gatewayd enrolled %d clients at once through their control sockets in %.1f s (%.0f/s)", 2 * perGateway, elapsed, Double(2 * perGateway) / elapsed))
        #expect(box.errors == [])
        var owner: [String: String] = [:]
        for (name, addresses) in box.addresses {
            for a in addresses {
                if let other = owner[a] { Issue.record("\(a) given to \(other) and \(name)") }
                owner[a] = name
            }
        }
        #expect(owner.count == 2 * 2 * perGateway)
        #expect(try bed.database.psql("SELECT count(*) FROM leases WHERE released_at IS NULL") == String(2 * 2 * perGateway))
        #expect(try bed.database.psql("SELECT count(*) FROM clients") == String(2 * perGateway))
        // Both gateways hold all of them, with the same allowed IPs.
        func allowed(_ gw: String) -> Set<String> {
            // "KEY<TAB>ADDRESS ADDRESS", the addresses in the order the peer got them: compared as sets.
            Set(((try? bed.exec(bed.sites[gw]!.ns, ["wg", "show", bed.tun + gw, "allowed-ips"]).stdout) ?? "").split(separator: "\n").map { line in
                let f = line.split(separator: "\t")
                return String(f[0]) + " " + (f.count > 1 ? f[1].split(separator: " ").sorted().joined(separator: " ") : "")
            })
        }
        let converged = eventually(timeout: 60) { allowed("a").count == 2 * perGateway && allowed("a") == allowed("b") }
        let a = allowed("a"), b = allowed("b")
        #expect(converged, "A has \(a.count) peers, B \(b.count); only on A: \(a.subtracting(b).sorted().prefix(5)); only on B: \(b.subtracting(a).sorted().prefix(5))")
    }
}
