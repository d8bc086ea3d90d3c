// ICMP <-> ICMPv6 (RFC 7915 §4.2, §4.3, §5.2, §5.3): echo with the checksum carried over
// incrementally (ICMPv6's covers a pseudo-header, ICMPv4's does not), errors with their type, code,
// pointer and MTU mapped and the packet inside translated as well (TTL / hop limit as they were),
// and the translator's own errors (§4.4, §5.4), never sent about an ICMP error.
import PacketKit

extension Translator {
    // MARK: ICMPv4 -> ICMPv6

    func icmp4to6(_ ip: IPv4Packet, src6: IPv6Address, dst6: IPv6Address, _ out: UnsafeMutableRawBufferPointer,
                  _ emit: (UnsafeRawBufferPointer) -> Void) -> TranslationResult {
        let m = ip.payload
        guard m.count >= 8 else { return .dropped(.malformed, errorSent: false) }
        let type = m[0], code = m[1]
        let hop = hairpinStep ? ip.ttl : ip.ttl - 1
        if type == 8 || type == 0 {
            let total = 40 + m.count
            if ip.dontFragment && total > configuration.ipv6MTU {
                return .dropped(.tooBig, errorSent: error4(for: ip, type: 3, code: 4, rest: UInt32(configuration.ipv6MTU - 20), out, emit))
            }
            Self.writeIPv6Header(out, trafficClass: ip.tos, payloadLength: m.count, nextHeader: IPProtocol.icmpv6.rawValue,
                                 hopLimit: hop, source: src6, destination: dst6)
            out.copy(m, at: 40)
            let newType: UInt8 = type == 8 ? 128 : 129
            out[40] = newType
            var added = InternetChecksum.pseudoHeader(source: src6, destination: dst6, length: m.count, nextHeader: .icmpv6)
            added.add(word: UInt16(newType) << 8 | UInt16(code))
            out.put16(InternetChecksum.update(m.be16(2), old: UInt16(type) << 8 | UInt16(code), new: added.foldedSum), at: 42)
            statistics.translated4to6 += 1
            if !ip.dontFragment && total > configuration.lowestIPv6MTU {
                identification &+= 1
                let n = fragment6(out, headerLength: 40, total: total, protocol: IPProtocol.icmpv6.rawValue, offset: 0, more: false,
                                  identification: UInt32(identification), emit)
                statistics.fragmentsCreated += UInt64(n)
                return .translated(packets: n)
            }
            emit(UnsafeRawBufferPointer(out.slice(0, total)))
            return .translated(packets: 1)
        }
        // Errors: type, code and the rest of the header (RFC 7915 §4.2).
        var t6: UInt8, c6: UInt8 = 0, rest: UInt32 = 0
        switch (type, code) {
        case (3, 0), (3, 1), (3, 5), (3, 6), (3, 7), (3, 8), (3, 11), (3, 12): t6 = 1; c6 = 0
        case (3, 2): t6 = 4; c6 = 1; rest = 6   // protocol unreachable: the pointer names Next Header
        case (3, 3): t6 = 1; c6 = 4
        case (3, 4):
            t6 = 2
            let mtu4 = Int(m.be16(6))
            let proposed = mtu4 == 0 ? configuration.ipv6MTU : min(mtu4 + 20, configuration.ipv6MTU, configuration.ipv4MTU + 20)
            rest = UInt32(max(1280, proposed))
        case (3, 9), (3, 10), (3, 13), (3, 15): t6 = 1; c6 = 1
        case (11, 0), (11, 1): t6 = 3; c6 = code
        case (12, 0), (12, 2):
            guard let pointer = Self.pointer4to6(m[4]) else { return .dropped(.untranslatableICMP, errorSent: false) }
            t6 = 4; c6 = 0; rest = UInt32(pointer)
        default: return .dropped(.untranslatableICMP, errorSent: false)
        }
        // The packet inside: an IPv4 header (perhaps cut short) and what followed it; after it perhaps
        // an RFC 4884 extension structure (types 3, 11 and 12 say the original datagram's length).
        var inner = m.slice(8, m.count)
        let extensions = Self.extensionStructure(m, lengthAt: 5, unit: 4, applies: type == 3 || type == 11 || type == 12)
        if let e = extensions { inner = inner.slice(0, inner.count - e.count) }
        guard inner.count >= 20, inner[0] >> 4 == 4 else { return .dropped(.malformed, errorSent: false) }
        let ihl = Int(inner[0] & 0x0f) * 4
        guard ihl >= 20, ihl <= inner.count,
              let innerSrc = mapper.map(IPv4Address(rawValue: inner.be32(12))),
              let innerDst = mapper.map(IPv4Address(rawValue: inner.be32(16))) else { return .dropped(.untranslatableICMP, errorSent: false) }
        // With extensions the original datagram was zero-padded (to 32 bits, to 128 bytes): the
        // packet is what its Total Length says.
        if extensions != nil { inner = inner.slice(0, max(ihl, min(inner.count, Int(inner.be16(2))))) }
        let innerFragmented = inner.be16(6) & 0x3fff != 0
        let innerProto = inner[9]
        let innerHeader = innerFragmented ? 48 : 40
        let declaredPayload = max(0, Int(inner.be16(2)) - ihl)
        // Output: IPv6 (40) + ICMPv6 (8) + inner IPv6 header + inner payload [+ padding + extensions],
        // at most 1280 bytes (RFC 4443 §2.4(c)). Extensions are kept whole after an original datagram
        // of at least 128 bytes, or dropped when they cannot be (RFC 4884 §4.2, RFC 7915 §4.2); only
        // ICMPv6 types 1 and 3 have a length attribute to carry them.
        let innerAt = 48
        let innerPayload = inner.slice(ihl, inner.count)
        var room = 1280 - innerAt
        var keepExtensions = false
        if let e = extensions, t6 == 1 || t6 == 3, room - e.count >= 128 {
            keepExtensions = true
            room = (room - e.count) & ~7
        }
        let kept = min(innerPayload.count, room - innerHeader)
        Self.writeIPv6Header(out.slice(innerAt, out.count), trafficClass: inner[1],
                             payloadLength: declaredPayload + (innerFragmented ? 8 : 0),
                             nextHeader: innerFragmented ? IPProtocol.fragment.rawValue : (innerProto == 1 ? 58 : innerProto),
                             hopLimit: inner[8], source: innerSrc, destination: innerDst)
        if innerFragmented {
            out[innerAt + 40] = innerProto == 1 ? 58 : innerProto
            out[innerAt + 41] = 0
            out.put16((inner.be16(6) & 0x1fff) << 3 | (inner.be16(6) & 0x2000 != 0 ? 1 : 0), at: innerAt + 42)
            out.put32(UInt32(inner.be16(4)), at: innerAt + 44)
        }
        let transportAt = innerAt + innerHeader
        out.copy(innerPayload.slice(0, kept), at: transportAt)
        if inner.be16(6) & 0x1fff == 0 {
            let t = out.slice(transportAt, transportAt + kept)
            if innerProto == 1 {
                // An echo inside an error: its type and checksum as the echo itself was translated.
                if kept >= 4, t[0] == 8 || t[0] == 0 {
                    let old = UInt16(t[0]) << 8 | UInt16(t[1])
                    t[0] = t[0] == 8 ? 128 : 129
                    var added = InternetChecksum.pseudoHeader(source: innerSrc, destination: innerDst, length: declaredPayload, nextHeader: .icmpv6)
                    added.add(word: UInt16(t[0]) << 8 | UInt16(t[1]))
                    t.put16(InternetChecksum.update(UnsafeRawBufferPointer(t).be16(2), old: old, new: added.foldedSum), at: 2)
                }
            } else {
                Self.adjustTransportChecksum(t, IPProtocol(innerProto),
                                             old: Self.addressSum(IPv4Address(rawValue: inner.be32(12)), IPv4Address(rawValue: inner.be32(16))),
                                             new: Self.addressSum(innerSrc, innerDst))
            }
        }
        var total = transportAt + kept
        if keepExtensions, let e = extensions {
            let words = Self.appendExtensions(e, out, innerAt: innerAt, total: &total, unit: 8)
            rest = UInt32(words) << 24
        }
        Self.writeIPv6Header(out, trafficClass: ip.tos, payloadLength: total - 40, nextHeader: IPProtocol.icmpv6.rawValue,
                             hopLimit: hop, source: src6, destination: dst6)
        Self.writeICMPv6(out, type: t6, code: c6, rest: rest, total: total, source: src6, destination: dst6)
        statistics.translated4to6 += 1
        emit(UnsafeRawBufferPointer(out.slice(0, total)))
        return .translated(packets: 1)
    }

    /// Pads the original datagram written at `innerAt..<total` with zeros to a multiple of `unit`
    /// bytes and to at least 128, and writes extension structure `e` after it (RFC 4884 §4.1: 64-bit
    /// words for ICMPv6, 32-bit for ICMPv4). Returns the length attribute, in words; `total` moves
    /// to the end of the extension.
    static func appendExtensions(_ e: UnsafeRawBufferPointer, _ out: UnsafeMutableRawBufferPointer, innerAt: Int, total: inout Int, unit: Int) -> Int {
        let padded = max(128, (total - innerAt + unit - 1) / unit * unit)
        out.slice(total, innerAt + padded).initializeMemory(as: UInt8.self, repeating: 0)
        out.copy(e, at: innerAt + padded)
        total = innerAt + padded + e.count
        return padded / unit
    }

    /// The RFC 4884 extension structure at the end of ICMP message `m`, if its length attribute (the
    /// octet at `lengthAt`, in `unit`-byte words of original datagram) names one: it must fit, leave
    /// room for the 4-byte extension header and begin with version 2. Otherwise there is none and
    /// everything after the header is the original datagram, as before RFC 4884 (§5).
    static func extensionStructure(_ m: UnsafeRawBufferPointer, lengthAt: Int, unit: Int, applies: Bool) -> UnsafeRawBufferPointer? {
        guard applies, m.count > lengthAt, m[lengthAt] != 0 else { return nil }
        let original = Int(m[lengthAt]) * unit
        guard 8 + original + 4 <= m.count, m[8 + original] >> 4 == 2 else { return nil }
        return m.slice(8 + original, m.count)
    }

    // MARK: ICMPv6 -> ICMPv4

    func icmp6to4(_ ip: IPv6Packet, src4: IPv4Address, dst4: IPv4Address, _ out: UnsafeMutableRawBufferPointer,
                  _ emit: (UnsafeRawBufferPointer) -> Void) -> TranslationResult {
        let m = ip.upperLayer
        guard m.count >= 8 else { return .dropped(.malformed, errorSent: false) }
        let type = m[0], code = m[1]
        let hop = ip.hopLimit - 1
        if type == 128 || type == 129 {
            let total = 20 + m.count
            if total > configuration.ipv4MTU {
                return .dropped(.tooBig, errorSent: error6(for: ip, type: 2, code: 0, rest: UInt32(max(1280, configuration.ipv4MTU + 20)), out, emit))
            }
            // An atomic fragment's Identification is copied (RFC 7915 §5.1.1), as on the other paths.
            writeIPv4Header(out, tos: ip.trafficClass, totalLength: total, fragment: ip.fragment, ttl: hop, protocol: IPProtocol.icmp.rawValue,
                            source: src4, destination: dst4)
            out.copy(m, at: 20)
            let newType: UInt8 = type == 128 ? 8 : 0
            out[20] = newType
            var removed = InternetChecksum.pseudoHeader(source: ip.source, destination: ip.destination, length: m.count, nextHeader: .icmpv6)
            removed.add(word: UInt16(type) << 8 | UInt16(code))
            out.put16(InternetChecksum.update(m.be16(2), old: removed.foldedSum, new: UInt16(newType) << 8 | UInt16(code)), at: 22)
            statistics.translated6to4 += 1
            emit(UnsafeRawBufferPointer(out.slice(0, total)))
            return .translated(packets: 1)
        }
        var t4: UInt8, c4: UInt8 = 0, rest: UInt32 = 0
        switch (type, code) {
        case (1, 0), (1, 2), (1, 3): t4 = 3; c4 = 1
        case (1, 1): t4 = 3; c4 = 10
        case (1, 4): t4 = 3; c4 = 3
        case (2, _):
            t4 = 3; c4 = 4
            let mtu6 = Int(m.be32(4))
            rest = UInt32(max(68, min(mtu6 - 20, configuration.ipv4MTU, configuration.ipv6MTU - 20)))
        case (3, 0), (3, 1): t4 = 11; c4 = code
        case (4, 0):
            guard let pointer = Self.pointer6to4(m.be32(4)) else { return .dropped(.untranslatableICMP, errorSent: false) }
            t4 = 12; c4 = 0; rest = UInt32(pointer) << 24
        case (4, 1): t4 = 3; c4 = 2
        default: return .dropped(.untranslatableICMP, errorSent: false)
        }
        // The packet inside: an IPv6 header and whatever of its extension headers and payload came
        // back; after it perhaps an RFC 4884 extension structure (types 1 and 3 carry the length).
        var inner = m.slice(8, m.count)
        let extensions = Self.extensionStructure(m, lengthAt: 4, unit: 8, applies: type == 1 || type == 3)
        if let e = extensions { inner = inner.slice(0, inner.count - e.count) }
        guard inner.count >= 40, inner[0] >> 4 == 6,
              let innerSrc = mapper.map(IPv6Address(rawValue: inner.be128(8))),
              let innerDst = mapper.map(IPv6Address(rawValue: inner.be128(24))) else { return .dropped(.untranslatableICMP, errorSent: false) }
        // With extensions the original datagram was zero-padded: the packet is what its length says.
        if extensions != nil { inner = inner.slice(0, min(inner.count, 40 + Int(inner.be16(4)))) }
        var next = inner[6], at = 40
        var fragment: IPv6FragmentInfo?
        walk: while at + 8 <= inner.count {
            switch IPProtocol(next) {
            case .hopByHop, .destinationOptions, .routing:
                let length = (Int(inner[at + 1]) + 1) * 8
                guard at + length <= inner.count else { break walk }
                next = inner[at]; at += length
            case .fragment:
                let fo = inner.be16(at + 2)
                fragment = IPv6FragmentInfo(offset: fo >> 3, moreFragments: fo & 1 == 1, identification: inner.be32(at + 4), headerOffset: at)
                next = inner[at]; at += 8
            default: break walk
            }
        }
        let declaredPayload = max(0, Int(inner.be16(4)) - (at - 40))
        let innerPayload = inner.slice(min(at, inner.count), inner.count)
        // Output: IPv4 (20) + ICMP (8) + inner IPv4 header + inner payload [+ padding + extensions],
        // at most 576 bytes (RFC 1812 §4.3.2.3). Extensions are kept whole after an original datagram
        // of at least 128 bytes (RFC 4884 §4.2), or dropped; types 3 and 11 carry the length.
        let innerAt = 28
        var room = 576 - innerAt
        var keepExtensions = false
        if let e = extensions, t4 == 3 || t4 == 11, c4 != 4, room - e.count >= 128 {
            keepExtensions = true
            room = (room - e.count) & ~3
        }
        let kept = min(innerPayload.count, room - 20)
        writeIPv4Header(out.slice(innerAt, out.count), tos: UInt8(truncatingIfNeeded: inner.be16(0) >> 4), totalLength: 20 + declaredPayload,
                        fragment: fragment, ttl: inner[7], protocol: next, source: innerSrc, destination: innerDst, identify: false)
        let transportAt = innerAt + 20
        out.copy(innerPayload.slice(0, kept), at: transportAt)
        if (fragment?.offset ?? 0) == 0 {
            let t = out.slice(transportAt, transportAt + kept)
            let oldSrc = IPv6Address(rawValue: inner.be128(8)), oldDst = IPv6Address(rawValue: inner.be128(24))
            if next == IPProtocol.icmpv6.rawValue {
                if kept >= 4, t[0] == 128 || t[0] == 129 {
                    var removed = InternetChecksum.pseudoHeader(source: oldSrc, destination: oldDst, length: declaredPayload, nextHeader: .icmpv6)
                    removed.add(word: UInt16(t[0]) << 8 | UInt16(t[1]))
                    t[0] = t[0] == 128 ? 8 : 0
                    t.put16(InternetChecksum.update(UnsafeRawBufferPointer(t).be16(2), old: removed.foldedSum, new: UInt16(t[0]) << 8 | UInt16(t[1])), at: 2)
                }
            } else {
                Self.adjustTransportChecksum(t, IPProtocol(next), old: Self.addressSum(oldSrc, oldDst), new: Self.addressSum(innerSrc, innerDst))
            }
        }
        var total = transportAt + kept
        if keepExtensions, let e = extensions {
            let words = Self.appendExtensions(e, out, innerAt: innerAt, total: &total, unit: 4)
            rest |= UInt32(words) << 16
        }
        writeIPv4Header(out, tos: ip.trafficClass, totalLength: total, fragment: ip.fragment, ttl: hop, protocol: IPProtocol.icmp.rawValue,
                        source: src4, destination: dst4)
        out[20] = t4; out[21] = c4
        out.put16(0, at: 22)
        out.put32(rest, at: 24)
        out.put16(InternetChecksum.of(UnsafeRawBufferPointer(out.slice(20, total))), at: 22)
        statistics.translated6to4 += 1
        emit(UnsafeRawBufferPointer(out.slice(0, total)))
        return .translated(packets: 1)
    }

    // MARK: Pointer maps (RFC 7915 §4.2 figure 3, §5.2 figure 6)

    static func pointer4to6(_ p: UInt8) -> UInt8? {
        switch p {
        case 0: 0
        case 1: 1
        case 2, 3: 4
        case 8: 7
        case 9: 6
        case 12...15: 8
        case 16...19: 24
        default: nil
        }
    }

    static func pointer6to4(_ p: UInt32) -> UInt8? {
        switch p {
        case 0: 0
        case 1: 1
        case 4, 5: 2
        case 6: 9
        case 7: 8
        case 8...23: 12
        case 24...39: 16
        default: nil
        }
    }

    // MARK: The translator's own errors

    static func writeICMPv6(_ out: UnsafeMutableRawBufferPointer, type: UInt8, code: UInt8, rest: UInt32, total: Int,
                            source: IPv6Address, destination: IPv6Address) {
        out[40] = type; out[41] = code
        out.put16(0, at: 42)
        out.put32(rest, at: 44)
        var c = InternetChecksum.pseudoHeader(source: source, destination: destination, length: total - 40, nextHeader: .icmpv6)
        c.add(UnsafeRawBufferPointer(out.slice(40, total)))
        out.put16(c.value, at: 42)
    }

    /// Sends an ICMPv4 error about `ip` to its source, from `configuration.ipv4Address`, holding as
    /// much of it as fits in 576 bytes. Not about ICMP errors or non-first fragments (RFC 1812
    /// §4.3.2.7), and at most `errorsPerSecond` a second with the translator's other errors.
    func error4(for ip: IPv4Packet, type: UInt8, code: UInt8, rest: UInt32, _ out: UnsafeMutableRawBufferPointer,
                _ emit: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard let from = configuration.ipv4Address, ip.fragmentOffset == 0, !ip.source.isMulticast, ip.source != .any,
              ip.source != .broadcast else { return false }
        if ip.protocolNumber == .icmp {
            let m = ip.payload
            guard m.count >= 1, m[0] == 0 || m[0] == 8 else { return false }
        }
        guard allowError() else { return false }
        let kept = min(ip.bytes.count, 576 - 28)
        let total = 28 + kept
        writeIPv4Header(out, tos: 0, totalLength: total, fragment: nil, ttl: 64, protocol: IPProtocol.icmp.rawValue, source: from, destination: ip.source)
        out[20] = type; out[21] = code
        out.put16(0, at: 22)
        out.put32(rest, at: 24)
        out.copy(ip.bytes.slice(0, kept), at: 28)
        out.put16(InternetChecksum.of(UnsafeRawBufferPointer(out.slice(20, total))), at: 22)
        emit(UnsafeRawBufferPointer(out.slice(0, total)))
        return true
    }

    /// Sends an ICMPv6 error about `ip` to its source, from `configuration.ipv6Address`, holding as
    /// much of it as fits in 1280 bytes. Not about ICMPv6 errors or non-first fragments, and at most
    /// `errorsPerSecond` a second with the translator's other errors.
    func error6(for ip: IPv6Packet, type: UInt8, code: UInt8, rest: UInt32, _ out: UnsafeMutableRawBufferPointer,
                _ emit: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard (ip.fragment?.offset ?? 0) == 0 else { return false }
        if ip.upperLayerProtocol == .icmpv6 {
            let m = ip.upperLayer
            guard m.count >= 1, m[0] >= 128 else { return false }
        }
        return sendError6(about: ip.bytes, source: ip.source, type: type, code: code, rest: rest, out, emit)
    }

    /// The same about bytes PacketKit would not read (a Hop-by-Hop header after a Fragment header):
    /// the chain never reached an upper layer, so it is not an ICMPv6 error; first fragments only.
    func error6(about p: UnsafeRawBufferPointer, type: UInt8, code: UInt8, _ out: UnsafeMutableRawBufferPointer,
                _ emit: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard p.count >= 48 else { return false }
        let end = min(p.count, 40 + Int(p.be16(4)))
        return sendError6(about: p.slice(0, end), source: IPv6Address(rawValue: p.be128(8)), type: type, code: code, rest: 0, out, emit)
    }

    func sendError6(about bytes: UnsafeRawBufferPointer, source: IPv6Address, type: UInt8, code: UInt8, rest: UInt32,
                    _ out: UnsafeMutableRawBufferPointer, _ emit: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard let from = configuration.ipv6Address, !source.isMulticast, !source.isUnspecified, allowError() else { return false }
        let kept = min(bytes.count, 1280 - 48)
        let total = 48 + kept
        Self.writeIPv6Header(out, trafficClass: 0, payloadLength: total - 40, nextHeader: IPProtocol.icmpv6.rawValue, hopLimit: 64,
                             source: from, destination: source)
        out.copy(bytes.slice(0, kept), at: 48)
        Self.writeICMPv6(out, type: type, code: code, rest: rest, total: total, source: from, destination: source)
        emit(UnsafeRawBufferPointer(out.slice(0, total)))
        return true
    }
}
