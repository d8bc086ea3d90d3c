import Testing
@testable import PacketKit

@Suite("Emit and parse round trips")
struct RoundTripTests {
    @Test func everySampleParsesBackToWhatWasBuilt() throws {
        for (name, packet) in Samples.named {
            let bytes = try packet.emit()
            let parsed = try PacketRepr(parsing: bytes)
            #expect(parsed == packet, "\(name)")
        }
    }

    @Test func viewsReadTheFieldsInPlace() throws {
        let bytes = try Samples.named.first { $0.name == "udp6-ext-headers" }!.packet.emit()
        try bytes.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in
            let p = try IPv6Packet(b)
            #expect(p.source == Samples.a)
            #expect(p.destination == Samples.b)
            #expect(p.nextHeader == .hopByHop)
            #expect(p.upperLayerProtocol == .udp)
            #expect(p.extensionHeaderCount == 5)
            #expect(p.extensionHeaders.map(\.type) == [.hopByHop, .destinationOptions, .routing, .fragment, .destinationOptions])
            #expect(p.fragment?.identification == 0xabcdef)
            #expect(p.fragment?.isAtomic == true)
            #expect(p.routingFinalDestination == nil)  // segments left 0
            let u = try UDPDatagram(p.upperLayer)
            #expect(u.sourcePort == 1 && u.destinationPort == 2 && Array(u.payload) == [9, 9, 9])
            #expect(u.isChecksumValid(.ipv6(source: p.source, destination: p.destination)))
        }
    }

    @Test("the upper-layer checksum uses the Routing header's final destination (RFC 8200 §8.1)")
    func checksumUsesFinalDestination() throws {
        let bytes = try Samples.named.first { $0.name == "udp6-srh-final-destination" }!.packet.emit()
        try bytes.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in
            let p = try IPv6Packet(b)
            #expect(p.routingFinalDestination == Samples.b)
            let u = try UDPDatagram(p.upperLayer)
            #expect(u.isChecksumValid(.ipv6(source: p.source, destination: Samples.b)))
            #expect(!u.isChecksumValid(.ipv6(source: p.source, destination: p.destination)))
        }
    }

    @Test func ipv4HeaderFieldsAndChecksum() throws {
        let bytes = try Samples.named.first { $0.name == "ipv4-options" }!.packet.emit()
        try bytes.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in
            let p = try IPv4Packet(b)
            #expect(p.headerLength == 24)
            #expect(p.isHeaderChecksumValid)
            #expect(p.dontFragment && !p.isFragment)
            #expect(Array(p.options) == [0x94, 0x04, 0, 0])
        }
        let frag = try Samples.named.first { $0.name == "ipv4-fragment" }!.packet.emit()
        try frag.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in
            let p = try IPv4Packet(b)
            #expect(p.isFragment && p.fragmentOffset == 185 && !p.dontFragment)
        }
    }

    @Test func linkLayerPaddingIsTrimmed() throws {
        var bytes = try Samples.named.first { $0.name == "ndp-ns" }!.packet.emit()
        let n = bytes.count
        bytes += [0, 0, 0, 0, 0, 0]
        try bytes.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in
            #expect(try IPv6Packet(b).bytes.count == n)
            #expect(try NDPValidation.validate(IPv6Packet(b)) == .neighborSolicitation)
        }
    }

    /// Random valid packets, emitted and parsed back, compare equal (a property test with a fixed seed).
    @Test func randomPacketsRoundTrip() throws {
        var rng = SplitMix64(seed: 0x5164_a7e)
        for i in 0..<3000 {
            let packet = RandomPackets.make(&rng)
            let bytes: [UInt8]
            do { bytes = try packet.emit() } catch { Issue.record("emit #\(i) \(packet): \(error)"); continue }
            #expect(bytes.count == packet.length)
            do {
                let parsed = try PacketRepr(parsing: bytes)
                #expect(parsed == packet.normalized(), "packet #\(i)")
            } catch {
                Issue.record("parse #\(i) failed: \(error) for \(packet)")
            }
            // Every transport checksum the builder wrote verifies.
            try bytes.withUnsafeBytes { b in try Self.expectChecksumsValid(b) }
        }
    }

    static func expectChecksumsValid(_ b: UnsafeRawBufferPointer) throws {
        switch try IPPacket(b) {
        case .v4(let p):
            #expect(p.isHeaderChecksumValid)
            guard !p.isFragment else { return }
            let ph = PseudoHeader.ipv4(source: p.source, destination: p.destination)
            switch p.protocolNumber {
            case .udp: #expect(try UDPDatagram(p.payload).isChecksumValid(ph))
            case .tcp: #expect(try TCPSegment(p.payload).isChecksumValid(ph))
            case .icmp: #expect(try ICMPv4Message(p.payload).isChecksumValid)
            default: break
            }
        case .v6(let p):
            guard p.fragment?.isAtomic ?? true else { return }
            let ph = PseudoHeader.ipv6(source: p.source, destination: p.routingFinalDestination ?? p.destination)
            switch p.upperLayerProtocol {
            case .udp: #expect(try UDPDatagram(p.upperLayer).isChecksumValid(ph))
            case .tcp: #expect(try TCPSegment(p.upperLayer).isChecksumValid(ph))
            case .icmpv6: #expect(try ICMPv6Message(p.upperLayer).isChecksumValid(source: p.source, destination: p.routingFinalDestination ?? p.destination))
            default: break
            }
        }
    }
}

/// Generates random valid packets.
enum RandomPackets {
    static func bytes(_ rng: inout SplitMix64, _ range: ClosedRange<Int>) -> [UInt8] {
        (0..<Int.random(in: range, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
    static func v6(_ rng: inout SplitMix64) -> IPv6Address {
        IPv6Address(rawValue: (0x2001_0db8 as UInt128) << 96 | UInt128(rng.next()) | UInt128(rng.next() & 0xffff_ffff) << 64)
    }
    static func v4(_ rng: inout SplitMix64) -> IPv4Address { IPv4Address(rawValue: 0xC633_6400 | UInt32(rng.next() & 0xff)) }
    static func mac(_ rng: inout SplitMix64) -> MACAddress { MACAddress(rawValue: rng.next() & 0xfeff_ffff_ffff) }

    static func ndpOptions(_ rng: inout SplitMix64) -> [NDPOptionRepr] {
        (0..<Int.random(in: 0...4, using: &rng)).map { _ in
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: return .sourceLinkLayerAddress(mac(&rng))
            case 1: return .targetLinkLayerAddress(mac(&rng))
            case 2: return .mtu(UInt32.random(in: 1280...9000, using: &rng))
            case 3:
                let len = UInt8.random(in: 0...128, using: &rng)
                return .prefixInformation(.init(prefix: IPv6Prefix(containing: v6(&rng), length: len), onLink: Bool.random(using: &rng),
                                                autonomous: Bool.random(using: &rng), validLifetime: UInt32.random(in: 0...UInt32.max, using: &rng),
                                                preferredLifetime: UInt32.random(in: 0...UInt32.max, using: &rng)))
            case 4: return .rdnss(lifetime: UInt32.random(in: 0...UInt32.max, using: &rng), servers: (0..<Int.random(in: 1...3, using: &rng)).map { _ in v6(&rng) })
            case 5: return .routeInformation(prefix: IPv6Prefix(containing: v6(&rng), length: UInt8.random(in: 0...128, using: &rng)),
                                             preference: [.low, .medium, .high].randomElement(using: &rng)!, lifetime: UInt32.random(in: 0...9000, using: &rng))
            case 6: return .dnssl(lifetime: 600, domains: ["a\(rng.next() % 100).example", "example.org"])
            default: return .mtu(1500)
            }
        }
    }

    static func icmpv6(_ rng: inout SplitMix64) -> ICMPv6Repr {
        let id = UInt16.random(in: 0...UInt16.max, using: &rng), seq = UInt16.random(in: 0...UInt16.max, using: &rng)
        switch Int.random(in: 0..<11, using: &rng) {
        case 0: return .echoRequest(identifier: id, sequence: seq, data: bytes(&rng, 0...200))
        case 1: return .echoReply(identifier: id, sequence: seq, data: bytes(&rng, 0...200))
        case 2: return .destinationUnreachable(code: UInt8.random(in: 0...6, using: &rng), invokingPacket: bytes(&rng, 0...100))
        case 3: return .packetTooBig(mtu: UInt32.random(in: 1280...9000, using: &rng), invokingPacket: bytes(&rng, 0...100))
        case 4: return .timeExceeded(code: UInt8.random(in: 0...1, using: &rng), invokingPacket: bytes(&rng, 0...100))
        case 5: return .parameterProblem(code: UInt8.random(in: 0...2, using: &rng), pointer: UInt32.random(in: 0...1000, using: &rng), invokingPacket: bytes(&rng, 0...100))
        case 6: return .routerSolicitation(options: ndpOptions(&rng))
        case 7: return .routerAdvertisement(RouterAdvertisementRepr(currentHopLimit: UInt8.random(in: 0...255, using: &rng), managed: Bool.random(using: &rng),
                                                                    preference: [.low, .medium, .high].randomElement(using: &rng)!,
                                                                    routerLifetime: UInt16.random(in: 0...9000, using: &rng), options: ndpOptions(&rng)))
        case 8: return .neighborSolicitation(target: v6(&rng), options: ndpOptions(&rng))
        case 9: return .neighborAdvertisement(flags: NeighborAdvertisementFlags(rawValue: UInt8.random(in: 0...255, using: &rng)), target: v6(&rng), options: ndpOptions(&rng))
        default: return .redirect(target: v6(&rng), destination: v6(&rng), options: ndpOptions(&rng))
        }
    }

    static func tcp(_ rng: inout SplitMix64) -> TCPRepr {
        var opts = bytes(&rng, 0...12).map { $0 | 1 }  // non-zero so trailing EOL padding is unambiguous
        if opts.count % 4 != 0 { opts += [UInt8](repeating: 1, count: 4 - opts.count % 4) }
        return TCPRepr(sourcePort: UInt16.random(in: 1...65535, using: &rng), destinationPort: UInt16.random(in: 1...65535, using: &rng),
                       sequenceNumber: UInt32.random(in: 0...UInt32.max, using: &rng), acknowledgmentNumber: UInt32.random(in: 0...UInt32.max, using: &rng),
                       flags: TCPFlags(rawValue: UInt8.random(in: 0...255, using: &rng)), window: UInt16.random(in: 0...65535, using: &rng), options: opts)
    }

    static func make(_ rng: inout SplitMix64) -> PacketRepr {
        if Bool.random(using: &rng) {
            let transport: TransportRepr
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: transport = .udp(UDPRepr(sourcePort: UInt16.random(in: 0...65535, using: &rng), destinationPort: UInt16.random(in: 0...65535, using: &rng)), payload: bytes(&rng, 0...300))
            case 1: transport = .tcp(tcp(&rng), payload: bytes(&rng, 0...300))
            default: transport = .icmpv6(icmpv6(&rng))
            }
            var ext = [IPv6ExtensionHeaderRepr]()
            if Int.random(in: 0..<4, using: &rng) == 0 {
                if Bool.random(using: &rng) { ext.append(.hopByHop(options: [5, 2, 0, 0])) }
                if Bool.random(using: &rng) { ext.append(.destinationOptions(options: [0x1e, 2, 1, 2])) }
                if Bool.random(using: &rng) { ext.append(.routing(type: 4, segmentsLeft: 0, data: [0, 0, 0, 0] + v6(&rng).bytes)) }
                if Bool.random(using: &rng) { ext.append(.fragment(offset: 0, moreFragments: false, identification: UInt32.random(in: 0...UInt32.max, using: &rng))) }
            }
            let ip = IPv6Repr(source: v6(&rng), destination: v6(&rng), nextHeader: .udp, payloadLength: 0,
                              hopLimit: UInt8.random(in: 0...255, using: &rng), trafficClass: UInt8.random(in: 0...255, using: &rng),
                              flowLabel: UInt32.random(in: 0...0xfffff, using: &rng))
            return PacketRepr(.ipv6(ip, extensionHeaders: ext), transport).normalized()
        } else {
            let transport: TransportRepr
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: transport = .udp(UDPRepr(sourcePort: UInt16.random(in: 0...65535, using: &rng), destinationPort: UInt16.random(in: 0...65535, using: &rng)), payload: bytes(&rng, 0...300))
            case 1: transport = .tcp(tcp(&rng), payload: bytes(&rng, 0...300))
            default:
                let icmp: ICMPv4Repr = [.echoRequest(identifier: 1, sequence: 2), .echoReply(identifier: 3, sequence: 4),
                                        .destinationUnreachable(code: 4, nextHopMTU: 1400), .timeExceeded(code: 0), .parameterProblem(pointer: 8)].randomElement(using: &rng)!
                transport = .icmpv4(icmp, data: bytes(&rng, 0...100))
            }
            var opts = bytes(&rng, 0...8).map { _ in UInt8(1) }  // NOPs
            if Bool.random(using: &rng) { opts += [0x94, 4, 0, 0] }
            let ip = IPv4Repr(source: v4(&rng), destination: v4(&rng), protocolNumber: .udp, payloadLength: 0,
                              ttl: UInt8.random(in: 0...255, using: &rng), tos: UInt8.random(in: 0...255, using: &rng),
                              identification: UInt16.random(in: 0...65535, using: &rng), dontFragment: Bool.random(using: &rng), options: opts)
            return PacketRepr(.ipv4(ip), transport).normalized()
        }
    }
}
