import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import RouteKit

/// Port openings as operators write them, and the filter's ruleset (no root needed).
@Suite("Forward filter: openings and ruleset")
struct ForwardFilterUnitTests {
    @Test(arguments: [("tcp/22", "tcp/22"), ("UDP/51413-51420", "udp/51413-51420"), (" sctp/9899 ", "sctp/9899"), ("all", "all"),
                      ("dccp/1-65535", "dccp/1-65535"), ("tcp/7-7", "tcp/7")])
    func readsWhatOperatorsWrite(_ text: String, _ canonical: String) throws {
        #expect(try PortOpening(parsing: text).description == canonical)
    }

    @Test(arguments: [("tcp/0", "port 0 is outside 1-65535"), ("udp/70000", "port 70000 is outside"), ("icmp/1", "unknown protocol \"icmp\""),
                      ("tcp/2000-1000", "upside down (2000 > 1000): write 1000-2000"), ("tcp/ssh", "\"ssh\" is not a port number"),
                      ("tcp", "expected PROTOCOL/PORT"), ("tcp/", "\"\" is not a port number"), ("tcp/1-2-3", "LOW-HIGH"),
                      ("tcp/-5", "is not a port number"), ("tcp/99999999999999999999", "is not a port number")])
    func refusesNamingTheValue(_ text: String, _ reason: String) {
        do {
            _ = try PortOpening(parsing: text)
            Issue.record("\(text) accepted")
        } catch {
            #expect(error.description.hasPrefix(text.debugDescription) && error.description.contains(reason), "\(error)")
        }
    }

    @Test func overlappingOpeningsAreMergedAndAllSwallowsTheRest() throws {
        let o = try ["udp/10-20", "tcp/22", "udp/15-30", "udp/31", "tcp/22", "udp/40"].map { try PortOpening(parsing: $0) }
        #expect(PortOpening.normalized(o).map(\.description) == ["tcp/22", "udp/10-31", "udp/40"])
        #expect(PortOpening.normalized(o + [.all]) == [.all])
    }

    func policy(_ hosts: [ProtectedHost], echo: Bool = true, isolate: Bool = true) -> ForwardPolicy {
        ForwardPolicy(interface: "sg0", inboundEcho: echo, isolateHosts: isolate, hosts: hosts)
    }

    @Test func rulesetKeepsRFC4890sErrorsAndPutsEveryHostInSetsAndMaps() throws {
        let alice = ProtectedHost(name: "alice", prefixes: [IPPrefix("2001:db8:1::4/128")!, IPPrefix("192.0.2.2/32")!],
                                  openings: [try PortOpening(parsing: "tcp/22"), try PortOpening(parsing: "udp/51413-51420")])
        let carol = ProtectedHost(name: "carol", prefixes: [IPPrefix("2001:db8:100:1::/64")!], openings: [.all], isolated: false)
        let text = try FilterTable(name: "t").ruleset(policy([alice, carol]))
        #expect(text.hasPrefix("add table inet t\ndelete table inet t\n"), "replaced whole, never doubled")
        #expect(text.contains("oifname \"sg0\" ct state established,related accept"))
        #expect(text.contains("icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept"))
        #expect(text.contains("icmp type { destination-unreachable, time-exceeded, parameter-problem } accept"))
        #expect(text.contains("icmpv6 type echo-request accept"))
        #expect(text.contains("elements = { 2001:db8:1::4/128 . tcp . 22, 2001:db8:1::4/128 . udp . 51413-51420 }"))
        #expect(text.contains("elements = { 192.0.2.2/32 . tcp . 22, 192.0.2.2/32 . udp . 51413-51420 }"))
        #expect(text.contains("set exposed6 { type ipv6_addr; flags interval; elements = { 2001:db8:100:1::/64 }; }"))
        #expect(text.contains("set shared6 { type ipv6_addr; flags interval; elements = { 2001:db8:100:1::/64 }; }"))
        #expect(text.contains("2001:db8:1::4/128 : \"in_alice\", 2001:db8:100:1::/64 : \"in_carol\""))
        #expect(text.contains("counter in_alice { }") && text.contains("counter in_carol { }"))
        // The order that makes it a filter: accepts first, the counted drops last.
        let accept = text.range(of: "@open6 accept")!, drop = text.range(of: "map @drops6 drop")!, other = text.range(of: "\"dropped_other\" drop")!
        #expect(accept.lowerBound < drop.lowerBound && drop.lowerBound < other.lowerBound)

        let quiet = try FilterTable(name: "t").ruleset(policy([alice], echo: false, isolate: false))
        #expect(!quiet.contains("echo-request"))
        #expect(quiet.contains("iifname \"sg0\" oifname \"sg0\" accept"), "clients not isolated")
        #expect(!quiet.contains("@shared6"))
    }

    @Test func anUpdateTouchesOnlySetsMapsAndCounters() throws {
        let bob = ProtectedHost(name: "bob", prefixes: [IPPrefix("2001:db8:1::5/128")!])
        let text = try FilterTable(name: "t").elements(policy([bob]), removing: ["alice", "bob"])
        #expect(!text.contains("chain") && !text.contains("delete table"))
        #expect(text.contains("add counter inet t in_bob\n"))
        #expect(text.contains("flush set inet t open6\n") && text.contains("flush map inet t drops6\n"))
        #expect(text.contains("add element inet t drops6 { 2001:db8:1::5/128 : \"in_bob\" }"))
        #expect(text.hasSuffix("delete counter inet t in_alice\n"), "a host that is gone loses its counter, a kept one never")
    }

    @Test func badPoliciesAreRefusedNamingTheObject() {
        let a = ProtectedHost(name: "a", prefixes: [IPPrefix("2001:db8::/64")!]), b = ProtectedHost(name: "b", prefixes: [IPPrefix("2001:db8::4/128")!])
        #expect(throws: RouteKitError.self) { try FilterTable(name: "t").ruleset(policy([a, b])) }
        do { _ = try FilterTable(name: "t").ruleset(policy([a, b])) } catch {
            #expect(error.description.contains("2001:db8::/64 (a) and 2001:db8::4/128 (b)"), "\(error)")
        }
        #expect(throws: RouteKitError.self) { try FilterTable(name: "t").ruleset(policy([a, a])) }
        #expect(throws: RouteKitError.self) { try FilterTable(name: "t").ruleset(policy([ProtectedHost(name: "x y", prefixes: [])])) }
        #expect(throws: RouteKitError.self) { try FilterTable(name: "t").ruleset(ForwardPolicy(interface: "bad\"name")) }
    }

    @Test func readsCountersFromNftsJSON() {
        let json = #"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", "name": "in_alice", "table": "t", "handle": 2, "packets": 7, "bytes": 420}}, {"counter": {"family": "inet", "name": "dropped_other", "table": "t", "handle": 3, "packets": 0, "bytes": 0}}]}"#
        let c = FilterTable.parseCounters(json)
        #expect(c["in_alice"] == FilterCounter(packets: 7, bytes: 420))
        #expect(c["dropped_other"] == FilterCounter(packets: 0, bytes: 0))
        #expect(FilterTable.parseCounters("not json").isEmpty)
    }
}

/// The table in a namespace, with real nft: applied, updated without losing counters or tracked
/// connections' acceptance, and removed as one unit.
@Suite("Forward filter through nftables", .enabled(if: isRoot && which("nft") != nil, "needs root and nft"))
struct ForwardFilterNamespaceTests {
    @Test func applyUpdateAndRemoveAsOneUnit() throws {
        let pair = try NamespacePair(tag: "ff")
        defer { pair.destroy() }
        let table = FilterTable(name: "sgtest", namespace: .named(pair.left))
        let alice = ProtectedHost(name: "alice", prefixes: [IPPrefix("2001:db8:1::4/128")!], openings: [try PortOpening(parsing: "tcp/22")])
        var p = ForwardPolicy(interface: pair.leftInterface, hosts: [alice])
        #expect(try !table.exists())
        try table.apply(p)
        try table.apply(p)
        let rules = try pair.exec(pair.left, ["nft", "list", "chain", "inet", "sgtest", "forward"]).stdout
        #expect(rules.components(separatedBy: "established,related accept").count == 2, "one copy after two applies: \(rules)")
        #expect(try table.counters().keys.sorted() == ["dropped_other", "in_alice"])

        let bob = ProtectedHost(name: "bob", prefixes: [IPPrefix("2001:db8:1::5/128")!])
        p.hosts = [bob]
        try table.update(p, removing: ["alice"])
        #expect(try table.counters().keys.sorted() == ["dropped_other", "in_bob"])
        let listed = try pair.exec(pair.left, ["nft", "list", "table", "inet", "sgtest"]).stdout
        #expect(!listed.contains("2001:db8:1::4") && listed.contains("2001:db8:1::5 : \"in_bob\""), "\(listed)")
        #expect(try pair.exec(pair.left, ["nft", "list", "chain", "inet", "sgtest", "forward"]).stdout == rules, "the rules are untouched")

        try table.remove()
        try table.remove()
        #expect(try !table.exists())
    }
}
