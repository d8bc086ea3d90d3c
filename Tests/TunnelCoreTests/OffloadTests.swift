import PacketKit
import Testing
@testable import SixgateIO
#if canImport(Glibc)
import Glibc
#endif

/// Builds TCP and UDP packets and super-packets as the kernel hands them to an offload TUN device,
/// and checks results with checksums summed here (not by the code under test).
enum OffloadFixtures {
    static let v4Source: [UInt8] = [198, 51, 100, 1], v4Destination: [UInt8] = [198, 51, 100, 2]
    static let v6Source: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
    static let v6Destination: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]
    /// NOP, NOP, timestamps (as Linux sends on every segment).
    static let timestamps: [UInt8] = [1, 1, 8, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0]

    static func sum(_ bytes: [UInt8]) -> InternetChecksum {
        var c = InternetChecksum()
        bytes.withUnsafeBytes { c.add($0) }
        return c
    }

    static func pseudo(v4: Bool, proto: UInt8, length: Int) -> [UInt8] {
        (v4 ? v4Source + v4Destination : v6Source + v6Destination) + [0, 0, 0, proto] + [0, 0, UInt8(length >> 8), UInt8(length & 0xff)]
    }

    /// An IP header for `transport` bytes of `proto`.
    static func ipHeader(v4: Bool, proto: UInt8, transportLength: Int, id: UInt16 = 0x1234, ttl: UInt8 = 64) -> [UInt8] {
        if v4 {
            let total = 20 + transportLength
            var h: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), UInt8(id >> 8), UInt8(id & 0xff), 0x40, 0, ttl, proto, 0, 0]
            h += v4Source + v4Destination
            let c = sum(h).value
            h[10] = UInt8(c >> 8); h[11] = UInt8(c & 0xff)
            return h
        }
        return [0x60, 0, 0, 0, UInt8(transportLength >> 8), UInt8(transportLength & 0xff), proto, ttl] + v6Source + v6Destination
    }

    /// A TCP packet with a complete checksum, or (`partial`) the pseudo-header sum as the kernel leaves it.
    static func tcp(v4: Bool, seq: UInt32, payload: [UInt8], flags: UInt8 = 0x10, id: UInt16 = 0x1234, window: UInt16 = 512,
                    options: [UInt8] = timestamps, partial: Bool = false, ttl: UInt8 = 64) -> [UInt8] {
        let doff = (20 + options.count) / 4
        var t: [UInt8] = [0x9c, 0x40, 0x14, 0x51]
        t += [UInt8(seq >> 24), UInt8(seq >> 16 & 0xff), UInt8(seq >> 8 & 0xff), UInt8(seq & 0xff)]
        t += [0, 0, 0x03, 0xe8, UInt8(doff << 4), flags, UInt8(window >> 8), UInt8(window & 0xff), 0, 0, 0, 0]
        t += options + payload
        var c = sum(pseudo(v4: v4, proto: 6, length: t.count))
        let value: UInt16
        if partial { value = c.foldedSum } else { t.withUnsafeBytes { c.add($0) }; value = c.value }
        t[16] = UInt8(value >> 8); t[17] = UInt8(value & 0xff)
        return ipHeader(v4: v4, proto: 6, transportLength: t.count, id: id, ttl: ttl) + t
    }

    static func udp(v4: Bool, payload: [UInt8], partial: Bool) -> [UInt8] {
        var u: [UInt8] = [0x9c, 0x40, 0x14, 0x51, UInt8((8 + payload.count) >> 8), UInt8((8 + payload.count) & 0xff), 0, 0] + payload
        var c = sum(pseudo(v4: v4, proto: 17, length: u.count))
        let value: UInt16
        if partial { value = c.foldedSum } else { u.withUnsafeBytes { c.add($0) }; value = c.value }
        u[6] = UInt8(value >> 8); u[7] = UInt8(value & 0xff)
        return ipHeader(v4: v4, proto: 17, transportLength: u.count) + u
    }

    static func header(type: VirtioNetHeader.Segmentation, v4: Bool, headerLength: Int, segmentSize: Int, checksumOffset: Int = 16) -> VirtioNetHeader {
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.segmentationType = type.rawValue
        h.headerLength = UInt16(headerLength)
        h.segmentSize = UInt16(segmentSize)
        h.checksumStart = UInt16(v4 ? 20 : 40)
        h.checksumOffset = UInt16(checksumOffset)
        return h
    }

    /// Cuts `packet` as the header says; nil when refused.
    static func segments(_ h: VirtioNetHeader, _ packet: [UInt8]) -> Result<[[UInt8]], OffloadError> {
        var copy = packet
        return copy.withUnsafeMutableBytes { raw -> Result<[[UInt8]], OffloadError> in
            do {
                let sp = try SuperPacket(header: h, packet: raw)
                let out = UnsafeMutableRawPointer.allocate(byteCount: 70_000, alignment: 16)
                defer { out.deallocate() }
                return .success((0..<sp.count).map { i in
                    let n = sp.segment(i, into: out)
                    return Array(UnsafeRawBufferPointer(start: out, count: n))
                })
            } catch let e as OffloadError {
                return .failure(e)
            } catch {
                return .failure(.malformed)
            }
        }
    }

    /// Whether a packet's IPv4 header checksum (if any) and transport checksum verify.
    static func checksumsVerify(_ p: [UInt8]) -> Bool {
        let v4 = p[0] >> 4 == 4
        let ip = v4 ? Int(p[0] & 0x0f) * 4 : 40
        if v4, !sum(Array(p[0..<ip])).verifies { return false }
        let proto = v4 ? p[9] : p[6]
        var c = sum(pseudo(v4: v4, proto: proto, length: p.count - ip))
        Array(p[ip...]).withUnsafeBytes { c.add($0) }
        return c.verifies
    }

    /// What a coalescer wrote: each write's virtio header and the packet gathered from the rest.
    final class Sink {
        var writes: [(VirtioNetHeader, [UInt8])] = []
        func write(_ v: UnsafePointer<iovec>, _ n: Int) {
            let h = VirtioNetHeader(UnsafeRawBufferPointer(start: v[0].iov_base, count: v[0].iov_len))
            var bytes: [UInt8] = []
            for i in 1..<n { bytes += UnsafeRawBufferPointer(start: v[i].iov_base, count: v[i].iov_len) }
            writes.append((h, bytes))
        }
    }

    /// Feeds packets (each in its own buffer, kept until the flush) through a coalescer.
    static func coalesce(_ packets: [[UInt8]], flows: Int = 8) -> (Sink, TCPCoalescer) {
        let sink = Sink(), c = TCPCoalescer(flows: flows)
        let buffers = packets.map { p -> UnsafeMutableRawBufferPointer in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: p.count, alignment: 16)
            b.copyMemory(from: UnsafeRawBufferPointer(start: p, count: p.count)); return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        for b in buffers { c.add(b) { sink.write($0, $1) } }
        c.flush { sink.write($0, $1) }
        return (sink, c)
    }

    static func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255) } }
}

struct SuperPacketTests {
    typealias F = OffloadFixtures

    @Test(arguments: [true, false])
    func aTCPSuperPacketBecomesSegmentsWithEveryFieldAndChecksumRight(v4: Bool) throws {
        let payload = F.random(5000)
        // PSH and FIN on the super-packet (the kernel sets them for the last segment), CWR for the first.
        let packet = F.tcp(v4: v4, seq: 0xffff_f000, payload: payload, flags: 0x10 | 0x08 | 0x01 | 0x80, partial: true)
        let ipLength = v4 ? 20 : 40
        let h = F.header(type: v4 ? .tcp4 : .tcp6, v4: v4, headerLength: ipLength + 32, segmentSize: 1400)
        let segments = try F.segments(h, packet).get()
        #expect(segments.count == 4)
        var joined: [UInt8] = []
        for (i, s) in segments.enumerated() {
            let t = ipLength
            let expectedPayload = i < 3 ? 1400 : 800
            #expect(s.count == ipLength + 32 + expectedPayload)
            #expect(F.checksumsVerify(s), "segment \(i)")
            if v4 {
                #expect(Int(s[2]) << 8 | Int(s[3]) == s.count)
                #expect(UInt16(s[4]) << 8 | UInt16(s[5]) == 0x1234 &+ UInt16(i), "identification counts up")
            } else {
                #expect(Int(s[4]) << 8 | Int(s[5]) == s.count - 40)
            }
            let seq = UInt32(s[t + 4]) << 24 | UInt32(s[t + 5]) << 16 | UInt32(s[t + 6]) << 8 | UInt32(s[t + 7])
            #expect(seq == 0xffff_f000 &+ UInt32(i * 1400), "sequence numbers wrap as 32-bit")
            let flags = s[t + 13]
            #expect(flags & 0x09 == (i == 3 ? 0x09 : 0), "FIN and PSH only on the last")
            #expect(flags & 0x80 == (i == 0 ? 0x80 : 0), "CWR only on the first")
            #expect(Array(s[(t + 20)..<(t + 32)]) == F.timestamps, "options copied")
            joined += s[(t + 32)...]
        }
        #expect(joined == payload)
    }

    @Test(arguments: [true, false])
    func aUDPSuperPacketBecomesDatagramsWithLengthsAndChecksums(v4: Bool) throws {
        let payload = F.random(3000)
        let packet = F.udp(v4: v4, payload: payload, partial: true)
        let h = F.header(type: .udpL4, v4: v4, headerLength: (v4 ? 20 : 40) + 8, segmentSize: 1200, checksumOffset: 6)
        let segments = try F.segments(h, packet).get()
        #expect(segments.map(\.count) == [1200, 1200, 600].map { $0 + (v4 ? 28 : 48) })
        for s in segments {
            #expect(F.checksumsVerify(s))
            let t = v4 ? 20 : 40
            #expect(Int(s[t + 4]) << 8 | Int(s[t + 5]) == s.count - t)
        }
        #expect(segments.flatMap { $0[(v4 ? 28 : 48)...] } == payload)
    }

    @Test func aSinglePacketHasItsPartialChecksumCompleted() throws {
        let packet = F.tcp(v4: false, seq: 1, payload: F.random(300), partial: true)
        #expect(!F.checksumsVerify(packet))
        var h = F.header(type: .none, v4: false, headerLength: 0, segmentSize: 0)
        h.checksumStart = 40
        let out = try F.segments(h, packet).get()
        #expect(out.count == 1 && F.checksumsVerify(out[0]))
        // Without NEEDS_CSUM it passes untouched.
        let whole = F.tcp(v4: true, seq: 1, payload: F.random(100))
        #expect(try F.segments(VirtioNetHeader(), whole).get() == [whole])
    }

    @Test func lyingHeadersAreRefusedNotTrusted() throws {
        let v4 = F.tcp(v4: true, seq: 1, payload: F.random(3000), partial: true)
        let good = F.header(type: .tcp4, v4: true, headerLength: 52, segmentSize: 1000)
        var zero = good; zero.segmentSize = 0
        #expect(F.segments(zero, v4) == .failure(.badSegmentSize))
        var tiny = good; tiny.segmentSize = 1   // 3000 segments
        #expect(F.segments(tiny, v4) == .failure(.badSegmentSize))
        var wrongFamily = good; wrongFamily.segmentationType = VirtioNetHeader.Segmentation.tcp6.rawValue
        #expect(F.segments(wrongFamily, v4) == .failure(.malformed))
        var ufo = good; ufo.segmentationType = VirtioNetHeader.Segmentation.udp.rawValue
        #expect(F.segments(ufo, v4) == .failure(.unsupported))
        #expect(F.segments(good, Array(v4[0..<30])) == .failure(.malformed), "cut inside the TCP header")
        #expect(F.segments(good, Array(v4[0..<52])) == .failure(.malformed), "headers and no payload")
        var udpAsTCP = F.udp(v4: true, payload: F.random(2000), partial: true)
        #expect(F.segments(good, udpAsTCP) == .failure(.malformed), "protocol does not match the type")
        udpAsTCP[0] = 0x44   // IHL 4
        #expect(F.segments(F.header(type: .udpL4, v4: true, headerLength: 28, segmentSize: 500), udpAsTCP) == .failure(.malformed))
        var single = VirtioNetHeader(); single.flags = VirtioNetHeader.needsChecksum; single.checksumStart = 4000
        #expect(F.segments(single, v4) == .failure(.badChecksumPosition))
        // A hdr_len that lies is not used: the headers are measured.
        var lying = good; lying.headerLength = 9000
        #expect(try F.segments(lying, v4).get().count == 3)
    }
}

struct TCPCoalescerTests {
    typealias F = OffloadFixtures

    /// Segments cut here and coalesced again give back the super-packet: one write, the header
    /// the kernel needs, and once the partial checksum is completed, a packet that verifies.
    @Test(arguments: [true, false])
    func segmentsOfOneFlowBecomeOneSuperPacketAgain(v4: Bool) throws {
        let payload = F.random(20_000)
        let original = F.tcp(v4: v4, seq: 7, payload: payload, flags: 0x18, partial: true)
        let ip = v4 ? 20 : 40
        let segments = try F.segments(F.header(type: v4 ? .tcp4 : .tcp6, v4: v4, headerLength: ip + 32, segmentSize: 1368), original).get()
        #expect(segments.count == 15)
        let (sink, c) = F.coalesce(segments)
        #expect(sink.writes.count == 1)
        let (h, packet) = sink.writes[0]
        #expect(h.segmentationType == (v4 ? VirtioNetHeader.Segmentation.tcp4 : .tcp6).rawValue)
        #expect(h.flags == VirtioNetHeader.needsChecksum && h.segmentSize == 1368 && h.headerLength == UInt16(ip + 32))
        #expect(h.checksumStart == UInt16(ip) && h.checksumOffset == 16)
        #expect(packet.count == original.count)
        #expect(Array(packet[(ip + 32)...]) == payload)
        #expect(packet[ip + 13] & 0x08 != 0, "the last segment's PSH is kept")
        var completed = packet
        completed.withUnsafeMutableBytes { _ = InternetChecksum.completePartial($0, start: ip, offset: 16) }
        #expect(F.checksumsVerify(completed))
        // And cut once more, the same segments as before.
        #expect(try F.segments(h, packet).get() == segments)
        #expect(c.coalesced == 14 && c.superPackets == 1)
    }

    @Test func interleavedFlowsStayApartAndInOrder() throws {
        let a: [[UInt8]] = (0..<4).map { (i: Int) -> [UInt8] in F.tcp(v4: true, seq: UInt32(1000 + i * 100), payload: F.random(100), id: UInt16(10 + i)) }
        var b: [[UInt8]] = (0..<4).map { (i: Int) -> [UInt8] in F.tcp(v4: false, seq: UInt32(50 + i * 100), payload: F.random(100)) }
        // Another flow of the same family: a different destination port.
        var c = F.tcp(v4: true, seq: 1, payload: F.random(100), id: 99)
        c[23] = 0x52; fixTCPChecksum(&c, v4: true)
        let mixed = [a[0], b[0], c, a[1], b[1], a[2], b[2], a[3], b[3]]
        let (sink, _) = F.coalesce(mixed)
        #expect(sink.writes.count == 3)
        let bySize: [Int] = sink.writes.map { $0.1.count }.sorted()
        #expect(bySize == [c.count, a[0].count + 300, b[0].count + 300])
        // A gap in the sequence ends the run; the packet after it starts a new one (which the
        // fourth, now out of sequence, ends in turn).
        b[2] = F.tcp(v4: false, seq: 50 + 2 * 100 + 1, payload: F.random(100))
        let (gap, _) = F.coalesce(b)
        #expect(gap.writes.map { $0.1.count } == [b[0].count + 100, b[0].count, b[0].count])
    }

    @Test func whatCannotBeMergedIsWrittenAloneAfterItsFlow() throws {
        let first = F.tcp(v4: true, seq: 0, payload: F.random(500), id: 1)
        let second = F.tcp(v4: true, seq: 500, payload: F.random(500), id: 2)
        let fin = F.tcp(v4: true, seq: 1000, payload: F.random(10), flags: 0x11, id: 3)
        let udp = F.udp(v4: true, payload: F.random(50), partial: false)
        let (sink, _) = F.coalesce([first, second, udp, fin])
        #expect(sink.writes.count == 3)
        #expect(sink.writes[0].1 == udp, "another protocol goes at once")
        #expect(sink.writes[0].0 == VirtioNetHeader(), "with an empty header")
        #expect(sink.writes[1].1.count == first.count + 500, "the run first")
        #expect(sink.writes[2].1 == fin, "then the FIN, alone")
        // A bad checksum is never merged (merging would make the kernel recompute it into a good one).
        var bad = second; bad[bad.count - 1] ^= 0xff
        let (checked, c) = F.coalesce([first, bad])
        #expect(checked.writes.map(\.1) == [first, bad])
        #expect(c.badChecksums == 1)
        // Different options (timestamps), window, TTL or a non-counting IPv4 identification end the run.
        var options = F.timestamps; options[7] = 0x11
        for other in [F.tcp(v4: true, seq: 500, payload: F.random(500), id: 2, options: options),
                      F.tcp(v4: true, seq: 500, payload: F.random(500), id: 2, window: 513),
                      F.tcp(v4: true, seq: 500, payload: F.random(500), id: 2, ttl: 63),
                      F.tcp(v4: true, seq: 500, payload: F.random(500), id: 7)] {
            #expect(F.coalesce([first, other]).0.writes.count == 2)
        }
        // A longer segment after a shorter one cannot join (all but the last must be equal).
        let short = F.tcp(v4: true, seq: 0, payload: F.random(100), id: 1)
        let long = F.tcp(v4: true, seq: 100, payload: F.random(200), id: 2)
        #expect(F.coalesce([short, long]).0.writes.count == 2)
    }

    @Test func moreFlowsThanSlotsWriteTheOldestOut() throws {
        // Nine flows, eight slots: every packet still comes out exactly once.
        var packets: [[UInt8]] = []
        for f in 0..<9 {
            var p = F.tcp(v4: false, seq: 0, payload: F.random(64))
            p[41] = UInt8(f); fixTCPChecksum(&p, v4: false)
            packets.append(p)
        }
        let (sink, _) = F.coalesce(packets)
        #expect(sink.writes.map(\.1).sorted { $0.lexicographicallyPrecedes($1) } == packets.sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// Garbage never crashes it and never loses or duplicates a packet.
    @Test func garbageComesOutAsItWentIn() throws {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<200 {
            var packets: [[UInt8]] = []
            for _ in 0..<20 {
                var p = F.tcp(v4: Bool.random(using: &rng), seq: UInt32.random(in: 0...3, using: &rng) * 100,
                              payload: F.random(Int.random(in: 0...120, using: &rng)))
                for _ in 0..<Int.random(in: 0...3, using: &rng) { p[Int.random(in: 0..<p.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                if round % 2 == 0, Bool.random(using: &rng) { p = Array(p.prefix(Int.random(in: 0...p.count, using: &rng))) }
                packets.append(p)
            }
            let (sink, _) = F.coalesce(packets, flows: 1 + round % 4)
            // Each write stands for one packet, or for as many as its super-packet cuts into.
            let represented = sink.writes.reduce(0) { n, w in
                n + (w.0.segmentationType == 0 ? 1 : ((try? F.segments(w.0, w.1).get().count) ?? -1000))
            }
            #expect(represented == packets.count, "round \(round)")
        }
    }

    func fixTCPChecksum(_ p: inout [UInt8], v4: Bool) {
        let ip = v4 ? 20 : 40
        p[ip + 16] = 0; p[ip + 17] = 0
        var c = F.sum(F.pseudo(v4: v4, proto: 6, length: p.count - ip))
        Array(p[ip...]).withUnsafeBytes { c.add($0) }
        let v = c.value
        p[ip + 16] = UInt8(v >> 8); p[ip + 17] = UInt8(v & 0xff)
    }
}
