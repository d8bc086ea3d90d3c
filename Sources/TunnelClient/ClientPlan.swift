// The client's planner (issue 27): a pure function from the configuration, a lease and a few facts
// about the host (who holds a default route, interface names and indices, the CLAT when it runs)
// to the addresses, routes and sysctls that should exist. `SixgateClient` adds the bypass route for
// the endpoint (a kernel lookup) and hands the result to RouteKit's `KernelReconciler`.
// Unit-tested without root (Tests/ClientTests/ClientPlannerTests.swift).
import PacketKit
import RouteKit

/// What should exist for one lease.
public struct ClientPlan: Sendable, Equatable {
    /// Addresses, routes and sysctls (without the endpoint's bypass route).
    public var kernel = KernelState()
    /// Router mode: the first /64 of a delegated prefix, on the LAN and advertised there.
    public var lanPrefix: IPv6Prefix?
    /// Router mode after a renumbering: the earlier LAN prefixes, advertised deprecated.
    public var deprecatedLANPrefixes: [IPv6Prefix] = []
    /// The families (true: IPv6) whose default route now goes into the tunnel or the CLAT: the
    /// endpoint, if of such a family, needs a host route outside the tunnel.
    public var defaultFamilies: Set<Bool> = []
    /// Things to say (once per lease), e.g. router mode given a single address.
    public var notes: [String] = []
}

/// The host's facts the planner needs, read from the kernel by the caller.
public struct ClientHostRoutes: Sendable, Equatable {
    /// Default routes of other interfaces (not the tunnel's, not the CLAT's), by family (true: IPv6).
    public var defaultRoutes: [Bool: [Route]] = [:]
    /// Interface names by index, for messages.
    public var interfaceNames: [Int32: String] = [:]
    public init(defaultRoutes: [Bool: [Route]] = [:], interfaceNames: [Int32: String] = [:]) {
        self.defaultRoutes = defaultRoutes
        self.interfaceNames = interfaceNames
    }
}

/// The CLAT as it runs: its IPv4 address, its IPv6 address, the NAT64 prefix, its interface.
public struct CLATPlacement: Sendable, Equatable {
    public var ipv4: IPv4Address
    public var ipv6: IPv6Address
    public var prefix: IPv6Prefix
    public var interfaceIndex: Int32
    public init(ipv4: IPv4Address, ipv6: IPv6Address, prefix: IPv6Prefix, interfaceIndex: Int32) {
        self.ipv4 = ipv4; self.ipv6 = ipv6; self.prefix = prefix; self.interfaceIndex = interfaceIndex
    }
}

public struct ClientPlanner: Sendable {
    public var config: ClientConfiguration
    public var tunnelIndex: Int32
    /// Router mode's LAN interface (0 otherwise).
    public var lanIndex: Int32
    public var clat: CLATPlacement?

    public init(config: ClientConfiguration, tunnelIndex: Int32, lanIndex: Int32 = 0, clat: CLATPlacement? = nil) {
        self.config = config
        self.tunnelIndex = tunnelIndex
        self.lanIndex = lanIndex
        self.clat = clat
    }

    /// The plan for `lease` (plus `extraAddresses`, a wg-quick config's further addresses).
    /// Throws (fatal) when the lease would take an IPv6 default route another interface holds and
    /// the config does not allow replacing it.
    public func plan(_ lease: LeaseMessage, extraAddresses: [AddressAssignment] = [], host: ClientHostRoutes) throws(ClientError) -> ClientPlan {
        var plan = ClientPlan()
        var addresses: [InterfaceAddress] = []
        if let v6 = lease.ipv6, case .v6(let a) = v6.address {
            if case .fixed = config.addresses {
                // Fixed addresses are installed as written (a wg-quick "Address = 2001:db8::2/64").
                addresses.append(InterfaceAddress(interfaceIndex: tunnelIndex, address: .v6(a), prefixLength: v6.prefixLength, flags: InterfaceAddress.noDAD))
            } else if v6.prefixLength < 128 {
                // A delegated prefix: its first /64 on the LAN (router mode), ::1 of it on the TUN otherwise.
                let p64 = IPv6Prefix(containing: a, length: max(64, v6.prefixLength))
                let first = IPv6Address(rawValue: p64.network.rawValue | 1)
                if config.router != nil {
                    plan.lanPrefix = p64
                    addresses.append(InterfaceAddress(interfaceIndex: lanIndex, address: .v6(first), prefixLength: p64.length, flags: InterfaceAddress.noDAD))
                } else {
                    addresses.append(InterfaceAddress(interfaceIndex: tunnelIndex, address: .v6(first), prefixLength: 128, flags: InterfaceAddress.noDAD))
                }
            } else {
                addresses.append(InterfaceAddress(interfaceIndex: tunnelIndex, address: .v6(a), prefixLength: 128, flags: InterfaceAddress.noDAD))
            }
        }
        // Earlier leases (a renumbered gateway) where the current one goes, deprecated: connections
        // on them go on, new ones start from the new lease (RFC 4862 §5.5.4).
        if case .lease = config.addresses {
            for d in lease.deprecated where d.validLifetime > 0 {
                if d.prefixLength < 128 {
                    let p64 = IPv6Prefix(containing: d.address, length: max(64, d.prefixLength))
                    let first = IPv6Address(rawValue: p64.network.rawValue | 1)
                    if config.router != nil && plan.lanPrefix != nil {
                        plan.deprecatedLANPrefixes.append(p64)
                        addresses.append(InterfaceAddress(interfaceIndex: lanIndex, address: .v6(first), prefixLength: p64.length, flags: InterfaceAddress.noDAD, deprecated: true))
                    } else {
                        addresses.append(InterfaceAddress(interfaceIndex: tunnelIndex, address: .v6(first), prefixLength: 128, flags: InterfaceAddress.noDAD, deprecated: true))
                    }
                } else {
                    addresses.append(InterfaceAddress(interfaceIndex: tunnelIndex, address: .v6(d.address), prefixLength: 128, flags: InterfaceAddress.noDAD, deprecated: true))
                }
            }
        }
        if let v4 = lease.ipv4 { addresses.append(InterfaceAddress(interfaceIndex: tunnelIndex, address: v4.address, prefixLength: v4.prefixLength)) }
        for a in extraAddresses {
            addresses.append(InterfaceAddress(interfaceIndex: tunnelIndex, address: a.address, prefixLength: a.prefixLength, flags: a.address.isV6 ? InterfaceAddress.noDAD : 0))
        }
        if let router = config.router, let v6 = lease.ipv6, plan.lanPrefix == nil {
            plan.notes.append("router mode: the lease is a single address (\(v6)), not a prefix: nothing to advertise on \(router.interface)")
        }
        // Routes: per family, only when the client has an address of that family.
        var routes: [Route] = []
        for v6 in [true, false] {
            let hasAddress = addresses.contains { $0.address.isV6 == v6 } || (v6 && plan.lanPrefix != nil)
            guard hasAddress else { continue }
            routes += try self.routes(v6: v6, lease: lease, index: tunnelIndex, host: host, plan: &plan)
        }
        // The CLAT: IPv4 through its interface, its IPv6 address into it, the NAT64 prefix into the tunnel.
        if let c = clat {
            addresses.append(InterfaceAddress(interfaceIndex: c.interfaceIndex, address: .v4(c.ipv4), prefixLength: 32))
            routes.append(Route(destination: .v6(IPv6Prefix(containing: c.ipv6, length: 128)), interfaceIndex: c.interfaceIndex))
            routes.append(Route(destination: .v6(c.prefix), interfaceIndex: tunnelIndex))
            routes += try self.routes(v6: false, lease: lease, index: c.interfaceIndex, host: host, plan: &plan)
        }
        // Router mode forwards between the LAN and the tunnel; so does a CLAT (what comes back
        // for it arrives on the tunnel and is forwarded into its interface).
        if (config.router != nil && plan.lanPrefix != nil) || clat != nil, let key = try? SysctlKey.ipv6Forwarding(.all) { plan.kernel.sysctls[key] = 1 }
        plan.kernel.addresses = Set(addresses)
        plan.kernel.routes = Set(routes)
        return plan
    }

    /// The routes for one family through `index`; notes in `plan` when it takes the default route.
    func routes(v6: Bool, lease: LeaseMessage, index: Int32, host: ClientHostRoutes, plan: inout ClientPlan) throws(ClientError) -> [Route] {
        let selection = v6 ? config.ipv6Routes : config.ipv4Routes
        let zero: IPPrefix = v6 ? .v6(IPv6Prefix(containing: IPv6Address(rawValue: 0), length: 0)) : .v4(IPv4Prefix(containing: IPv4Address(rawValue: 0), length: 0))
        var wanted: [IPPrefix]
        switch selection {
        case .none: return []
        case .prefixes(let p): return p.map { Route(destination: $0, interfaceIndex: index) }
        case .all:
            let offered = lease.routes.filter { $0.network.isV6 == v6 }
            // The gateway may route less than everything (client_prefix_length): take what it offers.
            if !offered.isEmpty, !offered.contains(where: { $0.length == 0 }) {
                return offered.map { Route(destination: $0, interfaceIndex: index) }
            }
            wanted = [zero]
        }
        // The default route: does another interface hold one?
        if let others = host.defaultRoutes[v6], !others.isEmpty {
            // IPv6: re6stnet's rule, refuse unless told. IPv4: the carrier's default route is the
            // normal case (the tunnel rides on it), and "default" in the config is the instruction.
            guard config.replaceDefaultRoute || !v6 else { throw ClientError(.defaultRoute(ipv6: v6), refusal(v6: v6, held: others, names: host.interfaceNames), fatal: true) }
            // Shadow it with two half-space routes: the original stays, and is in force again the
            // moment ours go (on exit, or with the TUN device if the client dies).
            wanted = v6 ? [.v6(IPv6Prefix("::/1")!), .v6(IPv6Prefix("8000::/1")!)] : [.v4(IPv4Prefix("0.0.0.0/1")!), .v4(IPv4Prefix("128.0.0.0/1")!)]
        }
        plan.defaultFamilies.insert(v6)
        return wanted.map { Route(destination: $0, interfaceIndex: index) }
    }

    /// Why the client does not take a default route someone else holds, and the ways out.
    func refusal(v6: Bool, held: [Route], names: [Int32: String]) -> String {
        let holders = held.map { r -> String in
            let name = r.interfaceIndex.flatMap { names[$0] } ?? "interface \(r.interfaceIndex ?? 0)"
            return r.gateway.map { "\(name) via \($0)" } ?? name
        }
        let family = v6 ? "IPv6" : "IPv4"
        var text = "the \(family) default route is held by \(holders.joined(separator: ", ")); tunnel-client does not take it over unless told to. "
            + "Set replace_default_route = true under [routes] (the existing route stays, shadowed by \(v6 ? "::/1 and 8000::/1" : "0.0.0.0/1 and 128.0.0.0/1") through the tunnel, and is back on exit), "
            + "or route only some prefixes (routes.\(v6 ? "ipv6" : "ipv4") = [\"...\"]), or \"none\""
        if v6, let first = held.first, let name = first.interfaceIndex.flatMap({ names[$0] }) {
            text += ". If that route comes from router advertisements and this host forwards (router mode), keep accepting them with: sysctl -w net.ipv6.conf.\(name).accept_ra=2"
        }
        return text
    }
}
