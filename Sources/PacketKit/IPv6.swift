// IPv6 (RFC 8200): a validating view that walks the extension-header chain, and plain values that
// parse and emit the fixed header and extension headers.

/// The Fragment header's fields (RFC 8200 §4.5).
public struct IPv6FragmentInfo: Hashable, Sendable {
    /// Offset in 8-octet units.
    public var offset: UInt16
    public var moreFragments: Bool
    public var identification: UInt32
    /// Offset of the Fragment header in the packet.
    public var headerOffset: Int
    /// An atomic fragment (offset 0, M=0) is processed alone (RFC 6946).
    public var isAtomic: Bool { offset == 0 && !moreFragments }

    @inlinable public init(offset: UInt16, moreFragments: Bool, identification: UInt32, headerOffset: Int) {
        self.offset = offset
        self.moreFragments = moreFragments
        self.identification = identification
        self.headerOffset = headerOffset
    }
}

/// A validated IPv6 packet in a caller's buffer.
///
/// Construction checks the version, Payload Length against the buffer, and walks the extension
/// header chain (RFC 8200 §4): Hop-by-Hop only first, every header inside the payload, option TLVs
/// inside their header, at most ``maximumExtensionHeaders`` headers. The walk stops at the first
/// upper-layer header, ESP, No Next Header, an unknown number, or a non-first fragment. Bytes after
/// Payload Length (link padding) are excluded. The buffer must stay valid while the view is used.
public struct IPv6Packet {
    /// A bound on the chain so a crafted packet cannot make the walk long. Linux's
    /// default caps options at 8 per header; 16 headers is far past any real packet.
    public static let maximumExtensionHeaders = 16

    /// Header and payload, trimmed to 40 + Payload Length.
    public let bytes: UnsafeRawBufferPointer
    // Kept small (the view is passed around per packet): offsets, not copies of fields.
    @usableFromInline let upperOffset: Int32
    @usableFromInline let fragmentHeaderOffset: Int32      // -1: none
    @usableFromInline let finalDestinationOffset: Int32    // -1: none
    @usableFromInline let homeAddressOffset: Int32         // -1: none
    /// The Next Header value that ends the chain (TCP, UDP, ICMPv6, ESP, No Next Header, unknown...).
    public let upperLayerProtocol: IPProtocol
    @usableFromInline let headerCount: UInt8

    @inlinable @inline(__always) public init(_ buffer: UnsafeRawBufferPointer) throws(PacketError) {
        guard buffer.count >= 40 else { throw PacketError(.ipv6, .truncated, at: buffer.count) }
        guard buffer[0] >> 4 == 6 else { throw PacketError(.ipv6, .badVersion, at: 0) }
        let payloadLength = Int(buffer.be16(4))
        if payloadLength == 0 && buffer[6] == 0 { throw PacketError(.ipv6, .jumbogram, at: 4) }
        let end = 40 &+ payloadLength
        guard end <= buffer.count else { throw PacketError(.ipv6, .badLength, at: 4) }
        let b = buffer.slice(0, end)
        var next = IPProtocol(b[6])
        var off = 40
        var count = 0
        var frag: Int32 = -1
        var finalDst: Int32 = -1
        var home: Int32 = -1
        // All offsets stay below 65,576, so the arithmetic below cannot overflow.
        walk: while true {
            if next.isGenericExtensionHeader {
                if next == .hopByHop && count != 0 { throw PacketError(.ipv6ExtensionHeader, .hopByHopNotFirst, at: off) }
                guard off &+ 8 <= end else { throw PacketError(.ipv6ExtensionHeader, .truncated, at: off) }
                let len = (Int(b[off &+ 1]) &+ 1) &* 8
                guard off &+ len <= end else { throw PacketError(.ipv6ExtensionHeader, .badHeaderLength, at: off &+ 1) }
                if next == .hopByHop || next == .destinationOptions {
                    try Self.checkOptions(b, from: off &+ 2, to: off &+ len)
                    if next == .destinationOptions, let h = Self.homeAddressOption(b, from: off &+ 2, to: off &+ len) {
                        home = Int32(truncatingIfNeeded: h)
                    }
                } else if next == .routing, let d = Self.finalDestination(b, off, len) {
                    finalDst = Int32(truncatingIfNeeded: d)
                }
                next = IPProtocol(b[off])
                off &+= len
            } else if next == .fragment {
                guard off &+ 8 <= end else { throw PacketError(.ipv6ExtensionHeader, .truncated, at: off) }
                frag = Int32(truncatingIfNeeded: off)
                let nonFirst = b.be16(off &+ 2) >> 3 != 0
                next = IPProtocol(b[off])
                off &+= 8
                count &+= 1
                // A non-first fragment holds no headers to walk (RFC 8200 §4.5).
                if nonFirst { break walk }
                continue walk
            } else if next == .ah {
                guard off &+ 8 <= end else { throw PacketError(.ipv6ExtensionHeader, .truncated, at: off) }
                let len = (Int(b[off &+ 1]) &+ 2) &* 4
                guard off &+ len <= end else { throw PacketError(.ipv6ExtensionHeader, .badHeaderLength, at: off &+ 1) }
                next = IPProtocol(b[off])
                off &+= len
            } else {
                break walk
            }
            count &+= 1
            if count > Self.maximumExtensionHeaders { throw PacketError(.ipv6ExtensionHeader, .tooManyExtensionHeaders, at: off) }
        }
        bytes = b
        upperLayerProtocol = next
        upperOffset = Int32(truncatingIfNeeded: off)
        fragmentHeaderOffset = frag
        finalDestinationOffset = finalDst
        homeAddressOffset = home
        headerCount = UInt8(truncatingIfNeeded: count)
    }

    /// Where the upper-layer header starts (== bytes.count when there is none).
    @inlinable public var upperLayerOffset: Int { Int(upperOffset) }
    /// Number of extension headers walked.
    @inlinable public var extensionHeaderCount: Int { Int(headerCount) }
    /// The Fragment header, if any.
    @inlinable public var fragment: IPv6FragmentInfo? {
        guard fragmentHeaderOffset >= 0 else { return nil }
        let o = Int(fragmentHeaderOffset)
        let fo = bytes.be16(o &+ 2)
        return IPv6FragmentInfo(offset: fo >> 3, moreFragments: fo & 1 == 1, identification: bytes.be32(o &+ 4), headerOffset: o)
    }
    /// The final destination named by a Routing header with Segments Left > 0 (RH0's last address,
    /// RH2's home address, SRH's Segment List[0]): what upper-layer checksums use (RFC 8200 §8.1).
    @inlinable public var routingFinalDestination: IPv6Address? {
        finalDestinationOffset >= 0 ? IPv6Address(rawValue: bytes.be128(Int(finalDestinationOffset))) : nil
    }

    /// The home address a Destination Options header's Home Address option carries (RFC 6275 §6.3,
    /// Mobile IPv6): what upper-layer checksums use as the source.
    @inlinable public var homeAddress: IPv6Address? {
        homeAddressOffset >= 0 ? IPv6Address(rawValue: bytes.be128(Int(homeAddressOffset))) : nil
    }
    /// The addresses upper-layer checksums cover (RFC 8200 §8.1): the home address for the source
    /// when there is one (RFC 6275 §6.3), the final destination of a Routing header.
    @inlinable public var transportPseudoHeader: PseudoHeader {
        .ipv6(source: homeAddress ?? source, destination: routingFinalDestination ?? destination)
    }

    /// The offset of the address in a Home Address option (type 201, 16 bytes) among options.
    @inlinable static func homeAddressOption(_ b: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
        var o = from
        while o < to {
            if b[o] == 0 { o &+= 1; continue }
            let length = Int(b[o &+ 1])
            if b[o] == 201, length == 16 { return o &+ 2 }
            o &+= 2 &+ length
        }
        return nil
    }

    /// Checks the TLV options of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2).
    @inlinable static func checkOptions(_ b: UnsafeRawBufferPointer, from: Int, to: Int) throws(PacketError) {
        var o = from
        while o < to {
            if b[o] == 0 { o &+= 1; continue }  // Pad1
            guard o &+ 2 <= to else { throw PacketError(.ipv6ExtensionHeader, .badOptionLength, at: o) }
            let next = o &+ 2 &+ Int(b[o &+ 1])
            guard next <= to else { throw PacketError(.ipv6ExtensionHeader, .badOptionLength, at: o &+ 1) }
            o = next
        }
    }

    /// The offset of the final destination address in a Routing header, if it names one.
    @inlinable static func finalDestination(_ b: UnsafeRawBufferPointer, _ off: Int, _ len: Int) -> Int? {
        let type = b[off &+ 2], segmentsLeft = b[off &+ 3]
        guard segmentsLeft > 0 else { return nil }
        switch type {
        case 0 where len >= 24:  // RH0 (deprecated, RFC 5095): the last address in the list.
            return off &+ 8 &+ ((len &- 8) / 16 &- 1) &* 16
        case 2 where len == 24:  // Type 2 (RFC 6275): the home address.
            return off &+ 8
        case 4 where len >= 24:  // SRH (RFC 8754): Segment List[0] is the final segment.
            return off &+ 8
        default: return nil
        }
    }

    @inlinable public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: bytes.be16(0) >> 4) }
    @inlinable public var flowLabel: UInt32 { bytes.be32(0) & 0xf_ffff }
    @inlinable public var payloadLength: Int { Int(bytes.be16(4)) }
    /// The Next Header field of the fixed header.
    @inlinable public var nextHeader: IPProtocol { IPProtocol(bytes[6]) }
    @inlinable public var hopLimit: UInt8 { bytes[7] }
    @inlinable public var source: IPv6Address { IPv6Address(rawValue: bytes.be128(8)) }
    @inlinable public var destination: IPv6Address { IPv6Address(rawValue: bytes.be128(24)) }
    /// Everything after the fixed header.
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(40, bytes.count) }
    /// The upper-layer header and its data.
    @inlinable public var upperLayer: UnsafeRawBufferPointer { bytes.slice(upperLayerOffset, bytes.count) }
    /// Whether the upper layer can be parsed (not a non-first fragment).
    @inlinable public var hasUpperLayerHeader: Bool { fragment.map { $0.offset == 0 } ?? true }

    /// The pseudo-header sum for the upper layer's checksum: the home address and the final
    /// destination where the packet names them (`transportPseudoHeader`).
    @inlinable public func pseudoHeader() -> InternetChecksum {
        InternetChecksum.pseudoHeader(source: homeAddress ?? source, destination: routingFinalDestination ?? destination,
                                      length: bytes.count - upperLayerOffset, nextHeader: upperLayerProtocol)
    }

    /// The extension headers in order (walked again lazily; the constructor already validated them).
    public var extensionHeaders: ExtensionHeaders { ExtensionHeaders(packet: self) }

    /// One extension header in the chain.
    public struct ExtensionHeader {
        /// The header's own type (the Next Header value that announced it).
        public let type: IPProtocol
        /// Offset in the packet.
        public let offset: Int
        /// The whole header, including its Next Header and length bytes.
        public let bytes: UnsafeRawBufferPointer
    }

    /// A sequence over the extension headers of a validated packet.
    public struct ExtensionHeaders: Sequence, IteratorProtocol {
        let packet: IPv6Packet
        var nextType: IPProtocol
        var offset = 40
        init(packet: IPv6Packet) {
            self.packet = packet
            self.nextType = packet.nextHeader
        }
        public mutating func next() -> ExtensionHeader? {
            guard offset < packet.upperLayerOffset else { return nil }
            let b = packet.bytes
            let len: Int
            if nextType == .fragment { len = 8 } else if nextType == .ah { len = (Int(b[offset + 1]) + 2) * 4 } else { len = (Int(b[offset + 1]) + 1) * 8 }
            let h = ExtensionHeader(type: nextType, offset: offset, bytes: b.slice(offset, offset + len))
            nextType = IPProtocol(b[offset])
            offset += len
            return h
        }
    }
}

/// The fixed IPv6 header as a plain value (smoltcp's `Ipv6Repr`).
public struct IPv6Repr: Hashable, Sendable {
    public var source: IPv6Address
    public var destination: IPv6Address
    /// The fixed header's Next Header.
    public var nextHeader: IPProtocol
    /// Length of everything after the fixed header.
    public var payloadLength: Int
    public var hopLimit: UInt8
    public var trafficClass: UInt8
    /// 20 bits.
    public var flowLabel: UInt32

    public init(source: IPv6Address, destination: IPv6Address, nextHeader: IPProtocol, payloadLength: Int,
                hopLimit: UInt8 = 64, trafficClass: UInt8 = 0, flowLabel: UInt32 = 0) {
        self.source = source
        self.destination = destination
        self.nextHeader = nextHeader
        self.payloadLength = payloadLength
        self.hopLimit = hopLimit
        self.trafficClass = trafficClass
        self.flowLabel = flowLabel
    }

    public init(_ p: IPv6Packet) {
        self.init(source: p.source, destination: p.destination, nextHeader: p.nextHeader, payloadLength: p.payloadLength,
                  hopLimit: p.hopLimit, trafficClass: p.trafficClass, flowLabel: p.flowLabel)
    }

    public static let headerLength = 40

    /// Writes the 40-byte header at the start of `buffer`.
    @inlinable @discardableResult
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(PacketError) -> Int {
        guard buffer.count >= 40 else { throw PacketError(.ipv6, .bufferTooSmall, at: 0) }
        guard payloadLength <= 0xffff, flowLabel <= 0xf_ffff else { throw PacketError(.ipv6, .badValue, at: 4) }
        buffer.put32(6 << 28 | UInt32(trafficClass) << 20 | flowLabel, at: 0)
        buffer.put16(UInt16(payloadLength), at: 4)
        buffer.put8(nextHeader.rawValue, at: 6)
        buffer.put8(hopLimit, at: 7)
        buffer.put128(source.rawValue, at: 8)
        buffer.put128(destination.rawValue, at: 24)
        return 40
    }
}

/// An IPv6 extension header as a plain value.
public enum IPv6ExtensionHeaderRepr: Hashable, Sendable {
    /// Hop-by-Hop Options: option TLVs (padded with PadN/Pad1 to a multiple of 8 when emitted).
    case hopByHop(options: [UInt8])
    /// Destination Options.
    case destinationOptions(options: [UInt8])
    /// Routing header: type, segments left, and the type-specific data after the first 4 bytes.
    case routing(type: UInt8, segmentsLeft: UInt8, data: [UInt8])
    /// Fragment header: offset in 8-octet units, M flag, identification.
    case fragment(offset: UInt16, moreFragments: Bool, identification: UInt32)

    public var protocolNumber: IPProtocol {
        switch self {
        case .hopByHop: return .hopByHop
        case .destinationOptions: return .destinationOptions
        case .routing: return .routing
        case .fragment: return .fragment
        }
    }

    /// Length when emitted.
    public var length: Int {
        switch self {
        case .hopByHop(let o), .destinationOptions(let o): return (2 + o.count + 7) / 8 * 8
        case .routing(_, _, let d): return (4 + d.count + 7) / 8 * 8
        case .fragment: return 8
        }
    }

    /// Writes the header with `nextHeader` at the start of `buffer`; returns its length.
    @discardableResult
    public func emit(nextHeader: IPProtocol, into buffer: UnsafeMutableRawBufferPointer) throws(PacketError) -> Int {
        let len = length
        guard buffer.count >= len else { throw PacketError(.ipv6ExtensionHeader, .bufferTooSmall, at: 0) }
        guard len <= 2048 else { throw PacketError(.ipv6ExtensionHeader, .badHeaderLength, at: 1) }
        buffer.put8(nextHeader.rawValue, at: 0)
        switch self {
        case .hopByHop(let o), .destinationOptions(let o):
            buffer.put8(UInt8(len / 8 - 1), at: 1)
            o.withUnsafeBytes { buffer.copy($0, at: 2) }
            let pad = len - 2 - o.count
            if pad == 1 {
                buffer.put8(0, at: 2 + o.count)  // Pad1
            } else if pad >= 2 {
                buffer.put8(1, at: 2 + o.count)  // PadN
                buffer.put8(UInt8(pad - 2), at: 3 + o.count)
                buffer.zero(4 + o.count, len)
            }
        case .routing(let type, let left, let data):
            buffer.put8(UInt8(len / 8 - 1), at: 1)
            buffer.put8(type, at: 2)
            buffer.put8(left, at: 3)
            data.withUnsafeBytes { buffer.copy($0, at: 4) }
            buffer.zero(4 + data.count, len)
        case .fragment(let offset, let more, let id):
            guard offset <= 0x1fff else { throw PacketError(.ipv6ExtensionHeader, .badValue, at: 2) }
            buffer.put8(0, at: 1)
            buffer.put16(offset << 3 | (more ? 1 : 0), at: 2)
            buffer.put32(id, at: 4)
        }
        return len
    }

    /// Reads an extension header from the walk of a validated packet.
    public init?(_ h: IPv6Packet.ExtensionHeader) {
        let b = h.bytes
        switch h.type {
        case .hopByHop: self = .hopByHop(options: Self.trimPadding(Array(b.slice(2, b.count))))
        case .destinationOptions: self = .destinationOptions(options: Self.trimPadding(Array(b.slice(2, b.count))))
        case .routing: self = .routing(type: b[2], segmentsLeft: b[3], data: Array(b.slice(4, b.count)))
        case .fragment:
            let fo = b.be16(2)
            self = .fragment(offset: fo >> 3, moreFragments: fo & 1 == 1, identification: b.be32(4))
        default: return nil
        }
    }

    /// Drops trailing Pad1/PadN options so that a parsed header compares equal to the one emitted.
    static func trimPadding(_ o: [UInt8]) -> [UInt8] {
        var i = 0
        var lastReal = 0
        while i < o.count {
            if o[i] == 0 { i += 1; continue }
            guard i + 1 < o.count else { break }
            let n = i + 2 + Int(o[i + 1])
            if o[i] != 1 { lastReal = n }
            i = n
        }
        return Array(o[0..<min(lastReal, o.count)])
    }
}
