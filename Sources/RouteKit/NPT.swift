// RFC 6296 NPTv6 on the wire, in a table of Sixgate's own (`table ip6 NAME`), one translation per
// host address given by the caller (PacketKit's `NPTv6Mapping` computes the checksum-neutral twin).
// Inbound, the outside address is rewritten to the inside one at priority raw, before connection
// tracking, so conntrack, the routes and the forward filter see inside addresses in both
// directions and a reply is a reply; outbound, the inside source is rewritten after the filter
// (priority srcnat). The kernel's own SNPT/DNPT targets (ip6tables, mangle table) run after
// conntrack has seen the outside address, so replies would look like new inbound connections to
// a stateful firewall: that is why they are not used. Applied atomically with `nft -f`.
import PacketKit

/// One host address and its outside twin; `outbound` false for a twin in a retiring prefix
/// (connections to it still come in; new ones leave from the current prefix).
public struct NPTPair: Hashable, Sendable {
    public var inside: IPv6Address
    public var outside: IPv6Address
    public var outbound: Bool
    public init(inside: IPv6Address, outside: IPv6Address, outbound: Bool = true) {
        self.inside = inside
        self.outside = outside
        self.outbound = outbound
    }
}

/// Sixgate's NPTv6 table.
public struct NPTTable: Sendable {
    public var name: String
    public var namespace: NetworkNamespace
    public init(name: String, namespace: NetworkNamespace = .current) {
        self.name = name
        self.namespace = namespace
    }

    /// The ruleset `apply` loads (the table deleted and made again in one transaction).
    public func ruleset(interface: String, pairs: [NPTPair]) throws(RouteKitError) -> String {
        guard SysctlKey.isValidInterfaceName(interface), !interface.contains("\"") else {
            throw RouteKitError(.invalidArgument, operation: "NPTv6", object: "table ip6 \(name)", detail: "invalid interface name \(interface)")
        }
        let inbound = pairs.sorted { $0.outside.rawValue < $1.outside.rawValue }.map { "\($0.outside) : \($0.inside)" }
        let outbound = pairs.filter(\.outbound).sorted { $0.inside.rawValue < $1.inside.rawValue }.map { "\($0.inside) : \($0.outside)" }
        func map(_ n: String, _ elements: [String]) -> String {
            "  map \(n) {\n    type ipv6_addr : ipv6_addr\n" + (elements.isEmpty ? "" : "    elements = { \(elements.joined(separator: ", ")) }\n") + "  }\n"
        }
        var s = "add table ip6 \(name)\ndelete table ip6 \(name)\ntable ip6 \(name) {\n"
        s += map("inbound", inbound) + map("outbound", outbound)
        s += "  chain prerouting {\n    type filter hook prerouting priority raw; policy accept;\n"
        s += "    iifname \"\(interface)\" ip6 daddr set ip6 daddr map @inbound\n  }\n"
        s += "  chain postrouting {\n    type filter hook postrouting priority srcnat; policy accept;\n"
        s += "    oifname \"\(interface)\" ip6 saddr set ip6 saddr map @outbound\n  }\n}\n"
        return s
    }

    /// Replaces the table with these translations on `interface`. The corresponding command is `nft -f`.
    public func apply(interface: String, pairs: [NPTPair]) throws(RouteKitError) {
        try runNFT(["-f", "-"], input: ruleset(interface: interface, pairs: pairs), operation: "apply", object: "table ip6 \(name)", namespace: namespace)
    }

    /// Whether the table exists.
    public func exists() throws(RouteKitError) -> Bool { try NFTTable(family: "ip6", name: name, namespace: namespace).exists() }

    /// Removes the table; no error if it is gone.
    public func remove() throws(RouteKitError) { try NFTTable(family: "ip6", name: name, namespace: namespace).remove() }
}
