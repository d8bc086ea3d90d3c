// The gateway's planner (issue 27): a pure function from the configuration, the enrolled clients
// and their leases (plus the few facts only the kernel knows, such as interface indices) to
// everything that should exist: addresses, routes, proxy entries, sysctls, NAT44 rules, the
// firewall policy, the WireGuard peers, the translator's mappings and the responder's list.
// It touches nothing; `Gateway` hands `kernel` to RouteKit's `KernelReconciler` and the rest to
// the devices. Unit-tested without root (Tests/TunnelGatewayTests/GatewayPlannerTests.swift).
import AddressPool
import PacketKit
import RouteKit
import Translator
import TunnelCore

/// What should exist for one configuration and set of clients.
public struct GatewayPlan: Sendable, Equatable {
    /// Addresses, routes, proxy entries and sysctls, for `KernelReconciler`.
    public var kernel = KernelState()
    /// One peer per client: its own leases and its CLAT's as allowed IPs (never a NAT64 address,
    /// which is the translator's to send from). No endpoint: the device learns it.
    public var peers: [String: PeerConfiguration] = [:]
    /// Every client host address (/128): what the NDP responder answers for, in responder mode.
    public var hostAddresses: Set<IPv6Address> = []
    /// NAT44 (`nat44 = true`): the IPv4 pool and the NAT64 pool masqueraded on the uplink.
    public var masquerade: [MasqueradeRule] = []
    /// The forward filter (`firewall = "on"`), nil when off.
    public var firewall: ForwardPolicy?
    /// NAT64: each client's host address to its NAT64 address, and its CLAT's.
    public var translatorMappings: [ExplicitMapping] = []
    /// NPTv6 (`npt_prefix`): each client's host address and its outside twins.
    public var npt: Set<NPTPair> = []
}

/// One client's share of a plan.
public struct ClientPlanPart: Sendable, Equatable {
    public var name: String
    public var kernel = KernelState()
    public var hostAddresses: Set<IPv6Address> = []
    public var peer: PeerConfiguration?
    public var host: ProtectedHost?
    public var mappings: [ExplicitMapping] = []
    public var npt: Set<NPTPair> = []
}

extension GatewayPlan {
    /// Puts a client's part in (plans are built client by client, in name order).
    public mutating func add(_ p: ClientPlanPart) {
        kernel.formUnion(p.kernel)
        hostAddresses.formUnion(p.hostAddresses)
        peers[p.name] = p.peer
        if let h = p.host, firewall != nil {
            // Kept sorted by name: a binary search, then one insertion.
            let i = hostIndex(h.name)
            if i < firewall!.hosts.count, firewall!.hosts[i].name == h.name { firewall!.hosts[i] = h } else { firewall!.hosts.insert(h, at: i) }
        }
        translatorMappings += p.mappings
        npt.formUnion(p.npt)
    }

    /// Where `name` is, or would go, in the firewall's hosts (sorted by name).
    func hostIndex(_ name: String) -> Int {
        guard let hosts = firewall?.hosts else { return 0 }
        var lo = 0, hi = hosts.count
        while lo < hi { let mid = (lo + hi) / 2; if hosts[mid].name < name { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    /// Takes a client's part out.
    public mutating func remove(_ p: ClientPlanPart) {
        kernel.subtract(p.kernel)
        hostAddresses.subtract(p.hostAddresses)
        peers[p.name] = nil
        if firewall != nil {
            let i = hostIndex(p.name)
            if i < firewall!.hosts.count, firewall!.hosts[i].name == p.name { firewall!.hosts.remove(at: i) }
        }
        if !p.mappings.isEmpty { translatorMappings.removeAll { p.mappings.contains($0) } }
        npt.subtract(p.npt)
    }
}

/// Plans a gateway. The facts are read by the caller (from the kernel) before planning.
public struct GatewayPlanner: Sendable {
    public var config: GatewayConfiguration
    /// The TUN device's and the uplink's interface indices.
    public var tunnelIndex: Int32
    public var uplinkIndex: Int32
    /// The NAT64 translator's interface index, once it exists.
    public var translatorIndex: Int32?
    /// The ISP router is not on-link on the uplink (hosts mode): a host route to it is needed.
    public var ispRouteNeeded = false
    /// Earlier client prefixes still valid after a renumbering (issue 24): each client's lease at
    /// the same position in them is still routed, proxied, allowed and let through the firewall.
    public var retiring: [IPv6Prefix] = []

    public init(config: GatewayConfiguration, tunnelIndex: Int32, uplinkIndex: Int32, translatorIndex: Int32? = nil, ispRouteNeeded: Bool = false,
                retiring: [IPv6Prefix] = []) {
        self.config = config
        self.tunnelIndex = tunnelIndex
        self.uplinkIndex = uplinkIndex
        self.translatorIndex = translatorIndex
        self.ispRouteNeeded = ispRouteNeeded
        self.retiring = retiring
    }

    /// Where a client's host address is seen from the ISP's side: itself, or with NPTv6 its
    /// translation into the client prefix and each retiring one (RFC 6296).
    public func outsideAddresses(_ a: IPv6Address) -> [IPv6Address] {
        guard let inside = config.nptPrefix else { return [a] }
        return ([config.ipv6Prefix] + retiring).compactMap { NPTv6Mapping(inside: inside, outside: $0)?.outbound(a) }
    }

    /// A client's leases in the retiring prefixes, at their positions.
    public func retiringLeases(_ own: [Lease]) -> [IPv6Prefix] {
        guard !retiring.isEmpty else { return [] }
        return own.flatMap { l -> [IPv6Prefix] in
            guard l.pool == Self.v6Pool, case .v6(let p) = l.prefix else { return [] }
            return retiring.compactMap { PrefixState.position(p, of: config.ipv6Prefix, in: $0) }
        }
    }

    public static let v6Pool = "ipv6", v4Pool = "ipv4", nat64Pool = "nat64"

    /// The lease key of a client's CLAT address and its NAT64 address ('#' is not allowed in names).
    public static func clatKey(_ name: String) -> String { name + "#clat" }

    /// The route to the ISP router through the uplink.
    public var ispRoute: Route { Route(destination: .v6(IPv6Prefix(containing: config.effectiveISPRouter, length: 128)), interfaceIndex: uplinkIndex) }

    /// The plan for `clients`, with `leases(name)` giving a lease key's active leases (a client's
    /// name, or `clatKey(name)`): the gateway's own part and each client's.
    public func plan(clients: [ClientRecord], leases: (String) -> [Lease]) -> GatewayPlan {
        var plan = base()
        for c in clients.sorted(by: { $0.name < $1.name }) { plan.add(part(c, leases: leases)) }
        return plan
    }

    /// What does not depend on the clients: the gateway's addresses, sysctls, the ISP and
    /// translator routes, NAT44, the firewall's frame.
    public func base() -> GatewayPlan {
        var plan = GatewayPlan()
        var k = KernelState()
        // The gateway's own addresses on the TUN (the IPv4 pool's connected route comes with its address).
        k.addresses.insert(InterfaceAddress(interfaceIndex: tunnelIndex, address: .v6(config.effectiveGatewayAddress), prefixLength: 128, flags: InterfaceAddress.noDAD))
        if let gw = config.effectiveIPv4Gateway, let pool = config.ipv4Pool {
            k.addresses.insert(InterfaceAddress(interfaceIndex: tunnelIndex, address: .v4(gw), prefixLength: pool.length))
        }
        if let key = try? SysctlKey.ipv6Forwarding(.all) { k.sysctls[key] = 1 }
        if config.ipv4Pool != nil || config.nat64 != nil { k.sysctls[.ipv4Forwarding] = 1 }
        if config.ndpProxy == .kernel, let key = try? SysctlKey.proxyNDP(.interface(config.uplink)) { k.sysctls[key] = 1 }
        if ispRouteNeeded { k.routes.insert(ispRoute) }
        if let n = config.nat64, let index = translatorIndex {
            k.routes.insert(Route(destination: .v6(n.prefix), interfaceIndex: index))
            k.routes.insert(Route(destination: .v4(n.pool), interfaceIndex: index))
        }
        if config.nat44 {
            plan.masquerade = [config.ipv4Pool, config.nat64?.pool].compactMap { $0 }.map { MasqueradeRule(source: $0, outInterface: config.uplink) }
        }
        if config.firewall {
            var policy = ForwardPolicy(interface: config.interface, inboundEcho: config.inboundEcho, isolateHosts: config.isolateClients, hosts: [])
            // The gateway host itself is closed to its clients but for what they need (issue 30),
            // and it never sends them redirects.
            policy.localOpenings = config.effectiveGatewayOpen
            policy.dropRedirects = true
            plan.firewall = policy
        }
        plan.kernel = k
        return plan
    }

    /// One client's part: its routes, proxy entries, host addresses, peer, firewall host and
    /// translator mappings. A change of one client is its old part taken out of the plan and its
    /// new part put in (`GatewayPlan.remove`, `add`): work for that client only.
    public func part(_ c: ClientRecord, leases: (String) -> [Lease]) -> ClientPlanPart {
        var part = ClientPlanPart(name: c.name)
        let own = leases(c.name), clat = config.nat64?.clat == true ? leases(Self.clatKey(c.name)) : []
        let routed = (own + clat).filter { $0.pool != Self.nat64Pool }
        // The client's own leases in earlier prefixes (not its CLAT's: the translator maps the new
        // one). With NPTv6 its address does not change: only the outside twins do (below).
        let earlier = config.nptPrefix == nil ? retiringLeases(own).map { IPPrefix.v6($0) } : []
        if let key = Bytes32(base64: c.publicKey) {
            part.peer = PeerConfiguration(publicKey: key, allowedIPs: routed.map(\.prefix) + earlier)
        }
        for (prefix, own) in routed.map({ ($0.prefix, $0.client == c.name) }) + earlier.map({ ($0, true) }) {
            guard case .v6(let p) = prefix else { continue }
            part.kernel.routes.insert(Route(destination: .v6(p), interfaceIndex: tunnelIndex))
            // A CLAT address is reached through the translator only: no proxy entry, not a host.
            guard p.length == 128, own else { continue }
            // What the ISP's router asks for on the uplink: the address itself, or with NPTv6 its
            // outside twin in the current prefix and in each one still valid.
            for (i, a) in outsideAddresses(p.network).enumerated() {
                part.hostAddresses.insert(a)
                if config.ndpProxy == .kernel { part.kernel.proxyEntries.insert(ProxyEntry(a, interfaceIndex: uplinkIndex)) }
                if config.nptPrefix != nil { part.npt.insert(NPTPair(inside: p.network, outside: a, outbound: i == 0)) }
            }
        }
        if config.firewall { part.host = ProtectedHost(name: c.name, prefixes: routed.map(\.prefix) + earlier, openings: c.open, isolated: c.isolated) }
        if config.nat64 != nil {
            for set in [own, clat] { if let m = Self.mapping(set) { part.mappings.append(m) } }
        }
        return part
    }

    /// A lease key's host address and NAT64 address as one explicit mapping, when it has both.
    static func mapping(_ leases: [Lease]) -> ExplicitMapping? {
        var v6: IPv6Address?, v4: IPv4Address?
        for l in leases {
            switch l.prefix {
            case .v6(let p) where l.pool == v6Pool && p.length == 128: v6 = p.network
            case .v4(let p) where l.pool == nat64Pool: v4 = p.network
            default: break
            }
        }
        guard let v6, let v4 else { return nil }
        return ExplicitMapping(ipv4: v4, ipv6: v6)
    }

    /// The translator's settings for `mappings`: toward clients the tunnel's MTU, toward IPv4 the
    /// uplink's Ethernet.
    public func translatorConfiguration(_ n: NAT64Settings, mappings: [ExplicitMapping]) -> TranslatorConfiguration {
        TranslatorConfiguration(prefix: n.prefix, explicitMappings: mappings, ipv6MTU: Int(config.mtu), ipv4MTU: 1500,
                                lowestIPv6MTU: n.lowestIPv6MTU ?? Int(config.mtu), ipv4Address: n.translatorAddress, ipv6Address: config.effectiveGatewayAddress,
                                computeZeroUDPChecksum: n.amendZeroUDPChecksum, errorsPerSecond: n.errorsPerSecond)
    }

    /// The address pools: the clients' IPv6 (hosts or prefixes), IPv4 and NAT64 pools, with the
    /// gateway's, the ISP router's and the uplink's addresses and `reserved` kept out.
    public static func pools(_ c: GatewayConfiguration) -> [PoolConfiguration] {
        var reserved: [IPPrefix] = [.v6(IPv6Prefix(containing: c.effectiveGatewayAddress, length: 128))]
        if c.allocation == .hosts {
            reserved += [c.effectiveISPRouter, c.effectiveUplinkAddress].map { .v6(IPv6Prefix(containing: $0, length: 128)) }
        }
        reserved += c.reservedIPv6.map { .v6($0) }
        // NPTv6: an outside address reserved (the ISP router, the uplink) keeps its inside twin out.
        if let m = c.nptMapping {
            reserved = reserved.map { r in
                guard case .v6(let q) = r, q.length == 128, m.outside.contains(q.network), let twin = m.inbound(q.network) else { return r }
                return .v6(IPv6Prefix(containing: twin, length: 128))
            }
        }
        let inside = reserved.filter { if case .v6(let q) = $0 { c.poolPrefix.contains(q) } else { false } }
        let kind: PoolKind = c.allocation == .prefixes ? .ipv6Prefixes(length: c.delegatedLength) : c.ipv6Addresses.isEmpty ? .ipv6Hosts : .ipv6Addresses(c.ipv6Addresses)
        var pools = [PoolConfiguration(name: v6Pool, prefix: .v6(c.poolPrefix), kind: kind, reserved: inside)]
        if let pool = c.ipv4Pool, let gw = c.effectiveIPv4Gateway {
            pools.append(PoolConfiguration(name: v4Pool, prefix: .v4(pool), kind: .ipv4Hosts, reserved: [.v4(IPv4Prefix(containing: gw, length: 32))]))
        }
        if let n = c.nat64 {
            pools.append(PoolConfiguration(name: nat64Pool, prefix: .v4(n.pool), kind: .ipv4Hosts,
                                           reserved: [.v4(IPv4Prefix(containing: n.translatorAddress, length: 32))]))
        }
        return pools
    }

    /// The pools a client's own leases come from.
    public static func poolNames(_ c: GatewayConfiguration) -> [String] {
        [v6Pool] + (c.ipv4Pool == nil ? [] : [v4Pool]) + (c.nat64 == nil ? [] : [nat64Pool])
    }
}
