import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// tunnel-client end to end: against gatewayd (the lease exchange), against a stock wireguard-go
/// server (a static wg-quick file), taking the default routes with the endpoint bypass, and router
/// mode with radvdump and a SLAAC host behind it.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct ClientEndToEndTests {
    /// The gateway-printed tunnel-client config with the test's interface name and extra lines.
    func clientConfig(_ bed: GatewayTestbed, name: String, interface: String, replace: String = "", extra: String = "") throws -> String {
        var text = try bed.gatewayctl(["clients", "add", name, "--format", "tunnel-client"]).stdout
        text = text.replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"\(interface)\"")
        if !replace.isEmpty { text = text.replacingOccurrences(of: "replace_default_route = false", with: replace) }
        return text + extra
    }

    func routeGet(_ bed: GatewayTestbed, _ ns: String, _ address: String) throws -> String {
        let r = try bed.exec(ns, ["ip", "-j", "route", "get", address], check: false)
        let list = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]
        return (list?.first?["dev"] as? String) ?? "none"
    }

    func addresses(_ bed: GatewayTestbed, _ ns: String, _ dev: String) -> [String] {
        guard let r = try? bed.exec(ns, ["ip", "-j", "addr", "show", "dev", dev], check: false), r.succeeded,
              let list = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else { return [] }
        return list.flatMap { ($0["addr_info"] as? [[String: Any]] ?? []).compactMap { i in (i["local"] as? String).map { "\($0)/\(i["prefixlen"] ?? "")" } } }
    }

    @Test func leaseFromGatewaydThenTheGatewayRestartsAndTheClientCarriesOn() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", extra: "dns = [\"2001:db8:ffff::53\", \"203.0.113.53\"]")
        try bed.startGateway()
        let tun = "sgk\(bed.id)"
        let hookLog = bed.stateDirectory + "/client-hooks.log"
        let hook = bed.stateDirectory + "/client-hook.sh"
        try writeExecutable("#!/bin/sh\necho \"$SIXGATE_EVENT $SIXGATE_INTERFACE $SIXGATE_IPV6_ADDRESS $SIXGATE_IPV4_ADDRESS $SIXGATE_DNS $SIXGATE_MTU\" >> \(hookLog)\n", to: hook)
        let config = try clientConfig(bed, name: "alice", interface: tun, extra: "\n[hooks]\nup = \"\(hook)\"\ndown = \"\(hook)\"\n")
        #expect(config.contains("[gateway]") && config.contains("endpoint = \"198.51.100.129:51820\""))
        let client = try bed.startTunnelClient(in: bed.cl, config: config, name: "alice")

        // The lease arrives inside the tunnel; the client installs it.
        #expect(eventually(timeout: 20) { addresses(bed, bed.cl, tun).contains("2001:db8:1::4/128") }, "\(client.output)")
        #expect(addresses(bed, bed.cl, tun).contains("192.0.2.2/32"))
        #expect(try bed.exec(bed.cl, ["ip", "link", "show", tun]).stdout.contains("mtu 1420"))
        #expect(try routeGet(bed, bed.cl, "2001:db8:ffff::1") == tun)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "IPv6 through the gateway")
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3, "IPv4 through NAT44")
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 11) }
        #expect(try tcpTransfer(from: bed.cl, to: bed.isp, address: "2001:db8:ffff::1", port: 18090, bytes: payload) == payload)
        let hooks = try String(contentsOfFile: hookLog, encoding: .utf8)
        #expect(hooks.contains("up \(tun) 2001:db8:1::4/128 192.0.2.2/32 2001:db8:ffff::53 203.0.113.53 1420"), "\(hooks)")
        // The running client writes its state once a second; `tunnel-client status` reads it.
        var status: [String: Any] = [:]
        #expect(eventually(timeout: 5) { status = (try? bed.tunnelClientStatus("alice")) ?? [:]; return (status["addresses"] as? [String])?.contains("2001:db8:1::4/128") == true }, "\(status)")
        #expect((status["dnsServers"] as? [String]) == ["2001:db8:ffff::53", "203.0.113.53"])
        let gatewayCounters = (try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any])?["counters"] as? [String: Any]
        #expect(((gatewayCounters?["leaseReplies"] as? Int) ?? 0) >= 1, "\(String(describing: gatewayCounters))")

        // The gateway dies and comes back: no operator action on the client, traffic resumes.
        bed.stopGateway(signal: SIGKILL)
        try bed.startGateway()
        #expect(eventually(timeout: 45) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "\(client.output)")
        #expect(try bed.ping(from: bed.cl, "203.0.113.1", count: 1) == 1)
        #expect(client.process.isRunning)

        // The client's own network changes (a new carrier address): the session roams with it.
        try bed.exec(bed.cl, ["ip", "addr", "del", "198.51.100.130/25", "dev", "sgc\(bed.id)"])
        try bed.exec(bed.cl, ["ip", "addr", "add", "198.51.100.131/25", "dev", "sgc\(bed.id)"])
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "\(client.output)")
        #expect(try bed.exec(bed.gw, ["wg", "show", bed.tun, "endpoints"]).stdout.contains("198.51.100.131:"))

        // SIGTERM: the down hook runs, the interface and every route of ours go.
        client.stop(grace: 10)
        #expect(try String(contentsOfFile: hookLog, encoding: .utf8).contains("down \(tun)"))
        #expect(!(try bed.exec(bed.cl, ["ip", "link", "show", tun], check: false)).succeeded)
        #expect(try bed.exec(bed.cl, ["ip", "route", "show", "proto", "74"]).stdout.isEmpty)
        #expect(try bed.exec(bed.cl, ["ip", "-6", "route", "show", "proto", "74"]).stdout.isEmpty)
    }

    @Test func theDefaultRoutesAreTakenWithAnEndpointBypassAndGivenBack() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway()
        let tun = "sgk\(bed.id)", carrier = "sgc\(bed.id)"
        // The client host's own defaults, as its network gave them.
        try bed.exec(bed.gw, ["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", "sgo\(bed.id)", "nodad"])
        try bed.exec(bed.cl, ["ip", "-6", "addr", "add", "2001:db8:2::2/64", "dev", carrier, "nodad"])
        try bed.exec(bed.cl, ["ip", "-6", "route", "add", "default", "via", "2001:db8:2::1", "dev", carrier])
        try bed.exec(bed.cl, ["ip", "route", "add", "default", "via", "198.51.100.129", "dev", carrier])
        let before4 = try bed.exec(bed.cl, ["ip", "-j", "route", "show", "default"]).stdout
        let before6 = try bed.exec(bed.cl, ["ip", "-j", "-6", "route", "show", "default"]).stdout

        // 1. Not told to replace: refuses, says how, exits non-zero, touches nothing.
        let refused = try bed.startTunnelClient(in: bed.cl, config: try clientConfig(bed, name: "alice", interface: tun), name: "alice")
        #expect(eventually(timeout: 20) { !refused.process.isRunning }, "\(refused.output)")
        #expect(refused.process.terminationStatus != 0)
        #expect(refused.output.contains("IPv6 default route is held by \(carrier) via 2001:db8:2::1"), "\(refused.output)")
        #expect(refused.output.contains("replace_default_route = true") && refused.output.contains("accept_ra=2"))
        #expect(try bed.exec(bed.cl, ["ip", "-j", "-6", "route", "show", "default"]).stdout == before6)
        #expect(!(try bed.exec(bed.cl, ["ip", "link", "show", tun], check: false)).succeeded)

        // 2. Told to: everything goes into the tunnel except the tunnel's own UDP. The endpoint is
        //    off-link this time (the gateway's address on its other link), reached via the default gateway.
        let config = try clientConfig(bed, name: "bob", interface: tun, replace: "replace_default_route = true")
            .replacingOccurrences(of: "198.51.100.129:51820", with: "203.0.113.129:51820")
        let client = try bed.startTunnelClient(in: bed.cl, config: config, name: "bob")
        #expect(eventually(timeout: 20) { (try? routeGet(bed, bed.cl, "2001:db8:ffff::1")) == tun }, "\(client.output)")
        #expect(try routeGet(bed, bed.cl, "203.0.113.1") == tun)
        #expect(try routeGet(bed, bed.cl, "203.0.113.129") == carrier, "the endpoint stays on the physical interface")
        #expect(try bed.exec(bed.cl, ["ip", "route", "show", "203.0.113.129"]).stdout.contains("via 198.51.100.129 dev \(carrier)"))
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "\(client.output)")
        #expect(try bed.ping(from: bed.cl, "203.0.113.1", count: 2) == 2)
        // The tunnel's UDP really leaves through the carrier: the gateway sees it there.
        let peers = try bed.exec(bed.gw, ["wg", "show", bed.tun, "endpoints"]).stdout
        #expect(peers.contains("198.51.100.130:"), "\(peers)")

        // The network changes under it: a new default gateway. The endpoint's route follows.
        try bed.exec(bed.gw, ["ip", "addr", "add", "198.51.100.140/25", "dev", "sgo\(bed.id)"])
        try bed.exec(bed.cl, ["ip", "route", "replace", "default", "via", "198.51.100.140", "dev", carrier])
        #expect(eventually(timeout: 15) { (try? bed.exec(bed.cl, ["ip", "route", "show", "203.0.113.129"]).stdout.contains("via 198.51.100.140")) == true },
                "\(client.output)")
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })
        try bed.exec(bed.cl, ["ip", "route", "replace", "default", "via", "198.51.100.129", "dev", carrier])
        #expect(eventually(timeout: 15) { (try? bed.exec(bed.cl, ["ip", "route", "show", "203.0.113.129"]).stdout.contains("via 198.51.100.129")) == true })

        // 3. On exit the original default routes are back, exactly as they were.
        client.stop(grace: 10)
        #expect(try bed.exec(bed.cl, ["ip", "-j", "route", "show", "default"]).stdout == before4)
        #expect(try bed.exec(bed.cl, ["ip", "-j", "-6", "route", "show", "default"]).stdout == before6)
        #expect(try routeGet(bed, bed.cl, "2001:db8:ffff::1") == carrier)
        #expect(try bed.exec(bed.cl, ["ip", "route", "show", "proto", "74"]).stdout.isEmpty, "the bypass route is gone")
    }

    @Test func routerModeAdvertisesTheDelegatedPrefixToASLAACHost() throws {
        guard let radvdump = which("radvdump") else { Issue.record("radvdump is not installed (scripts/setup.sh installs it)"); return }
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        // A routed /56 (the ISP routes it to the gateway: no NDP proxy), a /64 per client.
        try bed.exec(bed.isp, ["ip", "-6", "route", "add", "2001:db8:100::/56", "via", "2001:db8:1::2"])
        try bed.writeConfig(ndpProxy: "off", ipv6: "prefix = \"2001:db8:100::/56\"\nallocation = \"prefixes\"\ndelegated_length = 64",
                            ipv4: "enabled = false", extra: "dns = [\"2001:db8:ffff::53\"]")
        try bed.startGateway()
        let lan = "sg-gl-\(bed.id)", lanHost = "sgl\(bed.id)", lanRouter = "sgm\(bed.id)", tun = "sgk\(bed.id)"
        try bed.addNamespace(lan, linkedTo: bed.cl, lanHost, lanRouter)
        let dump = try BackgroundProcess(["ip", "netns", "exec", lan, radvdump], captureOutput: true)
        defer { dump.stop() }
        let config = try clientConfig(bed, name: "carol", interface: tun, extra: "\n[router]\ninterface = \"\(lanRouter)\"\ninterval = 4\nopen = [\"tcp/18022\"]\n")
        #expect(config.contains("ipv4 = \"none\""))
        let client = try bed.startTunnelClient(in: bed.cl, config: config, name: "carol")

        // The LAN host configures itself from the advertisements and reaches the internet.
        func slaac() -> String? {
            addresses(bed, lan, lanHost).first { $0.hasPrefix("2001:db8:100:1:") && $0.hasSuffix("/64") }
        }
        #expect(eventually(timeout: 30) { slaac() != nil }, "\(client.output)")
        #expect(addresses(bed, bed.cl, lanRouter).contains("2001:db8:100:1::1/64"))
        #expect(try bed.exec(lan, ["ip", "-6", "route", "show", "default"]).stdout.contains("proto ra"))
        #expect(eventually(timeout: 20) { (try? bed.ping(from: lan, "2001:db8:ffff::1", count: 1)) == 1 }, "\(client.output)")
        if let a = slaac()?.split(separator: "/").first {
            #expect(try bed.ping(from: lan, "2001:db8:ffff::1", source: String(a)) == 3)
        }
        // The LAN is closed to unsolicited inbound twice: by the gateway (the whole delegated
        // prefix)...
        let host = String(slaac()?.split(separator: "/").first ?? "")
        #expect(try !tcpConnects(from: bed.isp, to: lan, address: host, port: 18022), "the gateway drops it first")
        // ...and, with the gateway opened wide for carol, by tunnel-client's own CPE filter (RFC 6092),
        // which lets in only what its [router] open lists.
        _ = try bed.gatewayctl(["clients", "open", "carol", "all"])
        #expect(try !tcpConnects(from: bed.isp, to: lan, address: host, port: 18023), "closed on the CPE")
        #expect(try tcpConnects(from: bed.isp, to: lan, address: host, port: 18022), "router.open = tcp/18022")
        #expect(try udpExchange(from: lan, to: bed.isp, address: "2001:db8:ffff::1", port: 18053), "the LAN's own UDP gets its answers")
        #expect(try bed.ping(from: bed.isp, host) == 3, "echo requests pass")
        let cpeTable = try bed.exec(bed.cl, ["nft", "list", "table", "inet", "sixgate_cpe_\(tun)"]).stdout
        #expect(cpeTable.contains("2001:db8:100:1::/64 . tcp . 18022"), "\(cpeTable)")
        #expect(eventually(timeout: 25) { ((try? bed.tunnelClientStatus("carol"))?["lanInboundDropped"] as? Int ?? 0) >= 1 })

        // radvdump decodes them with the expected fields.
        #expect(eventually(timeout: 10) { dump.output.contains("RDNSS 2001:db8:ffff::53") }, "\(dump.output)")
        let text = dump.output
        #expect(text.contains("prefix 2001:db8:100:1::/64"))
        #expect(text.contains("AdvOnLink on;") && text.contains("AdvAutonomous on;"))
        #expect(text.contains("AdvLinkMTU 1420;"))
        #expect(text.contains("AdvDefaultLifetime 12;"), "router lifetime 3 x interval")
        #expect(text.contains("AdvSourceLLAddress on;"))

        // On exit: advertisements with router lifetime 0, and the LAN's default route goes.
        client.stop(grace: 10)
        #expect(eventually(timeout: 5) { dump.output.contains("AdvDefaultLifetime 0;") }, "\(dump.output)")
        #expect(eventually(timeout: 5) { (try? bed.exec(lan, ["ip", "-6", "route", "show", "default"]).stdout.isEmpty) == true })
        #expect(try !bed.exec(bed.cl, ["nft", "list", "tables"]).stdout.contains("sixgate_cpe_"), "the CPE filter goes on exit")
    }

    /// The address entries (`ip -j addr`) of `dev`, with their lifetimes.
    func addressInfo(_ bed: GatewayTestbed, _ ns: String, _ dev: String) -> [[String: Any]] {
        guard let r = try? bed.exec(ns, ["ip", "-j", "addr", "show", "dev", dev], check: false), r.succeeded,
              let list = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else { return [] }
        return list.flatMap { $0["addr_info"] as? [[String: Any]] ?? [] }
    }

    /// Issue 24 in router mode, RFC 9096's CE-router behaviour: the gateway is renumbered (a new
    /// /56 from the ISP); the tunnel-client's LAN gets the new /64 advertised at once and the old
    /// one with preferred lifetime 0 and the valid lifetime that remains, so a SLAAC host (the
    /// kernel's own) moves to the new prefix for new connections; when the old prefix's valid
    /// lifetime ends the router stops advertising it. Checked with radvdump and the host's addresses.
    @Test func routerModeMovesTheLANToARenumberedPrefixAsRFC9096Says() throws {
        guard let radvdump = which("radvdump") else { Issue.record("radvdump is not installed (scripts/setup.sh installs it)"); return }
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        for p in ["2001:db8:100::/56", "2001:db8:200::/56"] { try bed.exec(bed.isp, ["ip", "-6", "route", "add", p, "via", "2001:db8:1::2"]) }
        try bed.writeConfig(ndpProxy: "off", ipv6: "prefix = \"2001:db8:100::/56\"\nprefix_source = \"external\"\nallocation = \"prefixes\"\ndelegated_length = 64",
                            ipv4: "enabled = false", extra: "dns = [\"2001:db8:ffff::53\"]")
        try bed.startGateway()
        let lan = "sg-gl-\(bed.id)", lanHost = "sgl\(bed.id)", lanRouter = "sgm\(bed.id)", tun = "sgk\(bed.id)"
        try bed.addNamespace(lan, linkedTo: bed.cl, lanHost, lanRouter)
        let config = try clientConfig(bed, name: "carol", interface: tun, extra: "\n[router]\ninterface = \"\(lanRouter)\"\ninterval = 4\n")
        let client = try bed.startTunnelClient(in: bed.cl, config: config, name: "carol")
        func slaac(_ prefix: String) -> [String: Any]? {
            addressInfo(bed, lan, lanHost).first { ($0["local"] as? String)?.hasPrefix(prefix) == true && $0["prefixlen"] as? Int == 64 }
        }
        #expect(eventually(timeout: 30) { slaac("2001:db8:100:1:") != nil }, "\(client.output)")
        #expect(eventually(timeout: 20) { (try? bed.ping(from: lan, "2001:db8:ffff::1", count: 1)) == 1 }, "\(client.output)")
        let dump = try BackgroundProcess(["ip", "netns", "exec", lan, radvdump], captureOutput: true)
        defer { dump.stop() }

        // The ISP renumbers; the old /56 stays valid 30 s more.
        let set = try bed.gatewayctl(["prefix", "set", "2001:db8:200::/56", "--preferred", "1800", "--valid", "3600", "--old-valid", "30"], check: false)
        #expect(set.succeeded, "\(set.stdout)\(set.stderr)")
        // The host: a new address from the new /64 at once, the old one deprecated (RFC 4862 §5.5.4).
        #expect(eventually(timeout: 15) { slaac("2001:db8:200:1:") != nil }, "\(client.output)\n\(dump.output)")
        #expect(eventually(timeout: 10) { slaac("2001:db8:100:1:")?["preferred_life_time"] as? Int == 0 }, "\(slaac("2001:db8:100:1:") ?? [:])")
        let newAddress = try #require(slaac("2001:db8:200:1:")?["local"] as? String)
        #expect(slaac("2001:db8:200:1:")?["deprecated"] == nil)
        // What the router advertised: the new prefix preferred, the old one with preferred
        // lifetime 0 and at most the 30 s that remain.
        let text = dump.output
        let blocks = text.components(separatedBy: "prefix ").dropFirst()
        let old = blocks.first { $0.hasPrefix("2001:db8:100:1::/64") } ?? ""
        #expect(old.contains("AdvPreferredLifetime 0;"), "\(text)")
        let valid = old.components(separatedBy: "AdvValidLifetime ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        #expect(valid.map { (1...30).contains($0) } == true, "\(old)")
        #expect(blocks.contains { $0.hasPrefix("2001:db8:200:1::/64") && !$0.contains("AdvPreferredLifetime 0;") }, "\(text)")
        #expect(!text.contains("AdvDefaultLifetime 0;"), "the router is kept: no final advertisement")
        // New connections start from the new address once its DAD is done (RFC 6724 rule 3: avoid
        // deprecated addresses).
        #expect(eventually(timeout: 10) { (try? bed.exec(lan, ["ip", "-6", "route", "get", "2001:db8:ffff::1"]).stdout.contains("src \(newAddress)")) == true },
                "\(addressInfo(bed, lan, lanHost))")
        #expect(eventually(timeout: 20) { (try? bed.ping(from: lan, "2001:db8:ffff::1", source: newAddress, count: 1)) == 1 }, "\(client.output)")
        // The old prefix's valid lifetime ends: the router's LAN address of it goes and its
        // advertisements no longer carry it (hosts keep such an address at most two hours, RFC 4862 §5.5.3 e).
        #expect(eventually(timeout: 45) { !addresses(bed, bed.cl, lanRouter).contains("2001:db8:100:1::1/64") }, "\(client.output)")
        let mark = dump.output.count
        #expect(eventually(timeout: 15) { dump.output.dropFirst(mark).contains("prefix 2001:db8:200:1::/64") }, "\(dump.output)")
        usleep(500_000)
        #expect(!dump.output.dropFirst(mark).contains("prefix 2001:db8:100:1::/64"), "\(dump.output.dropFirst(mark))")
        #expect((slaac("2001:db8:100:1:")?["valid_life_time"] as? Int ?? 0) <= 7200)
    }

    @Test func aStaticWGQuickFileAgainstAStockWireGuardGoServer() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        // A plain WireGuard server: wireguard-go in the gateway namespace, set up with wg and ip.
        let server = "sgv\(bed.id)", tun = "sgk\(bed.id)"
        let serverKey = try run(["wg", "genkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let serverPub = try run(["sh", "-c", "echo \(serverKey) | wg pubkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let clientKey = try run(["wg", "genkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let clientPub = try run(["sh", "-c", "echo \(clientKey) | wg pubkey"], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let wgServer = try BackgroundProcess(["ip", "netns", "exec", bed.gw, "wireguard-go", "-f", server],
                                             environment: ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "LOG_LEVEL": "error"], captureOutput: true)
        defer { wgServer.stop(); unlink("/var/run/wireguard/\(server).sock") }
        #expect(eventually(timeout: 10) { FileManager.default.fileExists(atPath: "/var/run/wireguard/\(server).sock") })
        let keyFile = bed.stateDirectory + "/server.key"
        FileManager.default.createFile(atPath: keyFile, contents: Data((serverKey + "\n").utf8), attributes: [.posixPermissions: 0o600])
        try bed.exec(bed.gw, ["wg", "set", server, "listen-port", "51900", "private-key", keyFile, "peer", clientPub,
                              "allowed-ips", "2001:db8:7::2/128,192.0.2.202/32"])
        try bed.exec(bed.gw, ["ip", "-6", "addr", "add", "2001:db8:7::1/64", "dev", server, "nodad"])
        try bed.exec(bed.gw, ["ip", "addr", "add", "192.0.2.201/24", "dev", server])
        try bed.exec(bed.gw, ["ip", "link", "set", server, "up"])

        let quick = """
            # a wg-quick file, as any WireGuard provider hands out
            [Interface]
            PrivateKey = \(clientKey)
            Address = 2001:db8:7::2/64, 192.0.2.202/24
            MTU = 1400
            PostUp = echo up %i >> \(bed.stateDirectory)/wgquick-hooks.log

            [Peer]
            PublicKey = \(serverPub)
            Endpoint = 198.51.100.129:51900
            AllowedIPs = 2001:db8:7::/64, 192.0.2.0/24
            PersistentKeepalive = 25
            """
        let path = bed.stateDirectory + "/\(tun).conf"
        try quick.write(toFile: path, atomically: true, encoding: .utf8)
        let client = try BackgroundProcess(["ip", "netns", "exec", bed.cl, "\(builtProductsDirectory)/tunnel-client", "--config", path,
                                            "--state-file", bed.stateDirectory + "/wgq.json"], captureOutput: true)
        defer { client.stop(grace: 10) }
        #expect(eventually(timeout: 15) { addresses(bed, bed.cl, tun).contains("2001:db8:7::2/64") }, "\(client.output)")
        #expect(addresses(bed, bed.cl, tun).contains("192.0.2.202/24"))
        #expect(try bed.exec(bed.cl, ["ip", "link", "show", tun]).stdout.contains("mtu 1400"))
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl, "2001:db8:7::1", count: 1)) == 1 }, "\(client.output)")
        #expect(try bed.ping(from: bed.cl, "192.0.2.201", count: 2) == 2)
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 40503) }
        #expect(try tcpTransfer(from: bed.cl, to: bed.gw, address: "2001:db8:7::1", port: 18091, bytes: payload) == payload)
        #expect(try bed.exec(bed.gw, ["wg", "show", server, "latest-handshakes"]).stdout.contains(clientPub))
        #expect((try? String(contentsOfFile: bed.stateDirectory + "/wgquick-hooks.log", encoding: .utf8))?.contains("up \(tun)") == true)
    }

    @Test func theClientLeaseExampleEmbedsTheLibrary() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway()
        let path = bed.stateDirectory + "/example.toml"
        try clientConfig(bed, name: "dave", interface: "sgk\(bed.id)").write(toFile: path, atomically: true, encoding: .utf8)
        let r = try bed.exec(bed.cl, ["\(builtProductsDirectory)/client-lease", path, "20"], timeout: 40, check: false)
        #expect(r.succeeded, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("addresses: 2001:db8:1::4/128 192.0.2.2/32"), "\(r.stdout)")
        #expect(r.stdout.contains("routes: ::/0 0.0.0.0/0"))
        #expect(!(try bed.exec(bed.cl, ["ip", "link", "show", "sgk\(bed.id)"], check: false)).succeeded, "removed on exit")
    }
}
