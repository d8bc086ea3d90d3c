import Testing
@testable import PacketKit

/// Every malformed or truncated input must end in a typed `PacketError`, never a trap.
@Suite("Malformed and truncated input")
struct MalformedInputTests {
    /// Parses `bytes` through every layer PacketKit has, the way a receiver would.
    static func parseAllLayers(_ bytes: [UInt8]) throws(PacketError) {
        var failure: PacketError? = nil
        bytes.withUnsafeBytes { b in
            do throws(PacketError) {
                _ = try PacketRepr(parsing: b)
                if case .v6(let p) = try IPPacket(b), p.upperLayerProtocol == .icmpv6 {
                    _ = try? NDPValidation.validate(p)
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
    }

    @Test func everySampleCutAtEveryByteIsATypedError() {
        for (name, bytes) in Samples.bytes {
            for cut in 0..<bytes.count {
                let truncated = Array(bytes[0..<cut])
                #expect(throws: PacketError.self, "\(name) cut at \(cut)") { try Self.parseAllLayers(truncated) }
            }
            // The whole packet parses.
            #expect(throws: Never.self, "\(name)") { try Self.parseAllLayers(bytes) }
        }
    }

    @Test func lengthFieldsThatLie() throws {
        let v6 = try Samples.named.first { $0.name == "udp6" }!.packet.emit()
        var big = v6
        big[4] = 0x7f  // payload length past the buffer
        #expect(throws: PacketError(.ipv6, .badLength, at: 4)) { try Self.parseAllLayers(big) }
        var udpBig = v6
        udpBig[40 + 5] &+= 1  // UDP length one past the datagram
        #expect(throws: PacketError(.udp, .badLength, at: 4)) { try Self.parseAllLayers(udpBig) }
        var udpSmall = v6
        udpSmall[40 + 4] = 0; udpSmall[40 + 5] = 7  // UDP length below its own header
        #expect(throws: PacketError(.udp, .badLength, at: 4)) { try Self.parseAllLayers(udpSmall) }

        let v4 = try Samples.named.first { $0.name == "tcp4" }!.packet.emit()
        var ihlSmall = v4
        ihlSmall[0] = 0x44
        #expect(throws: PacketError(.ipv4, .badHeaderLength, at: 0)) { try Self.parseAllLayers(ihlSmall) }
        var ihlBig = v4
        ihlBig[0] = 0x4f  // 60-byte header in a 44-byte packet
        #expect(throws: PacketError(.ipv4, .truncated, at: 44)) { try Self.parseAllLayers(ihlBig) }
        var total = v4
        total[2] = 0xff
        #expect(throws: PacketError(.ipv4, .badLength, at: 2)) { try Self.parseAllLayers(total) }
        var tcpOffset = v4
        tcpOffset[20 + 12] = 0x40  // data offset 4 words
        #expect(throws: PacketError(.tcp, .badHeaderLength, at: 12)) { try Self.parseAllLayers(tcpOffset) }
        var tcpPast = v4
        tcpPast[20 + 12] = 0xf0  // 60-byte header in a 24-byte segment
        #expect(throws: PacketError(.tcp, .truncated, at: 24)) { try Self.parseAllLayers(tcpPast) }
        var version = v4
        version[0] = 0x55
        #expect(throws: PacketError.self) { try Self.parseAllLayers(version) }
    }

    /// RFC 8106: RDNSS carries one or more addresses, DNSSL one or more names. A DNSSL of padding
    /// only was once read as "no names" and written back as an option too short to read (a
    /// fuzz-packets finding); both directions now refuse it.
    @Test func dnsOptionsWithNothingInThemAreRefused() throws {
        let padding: [UInt8] = [31, 2, 0, 0, 0, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0]
        padding.withUnsafeBytes { b in
            #expect(throws: PacketError.self) { for o in try NDPOptions(b) { _ = try NDPOptionRepr(o) } }
        }
        let named: [UInt8] = [31, 2, 0, 0, 0, 0, 7, 8, 3, 0x6c, 0x61, 0x6e, 0, 0, 0, 0]   // "lan"
        try named.withUnsafeBytes { b in
            for o in try NDPOptions(b) { #expect(try NDPOptionRepr(o) == .dnssl(lifetime: 0x708, domains: ["lan"])) }
        }
        var buffer = [UInt8](repeating: 0, count: 64)
        for empty in [NDPOptionRepr.dnssl(lifetime: 1, domains: []), .dnssl(lifetime: 1, domains: ["", "."]), .rdnss(lifetime: 1, servers: [])] {
            buffer.withUnsafeMutableBytes { b in #expect(throws: PacketError.self, "\(empty)") { try empty.emit(into: b) } }
        }
    }

    @Test func ipv4OptionLengths() throws {
        let base = try Samples.named.first { $0.name == "ipv4-options" }!.packet.emit()
        var zero = base
        zero[21] = 0  // Router Alert with length 0
        #expect(throws: PacketError(.ipv4, .badOptionLength, at: 21)) { try Self.parseAllLayers(zero) }
        var past = base
        past[21] = 9  // runs past the 24-byte header
        #expect(throws: PacketError(.ipv4, .badOptionLength, at: 21)) { try Self.parseAllLayers(past) }
    }

    /// A chain of Destination Options headers longer than the bound (the "loop" a crafted packet
    /// uses to make a parser walk forever) is refused.
    @Test func extensionHeaderChainIsBounded() throws {
        let many = [IPv6ExtensionHeaderRepr](repeating: .destinationOptions(options: []), count: IPv6Packet.maximumExtensionHeaders + 1)
        let bytes = try PacketRepr.ipv6(source: Samples.a, destination: Samples.b, extensionHeaders: many,
                                        .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: [])).emit()
        #expect(throws: PacketError.self) { try Self.parseAllLayers(bytes) }
        do { try Self.parseAllLayers(bytes) } catch { #expect(error.reason == .tooManyExtensionHeaders) }
        let ok = [IPv6ExtensionHeaderRepr](repeating: .destinationOptions(options: []), count: IPv6Packet.maximumExtensionHeaders)
        let fine = try PacketRepr.ipv6(source: Samples.a, destination: Samples.b, extensionHeaders: ok,
                                       .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: [])).emit()
        #expect(throws: Never.self) { try Self.parseAllLayers(fine) }
    }

    @Test func hopByHopMustBeFirst() throws {
        let bytes = try PacketRepr.ipv6(source: Samples.a, destination: Samples.b,
                                        extensionHeaders: [.destinationOptions(options: []), .hopByHop(options: [])],
                                        .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: [])).emit()
        #expect(throws: PacketError(.ipv6ExtensionHeader, .hopByHopNotFirst, at: 48)) { try Self.parseAllLayers(bytes) }
    }

    @Test func extensionHeaderLengthAndOptionsThatLie() throws {
        let base = try PacketRepr.ipv6(source: Samples.a, destination: Samples.b, extensionHeaders: [.destinationOptions(options: [0x1e, 2, 0, 0])],
                                       .udp(UDPRepr(sourcePort: 1, destinationPort: 2), payload: [])).emit()
        var len = base
        len[41] = 200  // header length far past the packet
        #expect(throws: PacketError(.ipv6ExtensionHeader, .badHeaderLength, at: 41)) { try Self.parseAllLayers(len) }
        var opt = base
        opt[43] = 5  // option runs past its header
        #expect(throws: PacketError(.ipv6ExtensionHeader, .badOptionLength, at: 43)) { try Self.parseAllLayers(opt) }
    }

    @Test func ndpOptionWithLengthZeroDropsTheMessage() throws {
        var ns = try Samples.named.first { $0.name == "ndp-ns" }!.packet.emit()
        ns[40 + 24 + 1] = 0  // SLLA length 0 (RFC 4861 §4.6)
        fixICMPv6Checksum(&ns)
        ns.withUnsafeBytes { b in
            #expect(throws: PacketError(.ndp, .badOptionLength, at: 25)) { try NDPValidation.validate(IPv6Packet(b)) }
        }
        #expect(throws: PacketError(.ndp, .badOptionLength, at: 25)) { try Self.parseAllLayers(ns) }
    }

    @Test func pcapRecordsThatLie() throws {
        var w = PcapWriter()
        w.append(Samples.bytes[0].bytes)
        var file = w.bytes
        #expect(try PcapReader(bytes: file).records().count == 1)
        file[24 + 8] = 0xff; file[24 + 9] = 0xff; file[24 + 10] = 0xff; file[24 + 11] = 0x7f  // incl_len 2 GB
        #expect(throws: PacketError(.pcap, .badLength, at: 32)) { try PcapReader(bytes: file).records() }
        #expect(throws: PacketError(.pcap, .badMagic, at: 0)) { try PcapReader(bytes: [UInt8](repeating: 0, count: 24)) }
        let cut = Array(w.bytes.dropLast(3))
        #expect(throws: PacketError(.pcap, .truncated, at: 40)) { try PcapReader(bytes: cut).records() }
    }

    /// A record whose fraction of a second is a second or more (issue 22: pcap-dump trapped on
    /// one): malformed, said, and the file read on past it.
    @Test func pcapTimestampsOutOfRangeAreSkippedNotTrapped() throws {
        for bad in [UInt32(1_000_000), 0xffff_ffff] {
            var w = PcapWriter()
            w.append(Samples.bytes[0].bytes, seconds: 1, microseconds: bad)
            w.append(Samples.bytes[1].bytes, seconds: 2, microseconds: 999_999)
            let reader = try PcapReader(bytes: w.bytes)
            #expect(throws: PacketError(.pcap, .badTimestamp, at: 28)) { try reader.records() }
            var it = reader.makeIterator()
            let first = it.next()
            #expect(first?.seconds == 2 && first?.nanoseconds == 999_999_000 && it.next() == nil && it.error == nil)
            #expect(it.skipped == [PacketError(.pcap, .badTimestamp, at: 28)])
        }
        // Raw IPv4 and IPv6 link types (228, 229) decode as IP, not as "link type N".
        let six = Samples.bytes.first { $0.bytes.first.map { $0 >> 4 == 6 } == true }!.bytes
        let line = six.withUnsafeBytes { PacketSummary.describe($0, linkType: .ipv6) }
        #expect(line.hasPrefix("IP6 "), "\(line)")
        #expect(six.withUnsafeBytes { PacketSummary.describe($0, linkType: .raw) } == line)
    }

    /// Random bytes never trap (a quick in-process fuzz; the libFuzzer targets go further).
    @Test func randomBytesNeverTrap() {
        var rng = SplitMix64(seed: 0xbad)
        var accepted = 0
        for _ in 0..<20_000 {
            var bytes = (0..<Int.random(in: 0...120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !bytes.isEmpty { bytes[0] = Bool.random(using: &rng) ? 0x60 : 0x45 }
            if (try? Self.parseAllLayers(bytes)) != nil { accepted += 1 }
        }
        // Most random bytes are rejected; the point is that none of them trapped.
        #expect(accepted < 20_000)
    }
}

@Suite("RFC 4861 receive validation")
struct NDPValidationTests {
    static func packet(_ src: IPv6Address, _ dst: IPv6Address, hopLimit: UInt8 = 255, _ m: ICMPv6Repr) throws -> [UInt8] {
        try PacketRepr.ipv6(source: src, destination: dst, hopLimit: hopLimit, .icmpv6(m)).emit()
    }
    static func validate(_ bytes: [UInt8]) throws(PacketError) -> ICMPv6Type {
        var result: Result<ICMPv6Type, PacketError> = .failure(PacketError(.ndp, .truncated, at: 0))
        bytes.withUnsafeBytes { b in
            do throws(PacketError) { result = .success(try NDPValidation.validate(IPv6Packet(b))) } catch { result = .failure(error) }
        }
        return try result.get()
    }
    static func reason(_ bytes: [UInt8]) -> PacketError.Reason? {
        do { _ = try validate(bytes); return nil } catch { return error.reason }
    }

    let a = Samples.a, ll = Samples.ll2, mac = Samples.mac

    @Test func acceptsEveryValidSample() throws {
        for (name, bytes) in Samples.bytes where name.hasPrefix("ndp-") {
            #expect(throws: Never.self, "\(name)") { try Self.validate(bytes) }
        }
    }

    @Test func dropsWithHopLimitBelow255() throws {
        let ns = try Self.packet(ll, a.solicitedNodeMulticast, hopLimit: 254, .neighborSolicitation(target: a, options: []))
        #expect(Self.reason(ns) == .badHopLimit)
    }

    @Test func dropsBadChecksumAndNonZeroCode() throws {
        var ns = try Self.packet(ll, a.solicitedNodeMulticast, .neighborSolicitation(target: a, options: []))
        ns[ns.count - 1] ^= 1
        #expect(Self.reason(ns) == .badChecksum)
        let coded = try Self.packet(ll, a.solicitedNodeMulticast, .other(type: .neighborSolicitation, code: 1, body: [0, 0, 0, 0] + a.bytes))
        #expect(Self.reason(coded) == .badCode)
    }

    @Test func dropsShortMessages() throws {
        let ns = try Self.packet(ll, a.solicitedNodeMulticast, .other(type: .neighborSolicitation, code: 0, body: [UInt8](repeating: 0, count: 19)))
        #expect(Self.reason(ns) == .truncated)
        let ra = try Self.packet(Samples.ll, .allNodes, .other(type: .routerAdvertisement, code: 0, body: [UInt8](repeating: 0, count: 11)))
        #expect(Self.reason(ra) == .truncated)
        let redirect = try Self.packet(Samples.ll, a, .other(type: .redirect, code: 0, body: [UInt8](repeating: 0, count: 35)))
        #expect(Self.reason(redirect) == .truncated)
    }

    @Test func dropsSolicitationForMulticastTarget() throws {
        let ns = try Self.packet(ll, IPv6Address.allNodes.solicitedNodeMulticast, .neighborSolicitation(target: .allNodes, options: []))
        #expect(Self.reason(ns) == .badAddress)
    }

    @Test func dadSolicitationRules() throws {
        // From :: to a unicast destination: dropped.
        let unicast = try Self.packet(.unspecified, a, .neighborSolicitation(target: a, options: []))
        #expect(Self.reason(unicast) == .badAddress)
        // From :: with a source link-layer option: dropped.
        let slla = try Self.packet(.unspecified, a.solicitedNodeMulticast, .neighborSolicitation(target: a, options: [.sourceLinkLayerAddress(mac)]))
        #expect(Self.reason(slla) == .forbiddenOption)
        // From :: to the solicited-node group without SLLA: accepted.
        let dad = try Self.packet(.unspecified, a.solicitedNodeMulticast, .neighborSolicitation(target: a, options: []))
        #expect(try Self.validate(dad) == .neighborSolicitation)
    }

    @Test func dropsSolicitationFromMulticastSource() throws {
        let ns = try Self.packet(.allNodes, a.solicitedNodeMulticast, .neighborSolicitation(target: a, options: []))
        #expect(Self.reason(ns) == .badAddress)
    }

    @Test func advertisementRules() throws {
        let solicitedToMulticast = try Self.packet(a, .allNodes, .neighborAdvertisement(flags: [.solicited], target: a, options: []))
        #expect(Self.reason(solicitedToMulticast) == .badFlags)
        let unsolicited = try Self.packet(a, .allNodes, .neighborAdvertisement(flags: [.override], target: a, options: [.targetLinkLayerAddress(mac)]))
        #expect(try Self.validate(unsolicited) == .neighborAdvertisement)
        let multicastTarget = try Self.packet(a, ll, .neighborAdvertisement(flags: [.solicited], target: .allRouters, options: []))
        #expect(Self.reason(multicastTarget) == .badAddress)
    }

    @Test func routerAdvertisementMustComeFromLinkLocal() throws {
        let ra = try Self.packet(a, .allNodes, .routerAdvertisement(RouterAdvertisementRepr()))
        #expect(Self.reason(ra) == .badAddress)
        let good = try Self.packet(Samples.ll, .allNodes, .routerAdvertisement(RouterAdvertisementRepr()))
        #expect(try Self.validate(good) == .routerAdvertisement)
    }

    @Test func routerSolicitationFromUnspecifiedHasNoSLLA() throws {
        let rs = try Self.packet(.unspecified, .allRouters, .routerSolicitation(options: [.sourceLinkLayerAddress(mac)]))
        #expect(Self.reason(rs) == .forbiddenOption)
        let ok = try Self.packet(.unspecified, .allRouters, .routerSolicitation(options: []))
        #expect(try Self.validate(ok) == .routerSolicitation)
    }

    @Test func redirectRules() throws {
        let fromGlobal = try Self.packet(a, Samples.b, .redirect(target: ll, destination: Samples.b, options: []))
        #expect(Self.reason(fromGlobal) == .badAddress)
        let globalTarget = try Self.packet(Samples.ll, a, .redirect(target: a, destination: Samples.b, options: []))
        #expect(Self.reason(globalTarget) == .badAddress)
        let onLink = try Self.packet(Samples.ll, a, .redirect(target: Samples.b, destination: Samples.b, options: []))
        #expect(try Self.validate(onLink) == .redirect)
        let multicastDst = try Self.packet(Samples.ll, a, .redirect(target: ll, destination: .allNodes, options: []))
        #expect(Self.reason(multicastDst) == .badAddress)
    }

    @Test func unknownOptionsAreSkipped() throws {
        let ns = try Self.packet(ll, a.solicitedNodeMulticast, .neighborSolicitation(target: a, options: [.unknown(type: NDPOptionType(200), data: [1, 2, 3, 4, 5, 6]), .sourceLinkLayerAddress(mac)]))
        #expect(try Self.validate(ns) == .neighborSolicitation)
        let parsed = try PacketRepr(parsing: ns)
        guard case .icmpv6(.neighborSolicitation(_, let options)) = parsed.transport else { Issue.record("not an NS"); return }
        #expect(options.contains(.sourceLinkLayerAddress(mac)))
    }

    @Test func pref64RejectsInvalidPrefixLengthCode() throws {
        var ra = try Self.packet(Samples.ll, .allNodes, .routerAdvertisement(RouterAdvertisementRepr(options: [.pref64(lifetime: 600, prefix: try IPv6Prefix.parse("64:ff9b::/96"))])))
        ra[40 + 16 + 3] |= 7  // PLC 7 is invalid (RFC 8781 §4)
        fixICMPv6Checksum(&ra)  // so that only the PLC is wrong
        #expect(throws: Never.self) { try Self.validate(ra) }  // the message is valid NDP...
        #expect(throws: PacketError(.ndp, .badValue, at: 3)) { try PacketRepr(parsing: ra) }  // ...but the option is rejected when decoded
    }
}

/// Recomputes the ICMPv6 checksum of an IPv6 packet without extension headers after a test edited it.
func fixICMPv6Checksum(_ bytes: inout [UInt8]) {
    bytes[42] = 0
    bytes[43] = 0
    bytes.withUnsafeMutableBytes { b in
        let src = IPv6Address(bytes: UnsafeRawBufferPointer(rebasing: b[8..<24]))
        let dst = IPv6Address(bytes: UnsafeRawBufferPointer(rebasing: b[24..<40]))
        var c = InternetChecksum.pseudoHeader(source: src, destination: dst, length: b.count - 40, nextHeader: .icmpv6)
        c.add(UnsafeRawBufferPointer(rebasing: b[40...]))
        b.storeBytes(of: c.value.bigEndian, toByteOffset: 42, as: UInt16.self)
    }
}
