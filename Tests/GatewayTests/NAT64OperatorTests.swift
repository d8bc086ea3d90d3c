import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 28, as an operator meets it: NAT64 with the Well-Known Prefix toward a non-global IPv4 host
/// (the drop is said: an ICMPv6 error to the client, a log line with the addresses and the reason,
/// the counter in status, the doctor's nat64 check and its fix), and the doctor's NAT64 blind spots
/// (IPv4 forwarding off with `[ipv4] enabled = false`, a forward chain dropping by default).
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct NAT64OperatorTests {
    func doctor(_ bed: GatewayTestbed, seconds: Double) throws -> [[String: Any]] {
        let r = try bed.gatewayctl(["doctor", "--json", "--capture-seconds", String(seconds)], check: false)
        return ((try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]]) ?? []
    }
    func check(_ checks: [[String: Any]], _ id: String) -> [String: Any] { checks.first { $0["id"] as? String == id } ?? [:] }
    func problems(_ checks: [[String: Any]]) -> [String] { checks.filter { $0["status"] as? String == "problem" }.compactMap { $0["id"] as? String } }

    @Test func aNonGlobalIPv4HostBehindTheWellKnownPrefixIsSaidEverywhereAndThePrintedFixWorks() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let xlat = "sgn\(bed.id)"
        // The default prefix (64:ff9b::/96) and an IPv6-only tunnel; the ISP's 198.51.100.1 is not global.
        try bed.writeConfig(ndpProxy: "kernel", ipv4: "enabled = false", extra: "watch_interval = 0",
                            tables: "[nat64]\nenabled = true\npool = \"100.64.1.0/24\"\ninterface = \"\(xlat)\"\n")
        try bed.startGateway()
        let gw = bed.gateway!
        #expect(gw.output.contains("warning: nat64 uses the Well-Known Prefix 64:ff9b::/96") && gw.output.contains("198.51.100.0/25"), "\(gw.output)")
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })

        // 1. The client hears of it at once: an ICMPv6 Address Unreachable from the gateway.
        let ping = try bed.exec(bed.cl, ["ping", "-c", "3", "-i", "0.3", "-W", "2", "64:ff9b::c633:6401"], timeout: 20, check: false)
        #expect(ping.stdout.contains("Destination unreachable: Address unreachable") && ping.stdout.contains("From 2001:db8:1::3"), "\(ping.stdout)")
        // The operator's log names the drop, the addresses and what to do (within one 10 s report).
        #expect(eventually(timeout: 25) { gw.output.contains("unmappable (last: 2001:db8:1::4 -> 64:ff9b::c633:6401 = 198.51.100.1): 198.51.100.1 is not a global IPv4 address") }, "\(gw.output)")
        #expect(gw.output.contains("64:ff9b:1::/96"))
        let statusText = try bed.gatewayctl(["status"]).stdout
        let count = statusText.components(separatedBy: "nat64Dropped-unmappable=").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(count >= 3, "\(statusText)")

        // A tunnel-client on the same gateway sees the unreachables in its status.
        let tc = try bed.gatewayctl(["clients", "add", "bob", "--format", "tunnel-client"]).stdout
            .replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"sgk\(bed.id)\"")
            .replacingOccurrences(of: "198.51.100.129:51820", with: "203.0.113.129:51820")
        let bob = try bed.startTunnelClient(in: bed.cl2, config: tc, name: "bob")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "\(bob.output)")
        _ = try bed.exec(bed.cl2, ["ping", "-c", "2", "-i", "0.3", "-W", "1", "64:ff9b::c633:6401"], timeout: 20, check: false)
        #expect(eventually(timeout: 5) { ((try? bed.tunnelClientStatus("bob"))?["unreachableReceived"] as? Int ?? 0) >= 2 }, "\((try? bed.tunnelClientStatus("bob")) ?? [:])")
        bob.stop(grace: 10)

        // The doctor, while the client keeps trying, names it and prints the fix.
        let traffic = try bed.background(in: bed.cl, ["ping", "-c", "20", "-i", "0.2", "64:ff9b::c633:6401"])
        defer { traffic.stop() }
        let broken = try doctor(bed, seconds: 2)
        #expect(problems(broken) == ["nat64"], "\(problems(broken)) \(check(broken, "nat64"))")
        let fix = check(broken, "nat64")["fix"] as? [String] ?? []
        #expect(fix.first?.contains("prefix = \"64:ff9b:1::/96\"") == true, "\(fix)")
        traffic.stop()
        // The fix: a network-specific prefix; then 198.51.100.1 answers at its new name.
        bed.stopGateway()
        try bed.writeConfig(ndpProxy: "kernel", ipv4: "enabled = false", extra: "watch_interval = 0",
                            tables: "[nat64]\nenabled = true\nprefix = \"64:ff9b:1::/96\"\npool = \"100.64.1.0/24\"\ninterface = \"\(xlat)\"\n")
        try bed.startGateway()
        #expect(!bed.gateway!.output.contains("warning: nat64 uses the Well-Known Prefix"))
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "64:ff9b:1::c633:6401", count: 1)) == 1 }, "\(bed.gateway!.output)")
        let fixed = try doctor(bed, seconds: 1)
        #expect(problems(fixed).isEmpty && check(fixed, "nat64")["status"] as? String == "ok", "\(problems(fixed)) \(check(fixed, "nat64"))")

        // 2. IPv4 forwarding off: with [ipv4] enabled = false the doctor still looks (NAT64 needs it).
        try bed.exec(bed.gw, ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
        #expect(try bed.ping(from: bed.cl, "64:ff9b:1::c633:6401", count: 2) == 0, "NAT64 is lost without IPv4 forwarding")
        let noForwarding = try doctor(bed, seconds: 0)
        #expect(problems(noForwarding) == ["forwarding.ipv4"], "\(problems(noForwarding))")
        for c in check(noForwarding, "forwarding.ipv4")["fix"] as? [String] ?? [] { try bed.exec(bed.gw, ["sh", "-c", c]) }
        #expect(eventually(timeout: 10) { (try? bed.ping(from: bed.cl, "64:ff9b:1::c633:6401", count: 1)) == 1 }, "the printed fix brings NAT64 back")

        // 3. A forward chain dropping by default: the printed fix opens the translator's path too.
        try bed.exec(bed.gw, ["sh", "-c", "nft add table inet sgop && nft 'add chain inet sgop forward { type filter hook forward priority 0; policy drop; }'"])
        #expect(try bed.ping(from: bed.cl, "64:ff9b:1::c633:6401", count: 2) == 0)
        let dropping = try doctor(bed, seconds: 0)
        let fixes = check(dropping, "firewall.forward")["fix"] as? [String] ?? []
        #expect(fixes.contains("nft insert rule inet sgop forward iifname \"\(xlat)\" accept")
                && fixes.contains("nft insert rule inet sgop forward oifname \"\(xlat)\" ct state established,related accept"), "\(fixes)")
        for c in fixes { try bed.exec(bed.gw, ["sh", "-c", c]) }
        #expect(eventually(timeout: 10) { (try? bed.ping(from: bed.cl, "64:ff9b:1::c633:6401", count: 1)) == 1 }, "NAT64 works after the printed fix")
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1") == 3, "and IPv6")
        let after = try doctor(bed, seconds: 0)
        #expect(problems(after).isEmpty, "\(problems(after))")
    }
}
