// UDP (RFC 768) and TCP (RFC 9293) headers: views and plain values.

/// Which IP header a transport checksum covers: the pseudo-header source and destination.
public enum PseudoHeader: Hashable, Sendable {
    case ipv4(source: IPv4Address, destination: IPv4Address)
    case ipv6(source: IPv6Address, destination: IPv6Address)

    /// The running sum seeded with this pseudo-header for `length` bytes of `proto`.
    @inlinable public func checksum(length: Int, protocol proto: IPProtocol) -> InternetChecksum {
        switch self {
        case .ipv4(let s, let d): return .pseudoHeader(source: s, destination: d, length: length, protocol: proto)
        case .ipv6(let s, let d): return .pseudoHeader(source: s, destination: d, length: length, nextHeader: proto)
        }
    }
}

/// A validated UDP datagram in a caller's buffer: Length >= 8 and within the buffer.
public struct UDPDatagram {
    /// Header and payload, trimmed to the Length field.
    public let bytes: UnsafeRawBufferPointer
    @inlinable @inline(__always) public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 8 else { throw PacketError(.udp, .truncated, at: buffer.count) }
        let len = Int(buffer.be16(4))
        guard len >= 8, len <= buffer.count else { throw PacketError(.udp, .badLength, at: 4) }
        bytes = buffer.slice(0, len)
    }
    @inlinable public var sourcePort: UInt16 { bytes.be16(0) }
    @inlinable public var destinationPort: UInt16 { bytes.be16(2) }
    @inlinable public var length: Int { Int(bytes.be16(4)) }
    @inlinable public var checksum: UInt16 { bytes.be16(6) }
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(8, bytes.count) }
    /// Whether the checksum verifies. Over IPv4 a zero checksum means "none" and passes
    /// (RFC 768); over IPv6 it is invalid (RFC 8200 §8.1).
    @inlinable public func isChecksumValid(_ pseudo: PseudoHeader) -> Bool {
        if checksum == 0 { if case .ipv4 = pseudo { return true } else { return false } }
        var c = pseudo.checksum(length: bytes.count, protocol: .udp)
        c.add(bytes)
        return c.verifies
    }
}

/// A UDP header as a plain value.
public struct UDPRepr: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public init(sourcePort: UInt16, destinationPort: UInt16) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
    public init(_ d: UDPDatagram) { self.init(sourcePort: d.sourcePort, destinationPort: d.destinationPort) }

    /// Writes the header at the start of `datagram` (header + the payload the caller already placed
    /// at byte 8) and its checksum; a computed 0 is sent as 0xffff (RFC 768).
    @inlinable public func emit(into datagram: UnsafeMutableRawBufferPointer, pseudoHeader: PseudoHeader) throws(PacketError) {
        guard datagram.count >= 8 else { throw PacketError(.udp, .bufferTooSmall, at: 0) }
        guard datagram.count <= 0xffff else { throw PacketError(.udp, .badLength, at: 4) }
        datagram.put16(sourcePort, at: 0)
        datagram.put16(destinationPort, at: 2)
        datagram.put16(UInt16(datagram.count), at: 4)
        datagram.put16(0, at: 6)
        var c = pseudoHeader.checksum(length: datagram.count, protocol: .udp)
        c.add(UnsafeRawBufferPointer(datagram))
        let v = c.value
        datagram.put16(v == 0 ? 0xffff : v, at: 6)
    }
}

/// TCP control bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
public struct TCPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
    /// tcpdump's letters: F S R P . U E W.
    public var description: String {
        var s = ""
        for (f, c) in [(TCPFlags.fin, "F"), (.syn, "S"), (.rst, "R"), (.psh, "P"), (.urg, "U"), (.ece, "E"), (.cwr, "W")] where contains(f) { s += c }
        if contains(.ack) { s += "." }
        return s.isEmpty ? "none" : s
    }
}

/// A validated TCP segment in a caller's buffer: Data Offset >= 5 and within the buffer.
public struct TCPSegment {
    public let bytes: UnsafeRawBufferPointer
    @inlinable @inline(__always) public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 20 else { throw PacketError(.tcp, .truncated, at: buffer.count) }
        let off = Int(buffer[12] >> 4) &* 4
        guard off >= 20 else { throw PacketError(.tcp, .badHeaderLength, at: 12) }
        guard off <= buffer.count else { throw PacketError(.tcp, .truncated, at: buffer.count) }
        bytes = buffer
    }
    @inlinable public var sourcePort: UInt16 { bytes.be16(0) }
    @inlinable public var destinationPort: UInt16 { bytes.be16(2) }
    @inlinable public var sequenceNumber: UInt32 { bytes.be32(4) }
    @inlinable public var acknowledgmentNumber: UInt32 { bytes.be32(8) }
    @inlinable public var headerLength: Int { Int(bytes[12] >> 4) * 4 }
    @inlinable public var flags: TCPFlags { TCPFlags(rawValue: bytes[13]) }
    @inlinable public var window: UInt16 { bytes.be16(14) }
    @inlinable public var checksum: UInt16 { bytes.be16(16) }
    @inlinable public var urgentPointer: UInt16 { bytes.be16(18) }
    @inlinable public var options: UnsafeRawBufferPointer { bytes.slice(20, headerLength) }
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(headerLength, bytes.count) }
    @inlinable public func isChecksumValid(_ pseudo: PseudoHeader) -> Bool {
        var c = pseudo.checksum(length: bytes.count, protocol: .tcp)
        c.add(bytes)
        return c.verifies
    }
}

/// A TCP header as a plain value.
public struct TCPRepr: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    public var urgentPointer: UInt16
    /// Option bytes, padded with End-of-Option-List zeros to a multiple of 4 when emitted.
    public var options: [UInt8]

    public init(sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: UInt32 = 0, acknowledgmentNumber: UInt32 = 0,
                flags: TCPFlags = [], window: UInt16 = 65535, urgentPointer: UInt16 = 0, options: [UInt8] = []) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.urgentPointer = urgentPointer
        self.options = options
    }

    public init(_ s: TCPSegment) {
        let opts = trimOptionPadding(s.options)
        self.init(sourcePort: s.sourcePort, destinationPort: s.destinationPort, sequenceNumber: s.sequenceNumber,
                  acknowledgmentNumber: s.acknowledgmentNumber, flags: s.flags, window: s.window,
                  urgentPointer: s.urgentPointer, options: opts)
    }

    public var headerLength: Int { 20 + (options.count + 3) / 4 * 4 }

    /// Writes the header at the start of `segment` (header + payload already placed after
    /// ``headerLength``) and the checksum over the whole segment.
    public func emit(into segment: UnsafeMutableRawBufferPointer, pseudoHeader: PseudoHeader) throws(PacketError) {
        let hl = headerLength
        guard hl <= 60 else { throw PacketError(.tcp, .badHeaderLength, at: 12) }
        guard segment.count >= hl else { throw PacketError(.tcp, .bufferTooSmall, at: 0) }
        segment.put16(sourcePort, at: 0)
        segment.put16(destinationPort, at: 2)
        segment.put32(sequenceNumber, at: 4)
        segment.put32(acknowledgmentNumber, at: 8)
        segment.put8(UInt8(hl / 4) << 4, at: 12)
        segment.put8(flags.rawValue, at: 13)
        segment.put16(window, at: 14)
        segment.put16(0, at: 16)
        segment.put16(urgentPointer, at: 18)
        options.withUnsafeBytes { segment.copy($0, at: 20) }
        segment.zero(20 + options.count, hl)
        var c = pseudoHeader.checksum(length: segment.count, protocol: .tcp)
        c.add(UnsafeRawBufferPointer(segment))
        segment.put16(c.value, at: 16)
    }
}
