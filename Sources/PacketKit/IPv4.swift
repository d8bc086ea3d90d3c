// IPv4 (RFC 791): a validating view over a caller's buffer and a plain value that parses and emits.

/// A validated IPv4 packet in a caller's buffer. Fields are read in place.
///
/// Construction checks version, IHL, total length against the buffer, and the option TLVs; it does
/// not check the header checksum (see ``isHeaderChecksumValid``), so a router can count bad sums.
/// Bytes after Total Length (link-layer padding) are excluded from ``bytes``.
/// The buffer must stay valid while the view is used.
public struct IPv4Packet {
    /// Offsets of the fixed header fields (RFC 791 §3.1).
    public enum Field {
        public static let versionIHL = 0, tos = 1, totalLength = 2, identification = 4, flagsFragment = 6
        public static let ttl = 8, proto = 9, checksum = 10, source = 12, destination = 16
    }
    /// The packet: header and payload, trimmed to Total Length.
    public let bytes: UnsafeRawBufferPointer

    @inlinable public var headerLength: Int { Int(bytes[0] & 0x0f) * 4 }

    @inlinable @inline(__always) public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 20 else { throw PacketError(.ipv4, .truncated, at: buffer.count) }
        guard buffer[0] >> 4 == 4 else { throw PacketError(.ipv4, .badVersion, at: 0) }
        let ihl = Int(buffer[0] & 0x0f) &* 4
        guard ihl >= 20 else { throw PacketError(.ipv4, .badHeaderLength, at: 0) }
        guard ihl <= buffer.count else { throw PacketError(.ipv4, .truncated, at: buffer.count) }
        let total = Int(buffer.be16(Field.totalLength))
        guard total >= ihl, total <= buffer.count else { throw PacketError(.ipv4, .badLength, at: Field.totalLength) }
        // Options (RFC 791 §3.1): End of Option List, No Operation, or type-length-value with length >= 2.
        // Offsets stay below 60: no overflow.
        var o = 20
        while o < ihl {
            let type = buffer[o]
            if type == 0 { break }
            if type == 1 { o &+= 1; continue }
            guard o &+ 1 < ihl else { throw PacketError(.ipv4, .badOptionLength, at: o) }
            let len = Int(buffer[o &+ 1])
            guard len >= 2, o &+ len <= ihl else { throw PacketError(.ipv4, .badOptionLength, at: o &+ 1) }
            o &+= len
        }
        bytes = buffer.slice(0, total)
    }

    @inlinable public var tos: UInt8 { bytes[1] }
    @inlinable public var totalLength: Int { Int(bytes.be16(2)) }
    @inlinable public var identification: UInt16 { bytes.be16(4) }
    /// Don't Fragment.
    @inlinable public var dontFragment: Bool { bytes[6] & 0x40 != 0 }
    /// More Fragments.
    @inlinable public var moreFragments: Bool { bytes[6] & 0x20 != 0 }
    /// Fragment offset in 8-octet units.
    @inlinable public var fragmentOffset: UInt16 { bytes.be16(6) & 0x1fff }
    /// Whether this is a fragment (MF set or offset non-zero).
    @inlinable public var isFragment: Bool { bytes.be16(6) & 0x3fff != 0 }
    @inlinable public var ttl: UInt8 { bytes[8] }
    @inlinable public var protocolNumber: IPProtocol { IPProtocol(bytes[9]) }
    @inlinable public var headerChecksum: UInt16 { bytes.be16(10) }
    @inlinable public var source: IPv4Address { IPv4Address(rawValue: bytes.be32(12)) }
    @inlinable public var destination: IPv4Address { IPv4Address(rawValue: bytes.be32(16)) }
    /// The option bytes (empty without options).
    @inlinable public var options: UnsafeRawBufferPointer { bytes.slice(20, headerLength) }
    /// The payload after the header.
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(headerLength, bytes.count) }
    /// Whether the header checksum verifies.
    @inlinable public var isHeaderChecksumValid: Bool {
        var c = InternetChecksum()
        c.add(bytes.slice(0, headerLength))
        return c.verifies
    }
    /// The final destination of an unexpired loose or strict source route (RFC 791 §3.1: the last
    /// address of the option while its pointer is within it); nil without one.
    @inlinable public var sourceRouteFinalDestination: IPv4Address? {
        guard headerLength > 20 else { return nil }
        var o = 20
        let end = headerLength
        while o < end {
            let type = bytes[o]
            if type == 0 { return nil }
            if type == 1 { o &+= 1; continue }
            let len = Int(bytes[o &+ 1])
            if (type == 131 || type == 137), len >= 7, Int(bytes[o &+ 2]) <= len {
                return IPv4Address(rawValue: bytes.be32(o &+ len &- 4))
            }
            o &+= len
        }
        return nil
    }
    /// The addresses TCP and UDP checksums cover: the source, and the final destination of a source
    /// route where there is one (RFC 9293 §3.1, RFC 768), as tshark and Zeek compute them.
    @inlinable public var transportPseudoHeader: PseudoHeader {
        .ipv4(source: source, destination: sourceRouteFinalDestination ?? destination)
    }
    /// The pseudo-header sum for TCP/UDP checksums over this packet's payload.
    @inlinable public func pseudoHeader() -> InternetChecksum {
        InternetChecksum.pseudoHeader(source: source, destination: sourceRouteFinalDestination ?? destination, length: payload.count, protocol: protocolNumber)
    }
}

/// The fields of an IPv4 header as a plain value (smoltcp's `Ipv4Repr`).
public struct IPv4Repr: Hashable, Sendable {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var protocolNumber: IPProtocol
    public var ttl: UInt8
    /// DSCP and ECN (the former TOS byte).
    public var tos: UInt8
    public var identification: UInt16
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// Fragment offset in 8-octet units (0...8191).
    public var fragmentOffset: UInt16
    /// Option bytes; padded with End-of-Option-List zeros to a multiple of 4 when emitted.
    public var options: [UInt8]
    /// Length of what follows the header.
    public var payloadLength: Int

    public init(source: IPv4Address, destination: IPv4Address, protocolNumber: IPProtocol, payloadLength: Int,
                ttl: UInt8 = 64, tos: UInt8 = 0, identification: UInt16 = 0, dontFragment: Bool = true,
                moreFragments: Bool = false, fragmentOffset: UInt16 = 0, options: [UInt8] = []) {
        self.source = source
        self.destination = destination
        self.protocolNumber = protocolNumber
        self.payloadLength = payloadLength
        self.ttl = ttl
        self.tos = tos
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
        self.options = options
    }

    /// Reads the fields of a validated packet. Option bytes are copied without trailing padding.
    public init(_ p: IPv4Packet) {
        let opts = trimOptionPadding(p.options)
        self.init(source: p.source, destination: p.destination, protocolNumber: p.protocolNumber,
                  payloadLength: p.payload.count, ttl: p.ttl, tos: p.tos, identification: p.identification,
                  dontFragment: p.dontFragment, moreFragments: p.moreFragments, fragmentOffset: p.fragmentOffset,
                  options: opts)
    }

    /// Header length including padded options.
    public var headerLength: Int { 20 + (options.count + 3) / 4 * 4 }

    /// Writes the header (with its checksum) at the start of `buffer` and returns its length.
    /// The payload is the caller's to place after it.
    @discardableResult
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(PacketError) -> Int {
        let hl = headerLength
        guard hl <= 60 else { throw PacketError(.ipv4, .badHeaderLength, at: 0) }
        guard buffer.count >= hl else { throw PacketError(.ipv4, .bufferTooSmall, at: 0) }
        guard hl + payloadLength <= 0xffff, fragmentOffset <= 0x1fff else { throw PacketError(.ipv4, .badValue, at: 2) }
        buffer.put8(0x40 | UInt8(hl / 4), at: 0)
        buffer.put8(tos, at: 1)
        buffer.put16(UInt16(hl + payloadLength), at: 2)
        buffer.put16(identification, at: 4)
        buffer.put16((dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0) | fragmentOffset, at: 6)
        buffer.put8(ttl, at: 8)
        buffer.put8(protocolNumber.rawValue, at: 9)
        buffer.put16(0, at: 10)
        buffer.put32(source.rawValue, at: 12)
        buffer.put32(destination.rawValue, at: 16)
        options.withUnsafeBytes { buffer.copy($0, at: 20) }
        buffer.zero(20 + options.count, hl)
        buffer.put16(InternetChecksum.of(UnsafeRawBufferPointer(buffer.slice(0, hl))), at: 10)
        return hl
    }
}

/// The option bytes up to the End-of-Option-List (kind 0), walking the TLVs so that zero bytes
/// inside an option's value are kept (IPv4 RFC 791 §3.1 and TCP RFC 9293 §3.1 share the layout:
/// kinds 0 and 1 are single bytes, the rest kind-length-value).
func trimOptionPadding(_ options: UnsafeRawBufferPointer) -> [UInt8] {
    var o = 0
    while o < options.count {
        let kind = options[o]
        if kind == 0 { break }
        if kind == 1 { o += 1; continue }
        guard o + 1 < options.count, options[o + 1] >= 2 else { return Array(options) }
        o += Int(options[o + 1])
    }
    return Array(options.prefix(Swift.min(o, options.count)))
}
