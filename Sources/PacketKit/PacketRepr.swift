// Whole packets as plain values: convenient for tools and tests (allocates; not for hot paths,
// where the views and the per-header `emit(into:)` calls are used directly).

/// The transport part of a packet.
public enum TransportRepr: Hashable, Sendable {
    case udp(UDPRepr, payload: [UInt8])
    case tcp(TCPRepr, payload: [UInt8])
    case icmpv4(ICMPv4Repr, data: [UInt8])
    case icmpv6(ICMPv6Repr)
    /// Anything else, or a fragment whose transport header is not in this packet: raw bytes.
    case other(IPProtocol, [UInt8])

    public var protocolNumber: IPProtocol {
        switch self {
        case .udp: return .udp
        case .tcp: return .tcp
        case .icmpv4: return .icmp
        case .icmpv6: return .icmpv6
        case .other(let p, _): return p
        }
    }

    public var length: Int {
        switch self {
        case .udp(_, let p): return 8 + p.count
        case .tcp(let t, let p): return t.headerLength + p.count
        case .icmpv4(_, let d): return 8 + d.count
        case .icmpv6(let m): return m.length
        case .other(_, let b): return b.count
        }
    }

    func emit(into b: UnsafeMutableRawBufferPointer, _ pseudo: PseudoHeader) throws(PacketError) {
        switch self {
        case .udp(let u, let p):
            p.withUnsafeBytes { b.copy($0, at: 8) }
            try u.emit(into: b, pseudoHeader: pseudo)
        case .tcp(let t, let p):
            p.withUnsafeBytes { b.copy($0, at: t.headerLength) }
            try t.emit(into: b, pseudoHeader: pseudo)
        case .icmpv4(let m, let d):
            d.withUnsafeBytes { b.copy($0, at: 8) }
            try m.emit(into: b)
        case .icmpv6(let m):
            guard case .ipv6(let s, let d) = pseudo else { throw PacketError(.icmpv6, .badVersion, at: 0) }
            try m.emit(into: b, source: s, destination: d)
        case .other(_, let bytes):
            bytes.withUnsafeBytes { b.copy($0, at: 0) }
        }
    }

    init(parsing b: UnsafeRawBufferPointer, protocol proto: IPProtocol) throws(PacketError) {
        switch proto {
        case .udp:
            let u = try UDPDatagram(b)
            self = .udp(UDPRepr(u), payload: Array(u.payload))
        case .tcp:
            let t = try TCPSegment(b)
            self = .tcp(TCPRepr(t), payload: Array(t.payload))
        case .icmp:
            let m = try ICMPv4Message(b)
            self = .icmpv4(ICMPv4Repr(m), data: Array(m.data))
        case .icmpv6:
            self = .icmpv6(try ICMPv6Repr(ICMPv6Message(b)))
        default:
            self = .other(proto, Array(b))
        }
    }
}

/// A whole IP packet as a plain value. `emit()` fills the lengths, Next Header/Protocol fields and
/// every checksum; `init(parsing:)` reads one back.
public struct PacketRepr: Hashable, Sendable {
    public enum Network: Hashable, Sendable {
        case ipv4(IPv4Repr)
        case ipv6(IPv6Repr, extensionHeaders: [IPv6ExtensionHeaderRepr])
    }
    public var network: Network
    public var transport: TransportRepr

    public init(_ network: Network, _ transport: TransportRepr) {
        self.network = network
        self.transport = transport
    }

    /// Convenience: an IPv6 packet.
    public static func ipv6(source: IPv6Address, destination: IPv6Address, hopLimit: UInt8 = 64,
                            extensionHeaders: [IPv6ExtensionHeaderRepr] = [], _ transport: TransportRepr) -> PacketRepr {
        PacketRepr(.ipv6(IPv6Repr(source: source, destination: destination, nextHeader: transport.protocolNumber, payloadLength: 0,
                                  hopLimit: hopLimit), extensionHeaders: extensionHeaders), transport).normalized()
    }

    /// Convenience: an IPv4 packet.
    public static func ipv4(source: IPv4Address, destination: IPv4Address, ttl: UInt8 = 64, identification: UInt16 = 0,
                            _ transport: TransportRepr) -> PacketRepr {
        PacketRepr(.ipv4(IPv4Repr(source: source, destination: destination, protocolNumber: transport.protocolNumber,
                                  payloadLength: 0, ttl: ttl, identification: identification)), transport).normalized()
    }

    /// The same packet with the computed fields (lengths, next header / protocol) set as `emit()` sets them.
    public func normalized() -> PacketRepr {
        var copy = self
        switch network {
        case .ipv4(var ip):
            ip.protocolNumber = transport.protocolNumber
            ip.payloadLength = transport.length
            copy.network = .ipv4(ip)
        case .ipv6(var ip, let ext):
            ip.nextHeader = ext.first?.protocolNumber ?? transport.protocolNumber
            ip.payloadLength = ext.reduce(0) { $0 + $1.length } + transport.length
            copy.network = .ipv6(ip, extensionHeaders: ext)
        }
        return copy
    }

    /// Total length when emitted.
    public var length: Int {
        switch network {
        case .ipv4(let ip): return ip.headerLength + transport.length
        case .ipv6(_, let ext): return 40 + ext.reduce(0) { $0 + $1.length } + transport.length
        }
    }

    /// Emits the packet into a new array.
    public func emit() throws(PacketError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let n = normalized()
        var failure: PacketError? = nil
        out.withUnsafeMutableBytes { b in
            do throws(PacketError) {
                switch n.network {
                case .ipv4(let ip):
                    let hl = try ip.emit(into: b)
                    try n.transport.emit(into: b.slice(hl, b.count), .ipv4(source: ip.source, destination: ip.destination))
                case .ipv6(let ip, let ext):
                    var off = try ip.emit(into: b)
                    for (i, h) in ext.enumerated() {
                        let next = i + 1 < ext.count ? ext[i + 1].protocolNumber : n.transport.protocolNumber
                        off += try h.emit(nextHeader: next, into: b.slice(off, b.count))
                    }
                    // The upper-layer checksum uses the final destination of a Routing header (RFC 8200 §8.1).
                    // A chain the parser refuses (built on purpose by tests) still emits, with the plain destination.
                    let final = (try? IPv6Packet(UnsafeRawBufferPointer(b)))?.routingFinalDestination
                    try n.transport.emit(into: b.slice(off, b.count), .ipv6(source: ip.source, destination: final ?? ip.destination))
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return out
    }

    /// Parses a whole packet. Fragments other than the first keep their payload as `.other`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(PacketError) {
        switch try IPPacket(bytes) {
        case .v4(let p):
            network = .ipv4(IPv4Repr(p))
            if p.isFragment {
                transport = .other(p.protocolNumber, Array(p.payload))
            } else {
                transport = try TransportRepr(parsing: p.payload, protocol: p.protocolNumber)
            }
        case .v6(let p):
            var ext = [IPv6ExtensionHeaderRepr]()
            for h in p.extensionHeaders {
                guard let r = IPv6ExtensionHeaderRepr(h) else { throw PacketError(.ipv6ExtensionHeader, .wrongType, at: h.offset) }
                ext.append(r)
            }
            network = .ipv6(IPv6Repr(p), extensionHeaders: ext)
            if let f = p.fragment, !f.isAtomic {
                transport = .other(p.upperLayerProtocol, Array(p.upperLayer))
            } else {
                transport = try TransportRepr(parsing: p.upperLayer, protocol: p.upperLayerProtocol)
            }
        }
    }

    /// Parses a whole packet held in an array.
    public init(parsing bytes: [UInt8]) throws(PacketError) {
        var result: Result<PacketRepr, PacketError> = .failure(PacketError(.ipv4, .truncated, at: 0))
        bytes.withUnsafeBytes { b in
            do throws(PacketError) { result = .success(try PacketRepr(parsing: b)) } catch { result = .failure(error) }
        }
        self = try result.get()
    }
}
