// RFC 6296 IPv6-to-IPv6 Network Prefix Translation: an inside prefix and an outside prefix of the
// same length, mapped one to one, statelessly, without changing any transport checksum (the
// translated address has the same one's complement sum as the original). The kernel does the
// translation on the wire (the SNPT/DNPT targets); this is the same arithmetic for the addresses
// Sixgate must know in advance: the outside address of each client, for proxy NDP.
/// A checksum-neutral mapping between `inside` and `outside` (RFC 6296 §3).
public struct NPTv6Mapping: Sendable, Hashable, CustomStringConvertible {
    public let inside: IPv6Prefix
    public let outside: IPv6Prefix

    /// nil unless the prefixes have the same length, at most 64 (RFC 6296 §3.7: the adjustment
    /// goes in the prefix's last word or the interface identifier's first, and Linux's targets
    /// take /64 or shorter).
    public init?(inside: IPv6Prefix, outside: IPv6Prefix) {
        guard inside.length == outside.length, inside.length <= 64 else { return nil }
        self.inside = inside
        self.outside = outside
    }

    /// "fd01:203:405::/48 <-> 2001:db8:1::/48"
    public var description: String { "\(inside) <-> \(outside)" }

    /// The outside address of an inside one (nil: not inside, or no word can take the adjustment).
    public func outbound(_ a: IPv6Address) -> IPv6Address? { Self.translate(a, from: inside, to: outside) }
    /// The inside address of an outside one.
    public func inbound(_ a: IPv6Address) -> IPv6Address? { Self.translate(a, from: outside, to: inside) }

    /// RFC 6296 §3.2-3.7: replace the prefix, then add (in one's complement) the difference of the
    /// two prefixes' sums to one 16-bit word: bits 48-63 for a /48 or shorter, else the first word
    /// of the interface identifier that is not 0xFFFF; a result of 0xFFFF is written as 0x0000.
    static func translate(_ a: IPv6Address, from: IPv6Prefix, to: IPv6Prefix) -> IPv6Address? {
        guard from.contains(a) else { return nil }
        let mask = IPv6Prefix.mask(from.length)
        var words = Self.words(IPv6Address(rawValue: (a.rawValue & ~mask) | (to.network.rawValue & mask)))
        let index: Int
        if from.length <= 48 {
            index = 3
        } else {
            guard let i = (4..<8).first(where: { words[$0] != 0xFFFF }) else { return nil }
            index = i
        }
        let adjustment = add(sum(Self.words(from.network)), ~sum(Self.words(to.network)))
        var w = add(words[index], adjustment)
        if w == 0xFFFF { w = 0 }
        words[index] = w
        return IPv6Address(rawValue: words.reduce(UInt128(0)) { $0 << 16 | UInt128($1) })
    }

    static func words(_ a: IPv6Address) -> [UInt16] { (0..<8).map { UInt16(truncatingIfNeeded: a.rawValue >> UInt128(112 - 16 * $0)) } }
    /// One's complement addition (end-around carry).
    static func add(_ a: UInt16, _ b: UInt16) -> UInt16 {
        let s = UInt32(a) + UInt32(b)
        return UInt16(truncatingIfNeeded: (s & 0xFFFF) + (s >> 16))
    }
    static func sum(_ w: [UInt16]) -> UInt16 { w.reduce(0, add) }
}
