import Foundation
import PacketKit
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 24's first step: the ISP's prefix changes and the operator puts the new one in the
/// config. gatewayd, restarted (here after a crash, kill -9, so the old prefix's proxy entries are
/// still on the uplink), moves every lease to the same position in the new prefix, removes what
/// the old prefix left in the kernel, says so, runs the prefix-change hook, and a stock client
/// given its new config (`gatewayctl clients show`) reaches the internet from the new address.
@Suite("Renumbering", .enabled(if: isRoot, "needs root for network namespaces"))
struct RenumberingEndToEndTests {
    /// Writes the testbed's config with `ipv6` as the [ipv6] body and a prefix-change hook that
    /// logs its event and prefixes; returns the hook's log file.
    static func configure(_ bed: GatewayTestbed, ipv6: String) throws -> String {
        let hookLog = bed.stateDirectory + "/prefix-hooks.log", hook = bed.stateDirectory + "/prefix-hook.sh"
        try writeExecutable("#!/bin/sh\necho \"$SIXGATE_EVENT $SIXGATE_OLD_PREFIX $SIXGATE_NEW_PREFIX\" >> \(hookLog)\n", to: hook)
        try bed.writeConfig(ndpProxy: "kernel", ipv6: ipv6)
        let text = try String(contentsOfFile: bed.configPath, encoding: .utf8).replacingOccurrences(of: "[hooks]\n", with: "[hooks]\nprefix-change = \"\(hook)\"\n")
        try text.write(toFile: bed.configPath, atomically: true, encoding: .utf8)
        return hookLog
    }

    @Test func aNewPrefixMovesEveryClientToTheSamePlace() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let hookLog = try Self.configure(bed, ipv6: "prefix = \"2001:db8:1::/64\"")
        func configure(_ prefix: String) throws { _ = try Self.configure(bed, ipv6: "prefix = \"\(prefix)\"") }
        try bed.startGateway()
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        _ = try bed.gatewayctl(["clients", "add", "bob"])
        let wg = "sgw\(bed.id)"
        try bed.startClient(in: bed.cl, name: wg, config: alice)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice before the change")
        #expect(try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout.contains("2001:db8:1::5"))

        // gatewayd dies; the ISP moves the link to 2001:db8:2::/64 and stops routing the old prefix.
        if let g = bed.gateway { kill(g.pid, SIGKILL); g.process.waitUntilExit() }
        try bed.exec(bed.isp, ["ip", "-6", "addr", "del", "2001:db8:1::1/64", "dev", bed.ispSide])
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", bed.ispSide, "nodad"])
        try bed.exec(bed.gw, ["ip", "-6", "addr", "del", "2001:db8:1::2/64", "dev", bed.uplink])
        try bed.exec(bed.gw, ["ip", "-6", "addr", "add", "2001:db8:2::2/64", "dev", bed.uplink, "nodad"])
        try bed.exec(bed.gw, ["ip", "-6", "route", "replace", "default", "via", "2001:db8:2::1", "dev", bed.uplink])
        let stale = try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout
        #expect(stale.contains("2001:db8:1::4") && stale.contains("2001:db8:1::5"), "kill -9 left the old entries: \(stale)")

        try configure("2001:db8:2::/64")
        try bed.startGateway()
        let out = bed.gateway?.output ?? ""
        #expect(out.contains("prefix change: 2 lease(s) moved") && out.contains("alice 2001:db8:1::4/128 -> 2001:db8:2::4/128"), "\(out)")
        #expect(out.contains("reconcile: removed stale proxy entry 2001:db8:1::4"), "\(out)")
        #expect(eventually(timeout: 10) { ((try? String(contentsOfFile: hookLog, encoding: .utf8)) ?? "").contains("prefix-change 2001:db8:1::/64 2001:db8:2::/64") })
        // Same positions, in the store and in the kernel; nothing of the old prefix left.
        let leases = try bed.gatewayctl(["leases"]).stdout
        #expect(leases.contains("2001:db8:2::4/128\talice\tactive") && leases.contains("2001:db8:2::5/128\tbob\tactive"), "\(leases)")
        #expect(!leases.contains("2001:db8:1::"), "\(leases)")
        let proxies = try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout
        #expect(proxies.contains("2001:db8:2::4") && proxies.contains("2001:db8:2::5") && !proxies.contains("2001:db8:1::"), "\(proxies)")
        let routes = try bed.exec(bed.gw, ["ip", "-6", "route", "show", "proto", "74"]).stdout
        #expect(routes.contains("2001:db8:2::4 dev \(bed.tun)") && !routes.contains("2001:db8:1::"), "\(routes)")

        // The stock client is told its new address by its config, and uses it.
        let shown = try bed.gatewayctl(["clients", "show", "alice"]).stdout
        #expect(shown.contains("2001:db8:2::4/128"), "\(shown)")
        try bed.exec(bed.cl, ["ip", "-6", "addr", "add", "2001:db8:2::4/128", "dev", wg, "nodad"])
        #expect(eventually(timeout: 30) {
            (try? bed.exec(bed.cl, ["ping", "-c", "1", "-W", "1", "-I", "2001:db8:2::4", "2001:db8:ffff::1"], check: false).succeeded) == true
        }, "alice from her new address (the ISP reaches it through the gateway's proxy entry)")
    }

    /// `prefix_source = "external"`: the ISP moves the link to a new prefix and `gatewayctl prefix
    /// set` (what a DHCPv6-PD client's hook runs) tells the running gatewayd. Nothing restarts: a
    /// tunnel-client is told inside the tunnel and moves to the same interface identifier in the
    /// new prefix, a stock client moves when given its new config, and what cannot be done is
    /// refused with the previous state kept.
    @Test func aRunningGatewayFollowsAPrefixSetFromOutside() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let hookLog = try Self.configure(bed, ipv6: "prefix = \"2001:db8:1::/64\"\nprefix_source = \"external\"")
        try bed.startGateway()
        // alice: stock wireguard-go; carol: Sixgate's tunnel-client (host mode), on the other link.
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        let wg = "sgw\(bed.id)"
        try bed.startClient(in: bed.cl, name: wg, config: alice)
        let (carol, tun) = try bed.startTunnelClientOnSecondCarrier("carol")
        func carolAddresses() -> String { (try? bed.exec(bed.cl2, ["ip", "-6", "addr", "show", "dev", tun], check: false).stdout) ?? "" }
        #expect(eventually(timeout: 20) { carolAddresses().contains("2001:db8:1::5/128") }, "\(carol.output)")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "carol before the change")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice before the change")

        // Bad input first: each refused, the gateway as it was.
        for (bad, why) in [(["::ffff:0:0/96"], "IPv4-mapped"), (["2001:db8:3::/126"], "leaves no room for clients"),
                           (["2001:db8:3::/64", "--valid", "0"], "a valid lifetime of 0 withdraws a prefix"),
                           (["2001:db8:3::/64", "--preferred", "600", "--valid", "300"], "preferred lifetime 600 s is longer than the valid lifetime 300 s")] {
            let r = try bed.gatewayctl(["prefix", "set"] + bad, check: false)
            #expect(!r.succeeded && r.stderr.contains(why) && r.stderr.contains("keeping 2001:db8:1::/64"), "\(bad): \(r.stdout)\(r.stderr)")
        }
        #expect(try bed.exec(bed.gw, ["ip", "-6", "addr", "show", "dev", bed.tun]).stdout.contains("2001:db8:1::3/128"))

        // The ISP moves the link to 2001:db8:2::/64; its DHCPv6 client's hook runs gatewayctl.
        try bed.exec(bed.isp, ["ip", "-6", "addr", "del", "2001:db8:1::1/64", "dev", bed.ispSide])
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", bed.ispSide, "nodad"])
        try bed.exec(bed.gw, ["ip", "-6", "addr", "add", "2001:db8:2::2/64", "dev", bed.uplink, "nodad"])
        try bed.exec(bed.gw, ["ip", "-6", "route", "replace", "default", "via", "2001:db8:2::1", "dev", bed.uplink])
        // As dhcpcd's hook does: the new prefix with its lifetimes; the old one was given 25 s more.
        let set = try bed.gatewayctl(["prefix", "set", "2001:db8:2::/64", "--preferred", "1800", "--valid", "3600", "--old-valid", "25"], check: false)
        #expect(set.succeeded && set.stdout.contains("prefix 2001:db8:1::/64 -> 2001:db8:2::/64: 2 lease(s) moved"), "\(set.stdout)\(set.stderr)")
        #expect(set.stdout.contains("2001:db8:1::/64 deprecated until"), "\(set.stdout)")
        #expect(bed.gateway?.output.contains("prefix change: 2001:db8:1::/64 -> 2001:db8:2::/64 (valid 3600 s, preferred 1800 s): 2 lease(s) moved") == true, "\(bed.gateway?.output ?? "")")
        // The gateway: its address moves; the clients' routes and proxy entries are the new
        // prefix's, and the old prefix's stay for its valid lifetime.
        #expect(try bed.exec(bed.gw, ["ip", "-6", "addr", "show", "dev", bed.tun]).stdout.contains("2001:db8:2::3/128"))
        let proxies = try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout
        #expect(proxies.contains("2001:db8:2::4") && proxies.contains("2001:db8:2::5") && proxies.contains("2001:db8:1::5"), "\(proxies)")
        let routes = try bed.exec(bed.gw, ["ip", "-6", "route", "show", "proto", "74"]).stdout
        #expect(routes.contains("2001:db8:2::5 dev \(bed.tun)") && routes.contains("2001:db8:1::5 dev \(bed.tun)"), "\(routes)")
        #expect(eventually(timeout: 10) { ((try? String(contentsOfFile: hookLog, encoding: .utf8)) ?? "").contains("prefix-change 2001:db8:1::/64 2001:db8:2::/64") })
        // carol was told inside the tunnel and moved by herself, same interface identifier; her
        // old address stays, deprecated (preferred lifetime 0: new connections use the new one).
        func carolAddress(_ a: String) -> [String: Any]? {
            let j = (try? bed.exec(bed.cl2, ["ip", "-j", "-6", "addr", "show", "dev", tun], check: false).stdout) ?? "[]"
            let links = (try? JSONSerialization.jsonObject(with: Data(j.utf8))) as? [[String: Any]] ?? []
            return (links.first?["addr_info"] as? [[String: Any]])?.first { $0["local"] as? String == a }
        }
        #expect(eventually(timeout: 10) { carolAddresses().contains("2001:db8:2::5/128") }, "\(carol.output)\n\(bed.gateway?.output ?? "")")
        let old = carolAddress("2001:db8:1::5")
        #expect(old?["preferred_life_time"] as? Int == 0 && carolAddress("2001:db8:2::5")?["deprecated"] == nil, "\(old ?? [:])")
        #expect(carol.output.contains("deprecated (connections on them go on): 2001:db8:1::5/128"), "\(carol.output)")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "carol after the change, from the preferred (new) address")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", source: "2001:db8:2::5", count: 1)) == 1 }, "carol after the change")
        // The doctor: the prefix's lifetimes, the old prefix still valid, and alice (stock) not moved yet.
        let doctor = try bed.gatewayctl(["doctor", "--capture-seconds", "0", "--verbose"], check: false).stdout
        #expect(doctor.contains("prefix 2001:db8:2::/64: valid 3") && doctor.contains("2001:db8:1::/64 (deprecated,"), "\(doctor)")
        #expect(doctor.contains("1 client(s) still on the old prefix: alice") && doctor.contains("gatewayctl clients show --config"), "\(doctor)")
        // A renewal of the new prefix: lifetimes only.
        let renew = try bed.gatewayctl(["prefix", "set", "2001:db8:2::/64", "--preferred", "1800", "--valid", "3600"], check: false)
        #expect(renew.succeeded && renew.stdout.contains("prefix 2001:db8:2::/64: lifetimes renewed"), "\(renew.stdout)\(renew.stderr)")
        // The old prefix's valid lifetime ends: gone from the gateway and from carol.
        #expect(eventually(timeout: 40) {
            let r = (try? bed.exec(bed.gw, ["ip", "-6", "route", "show", "proto", "74"]).stdout) ?? "2001:db8:1::"
            let p = (try? bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout) ?? "2001:db8:1::"
            return !r.contains("2001:db8:1::") && !p.contains("2001:db8:1::")
        }, "\(bed.gateway?.output ?? "")")
        #expect(eventually(timeout: 5) { bed.gateway?.output.contains("prefix 2001:db8:1::/64: valid lifetime over") == true }, "\(bed.gateway?.output ?? "")")
        #expect(eventually(timeout: 10) { !carolAddresses().contains("2001:db8:1::5") }, "\(carol.output)")
        #expect(carolAddresses().contains("2001:db8:2::5/128"))
        // alice (stock) moves when given her new address.
        #expect(try bed.gatewayctl(["clients", "show", "alice"]).stdout.contains("2001:db8:2::4/128"))
        try bed.exec(bed.cl, ["ip", "-6", "addr", "add", "2001:db8:2::4/128", "dev", wg, "nodad"])
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", source: "2001:db8:2::4", count: 1)) == 1 }, "alice after the change")

        // Remembered: a restart stays on the new prefix though the file still says the old one.
        let remembered = try String(contentsOfFile: bed.stateDirectory + "/prefix", encoding: .utf8)
        #expect(remembered.hasPrefix("2001:db8:2::/64\npreferred-until ") && remembered.contains("valid-until ") && !remembered.contains("retiring"), "\(remembered)")
        bed.gateway?.stop()
        try bed.startGateway()
        #expect(try bed.exec(bed.gw, ["ip", "-6", "addr", "show", "dev", bed.tun]).stdout.contains("2001:db8:2::3/128"))
        #expect(!(bed.gateway?.output.contains("prefix change") ?? true), "nothing to move: \(bed.gateway?.output ?? "")")
        #expect(try bed.gatewayctl(["leases"]).stdout.contains("2001:db8:2::5/128\tcarol\tactive"))
    }

    /// `prefix_source = "ra"` (a VPS's /64 from the ISP's router advertisements): radvd in the
    /// ISP's namespace advertises 2001:db8:1::/64, the uplink configures itself by SLAAC and
    /// gatewayd takes that /64 for its clients. The ISP renumbers (radvd advertises 2001:db8:2::/64,
    /// the old one with preferred lifetime 0): gatewayd follows without a restart, a tunnel-client
    /// keeps its position, and the old prefix stays routed, deprecated.
    @Test func aRouterAdvertisedPrefixIsFollowed() throws {
        guard let radvd = which("radvd") else { Issue.record("radvd is not installed (scripts/setup.sh installs it)"); return }
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        // gatewayd forwards, so the uplink takes advertisements only with accept_ra = 2.
        try bed.exec(bed.gw, ["sysctl", "-qw", "net.ipv6.conf.\(bed.uplink).accept_ra=2", "net.ipv6.conf.\(bed.uplink).autoconf=1"])
        let conf = bed.stateDirectory + "/radvd.conf", pidFile = bed.stateDirectory + "/radvd.pid"
        func advertise(_ prefixes: [(prefix: String, preferred: Int, valid: Int)]) throws {
            var text = "interface \(bed.ispSide) {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n"
            for p in prefixes {
                text += "  prefix \(p.prefix) {\n    AdvOnLink on;\n    AdvAutonomous on;\n    AdvPreferredLifetime \(p.preferred);\n    AdvValidLifetime \(p.valid);\n  };\n"
            }
            try (text + "};\n").write(toFile: conf, atomically: true, encoding: .utf8)
            chmod(conf, 0o644)
        }
        try advertise([("2001:db8:1::/64", 60, 120)])
        let daemon = try BackgroundProcess(["ip", "netns", "exec", bed.isp, radvd, "-n", "-C", conf, "-p", pidFile, "-m", "stderr"], captureOutput: true)
        defer { daemon.stop() }
        func slaac(_ prefix: String) -> [String: Any]? {
            let j = (try? bed.exec(bed.gw, ["ip", "-j", "-6", "addr", "show", "dev", bed.uplink], check: false).stdout) ?? "[]"
            let links = (try? JSONSerialization.jsonObject(with: Data(j.utf8))) as? [[String: Any]] ?? []
            return (links.first?["addr_info"] as? [[String: Any]])?.first {
                ($0["local"] as? String)?.hasPrefix(prefix) == true && $0["dynamic"] as? Bool == true && $0["tentative"] == nil
            }
        }
        #expect(eventually(timeout: 20) { slaac("2001:db8:1:") != nil }, "the uplink's SLAAC address: \(daemon.output)")

        try bed.writeConfig(ndpProxy: "kernel", ipv6: "prefix = \"2001:db8:ff::/64\"   # stands in\nprefix_source = \"ra\"")
        try bed.startGateway()
        #expect(bed.gateway?.output.contains("prefix 2001:db8:1::/64 from the router advertisements on \(bed.uplink)") == true, "\(bed.gateway?.output ?? "")")
        let (carol, tun) = try bed.startTunnelClientOnSecondCarrier("carol")
        func carolAddresses() -> String { (try? bed.exec(bed.cl2, ["ip", "-6", "addr", "show", "dev", tun], check: false).stdout) ?? "" }
        #expect(eventually(timeout: 20) { carolAddresses().contains("2001:db8:1::4/128") }, "\(carol.output)")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "carol in the advertised prefix")
        let status = try bed.gatewayctl(["status"]).stdout
        #expect(status.contains("prefix 2001:db8:1::/64 (ra, valid "), "\(status)")

        // The ISP renumbers its link: the new /64 advertised, the old one deprecated.
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", bed.ispSide, "nodad"])
        try advertise([("2001:db8:2::/64", 60, 120), ("2001:db8:1::/64", 0, 30)])
        kill(daemon.pid, SIGHUP)
        #expect(eventually(timeout: 20) { bed.gateway?.output.contains("prefix change (router advertisement on \(bed.uplink)): 2001:db8:1::/64 -> 2001:db8:2::/64") == true },
                "\(bed.gateway?.output ?? "")\n\(daemon.output)")
        #expect(eventually(timeout: 15) { carolAddresses().contains("2001:db8:2::4/128") }, "\(carol.output)")
        #expect(carolAddresses().contains("2001:db8:1::4/128"), "the old address, deprecated: \(carolAddresses())")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", source: "2001:db8:2::4", count: 1)) == 1 }, "carol in the new prefix")
        #expect(try bed.gatewayctl(["leases"]).stdout.contains("2001:db8:2::4/128\tcarol\tactive"))
        #expect(try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout.contains("2001:db8:1::4"), "the old prefix stays routed while valid")
        // gatewayctl prefix set is not for this source.
        let set = try bed.gatewayctl(["prefix", "set", "2001:db8:3::/64"], check: false)
        #expect(!set.succeeded && set.stderr.contains("prefix_source is \"ra\""), "\(set.stdout)\(set.stderr)")
    }

    /// NPTv6 (RFC 6296) for stock WireGuard clients: alice's address comes from a stable inside
    /// prefix and is translated, checksum-neutrally, to the ISP's prefix at the uplink (Sixgate's
    /// own nftables table, inbound before connection tracking, so the firewall sees replies as
    /// replies). The ISP renumbers: nothing on alice changes, and she reaches the internet host
    /// again from her twin in the new prefix; the old twin still comes in while it is valid.
    @Test func aStockClientBehindNPTv6KeepsItsConfigThroughARenumbering() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        _ = try Self.configure(bed, ipv6: "prefix = \"2001:db8:1::/64\"\nprefix_source = \"external\"\nnpt_prefix = \"fd00:6296::/64\"")
        try bed.startGateway()
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        let inside = try #require(alice.split(separator: "\n").first { $0.hasPrefix("Address = fd00:6296::") }.map { String($0.dropFirst(10).split(separator: "/")[0]) }, "\(alice)")
        let m = try #require(NPTv6Mapping(inside: IPv6Prefix("fd00:6296::/64")!, outside: IPv6Prefix("2001:db8:1::/64")!))
        let twin = try #require(m.outbound(IPv6Address(inside)!)).description
        let status = try bed.gatewayctl(["status"]).stdout
        #expect(status.contains("(NPTv6: \(twin))"), "\(status)")
        #expect(try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout.contains(twin + " "), "the twin is answered for on the uplink")
        let wg = "sgw\(bed.id)"
        try bed.startClient(in: bed.cl, name: wg, config: alice)
        // The internet host answers the twin: the kernel's packets left with the address our
        // arithmetic gave, or the ISP's solicitation for it would go unanswered.
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice through NPTv6: \(bed.gateway?.output ?? "")")
        let seen = try BackgroundProcess(["ip", "netns", "exec", bed.isp, "tcpdump", "-n", "-l", "-c", "1", "-i", bed.ispSide, "icmp6 and ip6[40] == 128"], captureOutput: true)
        defer { seen.stop() }
        usleep(500_000)
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 2) >= 1)
        #expect(eventually(timeout: 5) { seen.output.contains("\(twin) > 2001:db8:ffff::1") }, "on the ISP's link the source is the twin: \(seen.output)")
        // A TCP connection across the translation: the checksums hold (checksum-neutral) and the
        // stateful firewall lets the replies in.
        #expect(try tcpConnects(from: bed.cl, to: bed.isp, address: "2001:db8:ffff::1", port: 18080), "TCP out through NPTv6: the SYN-ACK comes back through the translation and the firewall")

        // The ISP renumbers; alice's config and wireguard-go stay as they are.
        try bed.exec(bed.isp, ["ip", "-6", "addr", "del", "2001:db8:1::1/64", "dev", bed.ispSide])
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", bed.ispSide, "nodad"])
        try bed.exec(bed.gw, ["ip", "-6", "addr", "add", "2001:db8:2::2/64", "dev", bed.uplink, "nodad"])
        try bed.exec(bed.gw, ["ip", "-6", "route", "replace", "default", "via", "2001:db8:2::1", "dev", bed.uplink])
        let set = try bed.gatewayctl(["prefix", "set", "2001:db8:2::/64", "--valid", "3600", "--old-valid", "60"], check: false)
        #expect(set.succeeded && set.stdout.contains("0 lease(s) moved"), "\(set.stdout)\(set.stderr)")
        #expect(bed.gateway?.output.contains("NPTv6 now maps fd00:6296::/64 to 2001:db8:2::/64, clients keep their addresses") == true, "\(bed.gateway?.output ?? "")")
        let newTwin = try #require(NPTv6Mapping(inside: IPv6Prefix("fd00:6296::/64")!, outside: IPv6Prefix("2001:db8:2::/64")!)?.outbound(IPv6Address(inside)!)).description
        let table = try bed.exec(bed.gw, ["nft", "list", "table", "ip6", "sixgate_\(bed.tun)_npt"]).stdout
        #expect(table.contains("\(newTwin) : \(inside)") && table.contains("\(twin) : \(inside)") && table.contains("\(inside) : \(newTwin)"), "\(table)")
        #expect(try bed.gatewayctl(["clients", "show", "alice"]).stdout.contains("Address = \(inside)/128"), "the config does not change")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice after the renumbering, unchanged: \(bed.gateway?.output ?? "")")
        #expect(try tcpConnects(from: bed.cl, to: bed.isp, address: "2001:db8:ffff::1", port: 18081))
        // Stopped: the table goes with gatewayd.
        bed.gateway?.stop()
        #expect(try !bed.exec(bed.gw, ["nft", "list", "tables"]).stdout.contains("_npt"))
    }
}
