// Either-family addresses and prefixes, for APIs that take both (routes, neighbours, leases).

/// An IPv4 or IPv6 address.
public enum IPAddress: Hashable, Sendable, LosslessStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either family (dotted quad, or any RFC 4291 form).
    public static func parse(_ text: String) throws(AddressParseError) -> IPAddress {
        if text.contains(":") { return .v6(try IPv6Address.parse(text)) }
        return .v4(try IPv4Address.parse(text))
    }
    public init?(_ description: String) {
        guard let a = try? Self.parse(description) else { return nil }
        self = a
    }
    public var description: String {
        switch self {
        case .v4(let a): return a.description
        case .v6(let a): return a.description
        }
    }
    /// The address in network byte order (4 or 16 bytes).
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a): return [UInt8(a.rawValue >> 24), UInt8(a.rawValue >> 16 & 0xff), UInt8(a.rawValue >> 8 & 0xff), UInt8(a.rawValue & 0xff)]
        case .v6(let a): return a.bytes
        }
    }
    /// Builds an address from 4 or 16 network-order bytes.
    public init?(bytes: UnsafeRawBufferPointer) {
        switch bytes.count {
        case 4: self = .v4(IPv4Address(rawValue: bytes.be32(0)))
        case 16: self = .v6(IPv6Address(rawValue: bytes.be128(0)))
        default: return nil
        }
    }
    /// 32 or 128.
    public var bitWidth: UInt8 {
        if case .v4 = self { return 32 }
        return 128
    }
}

/// An IPv4 or IPv6 prefix.
public enum IPPrefix: Hashable, Sendable, LosslessStringConvertible {
    case v4(IPv4Prefix)
    case v6(IPv6Prefix)

    /// Parses either family (`192.0.2.0/24`, `2001:db8::/64`; a bare address is a host prefix).
    public static func parse(_ text: String) throws(AddressParseError) -> IPPrefix {
        if text.contains(":") { return .v6(try IPv6Prefix.parse(text)) }
        return .v4(try IPv4Prefix.parse(text))
    }
    public init?(_ description: String) {
        guard let p = try? Self.parse(description) else { return nil }
        self = p
    }
    public var description: String {
        switch self {
        case .v4(let p): return p.description
        case .v6(let p): return p.description
        }
    }
    public var network: IPAddress {
        switch self {
        case .v4(let p): return .v4(p.network)
        case .v6(let p): return .v6(p.network)
        }
    }
    public var length: UInt8 {
        switch self {
        case .v4(let p): return p.length
        case .v6(let p): return p.length
        }
    }
    /// Whether the two share an address (one contains the other); prefixes of different families never do.
    public func overlaps(_ other: IPPrefix) -> Bool {
        switch (self, other) {
        case (.v6(let x), .v6(let y)): return x.overlaps(y)
        case (.v4(let x), .v4(let y)): return x.overlaps(y)
        default: return false
        }
    }
    /// Whether `address` is inside (an address of the other family never is).
    public func contains(_ address: IPAddress) -> Bool {
        switch (self, address) {
        case (.v6(let p), .v6(let a)): return p.contains(a)
        case (.v4(let p), .v4(let a)): return p.contains(a)
        default: return false
        }
    }
    /// The host prefix (/32 or /128) of an address.
    public init(host: IPAddress) {
        switch host {
        case .v4(let a): self = .v4(IPv4Prefix(containing: a, length: 32))
        case .v6(let a): self = .v6(IPv6Prefix(containing: a, length: 128))
        }
    }
    /// The prefix of `length` containing `address` (host bits cleared).
    public init(containing address: IPAddress, length: UInt8) {
        switch address {
        case .v4(let a): self = .v4(IPv4Prefix(containing: a, length: min(length, 32)))
        case .v6(let a): self = .v6(IPv6Prefix(containing: a, length: min(length, 128)))
        }
    }
}
