// ICMP for IPv4 (RFC 792, RFC 1191 for the next-hop MTU).

/// A validated ICMPv4 message (at least the 8-byte header) in a caller's buffer.
public struct ICMPv4Message {
    public let bytes: UnsafeRawBufferPointer

    @inlinable @inline(__always) public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 8 else { throw PacketError(.icmpv4, .truncated, at: buffer.count) }
        bytes = buffer
    }

    @inlinable public var type: UInt8 { bytes[0] }
    @inlinable public var code: UInt8 { bytes[1] }
    @inlinable public var checksum: UInt16 { bytes.be16(2) }
    /// Bytes 4-7, whose meaning depends on the type.
    @inlinable public var restOfHeader: UInt32 { bytes.be32(4) }
    /// Echo identifier (types 0 and 8).
    @inlinable public var identifier: UInt16 { bytes.be16(4) }
    /// Echo sequence number (types 0 and 8).
    @inlinable public var sequence: UInt16 { bytes.be16(6) }
    /// Next-hop MTU of "fragmentation needed" (type 3 code 4, RFC 1191).
    @inlinable public var nextHopMTU: UInt16 { bytes.be16(6) }
    /// Parameter Problem pointer (type 12).
    @inlinable public var pointer: UInt8 { bytes[4] }
    /// Data after the 8-byte header: echo data, or the invoking packet of an error.
    @inlinable public var data: UnsafeRawBufferPointer { bytes.slice(8, bytes.count) }
    /// ICMPv4 checksums cover the message only (no pseudo-header).
    @inlinable public var isChecksumValid: Bool {
        var c = InternetChecksum()
        c.add(bytes)
        return c.verifies
    }

    public static let echoReply: UInt8 = 0, destinationUnreachable: UInt8 = 3, redirect: UInt8 = 5
    public static let echoRequest: UInt8 = 8, timeExceeded: UInt8 = 11, parameterProblem: UInt8 = 12
}

/// An ICMPv4 header as a plain value. The data after the header is the caller's.
public enum ICMPv4Repr: Hashable, Sendable {
    case echoRequest(identifier: UInt16, sequence: UInt16)
    case echoReply(identifier: UInt16, sequence: UInt16)
    /// Type 3; `nextHopMTU` is meaningful for code 4 (RFC 1191), zero otherwise.
    case destinationUnreachable(code: UInt8, nextHopMTU: UInt16)
    case timeExceeded(code: UInt8)
    case parameterProblem(pointer: UInt8)
    case other(type: UInt8, code: UInt8, restOfHeader: UInt32)

    public init(_ m: ICMPv4Message) {
        switch (m.type, m.code) {
        case (8, 0): self = .echoRequest(identifier: m.identifier, sequence: m.sequence)
        case (0, 0): self = .echoReply(identifier: m.identifier, sequence: m.sequence)
        case (3, let c) where m.bytes.be16(4) == 0: self = .destinationUnreachable(code: c, nextHopMTU: m.nextHopMTU)
        case (11, let c) where m.restOfHeader == 0: self = .timeExceeded(code: c)
        case (12, 0) where m.restOfHeader & 0x00ff_ffff == 0: self = .parameterProblem(pointer: m.pointer)
        default: self = .other(type: m.type, code: m.code, restOfHeader: m.restOfHeader)
        }
    }

    var fields: (UInt8, UInt8, UInt32) {
        switch self {
        case .echoRequest(let i, let s): return (8, 0, UInt32(i) << 16 | UInt32(s))
        case .echoReply(let i, let s): return (0, 0, UInt32(i) << 16 | UInt32(s))
        case .destinationUnreachable(let c, let mtu): return (3, c, UInt32(mtu))
        case .timeExceeded(let c): return (11, c, 0)
        case .parameterProblem(let p): return (12, 0, UInt32(p) << 24)
        case .other(let t, let c, let r): return (t, c, r)
        }
    }

    /// Writes the 8-byte header at the start of `message` and fills the checksum over the whole of
    /// `message` (header plus the data the caller placed after byte 8).
    public func emit(into message: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard message.count >= 8 else { throw PacketError(.icmpv4, .bufferTooSmall, at: 0) }
        let (t, c, r) = fields
        message.put8(t, at: 0)
        message.put8(c, at: 1)
        message.put16(0, at: 2)
        message.put32(r, at: 4)
        message.put16(InternetChecksum.of(UnsafeRawBufferPointer(message)), at: 2)
    }
}
