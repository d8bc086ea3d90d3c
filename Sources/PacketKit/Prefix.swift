// IPv4 and IPv6 prefixes (CIDR, RFC 4632; RFC 4291 §2.3) and their arithmetic.

/// An IPv6 prefix: a network address with no bits set past `length`.
public struct IPv6Prefix: Hashable, Sendable, LosslessStringConvertible {
    /// The first address of the prefix.
    public let network: IPv6Address
    /// 0...128.
    public let length: UInt8

    /// The mask with the top `length` bits set.
    @inlinable public static func mask(_ length: UInt8) -> UInt128 {
        length == 0 ? 0 : ~(0 as UInt128) << (128 - UInt128(length))
    }

    /// A prefix from a network address; throws if bits past `length` are set (a common typo that
    /// would silently route the wrong range).
    public init(_ network: IPv6Address, length: UInt8) throws(AddressParseError) {
        guard length <= 128 else { throw AddressParseError("\(network)/\(length)", "prefix length must be 0-128") }
        guard network.rawValue & ~Self.mask(length) == 0 else {
            let fixed = IPv6Address(rawValue: network.rawValue & Self.mask(length))
            throw AddressParseError("\(network)/\(length)", "host bits are set; did you mean \(fixed)/\(length)?")
        }
        self.network = network
        self.length = length
    }

    /// The prefix of `length` that contains `address` (host bits cleared).
    public init(containing address: IPv6Address, length: UInt8) {
        precondition(length <= 128, "prefix length must be 0-128")
        self.network = IPv6Address(rawValue: address.rawValue & Self.mask(length))
        self.length = length
    }

    /// Parses `2001:db8::/64` in any RFC 4291 address form. A bare address means /128.
    /// Host bits after the prefix length are an error (`2001:db8::1/64`).
    public static func parse(_ text: String) throws(AddressParseError) -> IPv6Prefix {
        var utf8 = text
        let parsed: (UInt128?, Int) = utf8.withUTF8 { b in
            let slash = b.firstIndex(of: UInt8(ascii: "/")) ?? b.count
            let length = slash == b.count ? 128 : parseLength(b, slash + 1, max: 128)
            if b[..<slash].contains(UInt8(ascii: "%")) { return (nil, -2) }
            return (IPv6Address.parseBytes(b, 0, slash), length)
        }
        switch parsed {
        case (_, -1): throw AddressParseError(text, "prefix length must be a number 0-128")
        case (_, -2): throw AddressParseError(text, "a zone identifier (%...) is not allowed here; give the interface separately")
        case (nil, _): throw AddressParseError(text, "expected an IPv6 address such as 2001:db8::1 (RFC 4291 §2.2)")
        case (let v?, let length): return try IPv6Prefix(IPv6Address(rawValue: v), length: UInt8(length))
        }
    }

    public init?(_ description: String) {
        guard let p = try? Self.parse(description) else { return nil }
        self = p
    }

    public var description: String { "\(network)/\(length)" }

    /// Whether `address` lies inside.
    @inlinable public func contains(_ address: IPv6Address) -> Bool {
        address.rawValue & Self.mask(length) == network.rawValue
    }
    /// Whether `other` lies entirely inside.
    public func contains(_ other: IPv6Prefix) -> Bool { other.length >= length && contains(other.network) }
    /// Whether the two share any address.
    public func overlaps(_ other: IPv6Prefix) -> Bool { contains(other.network) || other.contains(network) }

    /// The last address of the prefix.
    public var last: IPv6Address { IPv6Address(rawValue: network.rawValue | ~Self.mask(length)) }

    /// The address at `index` from the start (`::0` is index 0), or nil past the end.
    public func address(at index: UInt128) -> IPv6Address? {
        if length > 0 && index > ~Self.mask(length) { return nil }
        return IPv6Address(rawValue: network.rawValue | index)
    }

    /// The number of sub-prefixes of `newLength`, or nil if it does not fit in a UInt128 or
    /// `newLength` is shorter than this prefix.
    public func subnetCount(length newLength: UInt8) -> UInt128? {
        guard newLength >= length, newLength <= 128 else { return nil }
        let bits = newLength - length
        return bits >= 128 ? nil : (1 as UInt128) << UInt128(bits)
    }

    /// Sub-prefix number `index` of `newLength` (e.g. the 3rd /64 of a /56).
    public func subnet(_ index: UInt128, length newLength: UInt8) throws(AddressParseError) -> IPv6Prefix {
        guard newLength >= length, newLength <= 128 else {
            throw AddressParseError("\(self)", "cannot split into /\(newLength): must be between /\(length) and /128")
        }
        if let count = subnetCount(length: newLength), index >= count {
            throw AddressParseError("\(self)", "has only \(count) /\(newLength) subnets; index \(index) is past the end")
        }
        let shifted = newLength == 128 ? index : index << (128 - UInt128(newLength))
        return IPv6Prefix(containing: IPv6Address(rawValue: network.rawValue | shifted), length: newLength)
    }
}

/// An IPv4 prefix: a network address with no bits set past `length`.
public struct IPv4Prefix: Hashable, Sendable, LosslessStringConvertible {
    public let network: IPv4Address
    /// 0...32.
    public let length: UInt8

    @inlinable public static func mask(_ length: UInt8) -> UInt32 {
        length == 0 ? 0 : ~(0 as UInt32) << (32 - UInt32(length))
    }

    /// A prefix from a network address; throws if bits past `length` are set.
    public init(_ network: IPv4Address, length: UInt8) throws(AddressParseError) {
        guard length <= 32 else { throw AddressParseError("\(network)/\(length)", "prefix length must be 0-32") }
        guard network.rawValue & ~Self.mask(length) == 0 else {
            let fixed = IPv4Address(rawValue: network.rawValue & Self.mask(length))
            throw AddressParseError("\(network)/\(length)", "host bits are set; did you mean \(fixed)/\(length)?")
        }
        self.network = network
        self.length = length
    }

    /// The prefix of `length` containing `address`.
    public init(containing address: IPv4Address, length: UInt8) {
        precondition(length <= 32, "prefix length must be 0-32")
        network = IPv4Address(rawValue: address.rawValue & Self.mask(length))
        self.length = length
    }

    /// Parses `192.0.2.0/24`. A bare address means /32.
    public static func parse(_ text: String) throws(AddressParseError) -> IPv4Prefix {
        var utf8 = text
        let parsed: (UInt32?, Int) = utf8.withUTF8 { b in
            let slash = b.firstIndex(of: UInt8(ascii: "/")) ?? b.count
            let length = slash == b.count ? 32 : parseLength(b, slash + 1, max: 32)
            return (IPv4Address.parseDotted(b, 0, slash), length)
        }
        switch parsed {
        case (_, -1): throw AddressParseError(text, "prefix length must be a number 0-32")
        case (nil, _): throw AddressParseError(text, "expected four decimal numbers 0-255 without leading zeros, like 192.0.2.1")
        case (let v?, let length): return try IPv4Prefix(IPv4Address(rawValue: v), length: UInt8(length))
        }
    }

    public init?(_ description: String) {
        guard let p = try? Self.parse(description) else { return nil }
        self = p
    }

    public var description: String { "\(network)/\(length)" }

    @inlinable public func contains(_ address: IPv4Address) -> Bool { address.rawValue & Self.mask(length) == network.rawValue }
    public func contains(_ other: IPv4Prefix) -> Bool { other.length >= length && contains(other.network) }
    public func overlaps(_ other: IPv4Prefix) -> Bool { contains(other.network) || other.contains(network) }
    /// The number of addresses (2^(32-length)).
    public var count: UInt64 { 1 << UInt64(32 - length) }
    /// The last address (the broadcast address of a subnet).
    public var last: IPv4Address { IPv4Address(rawValue: network.rawValue | ~Self.mask(length)) }
    /// The address at `index`, or nil past the end.
    public func address(at index: UInt32) -> IPv4Address? {
        UInt64(index) < count ? IPv4Address(rawValue: network.rawValue | index) : nil
    }
    /// Sub-prefix number `index` of `newLength`.
    public func subnet(_ index: UInt32, length newLength: UInt8) throws(AddressParseError) -> IPv4Prefix {
        guard newLength >= length, newLength <= 32 else {
            throw AddressParseError("\(self)", "cannot split into /\(newLength): must be between /\(length) and /32")
        }
        guard UInt64(index) < (1 << UInt64(newLength - length)) else {
            throw AddressParseError("\(self)", "has only \(1 << UInt64(newLength - length)) /\(newLength) subnets")
        }
        let shifted = newLength == 32 ? index : index << (32 - UInt32(newLength))
        return IPv4Prefix(containing: IPv4Address(rawValue: network.rawValue | shifted), length: newLength)
    }
}

/// The decimal prefix length in `b[from...]` (1-3 digits, at most `max`), or -1.
func parseLength(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, max: Int) -> Int {
    let digits = b.count - from
    guard digits >= 1, digits <= 3 else { return -1 }
    var v = 0
    for i in from..<b.count {
        guard b[i] >= 0x30, b[i] <= 0x39 else { return -1 }
        v = v * 10 + Int(b[i] - 0x30)
    }
    return v <= max ? v : -1
}
