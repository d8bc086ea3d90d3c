import Foundation
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
@testable import Diagnostics

/// The doctor's judgement on its own: firewall chains as nft reports them, radvd configs, endpoints,
/// and the report's shape. The end-to-end tests (GatewayTests/DoctorTests) break real gateways.
@Suite("Doctor logic")
struct DoctorLogicTests {
    /// nft itself writes the ruleset in a namespace of the test's own; RouteKit reads it back and
    /// the doctor judges what a tunnel packet and its replies meet.
    @Test(.enabled(if: isRoot && which("nft") != nil, "needs root and nft"))
    func judgesForwardChainsAsNftReportsThem() throws {
        let ns = "sg-df-\(uniqueSuffix())"
        try run(["ip", "netns", "add", ns], check: true)
        defer { _ = try? run(["ip", "netns", "del", ns]) }
        func nft(_ script: String) throws { _ = try run(["ip", "netns", "exec", ns, "nft", script], check: true) }
        func judge() throws -> [(String, String, String)] {
            try Firewall.baseChains(hook: "forward", in: .named(ns)).map { c in
                (c.description, KernelView.verdict(c, iif: "sg0", oif: "eth0", reply: false).0, KernelView.verdict(c, iif: "eth0", oif: "sg0", reply: true).0)
            }
        }
        #expect(try judge().isEmpty, "an empty ruleset has no forward chains")

        try nft("add table inet f; add chain inet f fw { type filter hook forward priority 0; policy drop; }")
        #expect(try judge().map { "\($0.0) \($0.1) \($0.2)" } == ["inet f fw (hook forward, policy drop) drop drop"])

        // The doctor's own fix lines make both directions pass.
        try nft("insert rule inet f fw iifname \"sg0\" accept")
        try nft("insert rule inet f fw oifname \"sg0\" ct state established,related accept")
        #expect(try judge().map { "\($0.1) \($0.2)" } == ["accept accept"])

        // A rule on addresses is not judged (it may or may not match): the chain's verdict is unknown.
        try nft("flush chain inet f fw; add rule inet f fw ip6 saddr 2001:db8::/32 accept")
        #expect(try judge().map { "\($0.1) \($0.2)" } == ["unknown unknown"])

        // An explicit drop for the tunnel in an accepting chain, in an ip6 table, and a wildcard.
        try nft("add table ip6 g; add chain ip6 g fw { type filter hook forward priority 10; policy accept; }; add rule ip6 g fw oifname \"sg*\" counter drop")
        let chains = try Firewall.baseChains(hook: "forward", in: .named(ns))
        let g = try #require(chains.first { $0.table == "g" })
        #expect(g.applies(ipv6: true) && !g.applies(ipv6: false))
        #expect(g.rules.first?.matches == [FilterMatch(key: "oifname", op: "==", values: ["sg*"])])
        #expect(KernelView.verdict(g, iif: "eth0", oif: "sg0", reply: true).0 == "drop")
        #expect(KernelView.verdict(g, iif: "sg0", oif: "eth0", reply: false).0 == "accept")
        // Other hooks are not forward chains.
        try nft("add chain ip6 g inp { type filter hook input priority 0; policy drop; }")
        #expect(try Firewall.baseChains(hook: "forward", in: .named(ns)).count == 2)
        #expect(try Firewall.baseChains(hook: "input", in: .named(ns)).map(\.name) == ["inp"])
    }

    @Test func readsRadvdInterfaces() {
        let conf = """
            # interface eth9 { commented out }
            interface eth0
            {
                AdvSendAdvert on;
                prefix 2001:db8:1::/64 { };
            };
            interface lan0 { AdvSendAdvert on; };  # trailing
            """
        #expect(KernelView.radvdInterfaces(conf) == ["eth0", "lan0"])
        #expect(KernelView.radvdInterfaces("") == [])
    }

    @Test func parsesEndpoints() {
        #expect(KernelView.endpointHost("198.51.100.130:41234") == IPAddress("198.51.100.130"))
        #expect(KernelView.endpointHost("[2001:db8::1]:51820") == IPAddress("2001:db8::1"))
        #expect(KernelView.endpointHost("2001:db8::1") == IPAddress("2001:db8::1"))
        #expect(KernelView.endpointHost("[garbage") == nil)
    }

    @Test func processOptions() {
        let p = RunningProcess(pid: 1, parent: 0, name: "radvd", arguments: ["-n", "-C", "/etc/r.conf"])
        #expect(p.option(["-C", "--config"]) == "/etc/r.conf")
        #expect(RunningProcess(pid: 1, parent: 0, name: "radvd", arguments: ["--config=/x"]).option(["-C", "--config"]) == "/x")
        #expect(RunningProcess(pid: 1, parent: 0, name: "radvd", arguments: ["-C/y"]).option(["-C", "--config"]) == "/y")
        #expect(RunningProcess(pid: 1, parent: 0, name: "radvd", arguments: ["-n"]).option(["-C", "--config"]) == nil)
    }

    /// The JSON monitoring reads: every check with id and status, and the problem count.
    @Test func reportEncodesForMonitoringAndRendersForPeople() throws {
        let report = DoctorReport(checks: [
            CheckResult(id: "forwarding.ipv6", title: "IPv6 forwarding", status: .problem, summary: "off",
                        evidence: ["net.ipv6.conf.all.forwarding = 0"], fix: ["sysctl -w net.ipv6.conf.all.forwarding=1"]),
            CheckResult(id: "nat44", title: "NAT44", status: .ok, summary: "masquerade"),
            CheckResult(id: "traffic.tunnel", title: "traffic", status: .skipped, summary: "no traffic"),
        ], captureSeconds: 3)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any]
        #expect(json?["problems"] as? Int == 1)
        #expect((json?["checks"] as? [[String: Any]])?.map { $0["status"] as? String } == ["problem", "ok", "skipped"])
        let back = try JSONDecoder().decode(DoctorReport.self, from: JSONEncoder().encode(report))
        #expect(back == report)
        let text = report.render()
        #expect(text.contains("PROBLEM  forwarding.ipv6        off\n"))
        #expect(text.contains("fix:  sysctl -w net.ipv6.conf.all.forwarding=1"))
        #expect(!text.contains("masquerade\n           seen"), "evidence of ok checks only with --verbose")
        #expect(text.hasSuffix("1 problem found\n"))
    }
}

/// `birdc show protocols` as BIRD 2.0.12 prints it (captured from a run).
@Test func parsesBIRDProtocols() {
    let text = """
        BIRD 2.0.12 ready.
        Name       Proto      Table      State  Since         Info
        device1    Device     ---        up     14:06:40.443  
        up6        BGP        ---        start  14:06:40.443  Idle          
        k6         Kernel     master6    up     14:06:40.443  
        gwa4       BGP        ---        up     14:06:41.101  Established   
        """
    let p = BIRDProtocol.parse(text)
    #expect(p.map(\.name) == ["device1", "up6", "k6", "gwa4"])
    #expect(p[1] == BIRDProtocol(name: "up6", proto: "BGP", state: "start", info: "Idle"))
    #expect(p[3].info == "Established")
}
