import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import RouteKit

@Suite("NAT44 through nftables", .enabled(if: isRoot && which("nft") != nil, "needs root and nft"))
struct NATTests {
    @Test func masqueradeMakesThePoolReachableAndIsRemovedAsOneUnit() throws {
        let pair = try NamespacePair(tag: "nat")
        defer { pair.destroy() }
        // A client namespace behind `left`, with a pool the far side (`right`) has no route to.
        let client = "sg-nat-c-\(uniqueSuffix())", cif = "sgc\(uniqueSuffix())", lif = "sgn\(uniqueSuffix())"
        try run(["ip", "netns", "add", client], check: true)
        defer { _ = try? run(["ip", "netns", "del", client]) }
        try run(["ip", "link", "add", lif, "netns", pair.left, "type", "veth", "peer", "name", cif, "netns", client], check: true)
        try pair.exec(pair.left, ["ip", "addr", "add", "198.51.100.1/24", "dev", lif])
        try pair.exec(pair.left, ["ip", "link", "set", lif, "up"])
        try pair.exec(client, ["ip", "addr", "add", "198.51.100.2/24", "dev", cif])
        try pair.exec(client, ["ip", "link", "set", cif, "up"])
        try pair.exec(client, ["ip", "route", "add", "default", "via", "198.51.100.1"])
        try Sysctl.write(SysctlKey.ipv4Forwarding, 1, in: .named(pair.left))

        let ping = ["ping", "-c", "1", "-W", "1", "192.0.2.2"]
        #expect(try pair.exec(client, ping, check: false).status != 0, "reachable without NAT: the test proves nothing")

        let table = NATTable(namespace: .named(pair.left))
        let rule = MasqueradeRule(source: try IPv4Prefix.parse("198.51.100.0/24"), outInterface: pair.leftInterface)
        #expect(try !table.exists())
        try table.apply([rule])
        try table.apply([rule])  // idempotent: replaced, not doubled
        #expect(try table.rules() == [rule])
        #expect(try pair.exec(client, ping, check: false).status == 0, "not reachable through the masquerade")

        try table.remove()
        try table.remove()
        #expect(try !table.exists())
        #expect(try pair.exec(pair.left, ["nft", "list", "tables"]).stdout.contains("sixgate") == false)
        #expect(try pair.exec(client, ["ping", "-c", "1", "-W", "1", "192.0.2.2"], check: false).status != 0)
    }

    @Test func badInterfaceNameIsRefusedBeforeNftRuns() throws {
        let table = NATTable(name: "sixgate-test")
        let bad = MasqueradeRule(source: try IPv4Prefix.parse("198.51.100.0/24"), outInterface: "eth0\"; flush ruleset; \"")
        expectFailure(.invalidArgument, mentioning: "invalid interface name") { try table.apply([bad]) }
    }
}
