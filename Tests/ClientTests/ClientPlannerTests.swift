// The client's planner without root: configuration + lease + host facts → addresses, routes, sysctls.
import PacketKit
import RouteKit
import Testing
@testable import TunnelClient

@Suite struct ClientPlannerTests {
    func lease(v6: String? = "2001:db8:1::4/128", v4: String? = "100.64.0.2/32", routes: [String] = []) -> LeaseMessage {
        var l = LeaseMessage(kind: .reply, transaction: 1)
        if let v6, let p = IPv6Prefix(v6) { l.ipv6 = AddressAssignment(.v6(p.network), prefixLength: p.length) }
        if let v4, let p = IPv4Prefix(v4) { l.ipv4 = AddressAssignment(.v4(p.network), prefixLength: p.length) }
        l.routes = routes.compactMap { IPPrefix($0) }
        return l
    }
    func route(_ p: String, _ index: Int32, via: String? = nil) -> Route { Route(destination: IPPrefix(p)!, interfaceIndex: index, gateway: via.flatMap { IPAddress($0) }) }
    var forwarding: SysctlKey { try! .ipv6Forwarding(.all) }
    /// eth0 (2) holds both default routes.
    var busyHost: ClientHostRoutes {
        ClientHostRoutes(defaultRoutes: [true: [route("::/0", 2, via: "fe80::1")], false: [route("0.0.0.0/0", 2, via: "198.51.100.1")]], interfaceNames: [2: "eth0", 7: "sixgate0"])
    }

    @Test func hostModeOnAnEmptyHostTakesBothDefaults() throws {
        let p = try ClientPlanner(config: ClientConfiguration(), tunnelIndex: 7).plan(lease(), host: ClientHostRoutes())
        #expect(p.kernel.addresses == [InterfaceAddress(interfaceIndex: 7, address: .v6(IPv6Address("2001:db8:1::4")!), prefixLength: 128, flags: InterfaceAddress.noDAD),
                                       InterfaceAddress(interfaceIndex: 7, address: .v4(IPv4Address("100.64.0.2")!), prefixLength: 32)])
        #expect(p.kernel.routes == [route("::/0", 7), route("0.0.0.0/0", 7)])
        #expect(p.defaultFamilies == [true, false], "both families need the endpoint's bypass route")
        #expect(p.kernel.sysctls.isEmpty && p.lanPrefix == nil)
    }

    @Test func anIPv6DefaultHeldElsewhereIsRefusedUnlessTold() throws {
        var config = ClientConfiguration()
        #expect(throws: ClientError.self) { try ClientPlanner(config: config, tunnelIndex: 7).plan(lease(), host: busyHost) }
        do {
            _ = try ClientPlanner(config: config, tunnelIndex: 7).plan(lease(), host: busyHost)
        } catch {
            #expect(error.isFatal)
            #expect(error.description.contains("held by eth0 via fe80::1") && error.description.contains("replace_default_route"), "\(error)")
        }
        // IPv4 alone: the carrier's default route is the normal case, shadowed by two halves.
        let v4only = try ClientPlanner(config: config, tunnelIndex: 7).plan(lease(v6: nil), host: busyHost)
        #expect(v4only.kernel.routes == [route("0.0.0.0/1", 7), route("128.0.0.0/1", 7)])
        config.replaceDefaultRoute = true
        let both = try ClientPlanner(config: config, tunnelIndex: 7).plan(lease(), host: busyHost)
        #expect(both.kernel.routes == [route("::/1", 7), route("8000::/1", 7), route("0.0.0.0/1", 7), route("128.0.0.0/1", 7)])
    }

    @Test func offeredRoutesAndChosenPrefixes() throws {
        var config = ClientConfiguration()
        // The gateway offers less than everything: that is taken, and no default (no bypass needed).
        let offered = try ClientPlanner(config: config, tunnelIndex: 7).plan(lease(routes: ["2001:db8::/32", "10.9.0.0/16"]), host: busyHost)
        #expect(offered.kernel.routes == [route("2001:db8::/32", 7), route("10.9.0.0/16", 7)])
        #expect(offered.defaultFamilies.isEmpty)
        config.ipv6Routes = .prefixes([IPPrefix("2001:db8:aa::/48")!])
        config.ipv4Routes = .none
        let chosen = try ClientPlanner(config: config, tunnelIndex: 7).plan(lease(), host: busyHost)
        #expect(chosen.kernel.routes == [route("2001:db8:aa::/48", 7)])
    }

    @Test func routerModePutsTheFirst64OnTheLANAndForwards() throws {
        var config = ClientConfiguration()
        config.router = RouterSettings(interface: "lan0")
        config.ipv4Routes = .none
        let p = try ClientPlanner(config: config, tunnelIndex: 7, lanIndex: 3).plan(lease(v6: "2001:db8:100::/56", v4: nil), host: ClientHostRoutes())
        #expect(p.lanPrefix == IPv6Prefix("2001:db8:100::/64"))
        #expect(p.kernel.addresses == [InterfaceAddress(interfaceIndex: 3, address: .v6(IPv6Address("2001:db8:100::1")!), prefixLength: 64, flags: InterfaceAddress.noDAD)])
        #expect(p.kernel.sysctls == [forwarding: 1])
        #expect(p.kernel.routes == [route("::/0", 7)])
        // A single address cannot be advertised: said, and nothing forwarded.
        let single = try ClientPlanner(config: config, tunnelIndex: 7, lanIndex: 3).plan(lease(v4: nil), host: ClientHostRoutes())
        #expect(single.lanPrefix == nil && single.kernel.sysctls.isEmpty)
        #expect(single.notes.first?.contains("nothing to advertise on lan0") == true)
        // Host mode with a prefix: ::1 of it on the TUN.
        config.router = nil
        let host = try ClientPlanner(config: config, tunnelIndex: 7).plan(lease(v6: "2001:db8:100::/56", v4: nil), host: ClientHostRoutes())
        #expect(host.kernel.addresses.map(\.description) == ["2001:db8:100::1/128"])
    }

    @Test func anEarlierLeaseStaysDeprecatedBesideTheNewOne() throws {
        // Host mode: the old /128 on the TUN, deprecated; the new one preferred.
        var l = lease(v6: "2001:db8:2::4/128", v4: nil)
        l.deprecated = [DeprecatedAssignment(IPv6Address("2001:db8:1::4")!, prefixLength: 128, validLifetime: 60)]
        let p = try ClientPlanner(config: ClientConfiguration(), tunnelIndex: 7).plan(l, host: ClientHostRoutes())
        #expect(p.kernel.addresses == [InterfaceAddress(interfaceIndex: 7, address: .v6(IPv6Address("2001:db8:2::4")!), prefixLength: 128, flags: InterfaceAddress.noDAD),
                                       InterfaceAddress(interfaceIndex: 7, address: .v6(IPv6Address("2001:db8:1::4")!), prefixLength: 128, flags: InterfaceAddress.noDAD, deprecated: true)])
        // Router mode: the old LAN /64's ::1 deprecated on the LAN, and the old /64 to advertise deprecated.
        var config = ClientConfiguration()
        config.router = RouterSettings(interface: "lan0")
        config.ipv4Routes = .none
        var d = lease(v6: "2001:db8:200::/56", v4: nil)
        d.deprecated = [DeprecatedAssignment(IPv6Address("2001:db8:100::")!, prefixLength: 56, validLifetime: 60)]
        let r = try ClientPlanner(config: config, tunnelIndex: 7, lanIndex: 3).plan(d, host: ClientHostRoutes())
        #expect(r.lanPrefix == IPv6Prefix("2001:db8:200::/64") && r.deprecatedLANPrefixes == [IPv6Prefix("2001:db8:100::/64")!])
        #expect(r.kernel.addresses.contains(InterfaceAddress(interfaceIndex: 3, address: .v6(IPv6Address("2001:db8:100::1")!), prefixLength: 64, flags: InterfaceAddress.noDAD, deprecated: true)))
        // The vetting: an entry overlapping the current lease, or not unicast, is left out and said.
        var bad = lease(v6: "2001:db8:2::4/128", v4: nil)
        bad.deprecated = [DeprecatedAssignment(IPv6Address("2001:db8:2::4")!, prefixLength: 128, validLifetime: 60),
                          DeprecatedAssignment(IPv6Address("ff02::1")!, prefixLength: 128, validLifetime: 60),
                          DeprecatedAssignment(IPv6Address("2001:db8:1::4")!, prefixLength: 128, validLifetime: 60)]
        let vetted = ClientConfiguration().vet(bad, host: HostFacts())
        #expect(vetted.lease.deprecated.map(\.address) == [IPv6Address("2001:db8:1::4")!])
        #expect(vetted.refused.count == 2, "\(vetted.refused)")
    }

    @Test func clatTakesIPv4ThroughItsInterface() throws {
        var config = ClientConfiguration()
        config.clat = CLATSettings(interface: "clat0")
        let clat = CLATPlacement(ipv4: IPv4Address("192.0.0.2")!, ipv6: IPv6Address("2001:db8:1::5")!, prefix: IPv6Prefix("64:ff9b::/96")!, interfaceIndex: 9)
        let p = try ClientPlanner(config: config, tunnelIndex: 7, clat: clat).plan(lease(v4: nil), host: ClientHostRoutes())
        #expect(p.kernel.addresses.contains(InterfaceAddress(interfaceIndex: 9, address: .v4(IPv4Address("192.0.0.2")!), prefixLength: 32)))
        #expect(p.kernel.routes == [route("::/0", 7), route("2001:db8:1::5/128", 9), route("64:ff9b::/96", 7), route("0.0.0.0/0", 9)])
        #expect(p.kernel.sysctls == [forwarding: 1], "replies for the CLAT are forwarded from the tunnel into its interface")
        #expect(p.defaultFamilies == [true, false])
    }

    @Test func fixedAddressesAreInstalledAsWritten() throws {
        var config = ClientConfiguration()
        config.addresses = .fixed(addresses: [AddressAssignment(.v6(IPv6Address("2001:db8::2")!), prefixLength: 64)], dns: [])
        var l = lease(v4: nil)
        l.ipv6 = AddressAssignment(.v6(IPv6Address("2001:db8::2")!), prefixLength: 64)
        let extra = [AddressAssignment(.v6(IPv6Address("2001:db8::9")!), prefixLength: 64)]
        let p = try ClientPlanner(config: config, tunnelIndex: 7).plan(l, extraAddresses: extra, host: ClientHostRoutes())
        #expect(Set(p.kernel.addresses.map(\.description)) == ["2001:db8::2/64", "2001:db8::9/64"])
    }
}
