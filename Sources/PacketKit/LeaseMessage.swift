// The Sixgate address lease exchange (docs/lease-protocol.md): a small, versioned message a
// Sixgate client sends inside the tunnel, over UDP from its key-derived link-local address, and the
// gateway's answer with the client's addresses, routes, MTU, DNS servers and NAT64 prefix.
// Authenticated by the tunnel itself (only a peer with a session can reach the gateway's handler).

/// An address with the prefix length to configure it with (host bits may be set: 192.0.2.2/24).
public struct AddressAssignment: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var prefixLength: UInt8
    public init(_ address: IPAddress, prefixLength: UInt8) {
        self.address = address
        self.prefixLength = prefixLength
    }
    public var description: String { "\(address)/\(prefixLength)" }
}

/// One lease message. Encoding: an 8-byte header (magic "SG", version, kind, transaction id) and
/// type-length-value fields; unknown field types are skipped so later versions can add fields.
public struct LeaseMessage: Hashable, Sendable {
    /// The UDP port the gateway's lease handler listens on, inside the tunnel only.
    public static let port: UInt16 = 51800
    /// The only version this code speaks; a message of another version is refused (parse error).
    public static let version: UInt8 = 1
    /// Neither side accepts or produces more than this (a reply fits one 1280-byte packet).
    public static let maximumLength = 1024

    public enum Kind: UInt8, Hashable, Sendable {
        /// Client → gateway: "what are my addresses?"
        case request = 1
        /// Gateway → client: the lease.
        case reply = 2
        /// Gateway → client: no lease, with a reason in `message`.
        case refusal = 3
        /// Client → gateway: what the client left out of the lease it was given, and why, in
        /// `message` (no answer). A gateway that predates it drops it as malformed.
        case notice = 4
        /// Gateway → client: the lease changed (the gateway's prefix was renumbered); ask again
        /// now. No body; any transaction. A client that predates it drops it as malformed and
        /// learns the change at its next renewal.
        case renew = 5
    }

    public var kind: Kind
    /// Chosen by the client; the reply repeats it so a stale answer can be told apart.
    public var transaction: UInt32
    /// The client's IPv6 lease: a /128 address or a delegated prefix (e.g. a /64).
    public var ipv6: AddressAssignment?
    /// The client's IPv4 address and the prefix length to configure it with.
    public var ipv4: AddressAssignment?
    /// Prefixes the gateway offers to route (normally ::/0 and 0.0.0.0/0); the client's config decides what it takes.
    public var routes: [IPPrefix] = []
    /// The gateway's own addresses inside the tunnel.
    public var gatewayAddresses: [IPAddress] = []
    public var mtu: UInt16?
    public var dnsServers: [IPAddress] = []
    public var nat64Prefix: IPv6Prefix?
    /// The IPv6 address (a /128) the client's CLAT (RFC 6877 464XLAT) translates its IPv4 traffic
    /// from; the gateway's NAT64 maps it to an IPv4 address of its own. Distinct from `ipv6`, so
    /// what comes back for the CLAT is routed to the CLAT and not to the host's own stack.
    public var clatAddress: IPv6Address?
    /// Seconds the lease is good for; the client asks again after half of it.
    public var lifetime: UInt32?
    /// The client's leases in an earlier prefix (the gateway was renumbered), each with the seconds
    /// it stays valid: kept deprecated (preferred lifetime 0) so that connections open on them
    /// finish, then removed (issue 24).
    public var deprecated: [DeprecatedAssignment] = []
    /// Why a request was refused, or what a notice reports (UTF-8, at most 200 bytes).
    public var message: String?

    public init(kind: Kind, transaction: UInt32) {
        self.kind = kind
        self.transaction = transaction
    }

    enum Field: UInt8 {
        case ipv6 = 1, ipv4 = 2, route = 3, mtu = 4, dns = 5, nat64 = 6, lifetime = 7, gateway = 8, message = 9, clat = 10, deprecated = 11
    }

    // MARK: Encoding

    /// The UDP payload. Fields that do not fit `maximumLength` are an error, never silently dropped.
    public func encode() throws(PacketError) -> [UInt8] {
        var out: [UInt8] = [0x53, 0x47, Self.version, kind.rawValue]
        append32(&out, transaction)
        func field(_ f: Field, _ value: [UInt8]) { out.append(f.rawValue); out.append(UInt8(value.count)); out += value }
        if let a = ipv6 { field(.ipv6, Self.bytes(a.address) + [a.prefixLength]) }
        if let a = ipv4 { field(.ipv4, Self.bytes(a.address) + [a.prefixLength]) }
        for r in routes { field(.route, Self.bytes(r.network) + [r.length]) }
        for g in gatewayAddresses { field(.gateway, Self.bytes(g)) }
        if let mtu { field(.mtu, [UInt8(mtu >> 8), UInt8(mtu & 0xff)]) }
        for d in dnsServers { field(.dns, Self.bytes(d)) }
        if let p = nat64Prefix { field(.nat64, Self.bytes(.v6(p.network)) + [p.length]) }
        if let c = clatAddress { field(.clat, Self.bytes(.v6(c)) + [128]) }
        if let lifetime { var b: [UInt8] = []; append32(&b, lifetime); field(.lifetime, b) }
        for d in deprecated {
            var b = Self.bytes(.v6(d.address)) + [d.prefixLength]
            append32(&b, d.validLifetime)
            field(.deprecated, b)
        }
        if let message { field(.message, Array(message.utf8.prefix(200))) }
        guard out.count <= Self.maximumLength else { throw PacketError(.udp, .badLength, at: Self.maximumLength) }
        return out
    }

    func append32(_ out: inout [UInt8], _ v: UInt32) {
        out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
    }

    static func bytes(_ a: IPAddress) -> [UInt8] {
        switch a {
        case .v4(let v): return withUnsafeBytes(of: v.rawValue.bigEndian, Array.init)
        case .v6(let v): return withUnsafeBytes(of: v.rawValue.bigEndian, Array.init)
        }
    }

    // MARK: Parsing

    /// Parses a UDP payload. Never traps; anything malformed (wrong magic or version, a field that
    /// runs past the end, a field of the wrong size, a single-valued field twice) is a `PacketError`.
    public init(parsing b: UnsafeRawBufferPointer) throws(PacketError) {
        guard b.count >= 8 else { throw PacketError(.udp, .truncated, at: b.count) }
        guard b.count <= Self.maximumLength else { throw PacketError(.udp, .badLength, at: 0) }
        guard b[0] == 0x53, b[1] == 0x47 else { throw PacketError(.udp, .badMagic, at: 0) }
        guard b[2] == Self.version else { throw PacketError(.udp, .badVersion, at: 2) }
        guard let kind = Kind(rawValue: b[3]) else { throw PacketError(.udp, .wrongType, at: 3) }
        self.init(kind: kind, transaction: b.be32(4))
        var offset = 8
        var seen: Set<UInt8> = []
        while offset < b.count {
            guard offset + 2 <= b.count else { throw PacketError(.udp, .truncated, at: offset) }
            let type = b[offset], length = Int(b[offset + 1])
            let start = offset + 2
            guard start + length <= b.count else { throw PacketError(.udp, .badOptionLength, at: offset + 1) }
            let v = b.slice(start, start + length)
            defer { offset = start + length }
            guard let f = Field(rawValue: type) else { continue }   // a later version's field
            let single: Set<Field> = [.ipv6, .ipv4, .mtu, .nat64, .lifetime, .message, .clat]
            if single.contains(f) {
                guard seen.insert(type).inserted else { throw PacketError(.udp, .badValue, at: offset) }
            }
            func address(_ count: Int) throws(PacketError) -> IPAddress {
                switch count {
                case 4: return .v4(IPv4Address(rawValue: v.be32(0)))
                case 16: return .v6(IPv6Address(rawValue: v.be128(0)))
                default: throw PacketError(.udp, .badOptionLength, at: offset + 1)
                }
            }
            func assignment(family: Int?) throws(PacketError) -> AddressAssignment {
                guard length == 5 || length == 17, family == nil || family == length - 1 else { throw PacketError(.udp, .badOptionLength, at: offset + 1) }
                let a = try address(length - 1)
                let len = v[length - 1]
                guard len <= (length == 5 ? 32 : 128) else { throw PacketError(.udp, .badValue, at: start + length - 1) }
                return AddressAssignment(a, prefixLength: len)
            }
            switch f {
            case .ipv6: ipv6 = try assignment(family: 16)
            case .ipv4: ipv4 = try assignment(family: 4)
            case .route:
                let a = try assignment(family: nil)
                switch a.address {
                case .v4(let x): routes.append(.v4(IPv4Prefix(containing: x, length: a.prefixLength)))
                case .v6(let x): routes.append(.v6(IPv6Prefix(containing: x, length: a.prefixLength)))
                }
            case .nat64:
                let a = try assignment(family: 16)
                guard case .v6(let x) = a.address else { throw PacketError(.udp, .badValue, at: start) }
                nat64Prefix = IPv6Prefix(containing: x, length: a.prefixLength)
            case .clat:
                let a = try assignment(family: 16)
                guard case .v6(let x) = a.address, a.prefixLength == 128 else { throw PacketError(.udp, .badValue, at: start + length - 1) }
                clatAddress = x
            case .gateway: gatewayAddresses.append(try address(length))
            case .dns: dnsServers.append(try address(length))
            case .mtu:
                guard length == 2 else { throw PacketError(.udp, .badOptionLength, at: offset + 1) }
                mtu = v.be16(0)
            case .lifetime:
                guard length == 4 else { throw PacketError(.udp, .badOptionLength, at: offset + 1) }
                lifetime = v.be32(0)
            case .message:
                message = String(decoding: v, as: UTF8.self)
            case .deprecated:
                guard length == 21 else { throw PacketError(.udp, .badOptionLength, at: offset + 1) }
                guard v[16] <= 128 else { throw PacketError(.udp, .badValue, at: start + 16) }
                deprecated.append(DeprecatedAssignment(IPv6Address(rawValue: v.be128(0)), prefixLength: v[16], validLifetime: v.be32(17)))
            }
        }
    }

    public init(parsing bytes: [UInt8]) throws(PacketError) {
        let r: Result<LeaseMessage, PacketError> = bytes.withUnsafeBytes { buffer in
            do throws(PacketError) { return .success(try LeaseMessage(parsing: buffer)) } catch { return .failure(error) }
        }
        self = try r.get()
    }

    // MARK: Addressing

    /// The client's link-local address inside the tunnel: fe80::/64 and the first 8 bytes of its
    /// public key as interface identifier, so the gateway can check a request against the peer it
    /// came from.
    public static func clientLinkLocal(publicKey: UnsafeRawBufferPointer) -> IPv6Address {
        var iid: UInt64 = 0
        for i in 0..<min(8, publicKey.count) { iid = iid << 8 | UInt64(publicKey[i]) }
        return IPv6Address(rawValue: (0xfe80 as UInt128) << 112 | UInt128(iid))
    }

    /// Where a client sends requests when it does not know the gateway's address yet.
    public static let gatewayLinkLocal = IPv6Address(rawValue: (0xfe80 as UInt128) << 112 | 1)
}

/// A lease in an earlier prefix: the address (or delegated prefix) and how many more seconds it
/// stays valid. Preferred lifetime is 0: no new connections start from it.
public struct DeprecatedAssignment: Sendable, Hashable, CustomStringConvertible {
    public var address: IPv6Address
    public var prefixLength: UInt8
    public var validLifetime: UInt32
    public init(_ address: IPv6Address, prefixLength: UInt8, validLifetime: UInt32) {
        self.address = address; self.prefixLength = prefixLength; self.validLifetime = validLifetime
    }
    /// "2001:db8:1::4/128 (valid 7200 s)"
    public var description: String { "\(address)/\(prefixLength) (valid \(validLifetime) s)" }
    /// The address or prefix as a prefix.
    public var prefix: IPv6Prefix { IPv6Prefix(containing: address, length: prefixLength) }
}
