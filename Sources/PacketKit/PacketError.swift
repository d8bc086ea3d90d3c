/// Why a buffer was not accepted as a packet: which layer, what rule, and where.
///
/// Parsing never traps: every malformed or truncated input ends in one of these. The value holds
/// no heap storage, so dropping a bad packet on a hot path allocates nothing.
public struct PacketError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The protocol layer whose rules the input broke.
    public var layer: Layer
    /// The rule that was broken.
    public var reason: Reason
    /// Byte offset, inside the buffer given to that layer's parser, of the offending field.
    public var offset: Int

    @inlinable public init(_ layer: Layer, _ reason: Reason, at offset: Int) {
        self.layer = layer
        self.reason = reason
        self.offset = offset
    }

    /// The layers PacketKit parses.
    public enum Layer: String, Hashable, Sendable {
        case ethernet = "Ethernet", linuxCooked = "Linux cooked", ipv4 = "IPv4", ipv6 = "IPv6"
        case ipv6ExtensionHeader = "IPv6 extension header", icmpv4 = "ICMPv4", icmpv6 = "ICMPv6"
        case ndp = "NDP", udp = "UDP", tcp = "TCP", pcap = "pcap"
    }

    /// An open set of reasons (new ones can be added without breaking callers that switch on them).
    public struct Reason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        @inlinable public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The buffer ends before a field that must be there.
        public static let truncated = Reason(rawValue: "truncated")
        /// A pcap record's fraction of a second is 1 s or more (microseconds >= 1,000,000,
        /// nanoseconds >= 1,000,000,000): the record is skipped, the file read on.
        public static let badTimestamp = Reason(rawValue: "timestamp fraction out of range")
        /// The version nibble is not the one this parser handles.
        public static let badVersion = Reason(rawValue: "wrong IP version")
        /// A header length field is below the minimum or beyond the buffer.
        public static let badHeaderLength = Reason(rawValue: "bad header length")
        /// A total/payload length field disagrees with the buffer (a length that lies).
        public static let badLength = Reason(rawValue: "length field disagrees with the buffer")
        /// An option's length is 0 or runs past its header (RFC 4861 §4.6, RFC 791, RFC 8200 §4.2).
        public static let badOptionLength = Reason(rawValue: "bad option length")
        /// More extension headers than `IPv6Packet.maximumExtensionHeaders`.
        public static let tooManyExtensionHeaders = Reason(rawValue: "too many extension headers")
        /// A Hop-by-Hop Options header not immediately after the IPv6 header (RFC 8200 §4.1).
        public static let hopByHopNotFirst = Reason(rawValue: "hop-by-hop header not first")
        /// Jumbograms (RFC 2675) are not accepted.
        public static let jumbogram = Reason(rawValue: "jumbogram not supported")
        /// Checksum verification failed.
        public static let badChecksum = Reason(rawValue: "bad checksum")
        /// ICMP code not allowed for this message (NDP requires 0).
        public static let badCode = Reason(rawValue: "bad code")
        /// NDP messages must arrive with hop limit 255 (RFC 4861 §6.1, §7.1).
        public static let badHopLimit = Reason(rawValue: "hop limit is not 255")
        /// The message type does not match the parser it was given to.
        public static let wrongType = Reason(rawValue: "wrong message type")
        /// An address field breaks a rule (e.g. a multicast NS target, a non-link-local RA source).
        public static let badAddress = Reason(rawValue: "address not allowed here")
        /// An option that must not be present is (e.g. SLLA in a DAD solicitation).
        public static let forbiddenOption = Reason(rawValue: "option not allowed here")
        /// A flag combination the RFC forbids (e.g. Solicited on a multicast NA).
        public static let badFlags = Reason(rawValue: "flags not allowed here")
        /// A value is out of its allowed range.
        public static let badValue = Reason(rawValue: "value out of range")
        /// Magic number or format not recognised (pcap).
        public static let badMagic = Reason(rawValue: "not a pcap file")
        /// Not enough room in the output buffer to emit the packet.
        public static let bufferTooSmall = Reason(rawValue: "output buffer too small")
    }

    public var description: String { "\(layer.rawValue): \(reason) at byte \(offset)" }
}
