// Stateless IP/ICMP translation (SIIT, RFC 7915) of whole packets, both ways, written into a
// caller's buffer: IPv4 header <-> IPv6 header (+ Fragment header), TCP/UDP checksums adjusted
// incrementally for the pseudo-header change, ICMP <-> ICMPv6 (echo, and errors with the packet
// inside translated too), fragments both ways, DF / packet-too-big handling, and the translator's
// own ICMP errors (time exceeded, fragmentation needed, packet too big, parameter problem).
// Per packet nothing is allocated.
import PacketKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// Why a packet was not translated.
public enum TranslationDrop: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// Not an IPv4 or IPv6 packet PacketKit can read (lengths, version, extension headers).
    case malformed
    /// IPv4 header checksum wrong.
    case badHeaderChecksum
    /// An address with no mapping (outside the prefix and not in the EAM table; or a non-global
    /// IPv4 address with the Well-Known Prefix), or a multicast / broadcast one.
    case unmappable
    /// TTL or hop limit would reach 0 (an ICMP time exceeded went back).
    case hopLimit
    /// Too big for the next hop with DF set / from IPv6 (fragmentation needed or packet too big went back).
    case tooBig
    /// An unexpired IPv4 source route (ICMPv4 3/5 went back) or an IPv6 Routing header with segments
    /// left (ICMPv6 parameter problem went back).
    case sourceRoute
    /// ICMP without an equivalent in the other family (redirects, ND, MLD, router discovery...).
    case untranslatableICMP
    /// Fragmented ICMP messages (their checksum covers the whole message, which one fragment is not).
    case fragmentedICMP
    /// IPv4 UDP without a checksum when fragmented or when computing is switched off; IPv6 UDP with 0.
    case udpZeroChecksum
    /// IPv4 whose protocol number is an IPv6 extension header type (0, 43, 44, 51 AH, 60, 135,
    /// 139, 140, 253, 254: IANA's IPv6 Extension Header Types). RFC 7915 §4.1 copies the protocol
    /// into Next Header, but then IPv6 receivers would read the IPv4 payload as that extension
    /// header: dropped instead (found by the fuzz-translator target). AH could not survive
    /// translation anyway (it covers the addresses).
    case extensionHeaderProtocol
    /// Multicast or broadcast: never translated (RFC 7915 translates unicast). Mostly the kernel's
    /// own link-local chatter on the translator's interface (MLD reports): counted, not reported.
    case multicast
    /// IPv6 whose Fragment header is followed by another extension header (anything but ESP, AH
    /// included): RFC 7915 §5.1.1 says drop it (translated, every later fragment's offset would be
    /// wrong); an ICMPv6 1/1 goes back (§5.4).
    case extensionHeaderAfterFragment

    public var description: String {
        switch self {
        case .malformed: "malformed"
        case .badHeaderChecksum: "bad-header-checksum"
        case .unmappable: "unmappable"
        case .hopLimit: "hop-limit"
        case .tooBig: "too-big"
        case .sourceRoute: "source-route"
        case .untranslatableICMP: "untranslatable-icmp"
        case .fragmentedICMP: "fragmented-icmp"
        case .udpZeroChecksum: "udp-zero-checksum"
        case .extensionHeaderProtocol: "extension-header-protocol"
        case .multicast: "multicast"
        case .extensionHeaderAfterFragment: "extension-header-after-fragment"
        }
    }
}

/// What one call to `translate` did.
public enum TranslationResult: Sendable, Equatable {
    /// Translated into `packets` packets (more than one: IPv6 fragments).
    case translated(packets: Int)
    /// Dropped and counted; `errorSent` when an ICMP error went back to the sender.
    case dropped(TranslationDrop, errorSent: Bool)
}

/// Counters of a translator. Every packet given to `translate` lands in exactly one of
/// `translated4to6`, `translated6to4`, `hairpinned` or `dropped`.
public struct TranslatorStatistics: Sendable, Equatable, CustomStringConvertible {
    public var translated4to6: UInt64 = 0
    public var translated6to4: UInt64 = 0
    /// IPv6 fragments written for DF=0 IPv4 packets longer than the lowest IPv6 MTU.
    public var fragmentsCreated: UInt64 = 0
    /// ICMP errors the translator sent itself.
    public var errorsSent: UInt64 = 0
    /// TCP super-packets (segmentation offload) among those translated, each counted once.
    public var superPackets: UInt64 = 0
    /// IPv6 packets from one explicitly mapped host to another's pool6 address, translated to IPv4
    /// and back (RFC 7757 §4); counted here, not in the two directions.
    public var hairpinned: UInt64 = 0
    /// Drops by `TranslationDrop.rawValue`.
    public var dropped = DropCounters()
    /// The most recent drop other than multicast, with the packet's addresses (for the operator's log: which packet,
    /// and why); nil when nothing was dropped.
    public var lastDrop: DropSample?

    /// One dropped packet: why, and between which addresses (read from its header as given).
    public struct DropSample: Sendable, Equatable {
        public var reason: TranslationDrop
        public var source: IPAddress?
        public var destination: IPAddress?
    }

    public struct DropCounters: Sendable, Equatable {
        // One slot per TranslationDrop case (checked when the type is first used).
        var counts = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        public subscript(_ reason: TranslationDrop) -> UInt64 {
            get { withUnsafeBytes(of: counts) { $0.load(fromByteOffset: reason.rawValue * 8, as: UInt64.self) } }
            set { withUnsafeMutableBytes(of: &counts) { $0.storeBytes(of: newValue, toByteOffset: reason.rawValue * 8, as: UInt64.self) } }
        }
        public var total: UInt64 { TranslationDrop.allCases.reduce(0) { $0 + self[$1] } }
        public static func == (a: Self, b: Self) -> Bool { TranslationDrop.allCases.allSatisfy { a[$0] == b[$0] } }
    }

    public mutating func add(_ o: TranslatorStatistics) {
        translated4to6 += o.translated4to6; translated6to4 += o.translated6to4
        fragmentsCreated += o.fragmentsCreated; errorsSent += o.errorsSent; superPackets += o.superPackets
        hairpinned += o.hairpinned
        for r in TranslationDrop.allCases { dropped[r] += o.dropped[r] }
        if let d = o.lastDrop { lastDrop = d }
    }

    public var description: String {
        "4to6 \(translated4to6) 6to4 \(translated6to4) hairpinned \(hairpinned) super-packets \(superPackets) fragments \(fragmentsCreated) errors-sent \(errorsSent) dropped "
            + TranslationDrop.allCases.map { "\($0) \(dropped[$0])" }.joined(separator: " ")
    }
}

/// A stateless translator. Not thread-safe: one per thread (they share nothing but the settings).
public final class Translator: @unchecked Sendable {
    public let configuration: TranslatorConfiguration
    public internal(set) var statistics = TranslatorStatistics()
    let mapper: AddressMapper
    var identification: UInt16 = 0
    /// The translator's own ICMP errors: a token bucket of `configuration.errorsPerSecond` a second
    /// (RFC 4443 §2.4(f), RFC 1812 §4.3.2.8), shared by every error path.
    var errorTokens = 0.0
    var errorRefilledAt = 0.0
    /// The default of `TranslatorConfiguration.errorsPerSecond`.
    public static let errorLimit = 100
    /// Set while the second half of a hairpin (RFC 7757 §4) runs: no second hop-limit decrement,
    /// the source from pool6.
    var hairpinStep = false
    /// RFC 6791 picks: xorshift state (random enough to spread traceroute hops over a pool).
    var poolState: UInt64 = 0x9e37_79b9_7f4a_7c15

    /// Takes a token for one error, refilled at `errorsPerSecond` a second; only read on error paths.
    func allowError() -> Bool {
        let rate = Double(configuration.errorsPerSecond)
        guard rate > 0 else { return false }
        let now = MonotonicClock.seconds()
        errorTokens = min(rate, errorTokens + (now - errorRefilledAt) * rate)
        errorRefilledAt = now
        guard errorTokens >= 1 else { return false }
        errorTokens -= 1
        return true
    }

    /// One packet's room in the scratch buffer (the largest IPv6 packet with a Fragment header added).
    static let region = 65_664
    /// The scratch buffer `translate` needs at least: three maximum-size packets (a translation,
    /// its fragments, and the second translation of a hairpinned packet).
    public static let scratchSize = 3 * region

    public init(_ configuration: TranslatorConfiguration) throws(TranslatorConfigurationError) {
        self.configuration = try configuration.validated()
        mapper = AddressMapper(configuration)
        errorTokens = Double(configuration.errorsPerSecond)
        errorRefilledAt = MonotonicClock.seconds()
        poolState ^= MonotonicClock.nanoseconds() &* 0x2545_f491_4f6c_dd1d | 1
    }

    /// Translates one IPv4 or IPv6 packet. Every packet this produces, the translation (or its
    /// fragments) or an ICMP error for the sender, is passed to `emit`, valid only during that call;
    /// all are IP packets to send on (a TUN device routes both). `scratch` holds at least
    /// `Translator.scratchSize` bytes.
    @discardableResult
    public func translate(_ packet: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
                          emit: (UnsafeRawBufferPointer) -> Void) -> TranslationResult {
        dispatch(packet, scratch, segment: 0) { p, _ in emit(p) }
    }

    /// Translates one TCP super-packet as an offload TUN device hands them over (generic
    /// segmentation offload, `VirtioNetHeader`): up to 64 KiB of TCP whose checksum field holds only
    /// the pseudo-header sum (CHECKSUM_PARTIAL), which the kernel cuts into segments of `segmentSize`
    /// payload bytes after it is written back. The translation is the same super-packet in the
    /// other family, its partial checksum moved to the new pseudo-header, emitted with the segment
    /// size to write back; size rules apply to each segment, not to the whole:
    /// - segments too big for the next hop with DF set (or from IPv6) get the same ICMP error a
    ///   packet of that size would;
    /// - IPv4 DF=0 segments longer than the lowest IPv6 MTU are made smaller rather than cut into
    ///   fragments (the segments are whole TCP segments either way).
    /// An ICMP error is emitted with segment size 0 (complete checksums). Anything but unfragmented
    /// TCP, or a segment size of 0, is dropped as malformed.
    @discardableResult
    public func translate(segmented packet: UnsafeRawBufferPointer, segmentSize: Int, scratch: UnsafeMutableRawBufferPointer,
                          emit: (UnsafeRawBufferPointer, _ segmentSize: Int) -> Void) -> TranslationResult {
        guard segmentSize > 0 else { statistics.dropped[.malformed] += 1; return .dropped(.malformed, errorSent: false) }
        return dispatch(packet, scratch, segment: segmentSize, emit)
    }

    /// By IP version to `from4` / `from6`; drops are counted here.
    @inline(__always)
    func dispatch(_ packet: UnsafeRawBufferPointer, _ scratch: UnsafeMutableRawBufferPointer, segment: Int,
                  _ emit: (UnsafeRawBufferPointer, Int) -> Void) -> TranslationResult {
        precondition(scratch.count >= Self.scratchSize, "Translator.translate: scratch smaller than Translator.scratchSize")
        let result: TranslationResult
        switch packet.first.map({ $0 >> 4 }) {
        case 4: result = from4(packet, scratch, segment: segment, emit)
        case 6: result = from6(packet, scratch, segment: segment, emit)
        default: result = .dropped(.malformed, errorSent: false)
        }
        if case .dropped(let reason, let sent) = result {
            statistics.dropped[reason] += 1
            if sent { statistics.errorsSent += 1 }
            // The kernel's own multicast chatter would hide the drops worth reporting.
            if reason != .multicast { statistics.lastDrop = Self.sample(reason, packet) }
        }
        return result
    }

    /// The addresses of a dropped packet, read straight from its header (no allocation).
    @inline(__always)
    static func sample(_ reason: TranslationDrop, _ p: UnsafeRawBufferPointer) -> TranslatorStatistics.DropSample {
        var s = TranslatorStatistics.DropSample(reason: reason)
        if p.count >= 20, p[0] >> 4 == 4 {
            s.source = .v4(IPv4Address(rawValue: p.be32(12)))
            s.destination = .v4(IPv4Address(rawValue: p.be32(16)))
        } else if p.count >= 40, p[0] >> 4 == 6 {
            s.source = .v6(IPv6Address(rawValue: p.be128(8)))
            s.destination = .v6(IPv6Address(rawValue: p.be128(24)))
        }
        return s
    }

    /// Resets the counters to zero and returns what they were (a device publishes them in batches).
    public func takeStatistics() -> TranslatorStatistics {
        defer { statistics = TranslatorStatistics() }
        return statistics
    }

    // MARK: IPv4 -> IPv6 (RFC 7915 §4)

    /// `segment` > 0: a TCP super-packet with a partial checksum, cut into segments of that many
    /// payload bytes later (see `translate(segmented:...)`).
    func from4(_ p: UnsafeRawBufferPointer, _ out: UnsafeMutableRawBufferPointer, segment: Int,
               _ emit: (UnsafeRawBufferPointer, Int) -> Void) -> TranslationResult {
        guard let ip = try? IPv4Packet(p) else { return .dropped(.malformed, errorSent: false) }
        guard ip.isHeaderChecksumValid else { return .dropped(.badHeaderChecksum, errorSent: false) }
        let src4 = ip.source, dst4 = ip.destination
        guard !dst4.isMulticast, dst4 != .broadcast, !src4.isMulticast else { return .dropped(.multicast, errorSent: false) }
        let proto = ip.protocolNumber
        // Discarded packets get an ICMPv4 error (RFC 7915 §4.4: 3/13 unless said otherwise), rate-limited.
        guard let dst6 = mapper.map(dst4) else {
            // Host Unreachable: ICMPv6 Address Unreachable's counterpart (§4.2), what the sender can act on.
            return .dropped(.unmappable, errorSent: error4(for: ip, type: 3, code: 1, rest: 0, out) { emit($0, 0) })
        }
        let src6: IPv6Address
        if hairpinStep {
            // RFC 7757 §4: the hairpinned packet's source is the pool6 address, so replies come back
            // through the translator.
            guard let e = mapper.embed(src4) else { return .dropped(.unmappable, errorSent: false) }
            src6 = e
        } else if let m = mapper.map(src4) {
            src6 = m
        } else if proto == .icmp, !ip.isFragment, Self.isICMPv4Error(ip.payload), let pooled = rfc6791Source6() {
            // An IPv4 router's error with no mapping for the router: a source from the RFC 6791 pool.
            src6 = pooled
        } else {
            return .dropped(.unmappable, errorSent: error4(for: ip, type: 3, code: 13, rest: 0, out) { emit($0, 0) })
        }
        // A hairpinned packet's hop limit went down once already, on the way in.
        if !hairpinStep, ip.ttl <= 1 {
            return .dropped(.hopLimit, errorSent: error4(for: ip, type: 11, code: 0, rest: 0, out) { emit($0, 0) })
        }
        if ip.headerLength > 20, Self.unexpiredSourceRoute(ip.options) {
            return .dropped(.sourceRoute, errorSent: error4(for: ip, type: 3, code: 5, rest: 0, out) { emit($0, 0) })
        }
        if proto.isGenericExtensionHeader || proto == .fragment || proto == .ah {
            // Protocol Unreachable: the protocol cannot be carried (see `TranslationDrop.extensionHeaderProtocol`).
            return .dropped(.extensionHeaderProtocol, errorSent: error4(for: ip, type: 3, code: 2, rest: 0, out) { emit($0, 0) })
        }
        let payload = ip.payload
        let fragmented = ip.isFragment
        var segment = segment
        let headerLength = fragmented ? 48 : 40
        let total = headerLength + payload.count
        // The length the size rules apply to: the packet, or each segment of a super-packet.
        var sized = total
        if segment > 0 {
            guard proto == .tcp, !fragmented, payload.count >= 20 else { return .dropped(.malformed, errorSent: false) }
            sized = min(sized, 40 + Int(payload[12] >> 4) * 4 + segment)
        }
        if proto == .icmp {
            guard !fragmented else { return .dropped(.fragmentedICMP, errorSent: error4(for: ip, type: 3, code: 13, rest: 0, out) { emit($0, 0) }) }
            return icmp4to6(ip, src6: src6, dst6: dst6, out) { emit($0, 0) }
        }
        if ip.dontFragment && sized > configuration.ipv6MTU {
            let mtu = UInt32(configuration.ipv6MTU - 20)
            return .dropped(.tooBig, errorSent: error4(for: ip, type: 3, code: 4, rest: mtu, out) { emit($0, 0) })
        }
        if segment > 0, !ip.dontFragment, sized > configuration.lowestIPv6MTU {
            segment -= sized - configuration.lowestIPv6MTU
        }
        Self.writeIPv6Header(out, trafficClass: ip.tos, payloadLength: total - 40, nextHeader: fragmented ? IPProtocol.fragment.rawValue : proto.rawValue,
                             hopLimit: hairpinStep ? ip.ttl : ip.ttl - 1, source: src6, destination: dst6)
        if fragmented {
            out[40] = proto.rawValue
            out[41] = 0
            out.put16(ip.fragmentOffset << 3 | (ip.moreFragments ? 1 : 0), at: 42)
            out.put32(UInt32(ip.identification), at: 44)
        }
        out.copy(payload, at: headerLength)
        if ip.fragmentOffset == 0 {
            let transport = out.slice(headerLength, total)
            let old = Self.addressSum(src4, dst4), new = Self.addressSum(src6, dst6)
            if segment > 0 {
                Self.adjustPartialChecksum(transport, at: 16, old: old, new: new)
            } else if proto == .udp, payload.count >= 8, payload.be16(6) == 0 {
                // RFC 7915 §4.5: dropped (fragmented, or amending switched off) with an error and counted.
                guard !fragmented, configuration.computeZeroUDPChecksum else {
                    return .dropped(.udpZeroChecksum, errorSent: error4(for: ip, type: 3, code: 13, rest: 0, out) { emit($0, 0) })
                }
                var c = InternetChecksum.pseudoHeader(source: src6, destination: dst6, length: transport.count, nextHeader: .udp)
                c.add(UnsafeRawBufferPointer(transport))
                transport.put16(c.value == 0 ? 0xffff : c.value, at: 6)
            } else {
                Self.adjustTransportChecksum(transport, proto, old: old, new: new)
            }
        }
        statistics.translated4to6 += 1
        if segment == 0 && !ip.dontFragment && total > configuration.lowestIPv6MTU {
            let n = fragment6(out, headerLength: headerLength, total: total, protocol: proto.rawValue,
                              offset: Int(ip.fragmentOffset) * 8, more: ip.moreFragments, identification: UInt32(ip.identification)) { emit($0, 0) }
            statistics.fragmentsCreated += UInt64(n)
            return .translated(packets: n)
        }
        if segment > 0 { statistics.superPackets += 1 }
        emit(UnsafeRawBufferPointer(out.slice(0, total)), segment)
        return .translated(packets: 1)
    }

    /// Splits the translated packet in `out[0..<total]` into fragments no longer than the lowest
    /// IPv6 MTU, written one at a time into the second half of `out`. Returns how many.
    func fragment6(_ out: UnsafeMutableRawBufferPointer, headerLength: Int, total: Int, protocol proto: UInt8, offset: Int, more: Bool,
                   identification: UInt32, _ emit: (UnsafeRawBufferPointer) -> Void) -> Int {
        let data = UnsafeRawBufferPointer(out.slice(headerLength, total))
        let piece = (configuration.lowestIPv6MTU - 48) & ~7
        let frag = out.slice(Self.region, out.count)
        var start = 0, count = 0
        while start < data.count {
            let end = min(start + piece, data.count)
            let last = end == data.count
            frag.copy(UnsafeRawBufferPointer(out.slice(0, 40)), at: 0)
            frag.put16(UInt16(8 + end - start), at: 4)
            frag[6] = IPProtocol.fragment.rawValue
            frag[40] = proto
            frag[41] = 0
            frag.put16(UInt16((offset + start) / 8) << 3 | (last && !more ? 0 : 1), at: 42)
            frag.put32(identification, at: 44)
            frag.copy(data.slice(start, end), at: 48)
            emit(UnsafeRawBufferPointer(frag.slice(0, 48 + end - start)))
            count += 1
            start = end
        }
        return count
    }

    // MARK: IPv6 -> IPv4 (RFC 7915 §5)

    func from6(_ p: UnsafeRawBufferPointer, _ out: UnsafeMutableRawBufferPointer, segment: Int,
               _ emit: (UnsafeRawBufferPointer, Int) -> Void) -> TranslationResult {
        guard let ip = try? IPv6Packet(p) else {
            // PacketKit refuses a Hop-by-Hop header anywhere but first; after a Fragment header that
            // is RFC 7915 §5.1.1's case, which gets its error.
            if Self.hopByHopAfterFragment(p) {
                return .dropped(.extensionHeaderAfterFragment, errorSent: error6(about: p, type: 1, code: 1, out) { emit($0, 0) })
            }
            return .dropped(.malformed, errorSent: false)
        }
        let src6 = ip.source, dst6 = ip.destination
        guard !dst6.isMulticast else { return .dropped(.multicast, errorSent: false) }
        if let f = ip.fragment, Self.isExtensionHeader(ip.bytes[f.headerOffset]) {
            return .dropped(.extensionHeaderAfterFragment, errorSent: error6(for: ip, type: 1, code: 1, rest: 0, out) { emit($0, 0) })
        }
        guard let dst4 = mapper.map(dst6) else {
            // A sender we translate for, toward an address we cannot: tell it (Destination
            // Unreachable, Address Unreachable, RFC 4443 §3.1), so the failure reaches the host
            // instead of a silent timeout (a non-global IPv4 address behind the Well-Known Prefix,
            // RFC 6052 §3.1, is the common case).
            return .dropped(.unmappable, errorSent: error6(for: ip, type: 1, code: 3, rest: 0, out) { emit($0, 0) })
        }
        let src4: IPv4Address
        if let m = mapper.map(src6) {
            src4 = m
        } else if ip.upperLayerProtocol == .icmpv6, ip.fragment?.isAtomic ?? true, ip.upperLayer.count >= 1, ip.upperLayer[0] < 128,
                  let pooled = rfc6791Source4() {
            // An IPv6 router's error with no mapping for the router (RFC 6791): a pool address.
            src4 = pooled
        } else {
            return .dropped(.unmappable, errorSent: error6(for: ip, type: 1, code: 1, rest: 0, out) { emit($0, 0) })
        }
        // RFC 7757 §4: toward the pool6 address of a host that is itself explicitly mapped (on the
        // IPv6 side): translated to IPv4, then back to IPv6 at once.
        if !hairpinStep, mapper.isExplicit(dst4), mapper.map(dst4) != dst6 {
            return hairpin(ip, out, segment: segment, emit)
        }
        if ip.hopLimit <= 1 {
            return .dropped(.hopLimit, errorSent: error6(for: ip, type: 3, code: 0, rest: 0, out) { emit($0, 0) })
        }
        if ip.extensionHeaderCount > 0 {
            for h in ip.extensionHeaders where h.type == .routing && h.bytes.count >= 4 && h.bytes[3] != 0 {
                return .dropped(.sourceRoute, errorSent: error6(for: ip, type: 4, code: 0, rest: UInt32(h.offset + 3), out) { emit($0, 0) })
            }
        }
        let proto = ip.upperLayerProtocol
        let fragment = ip.fragment
        let payload = ip.upperLayer
        let total = 20 + payload.count
        // The length the size rules apply to: the packet, or each segment of a super-packet.
        var sized = total
        if segment > 0 {
            guard proto == .tcp, fragment == nil, payload.count >= 20, total <= 65_535 else { return .dropped(.malformed, errorSent: false) }
            sized = min(total, 20 + Int(payload[12] >> 4) * 4 + segment)
        }
        if proto == .icmpv6 {
            guard fragment == nil || fragment!.isAtomic else {
                return .dropped(.fragmentedICMP, errorSent: error6(for: ip, type: 1, code: 1, rest: 0, out) { emit($0, 0) })
            }
            return icmp6to4(ip, src4: src4, dst4: dst4, out) { emit($0, 0) }
        }
        if sized > configuration.ipv4MTU {
            let mtu = UInt32(max(1280, configuration.ipv4MTU + 20))
            return .dropped(.tooBig, errorSent: error6(for: ip, type: 2, code: 0, rest: mtu, out) { emit($0, 0) })
        }
        writeIPv4Header(out, tos: ip.trafficClass, totalLength: total, fragment: fragment, ttl: ip.hopLimit - 1,
                        protocol: proto.rawValue, source: src4, destination: dst4, segmentLength: sized)
        out.copy(payload, at: 20)
        if (fragment?.offset ?? 0) == 0 {
            let transport = out.slice(20, total)
            let old = Self.addressSum(src6, dst6), new = Self.addressSum(src4, dst4)
            if segment > 0 {
                Self.adjustPartialChecksum(transport, at: 16, old: old, new: new)
            } else {
                if proto == .udp, payload.count >= 8, payload.be16(6) == 0 {
                    // Not a valid IPv6 datagram (RFC 8200 §8.1); dropped with §5.4's error.
                    return .dropped(.udpZeroChecksum, errorSent: error6(for: ip, type: 1, code: 1, rest: 0, out) { emit($0, 0) })
                }
                Self.adjustTransportChecksum(transport, proto, old: old, new: new)
            }
        }
        statistics.translated6to4 += 1
        if segment > 0 { statistics.superPackets += 1 }
        emit(UnsafeRawBufferPointer(out.slice(0, total)), segment)
        return .translated(packets: 1)
    }

    // MARK: Hairpinning (RFC 7757 §4) and the RFC 6791 pools

    /// Translates `ip` to IPv4 into the first region of `out`, then that back to IPv6 into the
    /// others: source the pool6 form of the sender's IPv4 address, destination the receiver's
    /// explicit mapping, the hop limit down by one in all. Errors the first step sends go to the
    /// sender as they are.
    func hairpin(_ ip: IPv6Packet, _ out: UnsafeMutableRawBufferPointer, segment: Int,
                 _ emit: (UnsafeRawBufferPointer, Int) -> Void) -> TranslationResult {
        var second: TranslationResult?
        hairpinStep = true
        defer { hairpinStep = false }
        let first = from6(ip.bytes, out, segment: segment) { packet, size in
            guard packet.first.map({ $0 >> 4 }) == 4 else { emit(packet, size); return }
            second = from4(packet, out.slice(Self.region, out.count), segment: size, emit)
        }
        guard case .translated = first, let second else { return first }
        statistics.translated6to4 -= 1
        if case .translated = second {
            statistics.translated4to6 -= 1
            statistics.hairpinned += 1
        }
        return second
    }

    /// An address from the RFC 6791 pool (at random), else the translator's own; nil without either.
    func rfc6791Source4() -> IPv4Address? {
        guard let pool = configuration.rfc6791Pool else { return configuration.ipv4Address }
        let hosts = UInt64(1) << (32 - pool.length)
        let r = nextRandom()
        let offset = hosts >= 4 ? 1 + r % (hosts - 2) : r % hosts
        return IPv4Address(rawValue: pool.network.rawValue | UInt32(truncatingIfNeeded: offset))
    }

    /// The same for IPv6 (the prefix's Subnet-Router anycast address, all zeros, excluded).
    func rfc6791Source6() -> IPv6Address? {
        guard let pool = configuration.rfc6791Pool6 else { return configuration.ipv6Address }
        guard pool.length < 128 else { return pool.network }
        let bits = 128 - pool.length
        let random = UInt128(nextRandom()) << 64 | UInt128(nextRandom())
        var offset = bits >= 128 ? random : random & ((UInt128(1) << bits) - 1)
        if offset == 0 { offset = 1 }
        return IPv6Address(rawValue: pool.network.rawValue | offset)
    }

    /// xorshift64*: the pools' picks (not for secrets).
    func nextRandom() -> UInt64 {
        poolState ^= poolState >> 12
        poolState ^= poolState << 25
        poolState ^= poolState >> 27
        return poolState &* 0x2545_f491_4f6c_dd1d
    }

    /// ICMPv4 Destination Unreachable, Time Exceeded or Parameter Problem.
    @inline(__always) static func isICMPv4Error(_ m: UnsafeRawBufferPointer) -> Bool {
        m.count >= 1 && (m[0] == 3 || m[0] == 11 || m[0] == 12)
    }

    /// RFC 7915 §5.1.1: "an extension header (except ESP, but including the Authentication Header)".
    @inline(__always) static func isExtensionHeader(_ next: UInt8) -> Bool {
        let p = IPProtocol(next)
        return p.isGenericExtensionHeader || p == .fragment || p == .ah
    }

    /// Whether the chain of `p` reaches a Hop-by-Hop header right after a Fragment header (walked
    /// here because PacketKit refuses such a packet).
    static func hopByHopAfterFragment(_ p: UnsafeRawBufferPointer) -> Bool {
        guard p.count >= 40, p[0] >> 4 == 6 else { return false }
        var next = p[6], at = 40, afterFragment = false
        for _ in 0..<IPv6Packet.maximumExtensionHeaders {
            if next == IPProtocol.hopByHop.rawValue && afterFragment { return true }
            if next == IPProtocol.fragment.rawValue {
                guard at + 8 <= p.count else { return false }
                next = p[at]; at += 8; afterFragment = true
            } else if IPProtocol(next).isGenericExtensionHeader {
                guard at + 8 <= p.count else { return false }
                let length = (Int(p[at + 1]) + 1) * 8
                next = p[at]; at += length; afterFragment = false
            } else {
                return false
            }
        }
        return false
    }

    // MARK: Headers and checksums

    static func writeIPv6Header(_ out: UnsafeMutableRawBufferPointer, trafficClass: UInt8, payloadLength: Int, nextHeader: UInt8,
                                hopLimit: UInt8, source: IPv6Address, destination: IPv6Address) {
        out.put32(6 << 28 | UInt32(trafficClass) << 20, at: 0)   // flow label 0 (RFC 7915 §4.1)
        out.put16(UInt16(payloadLength), at: 4)
        out[6] = nextHeader
        out[7] = hopLimit
        out.put128(source.rawValue, at: 8)
        out.put128(destination.rawValue, at: 24)
    }

    /// IHL 5 (options are not translated); DF and Identification as RFC 7915 §5.1 says: from the
    /// Fragment header when there is one (DF 0), else DF set above 1260 bytes with Identification 0,
    /// and below it DF clear with an Identification of our own (an IPv4 router may fragment it),
    /// or 0 for the packet inside an ICMP error (`identify` false: its number was never ours to know).
    /// For a super-packet the rule applies to `segmentLength`, each segment's length (the kernel
    /// numbers the segments on from the Identification written here).
    func writeIPv4Header(_ out: UnsafeMutableRawBufferPointer, tos: UInt8, totalLength: Int, fragment: IPv6FragmentInfo?, ttl: UInt8,
                         protocol proto: UInt8, source: IPv4Address, destination: IPv4Address, identify: Bool = true,
                         segmentLength: Int? = nil) {
        out.put32(0x4500_0000 | UInt32(tos) << 16 | UInt32(totalLength), at: 0)
        if let f = fragment {
            out.put16(UInt16(truncatingIfNeeded: f.identification), at: 4)
            out.put16((f.moreFragments ? 0x2000 : 0) | f.offset, at: 6)
        } else if (segmentLength ?? totalLength) > 1260 {
            out.put32(0x0000_4000, at: 4)
        } else {
            if identify { identification &+= 1 }
            out.put16(identify ? identification : 0, at: 4)
            out.put16(0, at: 6)
            if let s = segmentLength, s < totalLength {   // the segments after the first take the next numbers
                identification &+= UInt16(truncatingIfNeeded: (totalLength - 1) / s)
            }
        }
        out[8] = ttl
        out[9] = proto == IPProtocol.icmpv6.rawValue ? IPProtocol.icmp.rawValue : proto
        out.put16(0, at: 10)
        out.put32(source.rawValue, at: 12)
        out.put32(destination.rawValue, at: 16)
        out.put16(InternetChecksum.of(UnsafeRawBufferPointer(out.slice(0, 20))), at: 10)
    }

    /// The folded one's-complement sum of a pair of addresses: what changes in a pseudo-header.
    @inline(__always) static func addressSum(_ a: IPv4Address, _ b: IPv4Address) -> UInt16 {
        var c = InternetChecksum(); c.add(a); c.add(b); return c.foldedSum
    }
    @inline(__always) static func addressSum(_ a: IPv6Address, _ b: IPv6Address) -> UInt16 {
        var c = InternetChecksum(); c.add(a); c.add(b); return c.foldedSum
    }

    /// RFC 7915 §4.5/§5.5: TCP and UDP checksums follow the pseudo-header's address change
    /// (RFC 1624, so a wrong checksum stays wrong by the same amount). Other protocols are left alone.
    @inline(__always) static func adjustTransportChecksum(_ t: UnsafeMutableRawBufferPointer, _ proto: IPProtocol, old: UInt16, new: UInt16) {
        if proto == .tcp, t.count >= 18 {
            t.put16(InternetChecksum.update(UnsafeRawBufferPointer(t).be16(16), old: old, new: new), at: 16)
        } else if proto == .udp, t.count >= 8 {
            let c = InternetChecksum.update(UnsafeRawBufferPointer(t).be16(6), old: old, new: new)
            t.put16(c == 0 ? 0xffff : c, at: 6)
        }
    }

    /// A partial checksum (CHECKSUM_PARTIAL: the field holds the folded, uncomplemented pseudo-header
    /// sum) follows the address change: P' = P + ~m + m', which is RFC 1624's update on ~P.
    @inline(__always) static func adjustPartialChecksum(_ t: UnsafeMutableRawBufferPointer, at offset: Int, old: UInt16, new: UInt16) {
        t.put16(~InternetChecksum.update(~UnsafeRawBufferPointer(t).be16(offset), old: old, new: new), at: offset)
    }

    /// Whether the IPv4 options hold a loose or strict source route with addresses still to visit
    /// (RFC 7915 §4.1: such a packet is not translated; RFC 791: pointer <= length).
    static func unexpiredSourceRoute(_ options: UnsafeRawBufferPointer) -> Bool {
        var o = 0
        while o < options.count {
            let type = options[o]
            if type == 0 { break }
            if type == 1 { o += 1; continue }
            guard o + 2 < options.count else { break }
            let length = Int(options[o + 1])
            if (type == 131 || type == 137), length >= 3, Int(options[o + 2]) <= length { return true }
            o += max(length, 2)
        }
        return false
    }
}
