import PacketKit
import Testing
@testable import SixgateIO
#if canImport(Glibc)
import Glibc
#endif

/// CoDel's control law (RFC 8289), ECN marking (RFC 3168) and FQ-CoDel's scheduler (RFC 8290), on
/// a clock the tests move; no root, no sockets.
@Suite struct QueueManagementTests {
    static let ms: Int64 = 1_000_000
    var ms: Int64 { Self.ms }

    @Test func coDelDropsOnlyAfterAStandingQueueForAWholeInterval() {
        var c = CoDel()
        // A queue that spikes to 50 ms and drains below target inside each interval: a good queue.
        var t: Int64 = 0
        for i in 0..<1000 {
            t += ms
            let congested = c.congested(sojourn: i % 50 == 0 ? 2 * ms : 50 * ms, now: t)
            #expect(!congested)
        }
        t += ms
        _ = c.congested(sojourn: ms, now: t)
        // Above target from now on: nothing until a whole interval has passed, then a drop.
        var drops: [Int64] = []
        let start = t
        for _ in 0..<1000 {
            t += ms
            if c.congested(sojourn: 20 * ms, now: t) { drops.append(t - start) }
        }
        #expect(drops.first == 101 * ms, "the first drop one interval after the delay went above target: \(drops.prefix(3))")
        // Then at interval/sqrt(count): 100/sqrt(1), 100/sqrt(2), ... ms apart, each gap shorter.
        let gaps = zip(drops.dropFirst(), drops).map { $0 - $1 }
        #expect(gaps.count >= 8)
        #expect(abs(gaps[0] - 100 * ms) <= ms && abs(gaps[1] - 71 * ms) <= ms && abs(gaps[2] - 58 * ms) <= ms, "\(gaps.prefix(3))")
        #expect(zip(gaps.dropFirst(), gaps).allSatisfy { $0 <= $1 })
        #expect(c.dropping)
        // Below target once: dropping stops at once.
        t += ms
        let congested = c.congested(sojourn: ms, now: t)
        #expect(!congested && !c.dropping)
        // Back above target soon after: the drop rate resumes where it was (RFC 8289 §5.5), so the
        // second drop of the new episode comes sooner than 100 ms after the first.
        var again: [Int64] = []
        for _ in 0..<300 {
            t += ms
            if c.congested(sojourn: 20 * ms, now: t) { again.append(t) }
        }
        #expect(again.count >= 2 && again[1] - again[0] < 60 * ms, "\(again.prefix(3))")
    }

    static func ipv4(tos: UInt8) -> [UInt8] {
        var h: [UInt8] = [0x45, tos, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2]
        var c = InternetChecksum(); h.withUnsafeBytes { c.add($0) }
        h[10] = UInt8(c.value >> 8); h[11] = UInt8(c.value & 0xff)
        return h + [UInt8](repeating: 0xab, count: 20)
    }

    static func headerChecksumHolds(_ p: [UInt8]) -> Bool {
        var c = InternetChecksum(); p[0..<20].withUnsafeBytes { c.add($0) }
        return c.value == 0
    }

    @Test(arguments: [UInt8(0x01), 0x02, 0xfe, 0x4a])
    func anECNCapableIPv4PacketIsMarkedAndItsChecksumStillHolds(tos: UInt8) {
        var p = Self.ipv4(tos: tos)
        let marked = p.withUnsafeMutableBytes { ECN.markCongestionExperienced($0) }
        #expect(marked)
        #expect(p[1] == tos | 3, "DSCP kept, ECN = CE")
        #expect(Self.headerChecksumHolds(p))
    }

    @Test func aPacketThatIsNotECNCapableIsLeftAsItIs() {
        for tos: UInt8 in [0x00, 0xb8] {
            var p = Self.ipv4(tos: tos)
            let before = p
            let marked = p.withUnsafeMutableBytes { ECN.markCongestionExperienced($0) }
            #expect(!marked)
            #expect(p == before)
        }
        var v6 = [0x60, 0x0b, 0x8a, 0xbc] + [UInt8](repeating: 0, count: 36)   // traffic class 0xb8: Not-ECT
        let v6Marked = v6.withUnsafeMutableBytes { ECN.markCongestionExperienced($0) }
        #expect(!v6Marked)
        var short: [UInt8] = [0x45, 0x02, 0, 0]
        let shortMarked = short.withUnsafeMutableBytes { ECN.markCongestionExperienced($0) }
        #expect(!shortMarked)
    }

    @Test func anECNCapableIPv6PacketIsMarkedInItsTrafficClass() {
        var v6 = [0x6b, 0x9a, 0xbc, 0xde] + [UInt8](repeating: 0, count: 36)   // traffic class 0xb9: ECT(1), flow label 0xabcde
        let marked = v6.withUnsafeMutableBytes { ECN.markCongestionExperienced($0) }
        #expect(marked)
        #expect(v6[0] == 0x6b && v6[1] == 0xba && v6[2] == 0xbc && v6[3] == 0xde, "traffic class 0xbb, flow label kept")
    }

    // MARK: FQ-CoDel

    /// An IPv4 UDP packet of `size` bytes from port `flow`, carrying `tag` after the header.
    static func packet(flow: UInt16, tag: UInt32, size: Int = 100, tos: UInt8 = 0) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: size)
        p[0] = 0x45; p[1] = tos; p[2] = UInt8(truncatingIfNeeded: size >> 8); p[3] = UInt8(truncatingIfNeeded: size); p[8] = 64; p[9] = 17
        p.replaceSubrange(12..<20, with: [198, 51, 100, 1, 198, 51, 100, 2])
        p[20] = UInt8(flow >> 8); p[21] = UInt8(flow & 0xff); p[22] = 0x30; p[23] = 0x39
        withUnsafeBytes(of: tag.bigEndian) { p.replaceSubrange(28..<32, with: $0) }
        return p
    }

    static func tag(_ p: UnsafeMutableRawBufferPointer) -> UInt32 { UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 28, as: UInt32.self)) }

    static func add(_ q: FairQueue, _ p: [UInt8], at t: Int64 = 0) {
        let slot = q.reserve()!
        p.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: p.count) }
        q.commit(length: p.count, at: t)
    }

    static func drain(_ q: FairQueue, now: Int64 = 0) -> [UInt32] {
        var out: [UInt32] = []
        while let id = q.dequeue(now: now) { out.append(tag(q.packet(id))); q.release(id) }
        return out
    }

    @Test func aSparseFlowGoesBeforeABulkFlowsBacklog() {
        let q = FairQueue(maximumPacket: 65_600, codel: nil)
        for i in 0..<40 { Self.add(q, Self.packet(flow: 1000, tag: UInt32(i), size: 60_000)) }   // super-packets of a bulk flow
        Self.add(q, Self.packet(flow: 2000, tag: 999))                                            // then one ping
        let out = Self.drain(q)
        #expect(out.count == 41)
        #expect(out.firstIndex(of: 999)! <= 1, "the sparse flow's packet leaves first or second, not 41st: \(out.prefix(4))")
        #expect(out.filter { $0 != 999 } == (0..<40).map { UInt32($0) }, "a flow stays in order")
        #expect(q.isEmpty && q.bytes == 0)
    }

    @Test func twoBulkFlowsShareTheSealingThreadByBytes() {
        let q = FairQueue(maximumPacket: 65_600, codel: nil)
        // Flow A sends 1,500-byte packets, flow B 6,000-byte ones: by bytes, A gets ~4 per B.
        for i in 0..<200 { Self.add(q, Self.packet(flow: 1, tag: UInt32(i), size: 1500)) }
        for i in 0..<50 { Self.add(q, Self.packet(flow: 2, tag: UInt32(1000 + i), size: 6000)) }
        let out = Self.drain(q)
        let firstHalf = out.prefix(125)
        let a = firstHalf.filter { $0 < 1000 }.count, b = firstHalf.count - a
        #expect(a >= 85 && a <= 115 && b >= 20 && b <= 30, "bytes shared about evenly: A \(a) x 1500, B \(b) x 6000")
    }

    @Test func codelMarksECNCapablePacketsAndDropsTheOthersOfAStandingQueue() {
        let q = FairQueue(maximumPacket: 65_600, codel: CoDel())
        // Packets that waited 20 ms, dequeued over 400 ms: CoDel acts after its 100 ms interval.
        var out: [UInt32] = [], t: Int64 = 0
        for i in 0..<400 {
            Self.add(q, Self.packet(flow: 7, tag: UInt32(i), tos: i % 2 == 0 ? 0x02 : 0x00), at: t)
            t += Self.ms
            if let id = q.dequeue(now: t + 20 * Self.ms) {
                let p = q.packet(id)
                if p[1] & 3 == 3 { out.append(UInt32(i)) }
                q.release(id)
            }
        }
        #expect(q.marked > 0 && q.dropped > 0, "marked \(q.marked), dropped \(q.dropped)")
        #expect(out.count == Int(q.marked), "every mark is a CE packet that left")
        #expect(q.marked + q.dropped < 40, "a few, not a flood: \(q.marked) + \(q.dropped)")
    }

    @Test func whenEverySlotIsTakenTheLongestFlowLosesItsOldest() {
        let q = FairQueue(maximumPacket: 65_600, bigSlots: 8, smallSlots: 16, codel: nil)
        for i in 0..<8 { Self.add(q, Self.packet(flow: 1, tag: UInt32(i), size: 30_000)) }
        for i in 0..<16 { Self.add(q, Self.packet(flow: 2, tag: UInt32(100 + i))) }   // small: small slots
        Self.add(q, Self.packet(flow: 3, tag: 500, size: 30_000))                     // needs a big slot
        #expect(q.overflowDropped == 1)
        let out = Self.drain(q)
        #expect(!out.contains(0), "flow 1 (the longest, 240 kB) lost its oldest packet")
        #expect(out.contains(500) && (100..<116).allSatisfy { out.contains(UInt32($0)) })
    }

    @Test func randomUseNeverLosesOrDuplicatesAPacket() {
        let q = FairQueue(maximumPacket: 65_600, bigSlots: 6, smallSlots: 12, codel: nil)
        var inQueue = Set<UInt32>(), next: UInt32 = 0
        var g = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            if Bool.random(using: &g) {
                let size = Bool.random(using: &g) ? Int.random(in: 32...2048, using: &g) : Int.random(in: 2049...65_600, using: &g)
                Self.add(q, Self.packet(flow: UInt16.random(in: 1...5, using: &g), tag: next, size: size))
                inQueue.insert(next); next += 1
                #expect(q.count + Int(q.overflowDropped) == inQueue.count, "held + dropped = added - left")
            } else if let id = q.dequeue(now: 0) {
                let t = Self.tag(q.packet(id))
                #expect(inQueue.remove(t) != nil, "packet \(t) left once, after it came")
                q.release(id)
            }
        }
        let rest = Self.drain(q)
        for t in rest { #expect(inQueue.remove(t) != nil) }
        #expect(inQueue.count == Int(q.overflowDropped), "what did not come out was dropped and counted")
    }
}
