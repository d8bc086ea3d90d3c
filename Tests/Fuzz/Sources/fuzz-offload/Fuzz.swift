// TUN offload on arbitrary input: a virtio header and whatever follows it, as a hostile or buggy
// kernel peer could hand them over. SuperPacket must refuse or cut it into segments that fit the
// promised size, carry consistent lengths and verify; the segments (and, by mode bit 0, pieces of
// the raw input as further "received" packets) go through a TCPCoalescer with 1-4 flow slots, whose
// every write must be a well-formed gather (header first, lengths within 64 KiB), and which must
// stand for exactly the packets that went in: a GSO write cuts again into as many as it merged.
// The same packets then go through a small FairQueue (FQ-CoDel) that mode bits make fill, overflow
// and judge stale: every packet comes out once, byte for byte (but for a CE mark), or is counted.
import FuzzSupport
import PacketKit
import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) let out = UnsafeMutableRawPointer.allocate(byteCount: 1 << 17, alignment: 16)
nonisolated(unsafe) let arena = UnsafeMutableRawPointer.allocate(byteCount: 80 * 2048, alignment: 16)
nonisolated(unsafe) let recut = UnsafeMutableRawPointer.allocate(byteCount: 1 << 17, alignment: 16)

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let mode = input.u8()
    let headerBytes = input.take(VirtioNetHeader.size)
    guard headerBytes.count == VirtioNetHeader.size else { return 0 }
    let header = headerBytes.withUnsafeBytes { VirtioNetHeader($0) }
    var packet = input.rest()
    guard packet.count <= 65_535 else { return 0 }

    // Segments, each copied into its own 2 KiB slot of the arena (at most 64 of them).
    var slots: [(Int, Int)] = []   // offset in arena, length
    packet.withUnsafeMutableBytes { raw in
        guard let sp = try? SuperPacket(header: header, packet: raw) else { return }
        require(sp.count >= 1 && sp.count <= SuperPacket.maximumSegments, "count \(sp.count)")
        for i in 0..<sp.count {
            let n = sp.segment(i, into: out)
            require(n > 0 && n <= raw.count, "segment \(i) of \(sp.count) is \(n) bytes from \(raw.count)")
            if sp.kind != .single {
                require(n <= sp.headerLength + sp.segmentSize, "segment \(i) longer than headers + segment size")
                let p = UnsafeRawBufferPointer(start: out, count: n)
                let v4 = p[0] >> 4 == 4
                require(v4 ? Int(p.be16(2)) == n : Int(p.be16(4)) + 40 == n, "IP length of segment \(i)")
                var c = InternetChecksum()
                let ip = v4 ? Int(p[0] & 0x0f) * 4 : 40
                if v4 { c.add(word32: p.be32(12)); c.add(word32: p.be32(16)) } else { c.add(p.slice(8, 40)) }
                c.add(word32: UInt32(v4 ? p[9] : p[6])); c.add(word32: UInt32(n - ip)); c.add(p.slice(ip, n))
                require(c.verifies, "segment \(i)'s transport checksum does not verify")
            }
            if slots.count < 64, n <= 2048 {
                let at = slots.count * 2048
                (arena + at).copyMemory(from: out, byteCount: n)
                slots.append((at, n))
            }
        }
    }
    // Pieces of the raw input as more packets.
    if mode & 1 != 0 {
        var at = 0
        let step = 1 + Int(mode >> 1) * 7
        while at < packet.count, slots.count < 80 {
            let n = min(step, packet.count - at, 2048)
            packet.withUnsafeBytes { (arena + slots.count * 2048).copyMemory(from: $0.baseAddress! + at, byteCount: n) }
            slots.append((slots.count * 2048, n))
            at += n
        }
    }
    let coalescer = TCPCoalescer(flows: 1 + Int(mode >> 5 & 3))
    var represented = 0
    let write: TCPCoalescer.Writer = { v, n in
        require(n >= 2 && v[0].iov_len == VirtioNetHeader.size, "a write without its header")
        var total = 0
        for i in 1..<n { total += v[i].iov_len; require(v[i].iov_len > 0 || n == 2, "an empty piece") }
        require(total <= 65_535, "a write of \(total) bytes")
        let h = VirtioNetHeader(UnsafeRawBufferPointer(start: v[0].iov_base, count: VirtioNetHeader.size))
        if h.segmentationType == 0 { represented += 1; return }
        var at = 0
        for i in 1..<n { (recut + at).copyMemory(from: v[i].iov_base!, byteCount: v[i].iov_len); at += v[i].iov_len }
        guard let sp = try? SuperPacket(header: h, packet: UnsafeMutableRawBufferPointer(start: recut, count: total)) else {
            require(false, "a coalesced super-packet its own segmenter refuses"); return
        }
        represented += sp.count
    }
    for (at, n) in slots { coalescer.add(UnsafeMutableRawBufferPointer(start: arena + at, count: n), write: write) }
    coalescer.flush(write)
    require(represented == slots.count, "\(slots.count) packets went in, writes stand for \(represented)")

    // FQ-CoDel: the packets (their first bytes tagged with their number when long enough to carry
    // one past an IP header) in, some out between, all out at the end.
    let queue = FairQueue(maximumPacket: 4096, bigSlots: 2 + Int(mode >> 1 & 3), smallSlots: Int(mode >> 3 & 7), codel: CoDel(target: 1, interval: 2))
    var expected: [Int: [UInt8]] = [:], delivered = 0, clock: Int64 = 0
    func take() {
        clock += 1 + Int64(mode >> 6) * 3
        while let id = queue.dequeue(now: clock) {
            let p = queue.packet(id)
            let tag = p.count >= 28 ? Int(p.loadUnaligned(fromByteOffset: 24, as: UInt32.self)) : -1
            if let want = expected.removeValue(forKey: tag) {
                require(want.count == p.count, "packet \(tag) came out \(p.count) bytes, went in \(want.count)")
                let v4 = p[0] >> 4 == 4
                for i in 0..<p.count where p[i] != want[i] {
                    require(i == 1 || (v4 && (i == 10 || i == 11)), "packet \(tag) changed at byte \(i), not by a CE mark")
                }
            }
            delivered += 1
            queue.release(id)
            if clock % 3 == 0 { break }
        }
    }
    for (k, (at, n)) in slots.enumerated() {
        guard let slot = queue.reserve() else { require(false, "a queue that can drop cannot be full"); break }
        slot.copyMemory(from: arena + at, byteCount: n)
        if n >= 28 { slot.storeBytes(of: UInt32(k), toByteOffset: 24, as: UInt32.self); expected[k] = Array(UnsafeRawBufferPointer(start: slot, count: n)) }
        queue.commit(length: n, at: clock)
        if k % (1 + Int(mode & 7)) == 0 { take() }
    }
    while !queue.isEmpty { take() }
    require(delivered + Int(queue.dropped + queue.overflowDropped) == slots.count,
            "\(slots.count) packets in, \(delivered) out, \(queue.dropped) + \(queue.overflowDropped) dropped")
    return 0
}
