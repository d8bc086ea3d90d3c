// RFC 7915 packet pairs: for each rule an input packet and the exact bytes expected out, the
// expected ones built independently with PacketKit's PacketRepr (which computes every checksum in
// full), so the translator's incremental checksums are checked against full ones; then every
// output is written to a pcap file for tcpdump -vvv to judge.
import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import Translator

let client6 = IPv6Address("2001:db8:1::10")!, client4 = IPv4Address("192.0.2.10")!
let server4 = IPv4Address("203.0.113.5")!, server6 = IPv6Address("2001:db8:64::cb00:7105")!
let router4 = IPv4Address("198.51.100.77")!, router6 = IPv6Address("2001:db8:64::c633:644d")!
let own4 = IPv4Address("198.51.100.1")!, own6 = IPv6Address("2001:db8:ffff::1")!

func testConfiguration(ipv6MTU: Int = 1500, ipv4MTU: Int = 1500) -> TranslatorConfiguration {
    TranslatorConfiguration(prefix: IPv6Prefix("2001:db8:64::/96")!, explicitMappings: [ExplicitMapping(ipv4: client4, ipv6: client6)],
                            ipv6MTU: ipv6MTU, ipv4MTU: ipv4MTU, ipv4Address: own4, ipv6Address: own6)
}

/// Runs `packet` through `t`; returns the result and every packet emitted, as arrays.
func run(_ t: Translator, _ packet: [UInt8]) -> (TranslationResult, [[UInt8]]) {
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Translator.scratchSize, alignment: 16)
    defer { scratch.deallocate() }
    var out: [[UInt8]] = []
    let r = packet.withUnsafeBytes { t.translate($0, scratch: scratch) { out.append(Array($0)) } }
    TranslationLog.shared.record(packet, out)
    return (r, out)
}

func v4(_ src: IPv4Address, _ dst: IPv4Address, ttl: UInt8 = 64, tos: UInt8 = 0, id: UInt16 = 0, df: Bool = false, mf: Bool = false,
        offset: UInt16 = 0, _ t: TransportRepr) throws -> [UInt8] {
    try PacketRepr(.ipv4(IPv4Repr(source: src, destination: dst, protocolNumber: t.protocolNumber, payloadLength: 0, ttl: ttl, tos: tos,
                                  identification: id, dontFragment: df, moreFragments: mf, fragmentOffset: offset)), t).normalized().emit()
}

func v6(_ src: IPv6Address, _ dst: IPv6Address, hop: UInt8 = 64, tc: UInt8 = 0, ext: [IPv6ExtensionHeaderRepr] = [], _ t: TransportRepr) throws -> [UInt8] {
    var b = try PacketRepr.ipv6(source: src, destination: dst, hopLimit: hop, extensionHeaders: ext, t).emit()
    if tc != 0 { b[0] = 0x60 | tc >> 4; b[1] = b[1] & 0x0f | tc << 4 }
    return b
}

let payload = Array("the quick brown fox jumps over the lazy dog".utf8)
let tcp = TCPRepr(sourcePort: 40000, destinationPort: 80, sequenceNumber: 0x1234_5678, acknowledgmentNumber: 9, flags: [.ack, .psh], window: 502)
let udp = UDPRepr(sourcePort: 5353, destinationPort: 53)

/// Everything the pair tests fed in and got out, for tcpdump.
final class TranslationLog: @unchecked Sendable {
    static let shared = TranslationLog()
    let lock = NSLock()
    var packets: [[UInt8]] = []
    func record(_ input: [UInt8], _ outputs: [[UInt8]]) { lock.withLock { packets.append(input); packets += outputs } }
}

@Suite struct PacketPairTests {
    @Test func ipv4CarryingAnIPv6ExtensionHeaderProtocolIsDroppedNotCopied() throws {
        // Copied into Next Header, these would make IPv6 receivers read the IPv4 payload as
        // an extension header (a finding of the fuzz-translator target): dropped and counted.
        let t = try Translator(testConfiguration())
        let extensionTypes: [UInt8] = [0, 43, 44, 51, 60, 135, 139, 140, 253, 254]
        for (i, proto) in extensionTypes.enumerated() {
            // Dropped with Protocol Unreachable (RFC 7915 §4.4: the sender hears of a discard).
            let packet = try v4(server4, client4, .other(IPProtocol(proto), Array(repeating: 0xff, count: 30)))
            let (r, out) = run(t, packet)
            #expect(r == .dropped(.extensionHeaderProtocol, errorSent: true), "protocol \(proto)")
            #expect(out == [try v4(own4, server4, id: UInt16(i + 1), .icmpv4(.destinationUnreachable(code: 2, nextHopMTU: 0), data: packet))], "protocol \(proto)")
        }
        // Other protocols without a transport the translator knows are still carried unchanged.
        let (r, out) = run(t, try v4(server4, client4, .other(IPProtocol(47), [0, 0, 0x08, 0])))
        #expect(r == .translated(packets: 1) && out.first?[6] == 47)
        #expect(t.takeStatistics().dropped[.extensionHeaderProtocol] == UInt64(extensionTypes.count))
    }

    @Test func everyDropReasonHasACounterOfItsOwn() {
        var d = TranslatorStatistics.DropCounters()
        for (i, reason) in TranslationDrop.allCases.enumerated() { d[reason] = UInt64(i + 1) }
        for (i, reason) in TranslationDrop.allCases.enumerated() { #expect(d[reason] == UInt64(i + 1), "\(reason)") }
        #expect(MemoryLayout<TranslatorStatistics.DropCounters>.size == TranslationDrop.allCases.count * 8)
    }

    @Test func tcpBothWaysWithTheChecksumFollowingThePseudoHeader() throws {
        let t = try Translator(testConfiguration())
        // IPv6 -> IPv4: TTL = hop limit - 1, TOS = traffic class, DF clear at or below 1260 bytes with
        // an Identification of the translator's own (the first: 1).
        let (r1, o1) = run(t, try v6(client6, server6, hop: 64, tc: 0x28, .tcp(tcp, payload: payload)))
        #expect(r1 == .translated(packets: 1))
        #expect(o1 == [try v4(client4, server4, ttl: 63, tos: 0x28, id: 1, .tcp(tcp, payload: payload))])
        // IPv4 -> IPv6: flow label 0, traffic class = TOS.
        let (r2, o2) = run(t, try v4(server4, client4, ttl: 50, tos: 0x10, id: 777, df: true, .tcp(tcp, payload: payload)))
        #expect(r2 == .translated(packets: 1))
        #expect(o2 == [try v6(server6, client6, hop: 49, tc: 0x10, .tcp(tcp, payload: payload))])
        #expect(t.statistics.translated4to6 == 1 && t.statistics.translated6to4 == 1 && t.statistics.dropped.total == 0)
    }

    @Test func udpBothWaysAndAZeroIPv4ChecksumComputed() throws {
        let t = try Translator(testConfiguration())
        #expect(run(t, try v6(client6, server6, .udp(udp, payload: payload))).1 == [try v4(client4, server4, ttl: 63, id: 1, .udp(udp, payload: payload))])
        #expect(run(t, try v4(server4, client4, .udp(udp, payload: payload))).1 == [try v6(server6, client6, hop: 63, .udp(udp, payload: payload))])
        var zero = try v4(server4, client4, .udp(udp, payload: payload))
        zero[20 + 6] = 0; zero[20 + 7] = 0
        #expect(run(t, zero).1 == [try v6(server6, client6, hop: 63, .udp(udp, payload: payload))], "RFC 7915 §4.5: computed")
        // Switched off: dropped and counted, with 3/13 (RFC 7915 §4.5 option 1, §4.4's error). IPv6
        // UDP with checksum 0 is invalid: dropped, with §5.4's 1/1.
        var off = testConfiguration(); off.computeZeroUDPChecksum = false
        let t2 = try Translator(off)
        #expect(run(t2, zero) == (.dropped(.udpZeroChecksum, errorSent: true),
                                  [try v4(own4, server4, id: 1, .icmpv4(.destinationUnreachable(code: 13, nextHopMTU: 0), data: zero))]))
        var zero6 = try v6(client6, server6, .udp(udp, payload: payload))
        zero6[40 + 6] = 0; zero6[40 + 7] = 0
        #expect(run(t2, zero6) == (.dropped(.udpZeroChecksum, errorSent: true),
                                   [try v6(own6, client6, .icmpv6(.destinationUnreachable(code: 1, invokingPacket: zero6)))]))
        #expect(t2.statistics.dropped[.udpZeroChecksum] == 2)
    }

    @Test func aWrongChecksumStaysWrongByTheSameAmount() throws {
        let t = try Translator(testConfiguration())
        var bad = try v6(client6, server6, .tcp(tcp, payload: payload))
        bad[40 + 17] ^= 0x01
        var expected = try v4(client4, server4, ttl: 63, id: 1, .tcp(tcp, payload: payload))
        expected[20 + 17] ^= 0x01
        #expect(run(t, bad).1 == [expected])
    }

    @Test func echoBothWaysWithTheChecksumCarriedOver() throws {
        let t = try Translator(testConfiguration())
        let data = Array(0..<56).map { UInt8($0) }
        #expect(run(t, try v6(client6, server6, .icmpv6(.echoRequest(identifier: 7, sequence: 1, data: data)))).1
            == [try v4(client4, server4, ttl: 63, id: 1, .icmpv4(.echoRequest(identifier: 7, sequence: 1), data: data))])
        #expect(run(t, try v4(server4, client4, .icmpv4(.echoReply(identifier: 7, sequence: 1), data: data))).1
            == [try v6(server6, client6, hop: 63, .icmpv6(.echoReply(identifier: 7, sequence: 1, data: data)))])
        // Informational messages without an equivalent are dropped: an ICMPv4 timestamp, an ICMPv6 NS.
        #expect(run(t, try v4(server4, client4, .icmpv4(.other(type: 13, code: 0, restOfHeader: 0), data: []))).0 == .dropped(.untranslatableICMP, errorSent: false))
        #expect(run(t, try v6(client6, server6, hop: 255, .icmpv6(.neighborSolicitation(target: server6, options: [])))).0 == .dropped(.untranslatableICMP, errorSent: false))
    }

    @Test func icmpv4ErrorsBecomeICMPv6ErrorsWithThePacketInsideTranslated() throws {
        // What the client sent, as the IPv4 side saw it (the translator had turned it into this).
        let sent4 = try v4(client4, server4, ttl: 62, id: 5, .udp(udp, payload: payload))
        let sent6 = try v6(client6, server6, hop: 62, .udp(udp, payload: payload))
        let cases: [(ICMPv4Repr, ICMPv6Repr)] = [
            (.destinationUnreachable(code: 3, nextHopMTU: 0), .destinationUnreachable(code: 4, invokingPacket: sent6)),   // port
            (.destinationUnreachable(code: 1, nextHopMTU: 0), .destinationUnreachable(code: 0, invokingPacket: sent6)),   // host
            (.destinationUnreachable(code: 13, nextHopMTU: 0), .destinationUnreachable(code: 1, invokingPacket: sent6)),  // prohibited
            (.destinationUnreachable(code: 2, nextHopMTU: 0), .parameterProblem(code: 1, pointer: 6, invokingPacket: sent6)),
            (.destinationUnreachable(code: 4, nextHopMTU: 1400), .packetTooBig(mtu: 1420, invokingPacket: sent6)),
            (.destinationUnreachable(code: 4, nextHopMTU: 576), .packetTooBig(mtu: 1280, invokingPacket: sent6)),          // never below 1280
            (.timeExceeded(code: 0), .timeExceeded(code: 0, invokingPacket: sent6)),
            (.parameterProblem(pointer: 9), .parameterProblem(code: 0, pointer: 6, invokingPacket: sent6)),                // protocol -> next header
            (.parameterProblem(pointer: 16), .parameterProblem(code: 0, pointer: 24, invokingPacket: sent6)),              // destination
        ]
        for (icmp4, icmp6) in cases {
            let t = try Translator(testConfiguration())
            let (r, out) = run(t, try v4(router4, client4, ttl: 60, .icmpv4(icmp4, data: sent4)))
            #expect(r == .translated(packets: 1), "\(icmp4)")
            #expect(out == [try v6(router6, client6, hop: 59, .icmpv6(icmp6))], "\(icmp4)")
        }
        // No equivalent: source quench, redirect, fragmentation reassembly... dropped.
        let t = try Translator(testConfiguration())
        #expect(run(t, try v4(router4, client4, .icmpv4(.destinationUnreachable(code: 14, nextHopMTU: 0), data: sent4))).0 == .dropped(.untranslatableICMP, errorSent: false))
        #expect(run(t, try v4(router4, client4, .icmpv4(.other(type: 5, code: 1, restOfHeader: 0), data: sent4))).0 == .dropped(.untranslatableICMP, errorSent: false))
        #expect(run(t, try v4(router4, client4, .icmpv4(.parameterProblem(pointer: 4), data: sent4))).0 == .dropped(.untranslatableICMP, errorSent: false))
    }

    @Test func icmpv6ErrorsBecomeICMPv4ErrorsWithThePacketInsideTranslated() throws {
        // An IPv4 host's TCP segment as the IPv6 side saw it, and what it was in IPv4 (Identification
        // unknown to the translator: 0).
        let sent6 = try v6(server6, client6, hop: 40, .tcp(tcp, payload: payload))
        let sent4 = try v4(server4, client4, ttl: 40, id: 0, .tcp(tcp, payload: payload))
        let cases: [(ICMPv6Repr, ICMPv4Repr)] = [
            (.destinationUnreachable(code: 0, invokingPacket: sent6), .destinationUnreachable(code: 1, nextHopMTU: 0)),
            (.destinationUnreachable(code: 1, invokingPacket: sent6), .destinationUnreachable(code: 10, nextHopMTU: 0)),
            (.destinationUnreachable(code: 4, invokingPacket: sent6), .destinationUnreachable(code: 3, nextHopMTU: 0)),
            (.packetTooBig(mtu: 1400, invokingPacket: sent6), .destinationUnreachable(code: 4, nextHopMTU: 1380)),
            (.timeExceeded(code: 1, invokingPacket: sent6), .timeExceeded(code: 1)),
            (.parameterProblem(code: 0, pointer: 7, invokingPacket: sent6), .parameterProblem(pointer: 8)),    // hop limit -> TTL
            (.parameterProblem(code: 0, pointer: 30, invokingPacket: sent6), .parameterProblem(pointer: 16)),  // destination
            (.parameterProblem(code: 1, pointer: 40, invokingPacket: sent6), .destinationUnreachable(code: 2, nextHopMTU: 0)),
        ]
        for (icmp6, icmp4) in cases {
            let t = try Translator(testConfiguration())
            let (r, out) = run(t, try v6(router6, server6, hop: 30, .icmpv6(icmp6)))
            #expect(r == .translated(packets: 1), "\(icmp6)")
            #expect(out == [try v4(router4, server4, ttl: 29, id: 1, .icmpv4(icmp4, data: sent4))], "\(icmp6)")
        }
        let t = try Translator(testConfiguration())
        #expect(run(t, try v6(router6, server6, .icmpv6(.parameterProblem(code: 2, pointer: 40, invokingPacket: sent6)))).0 == .dropped(.untranslatableICMP, errorSent: false))
        #expect(run(t, try v6(router6, server6, .icmpv6(.parameterProblem(code: 0, pointer: 2, invokingPacket: sent6)))).0 == .dropped(.untranslatableICMP, errorSent: false))
    }

    @Test func theEchoInsideAnErrorIsTranslatedToo() throws {
        let data = Array(repeating: UInt8(0xab), count: 32)
        let ping4 = try v4(client4, server4, ttl: 1, id: 9, .icmpv4(.echoRequest(identifier: 3, sequence: 4), data: data))
        let ping6 = try v6(client6, server6, hop: 1, .icmpv6(.echoRequest(identifier: 3, sequence: 4, data: data)))
        let t = try Translator(testConfiguration())
        #expect(run(t, try v4(router4, client4, ttl: 60, .icmpv4(.timeExceeded(code: 0), data: ping4))).1
            == [try v6(router6, client6, hop: 59, .icmpv6(.timeExceeded(code: 0, invokingPacket: ping6)))])
    }

    @Test func theErrorIsCutToTheMinimumMTU() throws {
        let big = Array(repeating: UInt8(7), count: 1400)
        let sent4 = try v4(client4, server4, ttl: 62, .udp(udp, payload: big))
        let t = try Translator(testConfiguration())
        let (_, out) = run(t, try v4(router4, client4, .icmpv4(.destinationUnreachable(code: 3, nextHopMTU: 0), data: sent4)))
        #expect(out.count == 1 && out[0].count == 1280, "ICMPv6 errors fit 1280 bytes (RFC 4443 §2.4(c))")
        let sent6 = try v6(server6, client6, .udp(udp, payload: big))
        let (_, out4) = run(t, try v6(router6, server6, .icmpv6(.destinationUnreachable(code: 4, invokingPacket: Array(sent6.prefix(1232))))))
        #expect(out4.count == 1 && out4[0].count == 576, "ICMPv4 errors fit 576 bytes (RFC 1812 §4.3.2.3)")
    }

    @Test func fragmentsBothWays() throws {
        let t = try Translator(testConfiguration())
        // A first IPv4 fragment: a Fragment header with the Identification, offset and M copied; the
        // UDP checksum (of the whole datagram) adjusted all the same.
        let whole = Array(repeating: UInt8(0x5a), count: 64)
        let full4 = try v4(server4, client4, .udp(udp, payload: whole))   // header 20 + UDP 8 + 64
        var first4 = Array(full4.prefix(20 + 40))
        first4[2] = 0; first4[3] = 60
        first4[4] = 0x12; first4[5] = 0x34; first4[6] = 0x20; first4[7] = 0   // id 0x1234, MF
        fixIPv4Checksum(&first4)
        let full6 = try v6(server6, client6, hop: 63, .udp(udp, payload: whole))
        let expectedFirst = try v6(server6, client6, hop: 63, ext: [.fragment(offset: 0, moreFragments: true, identification: 0x1234)],
                                   .other(.udp, Array(full6[40..<(40 + 40)])))
        #expect(run(t, first4).1 == [expectedFirst])
        // The second fragment: offset 5 (40 bytes), no header to touch.
        var second4 = try v4(server4, client4, id: 0x1234, offset: 5, .other(.udp, Array(full4[(20 + 40)...])))
        fixIPv4Checksum(&second4)
        #expect(run(t, second4).1 == [try v6(server6, client6, hop: 63, ext: [.fragment(offset: 5, moreFragments: false, identification: 0x1234)],
                                             .other(.udp, Array(full4[(20 + 40)...])))])
        // IPv6 fragment -> IPv4: Identification's low 16 bits, MF, offset; DF clear.
        let frag6 = try v6(client6, server6, ext: [.fragment(offset: 5, moreFragments: true, identification: 0xabcd_0042)], .other(.udp, Array(repeating: 1, count: 48)))
        #expect(run(t, frag6).1 == [try v4(client4, server4, ttl: 63, id: 0x0042, mf: true, offset: 5, .other(.udp, Array(repeating: 1, count: 48)))])
    }

    @Test func aDFClearPacketLongerThanTheLowestIPv6MTUIsFragmented() throws {
        let t = try Translator(testConfiguration())
        let data = (0..<1400).map { UInt8(truncatingIfNeeded: $0) }
        let (r, out) = run(t, try v4(server4, client4, id: 0x0909, df: false, .udp(udp, payload: data)))
        #expect(r == .translated(packets: 2))
        #expect(out.map(\.count) == [1280, 48 + 1408 - 1232])
        // Reassembled: the IPv6 packet a DF-set original would have become.
        let whole = try v6(server6, client6, hop: 63, .udp(udp, payload: data))
        #expect(Array(out[0][48...]) + Array(out[1][48...]) == Array(whole[40...]))
        #expect(out[0][6] == 44 && out[0][40] == 17 && out[0][42] == 0 && out[0][43] == 1, "first: offset 0, M")
        #expect(out[1][42] == 0x04 && out[1][43] == 0xd0, "second: offset 1232 bytes (154 units, shifted left 3), no M")
        #expect(out.allSatisfy { $0[44] == 0 && $0[45] == 0 && $0[46] == 0x09 && $0[47] == 0x09 }, "Identification carried")
        #expect(t.statistics.fragmentsCreated == 2)
    }

    @Test func tooBigAndHopLimitGetTheTranslatorsOwnErrors() throws {
        let t = try Translator(testConfiguration(ipv6MTU: 1300, ipv4MTU: 1400))
        // DF set and longer than the IPv6 MTU: ICMPv4 fragmentation needed, MTU 1300 - 20.
        let big4 = try v4(server4, client4, df: true, .udp(udp, payload: Array(repeating: 3, count: 1300)))
        let (r, out) = run(t, big4)
        #expect(r == .dropped(.tooBig, errorSent: true))
        #expect(out == [try v4(own4, server4, ttl: 64, id: 1, .icmpv4(.destinationUnreachable(code: 4, nextHopMTU: 1280), data: Array(big4.prefix(548))))])
        // TTL 1: time exceeded in transit.
        let last = try v4(server4, client4, ttl: 1, .udp(udp, payload: payload))
        #expect(run(t, last).1 == [try v4(own4, server4, ttl: 64, id: 2, .icmpv4(.timeExceeded(code: 0), data: last))])
        // IPv6 longer than the IPv4 MTU: packet too big with 1400 + 20.
        let big6 = try v6(client6, server6, .udp(udp, payload: Array(repeating: 4, count: 1400)))
        #expect(run(t, big6).1 == [try v6(own6, client6, .icmpv6(.packetTooBig(mtu: 1420, invokingPacket: Array(big6.prefix(1232)))))])
        // Hop limit 1.
        let last6 = try v6(client6, server6, hop: 1, .udp(udp, payload: payload))
        #expect(run(t, last6).1 == [try v6(own6, client6, .icmpv6(.timeExceeded(code: 0, invokingPacket: last6)))])
        // Never an error about an error.
        let error4 = try v4(server4, client4, ttl: 1, .icmpv4(.destinationUnreachable(code: 3, nextHopMTU: 0), data: last))
        #expect(run(t, error4) == (.dropped(.hopLimit, errorSent: false), []))
        #expect(t.statistics.errorsSent == 4)
    }

    @Test func sourceRoutesAreRefusedWithTheRightError() throws {
        let t = try Translator(testConfiguration())
        // IPv4 loose source route with an address still to visit (pointer 4 <= length 7): 3/5.
        var ip = IPv4Repr(source: server4, destination: client4, protocolNumber: .udp, payloadLength: 0, options: [131, 7, 4, 198, 51, 100, 9])
        ip.dontFragment = false
        let lsrr = try PacketRepr(.ipv4(ip), .udp(udp, payload: payload)).normalized().emit()
        let (r, out) = run(t, lsrr)
        #expect(r == .dropped(.sourceRoute, errorSent: true))
        #expect(out == [try v4(own4, server4, id: 1, .icmpv4(.destinationUnreachable(code: 5, nextHopMTU: 0), data: lsrr))])
        // An expired one (pointer past the end) is dropped from the header, the packet translated.
        ip.options = [131, 7, 8, 198, 51, 100, 9]
        let expired = try PacketRepr(.ipv4(ip), .udp(udp, payload: payload)).normalized().emit()
        #expect(run(t, expired).1 == [try v6(server6, client6, hop: 63, .udp(udp, payload: payload))])
        // IPv6 Routing header with segments left: parameter problem pointing at Segments Left (40 + 3).
        let routed = try v6(client6, server6, ext: [.routing(type: 0, segmentsLeft: 1, data: Array(repeating: 0, count: 4) + server6.bytes)], .udp(udp, payload: payload))
        #expect(run(t, routed).1 == [try v6(own6, client6, .icmpv6(.parameterProblem(code: 0, pointer: 43, invokingPacket: routed)))])
    }

    @Test func addressesWithoutAMappingAreDroppedAndCounted() throws {
        let t = try Translator(testConfiguration())
        // A sender it translates for, toward an address it cannot map: Destination Unreachable,
        // Address Unreachable (RFC 4443 §3.1) back from the translator's own address, so the host
        // hears of it; the drop is counted with its addresses.
        let toNowhere = try v6(client6, IPv6Address("2001:db8:99::1")!, .udp(udp, payload: payload))
        let (r, out) = run(t, toNowhere)
        #expect(r == .dropped(.unmappable, errorSent: true))
        #expect(out == [try v6(own6, client6, .icmpv6(.destinationUnreachable(code: 3, invokingPacket: toNowhere)))])
        #expect(t.statistics.lastDrop == TranslatorStatistics.DropSample(reason: .unmappable, source: .v6(client6), destination: .v6(IPv6Address("2001:db8:99::1")!)))
        // A source it cannot map: RFC 7915 §5.4's error, Destination Unreachable code 1.
        let fromNowhere = try v6(IPv6Address("2001:db8:2::1")!, server6, .udp(udp, payload: payload))
        #expect(run(t, fromNowhere).1 == [try v6(own6, IPv6Address("2001:db8:2::1")!, .icmpv6(.destinationUnreachable(code: 1, invokingPacket: fromNowhere)))])
        // Multicast and broadcast are never translated: counted apart (the kernel's MLD reports on
        // the translator's own interface are the usual ones), no error.
        #expect(run(t, try v4(server4, IPv4Address("255.255.255.255")!, .udp(udp, payload: payload))).0 == .dropped(.multicast, errorSent: false))
        #expect(run(t, try v6(IPv6Address("fe80::1")!, IPv6Address("ff02::16")!, .udp(udp, payload: payload))).0 == .dropped(.multicast, errorSent: false))
        #expect(t.statistics.dropped[.multicast] == 2)
        #expect(t.statistics.dropped[.unmappable] == 2 && t.statistics.errorsSent == 2)
        // Those errors are rate-limited (RFC 4443 §2.4(f)), all of the translator's errors in one
        // bucket: a burst of 300 gets at most what is left of it.
        let burst = (0..<300).filter { _ in run(t, toNowhere).0 == .dropped(.unmappable, errorSent: true) }.count
        #expect(burst >= Translator.errorLimit - 3 && burst <= Translator.errorLimit + 5, "\(burst)")
        // And the IPv4 way: an unmappable destination gets Host Unreachable (§4.2's pair of Address
        // Unreachable), an unmappable source 3/13 (§4.4), from a translator whose bucket is full.
        var wellKnown = testConfiguration(); wellKnown.prefix = TranslatorConfiguration.wellKnownPrefix
        let fresh = try Translator(wellKnown)
        let toNowhere4 = try v4(server4, IPv4Address("10.1.2.3")!, .udp(udp, payload: payload))
        #expect(run(fresh, toNowhere4).1 == [try v4(own4, server4, id: 1, .icmpv4(.destinationUnreachable(code: 1, nextHopMTU: 0), data: toNowhere4))])
        let fromNowhere4 = try v4(IPv4Address("10.9.9.9")!, client4, .udp(udp, payload: payload))
        #expect(run(fresh, fromNowhere4).1 == [try v4(own4, IPv4Address("10.9.9.9")!, id: 2, .icmpv4(.destinationUnreachable(code: 13, nextHopMTU: 0), data: fromNowhere4))])
        var noErrors = wellKnown; noErrors.errorsPerSecond = 0
        #expect(run(try Translator(noErrors), toNowhere4) == (.dropped(.unmappable, errorSent: false), []), "errors switched off (RFC 7915 §4.4's knob)")
        // The Well-Known Prefix carries only global IPv4 addresses (RFC 6052 §3.1).
        let wkp = try Translator(TranslatorConfiguration(prefix: TranslatorConfiguration.wellKnownPrefix))
        let private6 = try IPv6Address(embedding: IPv4Address("10.1.2.3")!, in: TranslatorConfiguration.wellKnownPrefix)
        #expect(run(wkp, try v6(private6, try IPv6Address(embedding: IPv4Address("8.8.8.8")!, in: TranslatorConfiguration.wellKnownPrefix),
                               .udp(udp, payload: payload))).0 == .dropped(.unmappable, errorSent: false))
        // Garbage and a bad IPv4 header checksum.
        #expect(run(t, [0x45, 0, 0]).0 == .dropped(.malformed, errorSent: false))
        #expect(run(t, [0x95] + Array(repeating: 0, count: 40)).0 == .dropped(.malformed, errorSent: false))
        var broken = try v4(server4, client4, .udp(udp, payload: payload)); broken[10] ^= 0xff
        #expect(run(t, broken).0 == .dropped(.badHeaderChecksum, errorSent: false))
    }

    @Test func everyPrefixLengthMapsBothWays() throws {
        for length in IPv6Address.rfc6052PrefixLengths {
            let prefix = IPv6Prefix(containing: IPv6Address("2001:db8:122:344::")!, length: length)
            // Both ends embedded (a /32 prefix covers all of 2001:db8::/32, so no EAM here).
            let t = try Translator(TranslatorConfiguration(prefix: prefix))
            let server = try IPv6Address(embedding: server4, in: prefix), client = try IPv6Address(embedding: client4, in: prefix)
            #expect(run(t, try v6(client, server, .udp(udp, payload: payload))).1 == [try v4(client4, server4, ttl: 63, id: 1, .udp(udp, payload: payload))], "/\(length)")
            #expect(run(t, try v4(server4, client4, .udp(udp, payload: payload))).1 == [try v6(server, client, hop: 63, .udp(udp, payload: payload))], "/\(length)")
            // Non-zero u octet and suffix bits are ignored on the way in (RFC 6052 §2.2; tayga's bug #10).
            let noisy = IPv6Address(rawValue: server.rawValue | (length == 96 ? 0 : 0xff << 56 | 0x1))
            #expect(run(t, try v6(client, noisy, .udp(udp, payload: payload))).1.count == 1, "/\(length)")
        }
        #expect(throws: TranslatorConfigurationError.self) { try Translator(TranslatorConfiguration(prefix: IPv6Prefix("2001:db8::/80")!)) }
        #expect(throws: TranslatorConfigurationError.self) {
            try Translator(TranslatorConfiguration(prefix: IPv6Prefix("2001:db8:64::/96")!, explicitMappings: [ExplicitMapping(ipv4: client4, ipv6: server6)]))
        }
    }
}

func fixIPv4Checksum(_ b: inout [UInt8]) {
    b[10] = 0; b[11] = 0
    let c = b.withUnsafeBytes { InternetChecksum.of(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
    b[10] = UInt8(c >> 8); b[11] = UInt8(c & 0xff)
}

/// tcpdump -vvv reads every packet the pair tests fed in and got out and finds every checksum it
/// checks correct.
@Suite(.serialized, .enabled(if: which("tcpdump") != nil, "needs tcpdump"))
struct TcpdumpJudgesTheTranslations {
    @Test func tcpdumpCallsEveryChecksumCorrect() throws {
        // Runs the pair tests' translations again here (the suites run in parallel) into one file.
        let t = try Translator(testConfiguration())
        var writer = PcapWriter(linkType: .raw)
        var inputs: [[UInt8]] = [
            try v6(client6, server6, .tcp(tcp, payload: payload)), try v4(server4, client4, .tcp(tcp, payload: payload)),
            try v6(client6, server6, .udp(udp, payload: payload)), try v4(server4, client4, .udp(udp, payload: payload)),
            try v6(client6, server6, .icmpv6(.echoRequest(identifier: 1, sequence: 2, data: payload))),
            try v4(server4, client4, .icmpv4(.echoReply(identifier: 1, sequence: 2), data: payload)),
            try v4(router4, client4, .icmpv4(.destinationUnreachable(code: 3, nextHopMTU: 0), data: try v4(client4, server4, .udp(udp, payload: payload)))),
            try v6(router6, server6, .icmpv6(.packetTooBig(mtu: 1400, invokingPacket: try v6(server6, client6, .tcp(tcp, payload: payload))))),
            try v4(server4, client4, df: false, .udp(udp, payload: Array(repeating: 9, count: 1400))),
        ]
        var zero = try v4(server4, client4, .udp(udp, payload: payload)); zero[26] = 0; zero[27] = 0
        inputs.append(zero)
        var outputs = 0
        for p in inputs {
            for o in run(t, p).1 { o.withUnsafeBytes { writer.append($0) }; outputs += 1 }
        }
        #expect(outputs == inputs.count + 1, "the 1400-byte datagram in two fragments")
        let file = "/tmp/sg-xlat-\(uniqueSuffix()).pcap"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(writer.bytes).write(to: URL(fileURLWithPath: file))
        let text = try run(["tcpdump", "-nn", "-vvv", "-r", file], check: true).stdout
        #expect(!text.contains("incorrect") && !text.contains("bad cksum") && !text.contains("bad udp cksum"), "\(text)")
        let correct = text.components(separatedBy: "(correct)").count - 1 + text.components(separatedBy: "sum ok]").count - 1
        // tcpdump checks TCP (twice: once inside the packet too big), UDP (outer and inside the
        // unreachable), ICMPv6 (echo, unreachable) and ICMPv4 (echo... not in -vvv) as far as it can.
        #expect(correct >= 8, "\(text)")
    }
}
