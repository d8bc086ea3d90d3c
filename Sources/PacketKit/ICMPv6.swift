// ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861) messages.

/// An ICMPv6 message type. An open set: unknown values survive a round trip.
public struct ICMPv6Type: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public static let destinationUnreachable = ICMPv6Type(1)
    public static let packetTooBig = ICMPv6Type(2)
    public static let timeExceeded = ICMPv6Type(3)
    public static let parameterProblem = ICMPv6Type(4)
    public static let echoRequest = ICMPv6Type(128)
    public static let echoReply = ICMPv6Type(129)
    public static let routerSolicitation = ICMPv6Type(133)
    public static let routerAdvertisement = ICMPv6Type(134)
    public static let neighborSolicitation = ICMPv6Type(135)
    public static let neighborAdvertisement = ICMPv6Type(136)
    public static let redirect = ICMPv6Type(137)

    /// Error messages have the high bit clear (RFC 4443 §2.1).
    @inlinable public var isError: Bool { rawValue < 128 }

    public var description: String {
        switch rawValue {
        case 1: return "destination unreachable"
        case 2: return "packet too big"
        case 3: return "time exceeded"
        case 4: return "parameter problem"
        case 128: return "echo request"
        case 129: return "echo reply"
        case 133: return "router solicitation"
        case 134: return "router advertisement"
        case 135: return "neighbor solicitation"
        case 136: return "neighbor advertisement"
        case 137: return "redirect"
        default: return "type \(rawValue)"
        }
    }
}

/// A validated ICMPv6 message (at least type, code and checksum) in a caller's buffer.
public struct ICMPv6Message {
    public let bytes: UnsafeRawBufferPointer

    @inlinable @inline(__always) public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 4 else { throw PacketError(.icmpv6, .truncated, at: buffer.count) }
        bytes = buffer
    }

    @inlinable public var type: ICMPv6Type { ICMPv6Type(bytes[0]) }
    @inlinable public var code: UInt8 { bytes[1] }
    @inlinable public var checksum: UInt16 { bytes.be16(2) }
    /// Everything after the 4-byte type/code/checksum.
    @inlinable public var body: UnsafeRawBufferPointer { bytes.slice(4, bytes.count) }

    /// Whether the checksum verifies with the IPv6 pseudo-header (RFC 4443 §2.3).
    @inlinable public func isChecksumValid(source: IPv6Address, destination: IPv6Address) -> Bool {
        var c = InternetChecksum.pseudoHeader(source: source, destination: destination, length: bytes.count, nextHeader: .icmpv6)
        c.add(bytes)
        return c.verifies
    }

    /// Echo identifier and sequence (types 128/129); nil if the message is too short.
    public var echo: (identifier: UInt16, sequence: UInt16)? {
        bytes.count >= 8 ? (bytes.be16(4), bytes.be16(6)) : nil
    }
    /// The MTU of a Packet Too Big message.
    public var mtu: UInt32? { type == .packetTooBig && bytes.count >= 8 ? bytes.be32(4) : nil }
    /// The pointer of a Parameter Problem message.
    public var pointer: UInt32? { type == .parameterProblem && bytes.count >= 8 ? bytes.be32(4) : nil }
    /// Data after the 8-byte header: echo data or the invoking packet of an error.
    public var data: UnsafeRawBufferPointer { bytes.count >= 8 ? bytes.slice(8, bytes.count) : bytes.slice(bytes.count, bytes.count) }
}

/// An ICMPv6 message as a plain value, NDP messages included with their options.
public enum ICMPv6Repr: Hashable, Sendable {
    case echoRequest(identifier: UInt16, sequence: UInt16, data: [UInt8])
    case echoReply(identifier: UInt16, sequence: UInt16, data: [UInt8])
    /// Errors carry as much of the invoking packet as fits (RFC 4443 §2.4(c)).
    case destinationUnreachable(code: UInt8, invokingPacket: [UInt8])
    case packetTooBig(mtu: UInt32, invokingPacket: [UInt8])
    case timeExceeded(code: UInt8, invokingPacket: [UInt8])
    case parameterProblem(code: UInt8, pointer: UInt32, invokingPacket: [UInt8])
    case routerSolicitation(options: [NDPOptionRepr])
    case routerAdvertisement(RouterAdvertisementRepr)
    case neighborSolicitation(target: IPv6Address, options: [NDPOptionRepr])
    case neighborAdvertisement(flags: NeighborAdvertisementFlags, target: IPv6Address, options: [NDPOptionRepr])
    case redirect(target: IPv6Address, destination: IPv6Address, options: [NDPOptionRepr])
    case other(type: ICMPv6Type, code: UInt8, body: [UInt8])

    /// Parses a message; NDP messages are checked for their minimum lengths and option lengths
    /// (but not for the IP-level rules: see ``NDPValidation``).
    public init(_ m: ICMPv6Message) throws(PacketError) {
        let b = m.bytes
        func need(_ n: Int) throws(PacketError) { if b.count < n { throw PacketError(.icmpv6, .truncated, at: b.count) } }
        switch m.type {
        case .echoRequest, .echoReply:
            try need(8)
            let (i, s, d) = (b.be16(4), b.be16(6), Array(b.slice(8, b.count)))
            self = m.type == .echoRequest ? .echoRequest(identifier: i, sequence: s, data: d) : .echoReply(identifier: i, sequence: s, data: d)
        case .destinationUnreachable:
            try need(8)
            self = .destinationUnreachable(code: m.code, invokingPacket: Array(b.slice(8, b.count)))
        case .packetTooBig:
            try need(8)
            self = .packetTooBig(mtu: b.be32(4), invokingPacket: Array(b.slice(8, b.count)))
        case .timeExceeded:
            try need(8)
            self = .timeExceeded(code: m.code, invokingPacket: Array(b.slice(8, b.count)))
        case .parameterProblem:
            try need(8)
            self = .parameterProblem(code: m.code, pointer: b.be32(4), invokingPacket: Array(b.slice(8, b.count)))
        case .routerSolicitation:
            let rs = try RouterSolicitation(m)
            self = .routerSolicitation(options: try rs.options.reprs())
        case .routerAdvertisement:
            self = .routerAdvertisement(try RouterAdvertisementRepr(RouterAdvertisement(m)))
        case .neighborSolicitation:
            let ns = try NeighborSolicitation(m)
            self = .neighborSolicitation(target: ns.target, options: try ns.options.reprs())
        case .neighborAdvertisement:
            let na = try NeighborAdvertisement(m)
            self = .neighborAdvertisement(flags: na.flags, target: na.target, options: try na.options.reprs())
        case .redirect:
            let r = try Redirect(m)
            self = .redirect(target: r.target, destination: r.destination, options: try r.options.reprs())
        default:
            self = .other(type: m.type, code: m.code, body: Array(b.slice(4, b.count)))
        }
    }

    public var type: ICMPv6Type {
        switch self {
        case .echoRequest: return .echoRequest
        case .echoReply: return .echoReply
        case .destinationUnreachable: return .destinationUnreachable
        case .packetTooBig: return .packetTooBig
        case .timeExceeded: return .timeExceeded
        case .parameterProblem: return .parameterProblem
        case .routerSolicitation: return .routerSolicitation
        case .routerAdvertisement: return .routerAdvertisement
        case .neighborSolicitation: return .neighborSolicitation
        case .neighborAdvertisement: return .neighborAdvertisement
        case .redirect: return .redirect
        case .other(let t, _, _): return t
        }
    }

    /// The number of bytes ``emit(into:source:destination:)`` writes.
    public var length: Int {
        switch self {
        case .echoRequest(_, _, let d), .echoReply(_, _, let d): return 8 + d.count
        case .destinationUnreachable(_, let p), .packetTooBig(_, let p), .timeExceeded(_, let p), .parameterProblem(_, _, let p):
            return 8 + p.count
        case .routerSolicitation(let o): return 8 + o.encodedLength
        case .routerAdvertisement(let ra): return 16 + ra.options.encodedLength
        case .neighborSolicitation(_, let o), .neighborAdvertisement(_, _, let o): return 24 + o.encodedLength
        case .redirect(_, _, let o): return 40 + o.encodedLength
        case .other(_, _, let body): return 4 + body.count
        }
    }

    /// Writes the message at the start of `buffer` with its checksum over the IPv6 pseudo-header.
    /// Returns the number of bytes written.
    @discardableResult
    public func emit(into buffer: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address) throws(PacketError) -> Int {
        let n = length
        guard buffer.count >= n else { throw PacketError(.icmpv6, .bufferTooSmall, at: 0) }
        let b = buffer.slice(0, n)
        b.put8(type.rawValue, at: 0)
        b.put16(0, at: 2)
        switch self {
        case .echoRequest(let i, let s, let d), .echoReply(let i, let s, let d):
            b.put8(0, at: 1)
            b.put16(i, at: 4)
            b.put16(s, at: 6)
            d.withUnsafeBytes { b.copy($0, at: 8) }
        case .destinationUnreachable(let code, let p), .timeExceeded(let code, let p):
            b.put8(code, at: 1)
            b.put32(0, at: 4)
            p.withUnsafeBytes { b.copy($0, at: 8) }
        case .packetTooBig(let mtu, let p):
            b.put8(0, at: 1)
            b.put32(mtu, at: 4)
            p.withUnsafeBytes { b.copy($0, at: 8) }
        case .parameterProblem(let code, let pointer, let p):
            b.put8(code, at: 1)
            b.put32(pointer, at: 4)
            p.withUnsafeBytes { b.copy($0, at: 8) }
        case .routerSolicitation(let o):
            b.put8(0, at: 1)
            b.put32(0, at: 4)
            try o.emit(into: b.slice(8, n))
        case .routerAdvertisement(let ra):
            b.put8(0, at: 1)
            b.put8(ra.currentHopLimit, at: 4)
            b.put8((ra.managed ? 0x80 : 0) | (ra.otherConfiguration ? 0x40 : 0) | (ra.homeAgent ? 0x20 : 0) | ra.preference.rawValue << 3, at: 5)
            b.put16(ra.routerLifetime, at: 6)
            b.put32(ra.reachableTime, at: 8)
            b.put32(ra.retransTimer, at: 12)
            try ra.options.emit(into: b.slice(16, n))
        case .neighborSolicitation(let target, let o):
            b.put8(0, at: 1)
            b.put32(0, at: 4)
            b.put128(target.rawValue, at: 8)
            try o.emit(into: b.slice(24, n))
        case .neighborAdvertisement(let flags, let target, let o):
            b.put8(0, at: 1)
            b.put32(UInt32(flags.rawValue) << 24, at: 4)
            b.put128(target.rawValue, at: 8)
            try o.emit(into: b.slice(24, n))
        case .redirect(let target, let dst, let o):
            b.put8(0, at: 1)
            b.put32(0, at: 4)
            b.put128(target.rawValue, at: 8)
            b.put128(dst.rawValue, at: 24)
            try o.emit(into: b.slice(40, n))
        case .other(_, let code, let body):
            b.put8(code, at: 1)
            body.withUnsafeBytes { b.copy($0, at: 4) }
        }
        var c = InternetChecksum.pseudoHeader(source: source, destination: destination, length: n, nextHeader: .icmpv6)
        c.add(UnsafeRawBufferPointer(b))
        b.put16(c.value, at: 2)
        return n
    }
}
