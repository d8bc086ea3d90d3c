// What a stateless IP/ICMP translator (SIIT, RFC 7915) needs to know: how IPv4 and IPv6 addresses
// map onto each other (RFC 6052 prefix, RFC 7757 explicit address mappings), the MTUs on both
// sides, and the addresses it sends its own ICMP errors from.
import PacketKit

/// A translator's settings. Validate with `validated()` (the `Translator` initialiser does).
public struct TranslatorConfiguration: Sendable, Equatable {
    /// The RFC 6052 prefix IPv4 addresses are embedded in ("pool6": NAT64 / CLAT's PLAT-side
    /// prefix), e.g. 64:ff9b::/96. With the Well-Known Prefix only global IPv4 addresses are
    /// translated (RFC 6052 §3.1); private and shared (100.64/10) ones need a network-specific
    /// prefix or an EAM entry. nil: explicit address mappings alone (an EAM-only SIIT, RFC 7757).
    public var prefix: IPv6Prefix?
    /// Explicit address mappings for single hosts (RFC 7757), consulted before the prefix in both
    /// directions: a CLAT maps its client's private IPv4 address to the client's IPv6 address here.
    public var explicitMappings: [ExplicitMapping]
    /// The MTU of the IPv6 side's next hop: a DF=1 IPv4 packet that translates to more than this gets
    /// ICMPv4 "fragmentation needed" with this minus 20.
    public var ipv6MTU: Int
    /// The MTU of the IPv4 side's next hop: a translation longer than this gets ICMPv6 packet too big
    /// (with this plus 20, at least 1280).
    public var ipv4MTU: Int
    /// RFC 7915 §4.1 "lowest-ipv6-mtu": DF=0 IPv4 packets that translate to more than this are sent as
    /// IPv6 fragments no longer than it. 1280 unless the whole IPv6 path is known to carry more.
    public var lowestIPv6MTU: Int
    /// Source of the ICMPv4 errors the translator itself sends (time exceeded, fragmentation
    /// needed...); nil: those errors are not sent (the packet is still dropped and counted).
    public var ipv4Address: IPv4Address?
    /// Source of the ICMPv6 errors the translator itself sends; nil: not sent.
    public var ipv6Address: IPv6Address?
    /// IPv4 UDP datagrams without a checksum (0): computed (RFC 7915 §4.5 allows it for unfragmented
    /// ones) or dropped with an ICMPv4 error. Fragmented ones are always dropped (and reported).
    public var computeZeroUDPChecksum: Bool
    /// ICMP errors the translator itself sends, at most this many a second (one token bucket for
    /// all its errors, RFC 4443 §2.4(f), RFC 1812 §4.3.2.8); 0: none are sent (RFC 7915 §4.4/§5.4:
    /// "sent, rate-limited, or not sent" is the administrator's choice). Drops are counted either way.
    public var errorsPerSecond: Int
    /// RFC 6791: IPv4 sources for translated ICMPv6 errors whose source (a router on the IPv6 side)
    /// has no IPv4 mapping; one address picked at random per error, as RFC 6791 §4 recommends
    /// (network and broadcast addresses excluded below a /31). nil: `ipv4Address`; without either
    /// such errors are dropped as unmappable.
    public var rfc6791Pool: IPv4Prefix?
    /// The same the other way (an EAM-only translator cannot map an IPv4 router's address): IPv6
    /// sources for translated ICMPv4 errors. nil: `ipv6Address`.
    public var rfc6791Pool6: IPv6Prefix?

    public init(prefix: IPv6Prefix?, explicitMappings: [ExplicitMapping] = [], ipv6MTU: Int = 1500, ipv4MTU: Int = 1500,
                lowestIPv6MTU: Int = 1280, ipv4Address: IPv4Address? = nil, ipv6Address: IPv6Address? = nil,
                computeZeroUDPChecksum: Bool = true, errorsPerSecond: Int = 100,
                rfc6791Pool: IPv4Prefix? = nil, rfc6791Pool6: IPv6Prefix? = nil) {
        self.prefix = prefix
        self.explicitMappings = explicitMappings
        self.ipv6MTU = ipv6MTU
        self.ipv4MTU = ipv4MTU
        self.lowestIPv6MTU = lowestIPv6MTU
        self.ipv4Address = ipv4Address
        self.ipv6Address = ipv6Address
        self.computeZeroUDPChecksum = computeZeroUDPChecksum
        self.errorsPerSecond = errorsPerSecond
        self.rfc6791Pool = rfc6791Pool
        self.rfc6791Pool6 = rfc6791Pool6
    }

    /// The Well-Known Prefix 64:ff9b::/96 (RFC 6052 §2.1).
    public static let wellKnownPrefix = IPv6Prefix("64:ff9b::/96")!

    /// Checks what the RFCs require of the settings; the error names the setting and why.
    public func validated() throws(TranslatorConfigurationError) -> TranslatorConfiguration {
        if let prefix {
            guard IPv6Address.rfc6052PrefixLengths.contains(prefix.length) else {
                throw TranslatorConfigurationError("prefix", "\(prefix): RFC 6052 allows prefix lengths 32, 40, 48, 56, 64 and 96 only")
            }
            guard prefix.length == 96 || (prefix.network.rawValue >> 56) & 0xff == 0 else {
                throw TranslatorConfigurationError("prefix", "\(prefix): bits 64-71 (the u octet) must be zero (RFC 6052 §2.2)")
            }
        } else if explicitMappings.isEmpty {
            throw TranslatorConfigurationError("prefix", "neither a prefix nor explicit address mappings: nothing could be translated")
        }
        guard (0...1_000_000).contains(errorsPerSecond) else {
            throw TranslatorConfigurationError("icmp_errors_per_second", "\(errorsPerSecond) is not within 0-1000000")
        }
        guard (1280...65535).contains(ipv6MTU) else { throw TranslatorConfigurationError("ipv6_mtu", "\(ipv6MTU) is not within 1280-65535") }
        guard (68...65535).contains(ipv4MTU) else { throw TranslatorConfigurationError("ipv4_mtu", "\(ipv4MTU) is not within 68-65535") }
        guard (1280...ipv6MTU).contains(lowestIPv6MTU) else {
            throw TranslatorConfigurationError("lowest_ipv6_mtu", "\(lowestIPv6MTU) is not within 1280 and ipv6_mtu (\(ipv6MTU))")
        }
        var seen4 = Set<IPv4Address>(), seen6 = Set<IPv6Address>()
        for m in explicitMappings {
            guard seen4.insert(m.ipv4).inserted else { throw TranslatorConfigurationError("eam", "\(m.ipv4) is mapped twice") }
            guard seen6.insert(m.ipv6).inserted else { throw TranslatorConfigurationError("eam", "\(m.ipv6) is mapped twice") }
            if let prefix, prefix.contains(m.ipv6) {
                throw TranslatorConfigurationError("eam", "\(m.ipv6) is inside the translation prefix \(prefix); an explicit mapping must be outside it")
            }
        }
        return self
    }
}

/// One RFC 7757 explicit address mapping between single hosts.
public struct ExplicitMapping: Sendable, Hashable, CustomStringConvertible {
    public var ipv4: IPv4Address
    public var ipv6: IPv6Address
    public init(ipv4: IPv4Address, ipv6: IPv6Address) { self.ipv4 = ipv4; self.ipv6 = ipv6 }
    public var description: String { "\(ipv4) <-> \(ipv6)" }
}

/// A setting that cannot work, with its name (as in the config file) and the reason.
public struct TranslatorConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public init(_ key: String, _ reason: String) { self.key = key; self.reason = reason }
    public var description: String { "\(key): \(reason)" }
}

/// Address mapping both ways (RFC 7915 §6 with RFC 6052 and RFC 7757), allocation-free per lookup.
struct AddressMapper {
    let prefix: IPv6Prefix?
    let wellKnown: Bool
    let to6: [IPv4Address: IPv6Address]
    let to4: [IPv6Address: IPv4Address]

    init(_ c: TranslatorConfiguration) {
        prefix = c.prefix
        wellKnown = c.prefix == TranslatorConfiguration.wellKnownPrefix
        var a: [IPv4Address: IPv6Address] = [:], b: [IPv6Address: IPv4Address] = [:]
        for m in c.explicitMappings { a[m.ipv4] = m.ipv6; b[m.ipv6] = m.ipv4 }
        to6 = a
        to4 = b
    }

    /// The IPv6 address for `v4`, or nil when it cannot be translated (the WKP and a non-global address).
    @inline(__always) func map(_ v4: IPv4Address) -> IPv6Address? {
        if !to6.isEmpty, let e = to6[v4] { return e }
        return embed(v4)
    }

    /// `v4` in the prefix (RFC 6052) whether or not an explicit mapping exists: the source of a
    /// hairpinned packet (RFC 7757 §4).
    @inline(__always) func embed(_ v4: IPv4Address) -> IPv6Address? {
        guard let prefix else { return nil }
        if wellKnown && !v4.isGloballyRoutable { return nil }
        return try? IPv6Address(embedding: v4, in: prefix)
    }

    /// Whether `v4` is explicitly mapped: a host on the IPv6 side (a hairpin destination).
    @inline(__always) func isExplicit(_ v4: IPv4Address) -> Bool { !to6.isEmpty && to6[v4] != nil }

    /// The IPv4 address for `v6`, or nil when it is neither explicitly mapped nor inside the prefix.
    @inline(__always) func map(_ v6: IPv6Address) -> IPv4Address? {
        if !to4.isEmpty, let e = to4[v6] { return e }
        guard let prefix, prefix.contains(v6), let v4 = try? v6.embeddedIPv4(prefixLength: prefix.length) else { return nil }
        if wellKnown && !v4.isGloballyRoutable { return nil }
        return v4
    }
}
