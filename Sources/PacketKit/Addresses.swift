// IPv4, IPv6 and MAC addresses: parsing every text form, canonical printing, classification.
// RFC 4291 (IPv6 addressing, §2.2 text forms, App. A EUI-64), RFC 5952 (canonical text),
// RFC 6052 (IPv4-embedded IPv6 addresses).

/// Why an address or prefix text was rejected. Names the text and the rule.
public struct AddressParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The text that was given.
    public var text: String
    /// What is wrong with it.
    public var reason: String
    public init(_ text: String, _ reason: String) {
        self.text = text
        self.reason = reason
    }
    public var description: String { "\"\(text)\" is not valid: \(reason)" }
}

// MARK: - IPv4

/// An IPv4 address (RFC 791), stored as a host-order integer.
public struct IPv4Address: Hashable, Comparable, Sendable, LosslessStringConvertible {
    /// The address as a number: 192.0.2.1 is 0xC000_0201.
    public var rawValue: UInt32

    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// 0.0.0.0
    public static let any = IPv4Address(rawValue: 0)
    /// 255.255.255.255
    public static let broadcast = IPv4Address(rawValue: .max)

    /// Parses dotted-quad text (`192.0.2.1`). Leading zeros are refused: "010" is octal to some
    /// tools and decimal to others (RFC 6943 §3.1.1).
    public static func parse(_ text: String) throws(AddressParseError) -> IPv4Address {
        var utf8 = text
        if let value = utf8.withUTF8({ parseDotted($0, 0, $0.count) }) { return IPv4Address(rawValue: value) }
        throw AddressParseError(text, "expected four decimal numbers 0-255 without leading zeros, like 192.0.2.1")
    }

    /// Parses dotted quad in `bytes[from..<to]` (no allocation).
    static func parseDotted(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var i = from
        while parts < 4 {
            var digits = 0
            var part: UInt32 = 0
            let start = i
            while i < to, bytes[i] >= 0x30, bytes[i] <= 0x39, digits < 4 {
                part = part * 10 + UInt32(bytes[i] - 0x30)
                digits += 1
                i += 1
            }
            if digits == 0 || digits > 3 || part > 255 { return nil }
            if digits > 1 && bytes[start] == 0x30 { return nil }
            value = value << 8 | part
            parts += 1
            if parts < 4 {
                guard i < to, bytes[i] == UInt8(ascii: ".") else { return nil }
                i += 1
            }
        }
        return i == to ? value : nil
    }

    public init?(_ description: String) {
        guard let a = try? Self.parse(description) else { return nil }
        self = a
    }

    public var description: String {
        "\(rawValue >> 24).\(rawValue >> 16 & 0xff).\(rawValue >> 8 & 0xff).\(rawValue & 0xff)"
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// 127.0.0.0/8
    public var isLoopback: Bool { rawValue >> 24 == 127 }
    /// 224.0.0.0/4
    public var isMulticast: Bool { rawValue >> 28 == 0xE }
    /// 169.254.0.0/16
    public var isLinkLocal: Bool { rawValue >> 16 == 0xA9FE }
    /// 10/8, 172.16/12, 192.168/16 (RFC 1918).
    public var isPrivate: Bool {
        rawValue >> 24 == 10 || rawValue >> 20 == 0xAC1 || rawValue >> 16 == 0xC0A8
    }
    /// 100.64.0.0/10, the carrier-grade NAT range (RFC 6598).
    public var isSharedAddressSpace: Bool { rawValue >> 22 == (100 << 2 | 1) }
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737).
    public var isDocumentation: Bool {
        let p = rawValue >> 8
        return p == 0xC00002 || p == 0xC63364 || p == 0xCB0071
    }
    /// Whether RFC 6052 §3.1 allows embedding it in the Well-Known Prefix 64:ff9b::/96.
    public var isGloballyRoutable: Bool {
        !(rawValue >> 24 == 0 || isLoopback || isMulticast || isLinkLocal || isPrivate || isSharedAddressSpace
            || isDocumentation || rawValue >> 28 == 0xF || rawValue >> 8 == 0xC00000)
    }
}

// MARK: - IPv6

/// An IPv6 address (RFC 4291), stored as a 128-bit host-order integer: `2001:db8::1` is
/// `0x2001_0db8_0000_0000_0000_0000_0000_0001`.
public struct IPv6Address: Hashable, Comparable, Sendable, LosslessStringConvertible {
    /// The address as a number; the first group of the text is the top 16 bits.
    public var rawValue: UInt128

    @inlinable public init(rawValue: UInt128) { self.rawValue = rawValue }

    /// Builds an address from its eight 16-bit groups, first group first.
    public init(_ g0: UInt16, _ g1: UInt16, _ g2: UInt16, _ g3: UInt16, _ g4: UInt16, _ g5: UInt16, _ g6: UInt16, _ g7: UInt16) {
        var v: UInt128 = 0
        for g in [g0, g1, g2, g3, g4, g5, g6, g7] { v = v << 16 | UInt128(g) }
        rawValue = v
    }

    /// Reads 16 bytes in network order.
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 16, "IPv6Address needs 16 bytes")
        rawValue = bytes.be128(0)
    }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        (0..<16).map { UInt8(truncatingIfNeeded: rawValue >> (120 - 8 * UInt128($0))) }
    }

    /// Group `index` (0...7) of the address.
    public func group(_ index: Int) -> UInt16 { UInt16(truncatingIfNeeded: rawValue >> (112 - 16 * UInt128(index))) }

    /// `::`
    public static let unspecified = IPv6Address(rawValue: 0)
    /// `::1`
    public static let loopback = IPv6Address(rawValue: 1)
    /// `ff02::1`, all nodes on the link.
    public static let allNodes = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 1)
    /// `ff02::2`, all routers on the link.
    public static let allRouters = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 2)

    /// Parses any RFC 4291 §2.2 text form: full (`2001:0db8:0:0:0:0:0:1`), compressed (`2001:db8::1`),
    /// and with an embedded IPv4 address (`::ffff:192.0.2.1`). Zone identifiers (`fe80::1%eth0`) are
    /// refused here; use ``parseScoped(_:)`` where a zone may appear.
    public static func parse(_ text: String) throws(AddressParseError) -> IPv6Address {
        if text.utf8.contains(UInt8(ascii: "%")) {
            throw AddressParseError(text, "a zone identifier (%...) is not allowed here; give the interface separately")
        }
        var utf8 = text
        if let v = utf8.withUTF8({ parseBytes($0, 0, $0.count) }) { return IPv6Address(rawValue: v) }
        throw AddressParseError(text, "expected an IPv6 address such as 2001:db8::1 (RFC 4291 §2.2)")
    }

    /// Parses an address that may carry a zone identifier (`fe80::1%eth0`, RFC 4007 §11).
    public static func parseScoped(_ text: String) throws(AddressParseError) -> (address: IPv6Address, zone: String?) {
        guard let percent = text.firstIndex(of: "%") else { return (try parse(text), nil) }
        let zone = String(text[text.index(after: percent)...])
        if zone.isEmpty { throw AddressParseError(text, "empty zone identifier after %") }
        return (try parse(String(text[..<percent])), zone)
    }

    /// Parses `s[from..<to]` in any RFC 4291 §2.2 form, without allocating: the groups before `::`
    /// accumulate in `head`, those after it in `tail`.
    static func parseBytes(_ s: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> UInt128? {
        let n = to
        if n - from < 2 { return nil }
        var head: UInt128 = 0, tail: UInt128 = 0
        var headCount = 0, tailCount = 0
        var compressed = false
        var i = from
        if s[i] == UInt8(ascii: ":") {
            guard s[i + 1] == UInt8(ascii: ":") else { return nil }
            compressed = true
            i += 2
            if i == n { return 0 }
        }
        while true {
            let start = i
            var value: UInt32 = 0
            while i < n, let d = hexValue(s[i]) {
                value = value << 4 | UInt32(d)
                i += 1
                if i - start > 4 { break }
            }
            if i < n, s[i] == UInt8(ascii: ".") {
                // Embedded IPv4 in the last 32 bits (RFC 4291 §2.2 form 3).
                guard headCount + tailCount <= 6, let v4 = IPv4Address.parseDotted(s, start, n) else { return nil }
                if compressed { tail = tail << 32 | UInt128(v4); tailCount += 2 } else { head = head << 32 | UInt128(v4); headCount += 2 }
                break
            }
            let digits = i - start
            if digits == 0 || digits > 4 { return nil }
            if compressed { tail = tail << 16 | UInt128(value); tailCount += 1 } else { head = head << 16 | UInt128(value); headCount += 1 }
            if headCount + tailCount > 8 { return nil }
            if i == n { break }
            guard s[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            if i == n { return nil }  // trailing single colon
            if s[i] == UInt8(ascii: ":") {
                if compressed { return nil }  // "::" twice
                compressed = true
                i += 1
                if i == n { break }
            }
        }
        let total = headCount + tailCount
        if compressed ? total > 7 : total != 8 { return nil }
        let headShift = UInt128(16 * (8 - headCount))
        return (headCount == 0 ? 0 : head << headShift) | tail
    }

    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x37
        case 0x61...0x66: return c - 0x57
        default: return nil
        }
    }

    public init?(_ description: String) {
        guard let a = try? Self.parse(description) else { return nil }
        self = a
    }

    /// RFC 5952 canonical text: lower case, no leading zeros, the longest run (first on a tie) of
    /// two or more zero groups as `::`, and IPv4-mapped addresses as `::ffff:a.b.c.d` (§5).
    public var description: String {
        if rawValue >> 32 == 0xffff {
            return "::ffff:" + IPv4Address(rawValue: UInt32(truncatingIfNeeded: rawValue)).description
        }
        var bestStart = -1, bestLen = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && group(i) == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLen { bestStart = runStart; bestLen = i - runStart }
                runStart = -1
            }
        }
        if bestLen < 2 { bestStart = -1 }
        var out = ""
        var i = 0
        while i < 8 {
            if i == bestStart {
                out += "::"
                i += bestLen
                continue
            }
            if !out.isEmpty && !out.hasSuffix(":") { out += ":" }
            out += String(group(i), radix: 16)
            i += 1
        }
        return out
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    // MARK: Classification (RFC 4291 §2.4)
    /// `::`
    public var isUnspecified: Bool { rawValue == 0 }
    /// `::1`
    public var isLoopback: Bool { rawValue == 1 }
    /// ff00::/8
    public var isMulticast: Bool { rawValue >> 120 == 0xff }
    /// fe80::/10
    public var isLinkLocal: Bool { rawValue >> 118 == 0x3fa }
    /// fc00::/7 (RFC 4193)
    public var isUniqueLocal: Bool { rawValue >> 121 == 0x7e }
    /// ::ffff:0:0/96
    public var isIPv4Mapped: Bool { rawValue >> 32 == 0xffff }
    /// 2001:db8::/32 (RFC 3849)
    public var isDocumentation: Bool { rawValue >> 96 == 0x2001_0db8 }
    /// The 4-bit scope of a multicast address (RFC 4291 §2.7), nil for unicast.
    public var multicastScope: UInt8? { isMulticast ? UInt8(truncatingIfNeeded: rawValue >> 112) & 0x0f : nil }
    /// ff02::1:ff00:0/104 (RFC 4291 §2.7.1)
    public var isSolicitedNodeMulticast: Bool { rawValue >> 24 == (0xff02_0000_0000_0000_0000_0001_ff as UInt128) }

    /// The solicited-node multicast address of this address: ff02::1:ff00:0/104 plus its low 24 bits.
    public var solicitedNodeMulticast: IPv6Address {
        IPv6Address(rawValue: (0xff02_0000_0000_0000_0000_0001_ff00_0000 as UInt128) | (rawValue & 0xff_ffff))
    }

    /// The low 64 bits: the interface identifier of an address in a /64.
    public var interfaceIdentifier: UInt64 { UInt64(truncatingIfNeeded: rawValue) }

    /// The link-local address fe80::/64 + the modified EUI-64 of `mac` (RFC 4291 App. A).
    public static func linkLocal(mac: MACAddress) -> IPv6Address {
        IPv6Address(rawValue: (0xfe80 as UInt128) << 112 | UInt128(mac.modifiedEUI64))
    }

    /// A SLAAC address: the /64 `prefix` + the modified EUI-64 of `mac` (RFC 4862 §5.5.3).
    public init(prefix: IPv6Prefix, mac: MACAddress) throws(AddressParseError) {
        guard prefix.length == 64 else {
            throw AddressParseError(prefix.description, "EUI-64 addresses need a /64 prefix (RFC 4291 §2.5.1)")
        }
        rawValue = prefix.network.rawValue | UInt128(mac.modifiedEUI64)
    }

    // MARK: RFC 6052
    /// Prefix lengths RFC 6052 §2.2 allows for IPv4-embedded IPv6 addresses.
    public static let rfc6052PrefixLengths: [UInt8] = [32, 40, 48, 56, 64, 96]

    /// Embeds `ipv4` in `prefix` per RFC 6052 §2.2: bits 64-71 (the "u" octet) stay zero and the
    /// IPv4 bits skip them; the suffix is zero.
    public init(embedding ipv4: IPv4Address, in prefix: IPv6Prefix) throws(AddressParseError) {
        guard Self.rfc6052PrefixLengths.contains(prefix.length) else {
            throw AddressParseError(prefix.description, "RFC 6052 allows prefix lengths 32, 40, 48, 56, 64 and 96 only")
        }
        guard prefix.length == 96 || (prefix.network.rawValue >> 56) & 0xff == 0 else {
            throw AddressParseError(prefix.description, "bits 64-71 (the u octet) of an RFC 6052 prefix must be zero")
        }
        var v = prefix.network.rawValue
        var byteIndex = Int(prefix.length) / 8
        for k in 0..<4 {
            if byteIndex == 8 { byteIndex += 1 }
            let b = UInt128((ipv4.rawValue >> (24 - 8 * UInt32(k))) & 0xff)
            v |= b << (120 - 8 * UInt128(byteIndex))
            byteIndex += 1
        }
        rawValue = v
    }

    /// Extracts the IPv4 address embedded with `prefixLength` (RFC 6052 §2.2). The u octet and
    /// suffix bits are ignored, as §2.2 asks of a receiver.
    public func embeddedIPv4(prefixLength: UInt8) throws(AddressParseError) -> IPv4Address {
        guard Self.rfc6052PrefixLengths.contains(prefixLength) else {
            throw AddressParseError("/\(prefixLength)", "RFC 6052 allows prefix lengths 32, 40, 48, 56, 64 and 96 only")
        }
        var v: UInt32 = 0
        var byteIndex = Int(prefixLength) / 8
        for _ in 0..<4 {
            if byteIndex == 8 { byteIndex += 1 }
            v = v << 8 | UInt32(truncatingIfNeeded: rawValue >> (120 - 8 * UInt128(byteIndex))) & 0xff
            byteIndex += 1
        }
        return IPv4Address(rawValue: v)
    }
}

// MARK: - MAC

/// A 48-bit IEEE 802 MAC address, stored in the low 48 bits.
public struct MACAddress: Hashable, Sendable, LosslessStringConvertible {
    /// 02:00:00:00:0a:01 is 0x0200_0000_0a01.
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue & 0xffff_ffff_ffff }

    /// Reads 6 bytes.
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 6, "MACAddress needs 6 bytes")
        rawValue = UInt64(bytes.be32(0)) << 16 | UInt64(bytes.be16(4))
    }

    /// ff:ff:ff:ff:ff:ff
    public static let broadcast = MACAddress(rawValue: 0xffff_ffff_ffff)

    /// The Ethernet multicast MAC for an IPv6 multicast group: 33:33 + its low 32 bits (RFC 2464 §7).
    public init(multicast group: IPv6Address) {
        rawValue = 0x3333_0000_0000 | UInt64(UInt32(truncatingIfNeeded: group.rawValue))
    }

    /// Parses `02:00:00:00:0a:01` or `02-00-00-00-0a-01` (one or two hex digits per byte).
    public static func parse(_ text: String) throws(AddressParseError) -> MACAddress {
        let parts = text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { throw AddressParseError(text, "expected six hex bytes like 02:00:00:00:0a:01") }
        var v: UInt64 = 0
        for p in parts {
            guard (1...2).contains(p.count), let b = UInt8(p, radix: 16) else {
                throw AddressParseError(text, "expected six hex bytes like 02:00:00:00:0a:01")
            }
            v = v << 8 | UInt64(b)
        }
        return MACAddress(rawValue: v)
    }

    public init?(_ description: String) {
        guard let m = try? Self.parse(description) else { return nil }
        self = m
    }

    public var description: String {
        (0..<6).map { i -> String in
            let b = UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * UInt64(i)))
            return b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16)
        }.joined(separator: ":")
    }

    /// The 6 bytes in transmission order.
    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * UInt64($0))) } }

    /// Modified EUI-64 interface identifier (RFC 4291 App. A): MAC[0..2] ff fe MAC[3..5], with the
    /// universal/local bit (0x02 of the first byte) inverted.
    public var modifiedEUI64: UInt64 {
        let upper = (rawValue >> 24) & 0xff_ffff
        let lower = rawValue & 0xff_ffff
        return (upper << 40 | 0xfffe << 24 | lower) ^ (0x02 << 56)
    }

    /// Whether the group bit is set.
    public var isMulticast: Bool { rawValue >> 40 & 1 == 1 }
}
