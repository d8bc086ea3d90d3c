// The gateway's planner without root: configuration + clients + leases → what should exist.
// Leases come from a real AddressAllocator over an in-memory store, as gatewayd makes them.
import AddressPool
import PacketKit
import RouteKit
import Testing
import Translator
@testable import TunnelGateway

@Suite struct GatewayPlannerTests {
    static let keyA = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
    static let keyB = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

    /// Plans `clients` (enrolled in order) for `config`, with the TUN at index 7, the uplink at 2
    /// and the translator at 9.
    func plan(_ config: GatewayConfiguration, _ clients: [ClientRecord], ispRouteNeeded: Bool = false, planningOrder: [ClientRecord]? = nil,
              retiring: [IPv6Prefix] = []) throws -> GatewayPlan {
        let allocator = try AddressAllocator(pools: GatewayPlanner.pools(config), store: MemoryLeaseStore())
        for c in clients {
            _ = try allocator.allocate(client: c.name, inPools: GatewayPlanner.poolNames(config))
            if config.nat64?.clat == true { _ = try allocator.allocate(client: GatewayPlanner.clatKey(c.name), inPools: [GatewayPlanner.v6Pool, GatewayPlanner.nat64Pool]) }
        }
        let planner = GatewayPlanner(config: config, tunnelIndex: 7, uplinkIndex: 2, translatorIndex: config.nat64 == nil ? nil : 9, ispRouteNeeded: ispRouteNeeded,
                                     retiring: retiring)
        return planner.plan(clients: planningOrder ?? clients, leases: { allocator.leases(of: $0) })
    }

    var clients: [ClientRecord] {
        [ClientRecord(name: "alice", publicKey: Self.keyA, open: [PortOpening(.tcp, ports: 22...22)]),
         ClientRecord(name: "bob", publicKey: Self.keyB, isolated: false)]
    }

    func v6(_ s: String) -> IPv6Address { IPv6Address(s)! }
    func route(_ p: String, _ index: Int32) -> Route { Route(destination: IPPrefix(p)!, interfaceIndex: index) }

    @Test func hostsModeWithKernelProxy() throws {
        var config = GatewayConfiguration()
        config.ipv6Prefix = IPv6Prefix("2001:db8:1::/64")!
        let p = try plan(config, clients, ispRouteNeeded: true)
        // ::1 router, ::2 uplink, ::3 gateway are reserved: the clients get ::4 and ::5.
        #expect(p.hostAddresses == [v6("2001:db8:1::4"), v6("2001:db8:1::5")])
        #expect(p.kernel.routes == [route("2001:db8:1::4/128", 7), route("2001:db8:1::5/128", 7), route("2001:db8:1::1/128", 2)])
        #expect(p.kernel.proxyEntries == [ProxyEntry(v6("2001:db8:1::4"), interfaceIndex: 2), ProxyEntry(v6("2001:db8:1::5"), interfaceIndex: 2)])
        #expect(p.kernel.addresses == [InterfaceAddress(interfaceIndex: 7, address: .v6(v6("2001:db8:1::3")), prefixLength: 128, flags: InterfaceAddress.noDAD),
                                       InterfaceAddress(interfaceIndex: 7, address: .v4(IPv4Address("100.64.0.1")!), prefixLength: 24)])
        #expect(p.kernel.sysctls == [try SysctlKey.ipv6Forwarding(.all): 1, .ipv4Forwarding: 1, try SysctlKey.proxyNDP(.interface("eth0")): 1])
        #expect(p.masquerade == [MasqueradeRule(source: IPv4Prefix("100.64.0.0/24")!, outInterface: "eth0")])
        #expect(p.peers["alice"]?.allowedIPs == [IPPrefix("2001:db8:1::4/128")!, IPPrefix("100.64.0.2/32")!])
        #expect(p.peers["alice"]?.endpoint == nil)
        #expect(p.translatorMappings.isEmpty)
        let fw = try #require(p.firewall)
        #expect(fw.hosts.map(\.name) == ["alice", "bob"])
        #expect(fw.hosts[0].openings == [PortOpening(.tcp, ports: 22...22)] && fw.hosts[0].isolated && !fw.hosts[1].isolated)
        #expect(fw.dropRedirects)
    }

    @Test func aRetiringPrefixKeepsEachClientsOldAddressAtItsPosition() throws {
        var config = GatewayConfiguration()
        config.ipv6Prefix = IPv6Prefix("2001:db8:2::/64")!
        let p = try plan(config, clients, retiring: [IPv6Prefix("2001:db8:1::/64")!])
        // The new addresses and the old ones at the same positions: routed, proxied, hosts, allowed, protected.
        #expect(p.hostAddresses == [v6("2001:db8:2::4"), v6("2001:db8:2::5"), v6("2001:db8:1::4"), v6("2001:db8:1::5")])
        #expect(p.kernel.routes.contains(route("2001:db8:1::4/128", 7)) && p.kernel.routes.contains(route("2001:db8:2::4/128", 7)))
        #expect(p.kernel.proxyEntries.contains(ProxyEntry(v6("2001:db8:1::5"), interfaceIndex: 2)))
        #expect(p.peers["alice"]?.allowedIPs == [IPPrefix("2001:db8:2::4/128")!, IPPrefix("100.64.0.2/32")!, IPPrefix("2001:db8:1::4/128")!])
        #expect(try #require(p.firewall).hosts[0].prefixes.contains(IPPrefix("2001:db8:1::4/128")!))
        // The gateway's own address moves at once (nothing but the clients' connections need the old one).
        #expect(!p.kernel.addresses.contains { $0.address == .v6(v6("2001:db8:1::3")) })
        // Without it, nothing of the old prefix.
        let after = try plan(config, clients)
        #expect(!after.kernel.routes.contains { $0.destination.description.hasPrefix("2001:db8:1:") })
        // Delegated prefixes: the old /64 at the same index of a /56 that changed.
        var pd = GatewayConfiguration()
        pd.ipv6Prefix = IPv6Prefix("2001:db8:200::/56")!
        pd.allocation = .prefixes
        let q = try plan(pd, clients, retiring: [IPv6Prefix("2001:db8:100::/56")!])
        #expect(q.peers["alice"]?.allowedIPs.contains(IPPrefix("2001:db8:100:1::/64")!) == true, "\(q.peers["alice"]?.allowedIPs ?? [])")
        #expect(q.kernel.routes.contains(route("2001:db8:100:1::/64", 7)))
    }

    /// NPTv6: leases come from the inside prefix; what the ISP's side asks for is each address's
    /// checksum-neutral twin (and the retiring prefix's twin, inbound only).
    @Test func nptv6PlansInsideAddressesAndOutsideTwins() throws {
        var config = GatewayConfiguration()
        config.ipv6Prefix = IPv6Prefix("2001:db8:2::/64")!
        config.nptPrefix = IPv6Prefix("fd00:6296::/64")!
        let p = try plan(config, clients, retiring: [IPv6Prefix("2001:db8:1::/64")!])
        let alice = try #require(p.peers["alice"]?.allowedIPs.first)
        guard case .v6(let inside) = alice else { Issue.record("\(alice)"); return }
        #expect(IPv6Prefix("fd00:6296::/64")!.contains(inside.network), "leases are inside: \(alice)")
        #expect(p.peers["alice"]?.allowedIPs.count == 2, "no retiring twins in allowed IPs")
        let now = try #require(NPTv6Mapping(inside: config.nptPrefix!, outside: config.ipv6Prefix)?.outbound(inside.network))
        let old = try #require(NPTv6Mapping(inside: config.nptPrefix!, outside: IPv6Prefix("2001:db8:1::/64")!)?.outbound(inside.network))
        #expect(p.kernel.proxyEntries.contains(ProxyEntry(now, interfaceIndex: 2)) && p.kernel.proxyEntries.contains(ProxyEntry(old, interfaceIndex: 2)))
        #expect(!p.kernel.proxyEntries.contains(ProxyEntry(inside.network, interfaceIndex: 2)))
        #expect(p.npt.contains(NPTPair(inside: inside.network, outside: now, outbound: true)) && p.npt.contains(NPTPair(inside: inside.network, outside: old, outbound: false)))
        #expect(p.kernel.routes.contains(Route(destination: alice, interfaceIndex: 7)))
        // The gateway's own address is inside; the ISP router's and the uplink's twins are kept out of the pool.
        #expect(config.effectiveGatewayAddress == v6("fd00:6296::3"))
        let reserved = GatewayPlanner.pools(config)[0].reserved
        let m = try #require(config.nptMapping)
        #expect(reserved.contains(.v6(IPv6Prefix(containing: try #require(m.inbound(v6("2001:db8:2::1"))), length: 128))))
    }

    @Test func prefixStateMovesKeepAndRenew() throws {
        let a = IPv6Prefix("2001:db8:1::/64")!, b = IPv6Prefix("2001:db8:2::/64")!
        // Lifetimes known: the old prefix stays for the rest of its own valid lifetime.
        let s0 = PrefixState(prefix: a, preferredUntil: 1_500, validUntil: 2_000)
        let s1 = s0.moved(to: b, preferred: 300, valid: 600, oldValid: nil, now: 1_000)
        #expect(s1.prefix == b && s1.preferredUntil == 1_300 && s1.validUntil == 1_600)
        #expect(s1.retiring == [RetiringPrefix(prefix: a, validUntil: 2_000)])
        #expect(s1.retiringPrefixes(at: 1_999) == [a] && s1.retiringPrefixes(at: 2_000).isEmpty)
        // Told (the server withdrew it with lifetime 0): at once; unknown: two hours.
        #expect(s0.moved(to: b, preferred: nil, valid: nil, oldValid: 0, now: 1_000).retiring.isEmpty)
        #expect(PrefixState(prefix: a).moved(to: b, preferred: nil, valid: nil, oldValid: nil, now: 1_000).retiring == [RetiringPrefix(prefix: a, validUntil: 8_200)])
        // The config file's stand-in until the first delegation was never routed here: not kept.
        #expect(PrefixState(prefix: a, fromSource: false).moved(to: b, preferred: nil, valid: 60, oldValid: nil, now: 1_000).retiring.isEmpty)
        // Back to the earlier prefix: it is current, not retiring.
        let back = s1.moved(to: a, preferred: nil, valid: nil, oldValid: 50, now: 1_100)
        #expect(back.prefix == a && back.retiring == [RetiringPrefix(prefix: b, validUntil: 1_150)])
        // The file: read back as written; an earlier version's one-line file is the prefix alone.
        #expect(PrefixState(parsing: s1.render()) == s1)
        #expect(PrefixState(parsing: "2001:db8:2::/64\n") == PrefixState(prefix: b))
        #expect(PrefixState(parsing: "junk\n") == nil)
        #expect(PrefixState.position(IPv6Prefix("2001:db8:2::5/128")!, of: b, in: a) == IPv6Prefix("2001:db8:1::5/128")!)
        #expect(PrefixState.position(IPv6Prefix("2001:db8:2:0:1::/80")!, of: b, in: IPv6Prefix("2001:db8:1::/96")!) == nil, "does not fit")
        #expect(GatewayConfiguration.documentationRange(IPv6Prefix("2001:db8:5::/48")!) != nil)
        #expect(GatewayConfiguration.documentationRange(IPv6Prefix("2a01:4f8::/64")!) == nil)
    }

    @Test func responderModeHasNoKernelProxyEntries() throws {
        var config = GatewayConfiguration()
        config.ndpProxy = .responder
        let p = try plan(config, clients)
        #expect(p.kernel.proxyEntries.isEmpty)
        #expect(p.hostAddresses.count == 2, "the responder answers for every client host address")
        #expect(!p.kernel.sysctls.keys.contains(try SysctlKey.proxyNDP(.interface("eth0"))))
        #expect(!p.kernel.routes.contains(route("2001:db8::1/128", 2)), "no ISP route unless the router is off-link")
    }

    @Test func prefixesModeRoutesPrefixesWithoutProxyEntries() throws {
        var config = GatewayConfiguration()
        config.allocation = .prefixes
        config.ipv6Prefix = IPv6Prefix("2001:db8:100::/48")!
        config.delegatedLength = 64
        config.ndpProxy = .off
        config.ipv4Pool = nil
        let p = try plan(config, clients)
        #expect(p.hostAddresses.isEmpty && p.kernel.proxyEntries.isEmpty)
        let clientRoutes = p.kernel.routes.filter { $0.interfaceIndex == 7 }
        #expect(clientRoutes.count == 2 && clientRoutes.allSatisfy { $0.destination.length == 64 })
        #expect(p.peers["bob"]?.allowedIPs.count == 1)
        #expect(!p.kernel.sysctls.keys.contains(.ipv4Forwarding), "no IPv4 pool, no NAT64: IPv4 forwarding is not asked for")
        #expect(p.masquerade.isEmpty)
    }

    @Test func nat64WithCLAT() throws {
        var config = GatewayConfiguration()
        var n = NAT64Settings(interface: "nat64x")
        n.clat = true
        config.nat64 = n
        let p = try plan(config, clients)
        // The translator's routes: the prefix and the NAT64 pool into its TUN.
        #expect(p.kernel.routes.contains(route("64:ff9b::/96", 9)) && p.kernel.routes.contains(route("100.64.1.0/24", 9)))
        // alice: ::4 (own), CLAT ::5; bob ::6, CLAT ::7. Each own and each CLAT address maps to a NAT64 address.
        #expect(p.translatorMappings.count == 4)
        #expect(Set(p.translatorMappings.map(\.ipv6)) == Set(["2001:db8::4", "2001:db8::5", "2001:db8::6", "2001:db8::7"].map(v6)))
        // A CLAT address is routed into the tunnel and allowed for the peer, but has no proxy entry
        // and is not a host the responder answers for.
        #expect(p.kernel.routes.contains(route("2001:db8::5/128", 7)))
        #expect(p.hostAddresses == [v6("2001:db8::4"), v6("2001:db8::6")])
        #expect(p.kernel.proxyEntries.count == 2)
        // Never a NAT64 address among a peer's allowed IPs.
        let allowed = try #require(p.peers["alice"]?.allowedIPs)
        #expect(!allowed.contains { if case .v4(let q) = $0 { n.pool.contains(q.network) } else { false } })
        #expect(allowed.contains(IPPrefix("2001:db8::5/128")!))
        #expect(p.masquerade.count == 2, "the IPv4 pool and the NAT64 pool")
    }

    @Test func firewallOffAndNoClients() throws {
        var config = GatewayConfiguration()
        config.firewall = false
        config.nat44 = false
        let p = try plan(config, [])
        #expect(p.firewall == nil && p.masquerade.isEmpty && p.peers.isEmpty)
        #expect(p.kernel.routes.isEmpty && p.kernel.proxyEntries.isEmpty)
        #expect(p.kernel.addresses.count == 2, "the gateway's own addresses do not depend on clients")
    }

    @Test func planIsDeterministic() throws {
        var config = GatewayConfiguration()
        config.nat64 = NAT64Settings(interface: "nat64y")
        #expect(try plan(config, clients) == plan(config, clients, planningOrder: clients.reversed()))
    }

    @Test func aClientsPartOutAndInIsTheSameAsPlanningEverything() throws {
        var config = GatewayConfiguration()
        var n = NAT64Settings(interface: "nat64z")
        n.clat = true
        config.nat64 = n
        let allocator = try AddressAllocator(pools: GatewayPlanner.pools(config), store: MemoryLeaseStore())
        let carol = ClientRecord(name: "carol", publicKey: "MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk8=", open: [PortOpening(.udp, ports: 53...53)])
        for c in clients + [carol] {
            _ = try allocator.allocate(client: c.name, inPools: GatewayPlanner.poolNames(config))
            _ = try allocator.allocate(client: GatewayPlanner.clatKey(c.name), inPools: [GatewayPlanner.v6Pool, GatewayPlanner.nat64Pool])
        }
        let planner = GatewayPlanner(config: config, tunnelIndex: 7, uplinkIndex: 2, translatorIndex: 9)
        let leases: (String) -> [Lease] = { allocator.leases(of: $0) }
        var live = planner.plan(clients: clients, leases: leases)
        // bob leaves, carol comes, alice's openings change: each a part out and a part in.
        live.remove(planner.part(clients[1], leases: leases))
        live.add(planner.part(carol, leases: leases))
        var alice = clients[0]
        live.remove(planner.part(alice, leases: leases))
        alice.open = [PortOpening(.tcp, ports: 80...80)]
        live.add(planner.part(alice, leases: leases))
        var whole = planner.plan(clients: [alice, carol], leases: leases)
        // The translator's mappings are a table: compared as sets.
        #expect(Set(live.translatorMappings) == Set(whole.translatorMappings))
        live.translatorMappings = []; whole.translatorMappings = []
        #expect(live == whole)
        #expect(live.firewall?.hosts.map(\.name) == ["alice", "carol"])
    }
}

