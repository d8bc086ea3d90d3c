// Neighbor Discovery for IPv6 (RFC 4861): message views, options (RFC 4861 §4.6, RFC 4191,
// RFC 8106, RFC 8781, RFC 7527) and the receive-side validation rules of §6.1 and §7.1.

/// Flags of a Neighbor Advertisement (RFC 4861 §4.4).
public struct NeighborAdvertisementFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0xe0 }
    /// R: the sender is a router.
    public static let router = NeighborAdvertisementFlags(rawValue: 0x80)
    /// S: sent in response to a Neighbor Solicitation.
    public static let solicited = NeighborAdvertisementFlags(rawValue: 0x40)
    /// O: override an existing cache entry.
    public static let override = NeighborAdvertisementFlags(rawValue: 0x20)
}

/// Default Router Preference / Route Preference (RFC 4191 §2.1): 2 bits.
public struct RouterPreference: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 3 }
    public static let medium = RouterPreference(rawValue: 0)
    public static let high = RouterPreference(rawValue: 1)
    /// 10b: reserved; receivers treat it as medium (RA) or ignore the option (Route Information).
    public static let reserved = RouterPreference(rawValue: 2)
    public static let low = RouterPreference(rawValue: 3)
}

/// A Router Solicitation (type 133, RFC 4861 §4.1): at least 8 bytes.
public struct RouterSolicitation {
    public let message: ICMPv6Message
    public let options: NDPOptions
    public init(_ m: ICMPv6Message) throws(PacketError) {
        guard m.type == .routerSolicitation else { throw PacketError(.ndp, .wrongType, at: 0) }
        guard m.bytes.count >= 8 else { throw PacketError(.ndp, .truncated, at: m.bytes.count) }
        message = m
        options = try NDPOptions(m.bytes.slice(8, m.bytes.count), baseOffset: 8)
    }
}

/// A Router Advertisement (type 134, RFC 4861 §4.2): at least 16 bytes.
public struct RouterAdvertisement {
    public let message: ICMPv6Message
    public let options: NDPOptions
    public init(_ m: ICMPv6Message) throws(PacketError) {
        guard m.type == .routerAdvertisement else { throw PacketError(.ndp, .wrongType, at: 0) }
        guard m.bytes.count >= 16 else { throw PacketError(.ndp, .truncated, at: m.bytes.count) }
        message = m
        options = try NDPOptions(m.bytes.slice(16, m.bytes.count), baseOffset: 16)
    }
    public var currentHopLimit: UInt8 { message.bytes[4] }
    /// M: addresses via DHCPv6.
    public var managed: Bool { message.bytes[5] & 0x80 != 0 }
    /// O: other configuration via DHCPv6.
    public var otherConfiguration: Bool { message.bytes[5] & 0x40 != 0 }
    /// H: home agent (RFC 6275).
    public var homeAgent: Bool { message.bytes[5] & 0x20 != 0 }
    public var preference: RouterPreference { RouterPreference(rawValue: message.bytes[5] >> 3) }
    /// Seconds; 0 = not a default router.
    public var routerLifetime: UInt16 { message.bytes.be16(6) }
    /// Milliseconds; 0 = unspecified.
    public var reachableTime: UInt32 { message.bytes.be32(8) }
    /// Milliseconds; 0 = unspecified.
    public var retransTimer: UInt32 { message.bytes.be32(12) }
}

/// A Neighbor Solicitation (type 135, RFC 4861 §4.3): at least 24 bytes.
public struct NeighborSolicitation {
    public let message: ICMPv6Message
    public let options: NDPOptions
    public init(_ m: ICMPv6Message) throws(PacketError) {
        guard m.type == .neighborSolicitation else { throw PacketError(.ndp, .wrongType, at: 0) }
        guard m.bytes.count >= 24 else { throw PacketError(.ndp, .truncated, at: m.bytes.count) }
        message = m
        options = try NDPOptions(m.bytes.slice(24, m.bytes.count), baseOffset: 24)
    }
    public var target: IPv6Address { IPv6Address(rawValue: message.bytes.be128(8)) }
}

/// A Neighbor Advertisement (type 136, RFC 4861 §4.4): at least 24 bytes.
public struct NeighborAdvertisement {
    public let message: ICMPv6Message
    public let options: NDPOptions
    public init(_ m: ICMPv6Message) throws(PacketError) {
        guard m.type == .neighborAdvertisement else { throw PacketError(.ndp, .wrongType, at: 0) }
        guard m.bytes.count >= 24 else { throw PacketError(.ndp, .truncated, at: m.bytes.count) }
        message = m
        options = try NDPOptions(m.bytes.slice(24, m.bytes.count), baseOffset: 24)
    }
    public var flags: NeighborAdvertisementFlags { NeighborAdvertisementFlags(rawValue: message.bytes[4]) }
    public var target: IPv6Address { IPv6Address(rawValue: message.bytes.be128(8)) }
}

/// A Redirect (type 137, RFC 4861 §4.5): at least 40 bytes.
public struct Redirect {
    public let message: ICMPv6Message
    public let options: NDPOptions
    public init(_ m: ICMPv6Message) throws(PacketError) {
        guard m.type == .redirect else { throw PacketError(.ndp, .wrongType, at: 0) }
        guard m.bytes.count >= 40 else { throw PacketError(.ndp, .truncated, at: m.bytes.count) }
        message = m
        options = try NDPOptions(m.bytes.slice(40, m.bytes.count), baseOffset: 40)
    }
    public var target: IPv6Address { IPv6Address(rawValue: message.bytes.be128(8)) }
    public var destination: IPv6Address { IPv6Address(rawValue: message.bytes.be128(24)) }
}

/// An NDP option type (IANA "IPv6 Neighbor Discovery Option Formats"). Open set.
public struct NDPOptionType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }
    public static let sourceLinkLayerAddress = NDPOptionType(1)
    public static let targetLinkLayerAddress = NDPOptionType(2)
    public static let prefixInformation = NDPOptionType(3)
    public static let redirectedHeader = NDPOptionType(4)
    public static let mtu = NDPOptionType(5)
    public static let nonce = NDPOptionType(14)
    public static let routeInformation = NDPOptionType(24)
    public static let rdnss = NDPOptionType(25)
    public static let dnssl = NDPOptionType(31)
    public static let pref64 = NDPOptionType(38)
}

/// The options area of an NDP message, validated: every option has Length > 0 and fits
/// (RFC 4861 §4.6: a zero length means the whole message is dropped).
public struct NDPOptions: Sequence {
    public let bytes: UnsafeRawBufferPointer

    public init(_ bytes: UnsafeRawBufferPointer, baseOffset: Int = 0) throws(PacketError) {
        var o = 0
        while o < bytes.count {
            guard o + 2 <= bytes.count else { throw PacketError(.ndp, .badOptionLength, at: baseOffset + o) }
            let len = Int(bytes[o + 1]) * 8
            guard len > 0, o + len <= bytes.count else { throw PacketError(.ndp, .badOptionLength, at: baseOffset + o + 1) }
            o += len
        }
        self.bytes = bytes
    }

    public struct Iterator: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        public mutating func next() -> NDPOption? {
            guard offset < bytes.count else { return nil }
            let len = Int(bytes[offset + 1]) * 8
            defer { offset += len }
            return NDPOption(bytes: bytes.slice(offset, offset + len))
        }
    }
    public func makeIterator() -> Iterator { Iterator(bytes: bytes) }

    /// The first option of `type`, if any.
    public func first(_ type: NDPOptionType) -> NDPOption? { first(where: { $0.type == type }) }

    /// Every option as a plain value; malformed known options throw, unknown ones are kept raw.
    public func reprs() throws(PacketError) -> [NDPOptionRepr] {
        var out = [NDPOptionRepr]()
        for o in self { out.append(try NDPOptionRepr(o)) }
        return out
    }
}

/// One option (type, length in 8-octet units, data) in place.
public struct NDPOption {
    /// The whole option including type and length bytes.
    public let bytes: UnsafeRawBufferPointer
    public var type: NDPOptionType { NDPOptionType(bytes[0]) }
    /// Length in units of 8 octets.
    public var lengthUnits: Int { Int(bytes[1]) }

    /// The link-layer address of a Source/Target Link-Layer Address option on Ethernet (length 1).
    public var linkLayerAddress: MACAddress? {
        guard type == .sourceLinkLayerAddress || type == .targetLinkLayerAddress, bytes.count >= 8 else { return nil }
        return MACAddress(bytes: bytes.slice(2, 8))
    }
}

/// An NDP option as a plain value.
public enum NDPOptionRepr: Hashable, Sendable {
    case sourceLinkLayerAddress(MACAddress)
    case targetLinkLayerAddress(MACAddress)
    /// Prefix Information (RFC 4861 §4.6.2): lifetimes in seconds, 0xffffffff = infinity.
    case prefixInformation(PrefixInformation)
    /// Redirected Header: as much of the redirected packet as fits.
    case redirectedHeader([UInt8])
    case mtu(UInt32)
    /// Nonce (RFC 3971 §5.3.2, RFC 7527): 6 or more bytes, a multiple of 8 minus 2.
    case nonce([UInt8])
    /// Route Information (RFC 4191 §2.3).
    case routeInformation(prefix: IPv6Prefix, preference: RouterPreference, lifetime: UInt32)
    /// Recursive DNS Server (RFC 8106 §5.1).
    case rdnss(lifetime: UInt32, servers: [IPv6Address])
    /// DNS Search List (RFC 8106 §5.2): domain names as text ("example.com").
    case dnssl(lifetime: UInt32, domains: [String])
    /// PREF64 (RFC 8781): lifetime in seconds (a multiple of 8, up to 65528) and the NAT64 prefix.
    case pref64(lifetime: UInt16, prefix: IPv6Prefix)
    case unknown(type: NDPOptionType, data: [UInt8])

    /// Prefix Information fields.
    public struct PrefixInformation: Hashable, Sendable {
        public var prefix: IPv6Prefix
        /// L flag.
        public var onLink: Bool
        /// A flag (SLAAC).
        public var autonomous: Bool
        /// R flag (RFC 6275): the prefix field holds the router's full address.
        public var routerAddress: Bool
        public var validLifetime: UInt32
        public var preferredLifetime: UInt32
        public init(prefix: IPv6Prefix, onLink: Bool = true, autonomous: Bool = true, routerAddress: Bool = false,
                    validLifetime: UInt32 = 2_592_000, preferredLifetime: UInt32 = 604_800) {
            self.prefix = prefix
            self.onLink = onLink
            self.autonomous = autonomous
            self.routerAddress = routerAddress
            self.validLifetime = validLifetime
            self.preferredLifetime = preferredLifetime
        }
    }

    public init(_ o: NDPOption) throws(PacketError) {
        let b = o.bytes
        func bad() -> PacketError { PacketError(.ndp, .badOptionLength, at: 1) }
        switch o.type {
        case .sourceLinkLayerAddress, .targetLinkLayerAddress:
            guard b.count == 8 else { self = .unknown(type: o.type, data: Array(b.slice(2, b.count))); return }
            let mac = MACAddress(bytes: b.slice(2, 8))
            self = o.type == .sourceLinkLayerAddress ? .sourceLinkLayerAddress(mac) : .targetLinkLayerAddress(mac)
        case .prefixInformation:
            guard b.count == 32 else { throw bad() }
            let len = b[2]
            guard len <= 128 else { throw PacketError(.ndp, .badValue, at: 2) }
            // Hosts ignore bits past the prefix length; keep the prefix as sent, masked.
            self = .prefixInformation(PrefixInformation(
                prefix: IPv6Prefix(containing: IPv6Address(rawValue: b.be128(16)), length: len),
                onLink: b[3] & 0x80 != 0, autonomous: b[3] & 0x40 != 0, routerAddress: b[3] & 0x20 != 0,
                validLifetime: b.be32(4), preferredLifetime: b.be32(8)))
        case .redirectedHeader:
            self = .redirectedHeader(Array(b.slice(8, b.count)))
        case .mtu:
            guard b.count == 8 else { throw bad() }
            self = .mtu(b.be32(4))
        case .nonce:
            self = .nonce(Array(b.slice(2, b.count)))
        case .routeInformation:
            guard b.count <= 24 else { throw bad() }
            let len = b[2]
            // RFC 4191 §2.3: Length 1 for /0, 2 for up to /64, 3 for more.
            guard len <= 128, (len > 64 && b.count == 24) || (len > 0 && len <= 64 && b.count >= 16) || len == 0 else { throw bad() }
            var raw: UInt128 = 0
            let avail = b.count - 8
            for i in 0..<min(16, avail) { raw |= UInt128(b[8 + i]) << (120 - 8 * UInt128(i)) }
            self = .routeInformation(prefix: IPv6Prefix(containing: IPv6Address(rawValue: raw), length: len),
                                     preference: RouterPreference(rawValue: b[3] >> 3), lifetime: b.be32(4))
        case .rdnss:
            guard b.count >= 24, (b.count - 8) % 16 == 0 else { throw bad() }
            var servers = [IPv6Address]()
            var i = 8
            while i < b.count { servers.append(IPv6Address(rawValue: b.be128(i))); i += 16 }
            self = .rdnss(lifetime: b.be32(4), servers: servers)
        case .dnssl:
            guard b.count >= 16 else { throw bad() }
            // RFC 8106 §5.2: one or more domain names (all padding was once read as none, and
            // written back as an option too short to parse: found by fuzz-packets).
            let domains = try Self.decodeDomains(b.slice(8, b.count))
            guard !domains.isEmpty else { throw PacketError(.ndp, .badValue, at: 8) }
            self = .dnssl(lifetime: b.be32(4), domains: domains)
        case .pref64:
            guard b.count == 16 else { throw bad() }
            let field = b.be16(2)
            let lengths: [UInt8] = [96, 64, 56, 48, 40, 32]
            let plc = Int(field & 7)
            guard plc < lengths.count else { throw PacketError(.ndp, .badValue, at: 3) }
            let raw = UInt128(b.be32(4)) << 96 | UInt128(b.be32(8)) << 64 | UInt128(b.be32(12)) << 32
            self = .pref64(lifetime: field & 0xfff8, prefix: IPv6Prefix(containing: IPv6Address(rawValue: raw), length: lengths[plc]))
        default:
            self = .unknown(type: o.type, data: Array(b.slice(2, b.count)))
        }
    }

    /// Uncompressed DNS wire-format names, zero-padded (RFC 8106 §5.2).
    static func decodeDomains(_ b: UnsafeRawBufferPointer) throws(PacketError) -> [String] {
        var names = [String]()
        var labels = [String]()
        var i = 0
        while i < b.count {
            let n = Int(b[i])
            if n == 0 {
                if !labels.isEmpty { names.append(labels.joined(separator: ".")); labels.removeAll() }
                i += 1
                continue
            }
            guard n <= 63, i + 1 + n <= b.count else { throw PacketError(.ndp, .badValue, at: 8 + i) }
            labels.append(String(decoding: b.slice(i + 1, i + 1 + n), as: UTF8.self))
            i += 1 + n
        }
        guard labels.isEmpty else { throw PacketError(.ndp, .badValue, at: 8 + b.count) }
        return names
    }

    static func encodeDomains(_ names: [String]) -> [UInt8] {
        var out = [UInt8]()
        for name in names {
            for label in name.split(separator: ".") {
                let bytes = Array(label.utf8.prefix(63))
                out.append(UInt8(bytes.count))
                out += bytes
            }
            out.append(0)
        }
        return out
    }

    /// Encoded length in bytes (a multiple of 8).
    public var length: Int {
        switch self {
        case .sourceLinkLayerAddress, .targetLinkLayerAddress, .mtu: return 8
        case .prefixInformation: return 32
        case .redirectedHeader(let d): return (8 + d.count + 7) / 8 * 8
        case .nonce(let d): return (2 + d.count + 7) / 8 * 8
        case .routeInformation(let p, _, _): return p.length == 0 ? 8 : p.length <= 64 ? 16 : 24
        case .rdnss(_, let s): return 8 + 16 * s.count
        case .dnssl(_, let d): return (8 + Self.encodeDomains(d).count + 7) / 8 * 8
        case .pref64: return 16
        case .unknown(_, let d): return (2 + d.count + 7) / 8 * 8
        }
    }

    public var type: NDPOptionType {
        switch self {
        case .sourceLinkLayerAddress: return .sourceLinkLayerAddress
        case .targetLinkLayerAddress: return .targetLinkLayerAddress
        case .prefixInformation: return .prefixInformation
        case .redirectedHeader: return .redirectedHeader
        case .mtu: return .mtu
        case .nonce: return .nonce
        case .routeInformation: return .routeInformation
        case .rdnss: return .rdnss
        case .dnssl: return .dnssl
        case .pref64: return .pref64
        case .unknown(let t, _): return t
        }
    }

    /// Writes the option at the start of `b` (which must hold ``length`` bytes).
    func emit(into b: UnsafeMutableRawBufferPointer) throws(PacketError) {
        let n = length
        guard n <= 255 * 8 else { throw PacketError(.ndp, .badOptionLength, at: 1) }
        // RFC 8106: RDNSS holds one or more addresses, DNSSL one or more names.
        switch self {
        case .rdnss(_, let servers) where servers.isEmpty: throw PacketError(.ndp, .badValue, at: 8)
        case .dnssl(_, let domains) where !domains.contains(where: { $0.contains { $0 != "." } }): throw PacketError(.ndp, .badValue, at: 8)
        default: break
        }
        b.zero(0, n)
        b.put8(type.rawValue, at: 0)
        b.put8(UInt8(n / 8), at: 1)
        switch self {
        case .sourceLinkLayerAddress(let m), .targetLinkLayerAddress(let m):
            m.bytes.withUnsafeBytes { b.copy($0, at: 2) }
        case .prefixInformation(let p):
            b.put8(p.prefix.length, at: 2)
            b.put8((p.onLink ? 0x80 : 0) | (p.autonomous ? 0x40 : 0) | (p.routerAddress ? 0x20 : 0), at: 3)
            b.put32(p.validLifetime, at: 4)
            b.put32(p.preferredLifetime, at: 8)
            b.put128(p.prefix.network.rawValue, at: 16)
        case .redirectedHeader(let d):
            d.withUnsafeBytes { b.copy($0, at: 8) }
        case .mtu(let m):
            b.put32(m, at: 4)
        case .nonce(let d), .unknown(_, let d):
            d.withUnsafeBytes { b.copy($0, at: 2) }
        case .routeInformation(let p, let prf, let life):
            b.put8(p.length, at: 2)
            b.put8(prf.rawValue << 3, at: 3)
            b.put32(life, at: 4)
            let bytes = p.network.bytes
            for i in 0..<(n - 8) { b.put8(bytes[i], at: 8 + i) }
        case .rdnss(let life, let servers):
            b.put32(life, at: 4)
            for (i, s) in servers.enumerated() { b.put128(s.rawValue, at: 8 + 16 * i) }
        case .dnssl(let life, let d):
            b.put32(life, at: 4)
            Self.encodeDomains(d).withUnsafeBytes { b.copy($0, at: 8) }
        case .pref64(let life, let p):
            let plc: UInt16
            switch p.length {
            case 96: plc = 0
            case 64: plc = 1
            case 56: plc = 2
            case 48: plc = 3
            case 40: plc = 4
            case 32: plc = 5
            default: throw PacketError(.ndp, .badValue, at: 3)
            }
            b.put16(life & 0xfff8 | plc, at: 2)
            b.put32(UInt32(truncatingIfNeeded: p.network.rawValue >> 96), at: 4)
            b.put32(UInt32(truncatingIfNeeded: p.network.rawValue >> 64), at: 8)
            b.put32(UInt32(truncatingIfNeeded: p.network.rawValue >> 32), at: 12)
        }
    }
}

extension Array where Element == NDPOptionRepr {
    /// Total encoded length of the options.
    public var encodedLength: Int { reduce(0) { $0 + $1.length } }

    func emit(into b: UnsafeMutableRawBufferPointer) throws(PacketError) {
        var o = 0
        for opt in self {
            let n = opt.length
            try opt.emit(into: b.slice(o, o + n))
            o += n
        }
    }
}

/// The fields of a Router Advertisement as a plain value.
public struct RouterAdvertisementRepr: Hashable, Sendable {
    public var currentHopLimit: UInt8
    public var managed: Bool
    public var otherConfiguration: Bool
    public var homeAgent: Bool
    public var preference: RouterPreference
    public var routerLifetime: UInt16
    public var reachableTime: UInt32
    public var retransTimer: UInt32
    public var options: [NDPOptionRepr]

    public init(currentHopLimit: UInt8 = 64, managed: Bool = false, otherConfiguration: Bool = false, homeAgent: Bool = false,
                preference: RouterPreference = .medium, routerLifetime: UInt16 = 1800, reachableTime: UInt32 = 0,
                retransTimer: UInt32 = 0, options: [NDPOptionRepr] = []) {
        self.currentHopLimit = currentHopLimit
        self.managed = managed
        self.otherConfiguration = otherConfiguration
        self.homeAgent = homeAgent
        self.preference = preference
        self.routerLifetime = routerLifetime
        self.reachableTime = reachableTime
        self.retransTimer = retransTimer
        self.options = options
    }

    public init(_ ra: RouterAdvertisement) throws(PacketError) {
        self.init(currentHopLimit: ra.currentHopLimit, managed: ra.managed, otherConfiguration: ra.otherConfiguration,
                  homeAgent: ra.homeAgent, preference: ra.preference, routerLifetime: ra.routerLifetime,
                  reachableTime: ra.reachableTime, retransTimer: ra.retransTimer, options: try ra.options.reprs())
    }
}

/// The receive-side validity checks of RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2 and §8.1.
/// A message that fails any of them must be silently discarded (and, in Sixgate, counted).
public enum NDPValidation {
    /// Validates an NDP message carried in `packet` and returns its type.
    /// Checks: ICMPv6 upper layer, hop limit 255, checksum, code 0, the per-type minimum length,
    /// option lengths > 0, and the per-type address and flag rules of the RFC.
    public static func validate(_ packet: IPv6Packet) throws(PacketError) -> ICMPv6Type {
        guard packet.upperLayerProtocol == .icmpv6, packet.hasUpperLayerHeader else { throw PacketError(.ndp, .wrongType, at: 6) }
        let m = try ICMPv6Message(packet.upperLayer)
        guard packet.hopLimit == 255 else { throw PacketError(.ndp, .badHopLimit, at: 7) }
        guard m.isChecksumValid(source: packet.source, destination: packet.destination) else {
            throw PacketError(.ndp, .badChecksum, at: packet.upperLayerOffset + 2)
        }
        guard m.code == 0 else { throw PacketError(.ndp, .badCode, at: packet.upperLayerOffset + 1) }
        let src = packet.source, dst = packet.destination
        switch m.type {
        case .routerSolicitation:
            let rs = try RouterSolicitation(m)
            if src.isUnspecified && rs.options.first(.sourceLinkLayerAddress) != nil {
                throw PacketError(.ndp, .forbiddenOption, at: packet.upperLayerOffset + 8)
            }
        case .routerAdvertisement:
            _ = try RouterAdvertisement(m)
            guard src.isLinkLocal else { throw PacketError(.ndp, .badAddress, at: 8) }
        case .neighborSolicitation:
            let ns = try NeighborSolicitation(m)
            guard !ns.target.isMulticast else { throw PacketError(.ndp, .badAddress, at: packet.upperLayerOffset + 8) }
            guard !src.isMulticast else { throw PacketError(.ndp, .badAddress, at: 8) }
            if src.isUnspecified {
                guard dst.isSolicitedNodeMulticast else { throw PacketError(.ndp, .badAddress, at: 24) }
                if ns.options.first(.sourceLinkLayerAddress) != nil {
                    throw PacketError(.ndp, .forbiddenOption, at: packet.upperLayerOffset + 24)
                }
            }
        case .neighborAdvertisement:
            let na = try NeighborAdvertisement(m)
            guard !na.target.isMulticast else { throw PacketError(.ndp, .badAddress, at: packet.upperLayerOffset + 8) }
            if dst.isMulticast && na.flags.contains(.solicited) {
                throw PacketError(.ndp, .badFlags, at: packet.upperLayerOffset + 4)
            }
        case .redirect:
            let r = try Redirect(m)
            guard src.isLinkLocal else { throw PacketError(.ndp, .badAddress, at: 8) }
            guard r.target.isLinkLocal || r.target == r.destination else { throw PacketError(.ndp, .badAddress, at: packet.upperLayerOffset + 8) }
            guard !r.destination.isMulticast else { throw PacketError(.ndp, .badAddress, at: packet.upperLayerOffset + 24) }
        default:
            throw PacketError(.ndp, .wrongType, at: packet.upperLayerOffset)
        }
        return m.type
    }
}

/// Allocation-free builders for the NDP frames a proxy sends per solicitation (the answer path):
/// they write into the caller's buffer and compute the checksum in place.
public enum NDPFrame {
    /// Bytes `ethernetNeighborAdvertisement` writes: Ethernet 14 + IPv6 40 + NA 24 (+ 8 with the option).
    public static func neighborAdvertisementLength(targetLinkLayer: Bool) -> Int { 14 + 40 + 24 + (targetLinkLayer ? 8 : 0) }

    /// Writes an Ethernet frame carrying a Neighbor Advertisement (RFC 4861 §4.4) for `target`,
    /// with a Target Link-Layer Address option when `targetLinkLayer` is given. Returns the length.
    @inlinable
    public static func ethernetNeighborAdvertisement(
        into buffer: UnsafeMutableRawBufferPointer, destinationMAC: MACAddress, sourceMAC: MACAddress,
        source: IPv6Address, destination: IPv6Address, hopLimit: UInt8 = 255,
        flags: NeighborAdvertisementFlags, target: IPv6Address, targetLinkLayer: MACAddress?
    ) throws(PacketError) -> Int {
        let icmpLength = 24 + (targetLinkLayer == nil ? 0 : 8)
        let total = 14 + 40 + icmpLength
        guard buffer.count >= total else { throw PacketError(.ndp, .bufferTooSmall, at: 0) }
        // Ethernet: destination, source, EtherType 0x86dd.
        buffer.put16(UInt16(truncatingIfNeeded: destinationMAC.rawValue >> 32), at: 0)
        buffer.put32(UInt32(truncatingIfNeeded: destinationMAC.rawValue), at: 2)
        buffer.put16(UInt16(truncatingIfNeeded: sourceMAC.rawValue >> 32), at: 6)
        buffer.put32(UInt32(truncatingIfNeeded: sourceMAC.rawValue), at: 8)
        buffer.put16(0x86dd, at: 12)
        let ip = UnsafeMutableRawBufferPointer(rebasing: buffer[14..<total])
        try IPv6Repr(source: source, destination: destination, nextHeader: .icmpv6, payloadLength: icmpLength, hopLimit: hopLimit).emit(into: ip)
        let icmp = UnsafeMutableRawBufferPointer(rebasing: ip[40...])
        icmp.put8(136, at: 0)
        icmp.put8(0, at: 1)
        icmp.put16(0, at: 2)
        icmp.put32(UInt32(flags.rawValue) << 24, at: 4)
        icmp.put128(target.rawValue, at: 8)
        if let mac = targetLinkLayer {
            icmp.put8(2, at: 24)   // Target Link-Layer Address, length 1 (8 bytes)
            icmp.put8(1, at: 25)
            icmp.put16(UInt16(truncatingIfNeeded: mac.rawValue >> 32), at: 26)
            icmp.put32(UInt32(truncatingIfNeeded: mac.rawValue), at: 28)
        }
        var sum = InternetChecksum.pseudoHeader(source: source, destination: destination, length: icmpLength, nextHeader: .icmpv6)
        sum.add(UnsafeRawBufferPointer(icmp))
        icmp.put16(sum.value, at: 2)
        return total
    }
}
