// TCP super-packets as an offload TUN device hands them over: up to 64 KiB of TCP whose checksum
// field holds only the pseudo-header sum (CHECKSUM_PARTIAL), cut into segments after the
// translation. Each expected output is built in full by PacketRepr; the translation's partial
// checksum is completed as the kernel would (the sum from the TCP header to the end) and must then
// equal it byte for byte. The size rules apply to each segment.
import PacketKit
import Testing
@testable import Translator

/// `packet` (built with a full checksum) as the kernel hands over a super-packet: the TCP checksum
/// field holds the folded pseudo-header sum, uncomplemented.
func partial(_ packet: [UInt8]) -> [UInt8] {
    var b = packet
    let v6 = b[0] >> 4 == 6
    let ip = v6 ? 40 : Int(b[0] & 0x0f) * 4
    let length = b.count - ip
    let sum: UInt16
    if v6 {
        let (src, dst) = b.withUnsafeBytes { (IPv6Address(bytes: UnsafeRawBufferPointer(rebasing: $0[8..<24])), IPv6Address(bytes: UnsafeRawBufferPointer(rebasing: $0[24..<40]))) }
        sum = InternetChecksum.pseudoHeader(source: src, destination: dst, length: length, nextHeader: .tcp).foldedSum
    } else {
        let src = IPv4Address(b[12], b[13], b[14], b[15]), dst = IPv4Address(b[16], b[17], b[18], b[19])
        sum = InternetChecksum.pseudoHeader(source: src, destination: dst, length: length, protocol: .tcp).foldedSum
    }
    b[ip + 16] = UInt8(sum >> 8); b[ip + 17] = UInt8(sum & 0xff)
    return b
}

/// Completes a translation's partial TCP checksum as the kernel does before it segments.
func completed(_ packet: [UInt8]) -> [UInt8] {
    var b = packet
    let ip = b[0] >> 4 == 6 ? 40 : 20
    b.withUnsafeMutableBytes { #expect(InternetChecksum.completePartial($0, start: ip, offset: 16)) }
    return b
}

/// Runs a super-packet through `t`; returns the result and each emitted packet with its segment size.
func runSegmented(_ t: Translator, _ packet: [UInt8], segmentSize: Int) -> (TranslationResult, [([UInt8], Int)]) {
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Translator.scratchSize, alignment: 16)
    defer { scratch.deallocate() }
    var out: [([UInt8], Int)] = []
    let r = packet.withUnsafeBytes { t.translate(segmented: $0, segmentSize: segmentSize, scratch: scratch) { out.append((Array($0), $1)) } }
    return (r, out)
}

let bulk = (0..<8000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }

@Suite struct SegmentationOffloadTests {
    @Test func aSuperPacketIsTranslatedWholeWithItsPartialChecksumMoved() throws {
        let t = try Translator(testConfiguration())
        // IPv6 -> IPv4: segments of 1440 bytes make 1480-byte IPv4 packets, so DF set, Identification 0.
        let (r1, o1) = runSegmented(t, partial(try v6(client6, server6, .tcp(tcp, payload: bulk))), segmentSize: 1440)
        #expect(r1 == .translated(packets: 1))
        #expect(o1.count == 1 && o1[0].1 == 1440)
        #expect(completed(o1[0].0) == (try v4(client4, server4, ttl: 63, df: true, .tcp(tcp, payload: bulk))))
        // The field itself is the new pseudo-header's sum, as the kernel would have written it.
        #expect(o1[0].0 == partial(try v4(client4, server4, ttl: 63, df: true, .tcp(tcp, payload: bulk))))
        // IPv4 -> IPv6.
        let (r2, o2) = runSegmented(t, partial(try v4(server4, client4, ttl: 50, tos: 0x10, id: 9, df: true, .tcp(tcp, payload: bulk))), segmentSize: 1440)
        #expect(r2 == .translated(packets: 1))
        #expect(o2.count == 1 && o2[0].1 == 1440)
        #expect(completed(o2[0].0) == (try v6(server6, client6, hop: 49, tc: 0x10, .tcp(tcp, payload: bulk))))
        #expect(t.statistics.superPackets == 2 && t.statistics.translated4to6 == 1 && t.statistics.translated6to4 == 1)
    }

    @Test func sizeRulesApplyToEachSegment() throws {
        let t = try Translator(testConfiguration())
        // DF set, segments of 1480: each would be 40 + 20 + 1480 = 1540 bytes of IPv6, over the MTU
        // of 1500: fragmentation needed with MTU 1480, as for a single packet of that size.
        let big = partial(try v4(server4, client4, df: true, .tcp(tcp, payload: bulk)))
        let (r1, o1) = runSegmented(t, big, segmentSize: 1480)
        #expect(r1 == .dropped(.tooBig, errorSent: true))
        #expect(o1.count == 1 && o1[0].1 == 0, "the error is a whole packet")
        if let e = o1.first?.0, e.count > 28 {
            #expect(Array(e[20..<28]) == [3, 4, e[22], e[23], 0, 0, 0x05, 0xc8], "type 3 code 4, MTU 1480")
            #expect(e.withUnsafeBytes { InternetChecksum.of(UnsafeRawBufferPointer(rebasing: $0[20...])) } == 0)
        }
        // The same with segments of 1440 fits.
        #expect(runSegmented(t, big, segmentSize: 1440).0 == .translated(packets: 1))
        // DF clear and longer than 1280 per segment: the segments are made smaller, not fragmented.
        let (r3, o3) = runSegmented(t, partial(try v4(server4, client4, df: false, .tcp(tcp, payload: bulk))), segmentSize: 1460)
        #expect(r3 == .translated(packets: 1) && o3.count == 1)
        #expect(o3.first?.1 == 1280 - 40 - 20)
        #expect(t.statistics.fragmentsCreated == 0)
        // IPv6 -> IPv4 with an IPv4 MTU of 1400: segments of 1440 would be 1480 bytes: packet too big, MTU 1420.
        let t2 = try Translator(testConfiguration(ipv4MTU: 1400))
        let (r4, o4) = runSegmented(t2, partial(try v6(client6, server6, .tcp(tcp, payload: bulk))), segmentSize: 1440)
        #expect(r4 == .dropped(.tooBig, errorSent: true))
        if let e = o4.first?.0, e.count > 48 {
            #expect(e[40] == 2 && Array(e[44..<48]) == [0, 0, 0x05, 0x8c], "packet too big, MTU 1420")
        }
        #expect(runSegmented(t2, partial(try v6(client6, server6, .tcp(tcp, payload: bulk))), segmentSize: 1360).0 == .translated(packets: 1))
    }

    @Test func smallSegmentsGetDFClearAndANumberEach() throws {
        let t = try Translator(testConfiguration())
        // 3000 bytes in segments of 1000: each IPv4 segment is 1040 bytes, so DF clear and
        // Identifications 1, 2, 3 (the kernel numbers on from the first); the next packet gets 4.
        let data = Array(bulk[0..<3000])
        let (_, o) = runSegmented(t, partial(try v6(client6, server6, .tcp(tcp, payload: data))), segmentSize: 1000)
        #expect(o.count == 1 && o.first?.1 == 1000)
        #expect(completed(o[0].0) == (try v4(client4, server4, ttl: 63, id: 1, .tcp(tcp, payload: data))))
        #expect(run(t, try v6(client6, server6, .tcp(tcp, payload: payload))).1 == [try v4(client4, server4, ttl: 63, id: 4, .tcp(tcp, payload: payload))])
    }

    @Test func onlyTCPCanBeASuperPacket() throws {
        let t = try Translator(testConfiguration())
        #expect(runSegmented(t, try v6(client6, server6, .udp(udp, payload: bulk)), segmentSize: 1400).0 == .dropped(.malformed, errorSent: false))
        #expect(runSegmented(t, partial(try v6(client6, server6, .tcp(tcp, payload: bulk))), segmentSize: 0).0 == .dropped(.malformed, errorSent: false))
        #expect(runSegmented(t, try v4(server4, client4, mf: true, .tcp(tcp, payload: bulk)), segmentSize: 1400).0 == .dropped(.malformed, errorSent: false))
        #expect(t.statistics.dropped[.malformed] == 3 && t.statistics.superPackets == 0)
    }

    @Test func aPartialChecksumIsCompletedAsTheKernelDoes() throws {
        // A small UDP datagram with checksum offload: completing it gives the full checksum.
        let full = try v6(client6, server6, .udp(udp, payload: payload))
        var b = full
        let sum = InternetChecksum.pseudoHeader(source: client6, destination: server6, length: full.count - 40, nextHeader: .udp).foldedSum
        b[46] = UInt8(sum >> 8); b[47] = UInt8(sum & 0xff)
        b.withUnsafeMutableBytes { #expect(InternetChecksum.completePartial($0, start: 40, offset: 6)) }
        #expect(b == full)
        // A field outside the packet changes nothing.
        b.withUnsafeMutableBytes { #expect(!InternetChecksum.completePartial($0, start: 40, offset: full.count)) }
        #expect(b == full)
    }
}
