// The forward filter toward protected hosts (a gateway's clients, a CPE's LAN): "deny unsolicited
// inbound" as home routers do (RFC 6092), keeping what IPv6 needs to work (RFC 4890 §4.3), in an
// nftables table of Sixgate's own (`table inet NAME`). Everything the policy holds per host lives in
// sets and maps, so a change (a client added, a port opened) is one atomic `nft -f` transaction that
// touches neither the rules nor the connections already tracked, and keeps the counters.
import Foundation
import PacketKit

/// A way in through the filter: a transport protocol and a port range ("tcp/22",
/// "udp/51413-51420"), or every protocol and port ("all").
public struct PortOpening: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public enum TransportProtocol: String, Hashable, Sendable, CaseIterable, Codable {
        case tcp, udp, sctp, dccp
    }
    /// nil: every protocol and port ("all").
    public var transport: TransportProtocol?
    public var ports: ClosedRange<UInt16>

    public static let all = PortOpening(transport: nil, ports: 0...65535)

    public init(_ transport: TransportProtocol, ports: ClosedRange<UInt16>) {
        self.transport = transport
        self.ports = ports
    }

    init(transport: TransportProtocol?, ports: ClosedRange<UInt16>) {
        self.transport = transport
        self.ports = ports
    }

    /// Parses "tcp/22", "udp/51413-51420", "sctp/9899" or "all". Ports are 1-65535, a range low-high.
    public init(parsing text: String) throws(FilterSpecError) {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        if s == "all" { self = .all; return }
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw FilterSpecError(value: text, reason: "expected PROTOCOL/PORT or PROTOCOL/LOW-HIGH (tcp/22, udp/51413-51420) or all")
        }
        guard let proto = TransportProtocol(rawValue: String(parts[0])) else {
            throw FilterSpecError(value: text, reason: "unknown protocol \(String(parts[0]).debugDescription): use tcp, udp, sctp or dccp")
        }
        let range = parts[1].split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(range.count) else { throw FilterSpecError(value: text, reason: "a port range is LOW-HIGH") }
        var bounds: [UInt16] = []
        for r in range {
            guard !r.isEmpty, r.count <= 5, r.allSatisfy(\.isASCII), r.allSatisfy(\.isNumber), let n = Int(r) else {
                throw FilterSpecError(value: text, reason: "\(String(r).debugDescription) is not a port number")
            }
            guard (1...65535).contains(n) else { throw FilterSpecError(value: text, reason: "port \(n) is outside 1-65535") }
            bounds.append(UInt16(n))
        }
        guard bounds.first! <= bounds.last! else {
            throw FilterSpecError(value: text, reason: "the range is upside down (\(bounds[0]) > \(bounds[1])): write \(bounds[1])-\(bounds[0])")
        }
        self.init(proto, ports: bounds.first!...bounds.last!)
    }

    public var description: String {
        guard let transport else { return "all" }
        return ports.lowerBound == ports.upperBound ? "\(transport.rawValue)/\(ports.lowerBound)" : "\(transport.rawValue)/\(ports.lowerBound)-\(ports.upperBound)"
    }

    public static func < (a: PortOpening, b: PortOpening) -> Bool {
        (a.transport?.rawValue ?? "", a.ports.lowerBound, a.ports.upperBound) < (b.transport?.rawValue ?? "", b.ports.lowerBound, b.ports.upperBound)
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        do { self = try PortOpening(parsing: s) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    /// The same openings with overlapping or adjacent ranges of one protocol merged, sorted; "all"
    /// swallows the rest. nftables refuses overlapping intervals in one set.
    public static func normalized(_ openings: [PortOpening]) -> [PortOpening] {
        if openings.contains(.all) { return [.all] }
        var out: [PortOpening] = []
        for o in openings.sorted() {
            if let last = out.last, last.transport == o.transport, Int(o.ports.lowerBound) <= Int(last.ports.upperBound) + 1 {
                out[out.count - 1].ports = last.ports.lowerBound...max(last.ports.upperBound, o.ports.upperBound)
            } else {
                out.append(o)
            }
        }
        return out
    }
}

/// A port opening (or another filter setting) that could not be read: the value and why.
public struct FilterSpecError: Error, Hashable, Sendable, CustomStringConvertible {
    public var value: String
    public var reason: String
    public init(value: String, reason: String) { self.value = value; self.reason = reason }
    public var description: String { "\(value.debugDescription): \(reason)" }
}

/// A host (or a network behind it) the filter protects: its prefixes, what is open on them, and its
/// drop counter's name.
public struct ProtectedHost: Hashable, Sendable {
    /// Names the host in logs and its counter (`in_NAME`): letters, digits, '.', '_', '-'.
    public var name: String
    /// Its addresses or delegated prefixes, IPv6 and IPv4.
    public var prefixes: [IPPrefix]
    /// Inbound connections allowed to every one of `prefixes`.
    public var openings: [PortOpening]
    /// false: new connections between this host and the other non-isolated hosts pass even while
    /// hosts are isolated from each other (the exception to `ForwardPolicy.isolateHosts`).
    public var isolated: Bool

    public init(name: String, prefixes: [IPPrefix], openings: [PortOpening] = [], isolated: Bool = true) {
        self.name = name
        self.prefixes = prefixes
        self.openings = openings
        self.isolated = isolated
    }

    /// The nftables counter of the new connections dropped toward this host.
    public var counterName: String { "in_" + name }

    static func isValidName(_ n: String) -> Bool {
        (1...200).contains(n.utf8.count) && n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }
}

/// What the forward filter lets through toward `interface` (the tunnel, or a LAN):
/// - replies (conntrack established/related);
/// - ICMPv6 errors always (Destination Unreachable, Packet Too Big, Time Exceeded, Parameter
///   Problem: RFC 4890 §4.3.1 and §4.3.2), ICMPv4 errors likewise (fragmentation-needed is a
///   Destination Unreachable); Echo Request when `inboundEcho` (RFC 4890 §4.3.1 suggests it);
/// - new connections to a host's openings;
/// - between hosts behind `interface` (in and out of it): everything unless `isolateHosts`, else
///   only between hosts that are both not isolated;
/// - nothing else: dropped, and counted per host (`in_NAME`) or as `dropped_other` (IPv6 only,
///   unless `filterIPv4`).
/// Traffic toward other interfaces is not looked at.
public struct ForwardPolicy: Hashable, Sendable {
    public var interface: String
    public var inboundEcho: Bool
    public var isolateHosts: Bool
    public var hosts: [ProtectedHost]
    /// false: IPv4 toward `interface` is not filtered (a CPE whose LAN's IPv4 sits behind the
    /// operator's own NAT44 and port forwards); only the hosts' IPv4 prefixes would be.
    public var filterIPv4: Bool
    /// What the hosts behind `interface` may reach on this machine itself (an input chain): nil, no
    /// input chain (everything); else replies, ICMP errors and echo requests (RFC 4890 §4.4), and
    /// new connections to these openings only; the rest is dropped and counted (`dropped_input`).
    public var localOpenings: [PortOpening]?
    /// ICMP redirects are never sent out of `interface` (an output chain): on a point-to-multipoint
    /// tunnel they mean nothing and tell clients about each other.
    public var dropRedirects: Bool = false

    public init(interface: String, inboundEcho: Bool = true, isolateHosts: Bool = true, hosts: [ProtectedHost] = [], filterIPv4: Bool = true) {
        self.interface = interface
        self.inboundEcho = inboundEcho
        self.isolateHosts = isolateHosts
        self.hosts = hosts
        self.filterIPv4 = filterIPv4
    }
}

/// Packets and bytes a counter saw.
public struct FilterCounter: Hashable, Sendable, Codable {
    public var packets: UInt64
    public var bytes: UInt64
    public init(packets: UInt64, bytes: UInt64) { self.packets = packets; self.bytes = bytes }
}

/// Sixgate's filter table (`table inet NAME`); only this table is ever touched, so an operator's
/// own tables and rules stay as they are (nftables runs every base chain on a hook: a packet this
/// table accepts can still be dropped by theirs, never the other way round).
public struct FilterTable: Sendable {
    public var name: String
    public var namespace: NetworkNamespace

    /// The chain on the forward hook.
    public static let forwardChain = "forward"
    /// The counter of dropped packets toward addresses of no host (unassigned pool addresses).
    public static let otherCounter = "dropped_other"
    /// The counter of packets from the hosts to this machine that the input chain dropped.
    public static let inputCounter = "dropped_input"
    /// The counter of ICMP redirects kept from going out.
    public static let redirectCounter = "dropped_redirects"

    public init(name: String, namespace: NetworkNamespace = .current) {
        self.name = name
        self.namespace = namespace
    }

    /// The ICMPv6 types that always pass toward the hosts (RFC 4890 §4.3.1/§4.3.2 for transit).
    public static let icmpv6Errors = ["destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem"]
    /// The ICMPv4 types that always pass (fragmentation-needed is a destination-unreachable code).
    public static let icmpErrors = ["destination-unreachable", "time-exceeded", "parameter-problem"]

    /// Checks what nft would refuse or misread, naming the object.
    func validate(_ policy: ForwardPolicy) throws(RouteKitError) {
        guard SysctlKey.isValidInterfaceName(policy.interface), !policy.interface.contains("\"") else {
            throw RouteKitError(.invalidArgument, operation: "filter", object: "interface \(policy.interface.debugDescription)", detail: "invalid interface name")
        }
        var seen = Set<String>()
        for h in policy.hosts {
            guard ProtectedHost.isValidName(h.name) else {
                throw RouteKitError(.invalidArgument, operation: "filter", object: "host \(h.name.debugDescription)", detail: "a name is letters, digits, '.', '_' or '-'")
            }
            guard seen.insert(h.name).inserted else {
                throw RouteKitError(.invalidArgument, operation: "filter", object: "host \(h.name)", detail: "named twice")
            }
        }
        // nftables refuses overlapping intervals in one set: two hosts may not share address space.
        let all = policy.hosts.flatMap { h in h.prefixes.map { (h.name, $0) } }
        for (i, a) in all.enumerated() {
            for b in all[(i + 1)...] where a.1.overlaps(b.1) {
                throw RouteKitError(.invalidArgument, operation: "filter", object: "\(a.1) (\(a.0)) and \(b.1) (\(b.0))", detail: "two protected prefixes overlap")
            }
        }
    }


    /// The whole table: created from nothing (any older copy deleted in the same transaction, so a
    /// restart after a crash leaves exactly one copy of every rule).
    public func ruleset(_ policy: ForwardPolicy) throws(RouteKitError) -> String {
        try validate(policy)
        let c = Self.contents(policy)
        let t = "inet \(name)"
        let i = "oifname \"\(policy.interface)\""
        func elements(_ e: [String]?) -> String { (e ?? []).isEmpty ? "" : " elements = { \(e!.joined(separator: ", ")) };" }
        // Counters and elements inline: nft resolves names inside one table block, also when the
        // same transaction deleted an older copy of the table.
        var s = "add table \(t)\ndelete table \(t)\ntable \(t) {\n"
        s += "  counter \(Self.otherCounter) { }\n"
        for n in c.counters { s += "  counter \(n) { }\n" }
        for (set, type) in Self.sets { s += "  set \(set) { type \(type); flags interval;\(elements(c.sets[set])) }\n" }
        for (map, type) in Self.maps { s += "  map \(map) { type \(type) : counter; flags interval;\(elements(c.maps[map])) }\n" }
        s += "  chain \(Self.forwardChain) {\n    type filter hook forward priority filter; policy accept;\n"
        var rules = [
            "\(i) ct state established,related accept",
            "\(i) icmpv6 type { \(Self.icmpv6Errors.joined(separator: ", ")) } accept",
            "\(i) icmp type { \(Self.icmpErrors.joined(separator: ", ")) } accept",
        ]
        if policy.inboundEcho { rules += ["\(i) icmpv6 type echo-request accept", "\(i) icmp type echo-request accept"] }
        if policy.isolateHosts {
            rules += ["iifname \"\(policy.interface)\" \(i) ip6 saddr @shared6 ip6 daddr @shared6 accept",
                      "iifname \"\(policy.interface)\" \(i) ip saddr @shared4 ip daddr @shared4 accept"]
        } else {
            rules.append("iifname \"\(policy.interface)\" \(i) accept")
        }
        rules += [
            "\(i) ip6 daddr @exposed6 accept",
            "\(i) ip daddr @exposed4 accept",
            "\(i) ip6 daddr . meta l4proto . th dport @open6 accept",
            "\(i) ip daddr . meta l4proto . th dport @open4 accept",
            "\(i) counter name ip6 daddr map @drops6 drop",
            "\(i) counter name ip daddr map @drops4 drop",
            "\(i)\(policy.filterIPv4 ? "" : " meta nfproto ipv6") counter name \"\(Self.otherCounter)\" drop",
        ]
        for r in rules { s += "    \(r)\n" }
        s += "  }\n"
        if let local = policy.localOpenings.map(PortOpening.normalized) {
            let j = "iifname \"\(policy.interface)\""
            s += "  counter \(Self.inputCounter) { }\n"
            let ports = local.compactMap { o -> String? in
                guard let t = o.transport else { return nil }
                return "\(t.rawValue) . " + (o.ports.lowerBound == o.ports.upperBound ? "\(o.ports.lowerBound)" : "\(o.ports.lowerBound)-\(o.ports.upperBound)")
            }
            s += "  set local_open { type inet_proto . inet_service; flags interval;\(elements(ports)) }\n"
            s += "  chain \(Self.inputChain) {\n    type filter hook input priority filter; policy accept;\n"
            var input = [
                "\(j) ct state established,related accept",
                "\(j) icmpv6 type { \((Self.icmpv6Errors + ["echo-request"]).joined(separator: ", ")) } accept",
                "\(j) icmp type { \((Self.icmpErrors + ["echo-request"]).joined(separator: ", ")) } accept",
            ]
            if local.contains(.all) { input.append("\(j) accept") }
            input += ["\(j) meta l4proto . th dport @local_open accept", "\(j) counter name \"\(Self.inputCounter)\" drop"]
            for r in input { s += "    \(r)\n" }
            s += "  }\n"
        }
        if policy.dropRedirects {
            s += "  counter \(Self.redirectCounter) { }\n"
            s += "  chain output {\n    type filter hook output priority filter; policy accept;\n"
            s += "    \(i) icmpv6 type nd-redirect counter name \"\(Self.redirectCounter)\" drop\n"
            s += "    \(i) icmp type redirect counter name \"\(Self.redirectCounter)\" drop\n"
            s += "  }\n"
        }
        s += "}\n"
        return s
    }

    /// The chain on the input hook (with `localOpenings`).
    public static let inputChain = "input"

    static let sets: [(String, String)] = [
        ("open6", "ipv6_addr . inet_proto . inet_service"), ("open4", "ipv4_addr . inet_proto . inet_service"),
        ("exposed6", "ipv6_addr"), ("exposed4", "ipv4_addr"), ("shared6", "ipv6_addr"), ("shared4", "ipv4_addr"),
    ]
    static let maps: [(String, String)] = [("drops6", "ipv6_addr"), ("drops4", "ipv4_addr")]

    /// The per-host part of the table: counter names, and the elements of each set and map.
    static func contents(_ policy: ForwardPolicy) -> (counters: [String], sets: [String: [String]], maps: [String: [String]]) {
        var sets: [String: [String]] = [:], maps: [String: [String]] = [:]
        for h in policy.hosts {
            let openings = PortOpening.normalized(h.openings)
            for p in h.prefixes {
                let fam: String, text: String
                switch p {
                case .v6(let q): fam = "6"; text = q.description
                case .v4(let q): fam = "4"; text = q.description
                }
                maps["drops" + fam, default: []].append("\(text) : \"\(h.counterName)\"")
                if !h.isolated { sets["shared" + fam, default: []].append(text) }
                for o in openings {
                    if let proto = o.transport {
                        let ports = o.ports.lowerBound == o.ports.upperBound ? "\(o.ports.lowerBound)" : "\(o.ports.lowerBound)-\(o.ports.upperBound)"
                        sets["open" + fam, default: []].append("\(text) . \(proto.rawValue) . \(ports)")
                    } else {
                        sets["exposed" + fam, default: []].append(text)
                    }
                }
            }
        }
        return (policy.hosts.map(\.counterName), sets, maps)
    }

    /// The transaction that makes the sets, maps and counters equal to `policy`'s hosts, leaving
    /// the rules and the other counters alone; `removing` names hosts whose counters go.
    public func elements(_ policy: ForwardPolicy, removing: Set<String>) throws(RouteKitError) -> String {
        try validate(policy)
        let c = Self.contents(policy)
        let t = "inet \(name)"
        var s = ""
        for n in c.counters { s += "add counter \(t) \(n)\n" }
        for (set, _) in Self.sets {
            s += "flush set \(t) \(set)\n"
            if let e = c.sets[set], !e.isEmpty { s += "add element \(t) \(set) { \(e.joined(separator: ", ")) }\n" }
        }
        for (m, _) in Self.maps {
            s += "flush map \(t) \(m)\n"
            if let e = c.maps[m], !e.isEmpty { s += "add element \(t) \(m) { \(e.joined(separator: ", ")) }\n" }
        }
        let keep = Set(policy.hosts.map(\.name))
        for n in removing.sorted() where !keep.contains(n) && ProtectedHost.isValidName(n) {
            s += "delete counter \(t) \(ProtectedHost(name: n, prefixes: []).counterName)\n"
        }
        return s
    }

    /// Replaces the table with `policy`, atomically. The corresponding command is `nft -f`.
    public func apply(_ policy: ForwardPolicy) throws(RouteKitError) {
        try nft(["-f", "-"], input: ruleset(policy), operation: "apply")
    }

    /// Brings the hosts (sets, maps, counters) in step with `policy` in one transaction, without
    /// touching the rules: tracked connections and the other hosts' counters are kept. `removing`:
    /// hosts that are gone (their counters are deleted). The table must exist (`apply`).
    public func update(_ policy: ForwardPolicy, removing: Set<String> = []) throws(RouteKitError) {
        try nft(["-f", "-"], input: elements(policy, removing: removing), operation: "update")
    }

    /// Changes the elements of some hosts only, in one transaction: `removing`'s elements are
    /// deleted, `adding`'s added (a host in both is changed, its counter kept; a host only in
    /// `removing` loses its counter). Work and nft input proportional to those hosts, not to the
    /// table: what enrolling one client costs at 50,000 (a whole `update` rewrites every element).
    /// `removing` must be exactly what the table holds for those hosts (the previous `adding`).
    public func update(adding: [ProtectedHost], removing: [ProtectedHost], interface: String) throws(RouteKitError) {
        try validate(ForwardPolicy(interface: interface, hosts: adding))
        let t = "inet \(name)"
        let old = Self.contents(ForwardPolicy(interface: interface, hosts: removing))
        let new = Self.contents(ForwardPolicy(interface: interface, hosts: adding))
        var s = ""
        for (set, _) in Self.sets + Self.maps {
            let gone = old.sets[set] ?? old.maps[set] ?? [], come = new.sets[set] ?? new.maps[set] ?? []
            if !gone.isEmpty { s += "delete element \(t) \(set) { \(gone.joined(separator: ", ")) }\n" }
            if !come.isEmpty { s += "add element \(t) \(set) { \(come.joined(separator: ", ")) }\n" }
        }
        let keep = Set(adding.map(\.name))
        for h in removing where !keep.contains(h.name) && ProtectedHost.isValidName(h.name) { s += "delete counter \(t) \(h.counterName)\n" }
        for h in adding { s += "add counter \(t) \(h.counterName)\n" }
        guard !s.isEmpty else { return }
        // Counters first: a map element names its counter.
        let lines = s.split(separator: "\n")
        let ordered = lines.filter { $0.hasPrefix("add counter") } + lines.filter { !$0.hasPrefix("add counter") && !$0.hasPrefix("delete counter") } + lines.filter { $0.hasPrefix("delete counter") }
        try nft(["-f", "-"], input: ordered.joined(separator: "\n") + "\n", operation: "update")
    }

    /// Whether the table exists. The corresponding command is `nft list table inet NAME`.
    public func exists() throws(RouteKitError) -> Bool { try NFTTable(family: "inet", name: name, namespace: namespace).exists() }

    /// Every counter of the table by name (`in_NAME` per host, `dropped_other`). The corresponding
    /// command is `nft -j list counters table inet NAME`.
    public func counters() throws(RouteKitError) -> [String: FilterCounter] {
        let text = try nft(["-j", "list", "counters", "table", "inet", name], input: nil, operation: "read counters")
        return Self.parseCounters(text)
    }

    /// Parses `nft -j list counters` output.
    public static func parseCounters(_ json: String) -> [String: FilterCounter] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let items = root["nftables"] as? [[String: Any]] else { return [:] }
        var out: [String: FilterCounter] = [:]
        for item in items {
            guard let c = item["counter"] as? [String: Any], let n = c["name"] as? String else { continue }
            out[n] = FilterCounter(packets: (c["packets"] as? NSNumber)?.uint64Value ?? 0, bytes: (c["bytes"] as? NSNumber)?.uint64Value ?? 0)
        }
        return out
    }

    /// Removes the table; no error if it is already gone. The corresponding command is `nft delete table inet NAME`.
    public func remove() throws(RouteKitError) { try NFTTable(family: "inet", name: name, namespace: namespace).remove() }

    @discardableResult
    private func nft(_ args: [String], input: String?, operation: String) throws(RouteKitError) -> String {
        try runNFT(args, input: input, operation: operation, object: "nftables table inet \(name) in \(namespace)", namespace: namespace)
    }
}
