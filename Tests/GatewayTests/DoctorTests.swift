import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `gatewayctl doctor` against a real gateway in namespaces: healthy, it finds nothing; each break
/// (the howtos' usual faults) is named, alone, and the printed fix makes the check pass again.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct DoctorTests {
    struct Report {
        var json: [String: Any]
        var checks: [[String: Any]] { json["checks"] as? [[String: Any]] ?? [] }
        var problems: [String] { checks.filter { $0["status"] as? String == "problem" }.compactMap { $0["id"] as? String } }
        func check(_ id: String) -> [String: Any] { checks.first { $0["id"] as? String == id } ?? [:] }
        func status(_ id: String) -> String { check(id)["status"] as? String ?? "missing" }
        func fix(_ id: String) -> [String] { check(id)["fix"] as? [String] ?? [] }
        func evidence(_ id: String) -> String { (check(id)["evidence"] as? [String] ?? []).joined(separator: "\n") }
        func summary(_ id: String) -> String { check(id)["summary"] as? String ?? "" }
    }

    func doctor(_ bed: GatewayTestbed, seconds: Double = 1, client: String? = nil) throws -> Report {
        var args = ["doctor", "--json", "--capture-seconds", String(seconds)]
        if let client { args += ["--client", client] }
        let r = try bed.gatewayctl(args, check: false)
        let json = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
        let report = Report(json: json)
        // Exit status 1 exactly when there is a problem (monitoring relies on it).
        #expect(r.status == (report.problems.isEmpty ? 0 : 1), "exit \(r.status): \(r.stderr)")
        return report
    }

    /// gatewayd with `ndpProxy`, client alice enrolled and up on stock wireguard-go, `address` reachable from it.
    func startWithAlice(_ bed: GatewayTestbed, ndpProxy: String, reaching address: String) throws {
        // No repairs behind the doctor's back: it is to see each thing broken.
        try bed.writeConfig(ndpProxy: ndpProxy, extra: "watch_interval = 0")
        try bed.startGateway()
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, address, count: 1)) == 1 })
    }

    /// The ISP solicits alice's address for about 4 s (ndisc6, ten bounded attempts).
    func soliciting(_ bed: GatewayTestbed) throws -> BackgroundProcess {
        try bed.background(in: bed.isp, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do ndisc6 -q -r 1 -w 200 2001:db8:1::4 \(bed.ispSide); sleep 0.2; done"])
    }

    /// Runs the gateway-side fix commands in the gateway's namespace, as an operator would paste them.
    func apply(_ bed: GatewayTestbed, _ commands: [String]) throws {
        for c in commands where !c.contains("# on ") {
            let command = c.components(separatedBy: "   # ").first!
            try bed.exec(bed.gw, ["sh", "-c", command])
        }
    }

    /// Breaks one thing, expects `id` (and nothing else) to be named, applies the printed fix,
    /// expects no problem.
    func breakAndFix(_ bed: GatewayTestbed, _ id: String, _ breakIt: [String], seconds: Double = 1,
                     expect: (Report) -> Void = { _ in }) throws {
        for c in breakIt { try bed.exec(bed.gw, ["sh", "-c", c]) }
        let broken = try doctor(bed, seconds: seconds)
        #expect(broken.problems == [id], "after `\(breakIt.joined(separator: "; "))`: \(broken.problems) \(broken.checks.filter { $0["status"] as? String == "problem" })")
        #expect(!broken.fix(id).isEmpty, "\(id) prints a fix")
        expect(broken)
        try apply(bed, broken.fix(id))
        let fixed = try doctor(bed, seconds: seconds)
        #expect(fixed.problems.isEmpty, "after the fix for \(id) (\(broken.fix(id))): \(fixed.checks.filter { $0["status"] as? String == "problem" })")
        #expect(fixed.status(id) == "ok", "\(id): \(fixed.check(id))")
    }

    @Test func namesEachBrokenThingAloneAndItsFixRepairsIt() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try startWithAlice(bed, ndpProxy: "kernel", reaching: "2001:db8:ffff::1")

        // Healthy: every check ok or skipped, with the evidence behind it.
        let healthy = try doctor(bed)
        #expect(healthy.problems.isEmpty, "\(healthy.checks)")
        for id in ["gatewayd", "forwarding.ipv6", "forwarding.ipv4", "proxy-ndp", "route.client", "route.gateway-address",
                   "route.isp-router", "route.default", "nat44", "firewall.forward", "ra-daemon", "ra-default-route", "clients.handshake", "mtu"] {
            #expect(healthy.status(id) == "ok", "\(id): \(healthy.check(id))")
        }
        #expect(healthy.evidence("clients.handshake").contains("alice: handshake"))
        let text = try bed.gatewayctl(["doctor", "--capture-seconds", "0"]).stdout
        #expect(text.contains("no problems found") && text.contains("ok       forwarding.ipv6"), "\(text)")

        try breakAndFix(bed, "forwarding.ipv6", ["sysctl -qw net.ipv6.conf.all.forwarding=0"]) { r in
            #expect(r.fix("forwarding.ipv6") == ["sysctl -w net.ipv6.conf.all.forwarding=1"])
        }
        try breakAndFix(bed, "forwarding.ipv4", ["sysctl -qw net.ipv4.conf.\(bed.uplink).forwarding=0"]) { r in
            #expect(r.fix("forwarding.ipv4") == ["sysctl -w net.ipv4.conf.\(bed.uplink).forwarding=1"])
        }
        try breakAndFix(bed, "proxy-ndp", ["ip -6 neigh del proxy 2001:db8:1::4 dev \(bed.uplink)"]) { r in
            #expect(r.evidence("proxy-ndp").contains("missing: 2001:db8:1::4 (alice)"))
        }
        try breakAndFix(bed, "route.client", ["ip -6 route del 2001:db8:1::4/128 dev \(bed.tun)"]) { r in
            #expect(r.fix("route.client") == ["ip -6 route replace 2001:db8:1::4/128 dev \(bed.tun) proto 74"])
            #expect(r.evidence("route.client").contains("2001:db8:1::4/128 (alice): the route into \(bed.tun) is missing; its packets go out of \(bed.uplink) instead"), "\(r.evidence("route.client"))")
        }
        try breakAndFix(bed, "route.gateway-address", ["ip -6 addr del 2001:db8:1::3/128 dev \(bed.tun)"])
        try breakAndFix(bed, "route.isp-router", ["ip -6 route del 2001:db8:1::/64 dev \(bed.uplink)"]) { r in
            #expect(r.evidence("route.isp-router").contains("via 2001:db8:1::1"), "\(r.check("route.isp-router"))")
        }
        try breakAndFix(bed, "route.default", ["ip -6 route del default"])
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1") == 3, "routes repaired by the printed fixes carry traffic")

        try breakAndFix(bed, "nat44", ["nft delete table ip sixgate_\(bed.tun)"])
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3, "NAT44 re-created by the printed fix works")

        // A forward chain with policy drop: traffic stops; the fix lets it through again.
        try breakAndFix(bed, "firewall.forward", ["nft add table inet sgfilter", "nft 'add chain inet sgfilter forward { type filter hook forward priority 0; policy drop; }'"]) { r in
            #expect(r.evidence("firewall.forward").contains("inet sgfilter forward (hook forward, policy drop)"))
            #expect((try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 2)) == 0, "the drop policy really drops")
        }
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1") == 3)

        // The re6st conflict: a default route learned from RAs while forwarding is on.
        try breakAndFix(bed, "ra-default-route", ["ip -6 route replace default via 2001:db8:1::1 dev \(bed.uplink) proto ra",
                                                  "sysctl -qw net.ipv6.conf.\(bed.uplink).accept_ra=1"]) { r in
            #expect(r.fix("ra-default-route") == ["sysctl -w net.ipv6.conf.\(bed.uplink).accept_ra=2"])
        }

        // The path to the client shrinks below what the tunnel's packets need (1420 + 60).
        try breakAndFix(bed, "mtu", ["ip link set sgo\(bed.id) mtu 1400"]) { r in
            #expect(r.fix("mtu") == ["ip link set \(bed.tun) mtu 1340"], "\(r.check("mtu"))")
        }

        // radvd advertising on the uplink.
        if which("radvd") != nil {
            let conf = bed.stateDirectory + "/radvd.conf"
            try "interface \(bed.uplink) {\n  AdvSendAdvert on;\n  AdvDefaultLifetime 0;\n  prefix 2001:db8:1::/64 { AdvAutonomous off; };\n};\n"
                .write(toFile: conf, atomically: true, encoding: .utf8)
            let radvd = try bed.background(in: bed.gw, ["radvd", "-n", "-C", conf, "-p", bed.stateDirectory + "/radvd.pid", "-m", "stderr"])
            defer { radvd.stop() }
            #expect(eventually(timeout: 10) { (try? doctor(bed, seconds: 0).problems) == ["ra-daemon"] }, "\(radvd.output)")
            try breakAndFix(bed, "ra-daemon", []) { r in
                #expect(r.fix("ra-daemon") == ["kill \(radvd.pid)"], "\(r.check("ra-daemon"))")
            }
        } else {
            Issue.record("radvd is not installed (scripts/setup.sh installs it)")
        }

        // A client that never connects.
        let bob = try bed.gatewayctl(["clients", "add", "bob"]).stdout
        let noBob = try doctor(bed)
        #expect(noBob.problems == ["clients.handshake"], "\(noBob.problems)")
        #expect(noBob.summary("clients.handshake") == "not connected: bob")
        #expect(noBob.fix("clients.handshake").first?.hasPrefix("gatewayctl clients show bob") == true)
        try bed.startClient(in: bed.cl2, name: "sgx\(bed.id)", config: bob, endpoint: "203.0.113.129:51820")
        #expect(eventually(timeout: 20) { (try? doctor(bed, seconds: 0).problems) == [] }, "bob connected")

        // A client sending from an address it was not given: the packets arrive and are dropped.
        try bed.exec(bed.cl, ["ip", "-6", "addr", "add", "2001:db8:1::99/128", "dev", "sgw\(bed.id)", "nodad"])
        let spoof = try bed.background(in: bed.cl, ["ping", "-c", "25", "-i", "0.2", "-I", "2001:db8:1::99", "2001:db8:ffff::1"])
        let spoofed = try doctor(bed, seconds: 2, client: "alice")
        spoof.stop()
        #expect(spoofed.problems == ["traffic.tunnel"], "\(spoofed.checks)")
        #expect(spoofed.summary("traffic.tunnel").contains("alice") && spoofed.summary("traffic.tunnel").contains("source address outside"))
        #expect(spoofed.fix("traffic.tunnel").first?.contains("2001:db8:1::4/128") == true)
        // The fix is on the client: send from the leased address only.
        try bed.exec(bed.cl, ["ip", "-6", "addr", "del", "2001:db8:1::99/128", "dev", "sgw\(bed.id)"])
        let honest = try bed.background(in: bed.cl, ["ping", "-c", "25", "-i", "0.2", "2001:db8:ffff::1"])
        let fixed = try doctor(bed, seconds: 2, client: "alice")
        honest.stop()
        #expect(fixed.problems.isEmpty && fixed.status("traffic.tunnel") == "ok", "\(fixed.check("traffic.tunnel"))")

        // gatewayd stopped: named alone, the checks that need it skipped; started again, it passes.
        bed.stopGateway()
        let down = try doctor(bed)
        #expect(down.problems == ["gatewayd"], "\(down.checks.filter { $0["status"] as? String == "problem" })")
        #expect(down.status("route.client") == "skipped" && down.status("nat44") == "skipped")
        #expect(down.fix("gatewayd").first?.hasPrefix("systemctl start gatewayd") == true)
        try bed.startGateway()
        #expect(try doctor(bed, seconds: 0).status("gatewayd") == "ok")
    }

    /// The NDP proxy diagnosis: the ISP router's solicitations for a client address, answered while
    /// an NDP proxy runs, unanswered once it stops; the printed fix (the kernel's proxy) answers them.
    @Test(.enabled(if: which("ndisc6") != nil, "needs ndisc6"))
    func seesTheISPsSolicitationsGoUnansweredWhenTheNDPProxyStops() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try startWithAlice(bed, ndpProxy: "off", reaching: "2001:db8:1::3")
        // An NDP proxy of its own (Sixgate's ndp-proxy, npd6.conf format) answers for alice.
        let conf = bed.stateDirectory + "/npd6.conf"
        try "prefix=2001:db8:1::\ninterface=\(bed.uplink)\nlisttype=white\naddrlist=2001:db8:1::4\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let proxy = try bed.background(in: bed.gw, ["\(builtProductsDirectory)/ndp-proxy", "--config", conf, "--rate-limit-per-source", "500"])
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "\(proxy.output)")

        /// Doctor while the ISP solicits alice's address (ndisc6, a few bounded attempts).
        func doctorWhileSoliciting() throws -> Report {
            try bed.exec(bed.isp, ["ip", "-6", "neigh", "flush", "dev", bed.ispSide])
            let solicit = try soliciting(bed)
            defer { solicit.stop() }
            return try doctor(bed, seconds: 3)
        }

        let answered = try doctorWhileSoliciting()
        #expect(answered.problems.isEmpty, "\(answered.checks)")
        #expect(answered.status("ndp.unanswered") == "ok")
        #expect(answered.evidence("ndp.unanswered").contains("2001:db8:1::4 (alice):"), "\(answered.check("ndp.unanswered"))")

        proxy.stop()
        let unanswered = try doctorWhileSoliciting()
        #expect(unanswered.problems == ["ndp.unanswered"], "\(unanswered.checks)")
        #expect(unanswered.evidence("ndp.unanswered").contains("0 advertisements"))
        #expect(unanswered.fix("ndp.unanswered") == ["sysctl -w net.ipv6.conf.\(bed.uplink).proxy_ndp=1", "ip -6 neigh add proxy 2001:db8:1::4 dev \(bed.uplink)"])
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 2) == 0, "with nobody answering, replies do not come back")

        try apply(bed, unanswered.fix("ndp.unanswered"))
        let fixed = try doctorWhileSoliciting()
        #expect(fixed.problems.isEmpty && fixed.status("ndp.unanswered") == "ok", "\(fixed.check("ndp.unanswered"))")
        #expect(eventually(timeout: 10) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })
    }

    /// A link beyond the uplink narrower than the tunnel: the ISP's router sends packet-too-big to
    /// the client; the doctor sees it in its capture, names the MTU, and its advice (tunnel and
    /// clients at the narrower MTU, not below 1280) ends them.
    @Test func seesPacketTooBigFromANarrowLinkBeyondTheUplink() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let far = "sg-gf-\(bed.id)"
        try bed.addNamespace(far, linkedTo: bed.isp, "sgf\(bed.id)", "sgh\(bed.id)")
        try bed.exec(far, ["ip", "-6", "addr", "add", "2001:db8:2::2/64", "dev", "sgf\(bed.id)", "nodad"])
        try bed.exec(far, ["ip", "-6", "route", "add", "default", "via", "2001:db8:2::1"])
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", "sgh\(bed.id)", "nodad"])
        try bed.exec(bed.isp, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        for (ns, dev) in [(far, "sgf\(bed.id)"), (bed.isp, "sgh\(bed.id)")] { try bed.exec(ns, ["ip", "link", "set", dev, "mtu", "1300"]) }
        try startWithAlice(bed, ndpProxy: "kernel", reaching: "2001:db8:2::2")
        let wg = "sgw\(bed.id)"

        /// Doctor while alice sends 1400-byte pings to the far host, forgetting the learned path MTU each time.
        func doctorWhileSendingBig() throws -> Report {
            let big = try bed.background(in: bed.cl, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do ip -6 route flush cache; ping -c 1 -W 1 -s 1400 2001:db8:2::2; sleep 0.3; done"])
            defer { big.stop() }
            return try doctor(bed, seconds: 3)
        }
        let narrow = try doctorWhileSendingBig()
        #expect(narrow.problems == ["mtu"], "\(narrow.checks)")
        #expect(narrow.evidence("mtu").contains("packet too big from 2001:db8:1::1 about 2001:db8:2::2: mtu 1300"), "\(narrow.check("mtu"))")
        #expect(narrow.fix("mtu") == ["ip link set \(bed.tun) mtu 1300"])
        #expect((narrow.check("mtu")["advice"] as? String)?.contains("MTU = 1300 in wg-quick clients") == true)
        // The fix, and the advice's client half.
        try apply(bed, narrow.fix("mtu"))
        try bed.exec(bed.cl, ["ip", "link", "set", wg, "mtu", "1300"])
        let fixed = try doctorWhileSendingBig()
        #expect(fixed.problems.isEmpty && fixed.status("mtu") == "ok", "\(fixed.check("mtu"))")
        #expect(try bed.ping(from: bed.cl, "2001:db8:2::2") == 3)
    }

    /// `gatewayctl capture`: lines decoded on the terminal, and pcap files tcpdump reads back with the
    /// same packet count.
    @Test(.enabled(if: which("tcpdump") != nil && which("ndisc6") != nil, "needs tcpdump and ndisc6"))
    func capturesWhatCrossesTheGatewayForTcpdump() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try startWithAlice(bed, ndpProxy: "kernel", reaching: "2001:db8:ffff::1")
        let traffic = try bed.background(in: bed.cl, ["ping", "-c", "600", "-i", "0.05", "2001:db8:ffff::1"])
        defer { traffic.stop() }

        // -w: a pcap file; tcpdump -r counts the same packets and decodes the echo requests.
        let file = bed.stateDirectory + "/tun.pcap"
        let w = try bed.gatewayctl(["capture", "-w", file, "--count", "12"])
        #expect(w.stderr.contains("12 packets captured"), "\(w.stderr)")
        let read = try run(["tcpdump", "-n", "-r", file], check: true)
        let lines = read.stdout.split(separator: "\n")
        #expect(lines.count == 12, "\(read.stdout)")
        #expect(lines.contains { $0.contains("2001:db8:1::4 > 2001:db8:ffff::1: ICMP6, echo request") }, "\(read.stdout)")

        // One client, printed: only its packets, decoded.
        let printed = try bed.gatewayctl(["capture", "--client", "alice", "--count", "4", "--filter", "icmp6"])
        let decoded = printed.stdout.split(separator: "\n")
        #expect(decoded.count == 4 && decoded.allSatisfy { $0.contains("IP6 2001:db8:1::4 > 2001:db8:ffff::1: ICMP6, echo request") || $0.contains("IP6 2001:db8:ffff::1 > 2001:db8:1::4: ICMP6, echo reply") }, "\(printed.stdout)")

        // The uplink (Ethernet): the ISP's solicitations, named.
        let solicit = try soliciting(bed)
        defer { solicit.stop() }
        let upFile = bed.stateDirectory + "/up.pcap"
        let up = try bed.gatewayctl(["capture", "-i", bed.uplink, "-f", "icmp6 and ip6[40] == 135", "-w", upFile, "-c", "3", "--seconds", "10"])
        #expect(up.stderr.contains("3 packets captured"), "\(up.stderr)")
        let upRead = try run(["tcpdump", "-n", "-r", upFile], check: true).stdout
        #expect(upRead.split(separator: "\n").count == 3 && upRead.contains("neighbor solicitation, who has 2001:db8:1::4"), "\(upRead)")
        let upPrinted = try bed.gatewayctl(["capture", "-i", bed.uplink, "-f", "icmp6 and ip6[40] == 135", "-c", "1", "--seconds", "10"]).stdout
        #expect(upPrinted.contains("ICMP6, neighbor solicitation, who has 2001:db8:1::4"), "\(upPrinted)")

        // The library on its own (Examples/howto-doctor): the same checks for a hand-built gateway.
        let example = try bed.exec(bed.gw, ["\(builtProductsDirectory)/howto-doctor", bed.tun, bed.uplink, "2001:db8:1::3", "2001:db8:1::4/128"], check: false)
        #expect(example.status == 0 && example.stdout.contains("no problems found") && example.stdout.contains("ok       traffic.tunnel"), "\(example.stdout)")
        try bed.exec(bed.gw, ["ip", "-6", "route", "del", "2001:db8:1::4/128", "dev", bed.tun])
        let broken = try bed.exec(bed.gw, ["\(builtProductsDirectory)/howto-doctor", bed.tun, bed.uplink, "2001:db8:1::3", "2001:db8:1::4/128"], check: false)
        #expect(broken.status == 1 && broken.stdout.contains("PROBLEM  route.client"), "\(broken.stdout)")

        // Errors name what is wrong.
        let badFilter = try bed.gatewayctl(["capture", "--filter", "bogus (((", "-c", "1"], check: false)
        #expect(badFilter.status == 1 && badFilter.stderr.contains("filter \"bogus (((\""), "\(badFilter.stderr)")
        let badInterface = try bed.gatewayctl(["capture", "-i", "nosuch0", "-c", "1"], check: false)
        #expect(badInterface.status == 1 && badInterface.stderr.contains("capture on nosuch0: no such interface"), "\(badInterface.stderr)")
        let badFile = try bed.gatewayctl(["capture", "-w", "/nonexistent/dir/x.pcap", "-c", "1"], check: false)
        #expect(badFile.status == 1 && badFile.stderr.contains("pcap file /nonexistent/dir/x.pcap"), "\(badFile.stderr)")
    }

    /// The firewall check: gatewayd's table deleted (fix: gatewayctl reload), an operator's chain
    /// that lets replies through but drops Packet Too Big (fix: the accept rule), and firewall = "off"
    /// with nothing else filtering (fix: the config line, then a restart).
    @Test func firewallCheckSeesAMissingTableADroppedPacketTooBigAndAnOpenGateway() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try startWithAlice(bed, ndpProxy: "kernel", reaching: "2001:db8:ffff::1")
        let healthy = try doctor(bed, seconds: 0)
        #expect(healthy.status("firewall.clients") == "ok", "\(healthy.check("firewall.clients"))")

        try bed.exec(bed.gw, ["nft", "delete", "table", "inet", "sixgate_\(bed.tun)"])
        let missing = try doctor(bed, seconds: 0)
        #expect(missing.problems == ["firewall.clients"], "\(missing.problems)")
        #expect(missing.summary("firewall.clients").contains("is missing"))
        #expect(missing.fix("firewall.clients") == ["gatewayctl reload --config \(bed.configPath)"])
        _ = try bed.gatewayctl(["reload"])
        let back = try doctor(bed, seconds: 0)
        #expect(back.problems.isEmpty && back.status("firewall.clients") == "ok", "\(back.problems)")
        #expect(try !tcpConnects(from: bed.isp, to: bed.cl, address: "2001:db8:1::4", port: 18023), "closed again")

        let tun = bed.tun
        try breakAndFix(bed, "firewall.clients", [
            "nft add table inet sgop", "nft 'add chain inet sgop forward { type filter hook forward priority 5; policy drop; }'",
            "nft add rule inet sgop forward oifname \"\(tun)\" ct state established accept", "nft add rule inet sgop forward iifname \"\(tun)\" accept",
        ], seconds: 0) { r in
            #expect(r.summary("firewall.clients").contains("inet sgop forward drops Packet Too Big"), "\(r.check("firewall.clients"))")
            #expect(r.fix("firewall.clients") == ["nft insert rule inet sgop forward oifname \"\(tun)\" icmpv6 type packet-too-big accept"])
        }
        try bed.exec(bed.gw, ["nft", "delete", "table", "inet", "sgop"])

        bed.stopGateway()
        try bed.writeConfig(ndpProxy: "kernel", extra: "watch_interval = 0\nfirewall = \"off\"")
        try bed.startGateway()
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })
        let open = try doctor(bed, seconds: 0)
        #expect(open.problems == ["firewall.clients"], "\(open.problems)")
        let fix = open.fix("firewall.clients")
        #expect(fix.count == 2 && fix[0].hasPrefix("sed -i") && fix[1].hasPrefix("systemctl restart gatewayd"), "\(fix)")
        try bed.exec(bed.gw, ["sh", "-c", fix[0]])
        bed.stopGateway()
        try bed.startGateway()
        #expect(eventually(timeout: 40) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })
        let closed = try doctor(bed, seconds: 0)
        #expect(closed.problems.isEmpty && closed.status("firewall.clients") == "ok", "\(closed.problems)")
        #expect(try !tcpConnects(from: bed.isp, to: bed.cl, address: "2001:db8:1::4", port: 18023), "the fix closed the clients")
    }
}
