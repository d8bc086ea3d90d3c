/// An IP protocol / IPv6 Next Header number (IANA "Assigned Internet Protocol Numbers").
/// An open set: unknown values survive a round trip.
public struct IPProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public static let hopByHop = IPProtocol(0)
    public static let icmp = IPProtocol(1)
    public static let tcp = IPProtocol(6)
    public static let udp = IPProtocol(17)
    public static let ipv6 = IPProtocol(41)
    public static let routing = IPProtocol(43)
    public static let fragment = IPProtocol(44)
    public static let gre = IPProtocol(47)
    public static let esp = IPProtocol(50)
    public static let ah = IPProtocol(51)
    public static let icmpv6 = IPProtocol(58)
    public static let noNextHeader = IPProtocol(59)
    public static let destinationOptions = IPProtocol(60)
    public static let mobility = IPProtocol(135)
    public static let hip = IPProtocol(139)
    public static let shim6 = IPProtocol(140)

    /// Whether this number is an IPv6 extension header with the generic TLV length layout
    /// (RFC 8200 §4, RFC 7045 / IANA "IPv6 Extension Header Types", experimental 253/254 included).
    /// Fragment (fixed 8 bytes) and AH (4-octet units) are handled separately.
    @inlinable public var isGenericExtensionHeader: Bool {
        switch rawValue {
        case 0, 43, 60, 135, 139, 140, 253, 254: return true
        default: return false
        }
    }

    public var description: String {
        switch rawValue {
        case 0: return "hop-by-hop"
        case 1: return "ICMP"
        case 6: return "TCP"
        case 17: return "UDP"
        case 41: return "IPv6"
        case 43: return "routing"
        case 44: return "fragment"
        case 47: return "GRE"
        case 50: return "ESP"
        case 51: return "AH"
        case 58: return "ICMPv6"
        case 59: return "no-next-header"
        case 60: return "destination-options"
        default: return "ip-proto-\(rawValue)"
        }
    }
}
