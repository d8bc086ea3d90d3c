// The lease is untrusted input (docs/security.md): a gateway — or whoever holds its key — must not
// be able to rewrite this host's routing table, advertise nonsense on its LAN or hand its hooks
// values outside their RFC ranges. `vet` is pure (the kernel facts come in as values): it keeps what
// the config and the RFCs allow, and says why it left the rest out. What it refuses is logged and
// reported to the gateway (a notice, docs/lease-protocol.md).
import PacketKit
import RouteKit

/// What this host looks like to the vetting: facts read from the kernel.
public struct HostFacts: Sendable, Equatable {
    /// Networks on this host's own interfaces (connected routes, not the tunnel's).
    public var connected: [IPPrefix]
    /// The gateway's endpoint.
    public var endpoint: IPAddress?
    /// Whether another interface holds the IPv6 (`true`) / IPv4 (`false`) default route.
    public var defaultHeldElsewhere: Set<Bool>
    /// Destinations this host already routes through other interfaces (never displaced).
    public var routed: [IPPrefix]

    public init(connected: [IPPrefix] = [], endpoint: IPAddress? = nil, defaultHeldElsewhere: Set<Bool> = [], routed: [IPPrefix] = []) {
        self.connected = connected
        self.endpoint = endpoint
        self.defaultHeldElsewhere = defaultHeldElsewhere
        self.routed = routed
    }
}

/// A vetted lease: what may be installed, and a reason for each thing left out.
public struct VettedLease: Sendable, Equatable {
    public var lease: LeaseMessage
    public var refused: [String]
}

extension ClientConfiguration {
    /// Prefixes shorter than this (IPv6 /16, IPv4 /8) act as default routes ("::/1 + 8000::/1"), and
    /// are taken only where a default route would be.
    static func isDefaultLike(_ p: IPPrefix) -> Bool { p.length > 0 && p.length < (p.network.isV6 ? 16 : 8) }

    /// A unicast address a host may use or be pointed at: not unspecified, loopback, multicast,
    /// link-local (no zone in a lease), broadcast, "this network" or IPv4-mapped.
    public static func isUsableUnicast(_ a: IPAddress) -> Bool {
        switch a {
        case .v6(let v):
            let mapped = v.rawValue >> 32 == 0xffff
            return !(v.isUnspecified || v.isLoopback || v.isMulticast || v.isLinkLocal || mapped)
        case .v4(let v):
            return !(v.rawValue >> 24 == 0 || v.isLoopback || v.isMulticast || v.isLinkLocal || v.rawValue >> 28 == 0xF)
        }
    }

    /// Keeps what `lease` may install on this host, given the config and `host`.
    public func vet(_ lease: LeaseMessage, host: HostFacts) -> VettedLease {
        var l = lease
        var refused: [String] = []
        func no(_ s: String) { refused.append(s) }

        if let a = l.ipv6 {
            if !Self.isUsableUnicast(a.address) || !a.address.isV6 {
                no("IPv6 address \(a): not a unicast address a host can use"); l.ipv6 = nil
            } else if a.prefixLength != 128 && !(32...64).contains(a.prefixLength) {
                no("IPv6 \(a): a lease is a /128 or a delegated /32-/64"); l.ipv6 = nil
            }
        }
        // Earlier leases kept deprecated after a renumbering: unicast, a lease's length, not the
        // current lease, at most 7 days.
        l.deprecated = lease.deprecated.filter { d in
            if !Self.isUsableUnicast(.v6(d.address)) || (d.prefixLength != 128 && !(32...64).contains(d.prefixLength)) {
                no("deprecated IPv6 \(d): not a unicast /128 or /32-/64"); return false
            }
            if let a = l.ipv6, case .v6(let x) = a.address, IPv6Prefix(containing: x, length: a.prefixLength).contains(d.address) || d.prefix.contains(x) {
                no("deprecated IPv6 \(d): overlaps the current lease \(a)"); return false
            }
            if d.validLifetime > 604_800 { no("deprecated IPv6 \(d): valid lifetime above 7 days"); return false }
            return true
        }
        if let a = l.ipv4 {
            if !Self.isUsableUnicast(a.address) || a.address.isV6 {
                no("IPv4 address \(a): not a unicast address a host can use"); l.ipv4 = nil
            } else if a.prefixLength != 32 {
                // Installed with its length, an address brings a connected route for its whole prefix
                // (203.0.113.5/1 routed half the internet): only the host length is taken.
                no("IPv4 \(a): taken as \(a.address)/32 (an address with a shorter length would route \(IPPrefix(host: a.address).network)/\(a.prefixLength))")
                l.ipv4 = AddressAssignment(a.address, prefixLength: 32)
            }
        }
        // Routes (what `routes = "default"` takes from the lease).
        let own = [l.ipv6.map { IPPrefix(host: $0.address).widened(to: $0.prefixLength) }].compactMap { $0 }
        l.routes = lease.routes.filter { r in
            let family = r.network.isV6 ? "IPv6" : "IPv4"
            if r.length == 0 { return true }   // the default route: routes.ipv6/ipv4 and replace_default_route decide
            if let accept = acceptRoutes, !accept.contains(where: { $0.network.isV6 == r.network.isV6 && $0.length <= r.length && $0.contains(r.network) }) {
                no("route \(r): outside accept_routes"); return false
            }
            if Self.isDefaultLike(r), !replaceDefaultRoute, host.defaultHeldElsewhere.contains(r.network.isV6) {
                no("route \(r): as wide as a default route, and another interface holds the \(family) default (replace_default_route = false)"); return false
            }
            if let ep = host.endpoint, r.contains(ep) {
                no("route \(r): covers the gateway's endpoint \(ep) (the tunnel would carry itself)"); return false
            }
            if host.routed.contains(r) {
                no("route \(r): this host routes it through another interface already (left as it is)"); return false
            }
            // A default-wide prefix covers every network, as ::/0 does; the connected ones stay more
            // specific. Any other prefix that overlaps one would take over or split the host's own network.
            if !Self.isDefaultLike(r), let net = host.connected.first(where: { c in c.overlaps(r) && !own.contains(where: { o in o.overlaps(c) }) }) {
                no("route \(r): overlaps \(net), a network on this host's own interfaces"); return false
            }
            return true
        }
        if let m = l.mtu, !(1280...65535).contains(m) {
            no("MTU \(m): below IPv6's minimum of 1280 (RFC 8200 §5)"); l.mtu = nil
        }
        l.dnsServers = lease.dnsServers.filter { d in
            if Self.isUsableUnicast(d) { return true }
            no("DNS server \(d): not a unicast address"); return false
        }
        l.gatewayAddresses = lease.gatewayAddresses.filter { Self.isUsableUnicast($0) }
        if let p = l.nat64Prefix, ![32, 40, 48, 56, 64, 96].contains(p.length) || !Self.isUsableUnicast(.v6(p.network)) {
            no("NAT64 prefix \(p): RFC 6052 allows /32, /40, /48, /56, /64 or /96 of unicast space"); l.nat64Prefix = nil
        }
        if let c = l.clatAddress, !Self.isUsableUnicast(.v6(c)) || l.ipv6.map({ $0.address == .v6(c) }) == true {
            no("CLAT address \(c): not a unicast address of its own"); l.clatAddress = nil
        }
        if let t = l.lifetime, !(30...604_800).contains(t) {
            no("lifetime \(t) s: outside 30 s-7 days (asked again at half of 3600 s)"); l.lifetime = nil
        }
        return VettedLease(lease: l, refused: refused)
    }
}

extension IPPrefix {
    /// The prefix of `length` containing this prefix's network.
    func widened(to length: UInt8) -> IPPrefix {
        switch self {
        case .v6(let p): return .v6(IPv6Prefix(containing: p.network, length: length))
        case .v4(let p): return .v4(IPv4Prefix(containing: p.network, length: min(length, 32)))
        }
    }
}
