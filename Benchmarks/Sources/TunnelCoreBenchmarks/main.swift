// TunnelCore benchmarks: seal and open of 1420-byte packets (GB/s) beside OpenSSL called from C
// (the anchor, same run); the per-packet send path (allowed-IP lookup + seal + header) and receive
// path (open + replay window); allowed-IP lookups with 100,000 peers. Heap allocations are counted
// during every Swift loop. Run: swift run -c release --package-path Benchmarks TunnelCoreBenchmarks [--quick]
import CMallocCounter
import CSealReference
import PacketKit
import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

let quick = CommandLine.arguments.contains("--quick")
let trials = quick ? 3 : 7
let packets = quick ? 20_000 : 200_000
let length = 1420

func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9 }

/// Best time and total allocations of `trials` runs of `body`.
func measure(_ body: () -> Void) -> (best: Double, allocations: UInt) {
    var best = Double.infinity, allocations: UInt = 0
    for _ in 0..<trials {
        let a = sixgate_malloc_count(), t = now()
        body()
        best = min(best, now() - t)
        allocations += sixgate_malloc_count() - a
    }
    return (best, allocations)
}

func f2(_ v: Double) -> String { let r = (v * 100).rounded() / 100; return "\(r)" }

let buffer = UnsafeMutableRawPointer.allocate(byteCount: 16 + length + 32, alignment: 16)
buffer.initializeMemory(as: UInt8.self, repeating: 0xab, count: 16 + length + 32)
let aead = ChaChaPoly()
let key = Bytes32(Array(repeating: UInt8(7), count: 32))!

// Seal: library vs C anchor, alternating.
var swiftBest = Double.infinity, cBest = Double.infinity, sealAllocations: UInt = 0
for _ in 0..<trials {
    let s = measure { for i in 0..<packets { _ = aead.seal(key: key, nonce: ChaChaPoly.nonce(UInt64(i)), data: buffer + 16, length: length, tag: buffer + 16 + length) } }
    swiftBest = min(swiftBest, s.best); sealAllocations += s.allocations
    let c = measure { _ = ref_seal_loop(buffer.assumingMemoryBound(to: UInt8.self) + 16, length, packets) }
    cBest = min(cBest, c.best)
}
let gb = Double(packets * length) / 1e9
print("seal 1420 B     sixgate \(f2(gb / swiftBest)) GB/s   C/OpenSSL anchor \(f2(gb / cBest)) GB/s   ratio \(f2(cBest / swiftBest))x   allocations \(sealAllocations)")

// Open: seal one packet, then open it repeatedly (open restores the plaintext, so re-seal each time is not needed:
// a failed open would be counted).
var sealedCopy = [UInt8](repeating: 0, count: length + 16)
_ = aead.seal(key: key, nonce: ChaChaPoly.nonce(1), data: buffer + 16, length: length, tag: buffer + 16 + length)
sealedCopy.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: buffer + 16, count: length + 16)) }
var failures = 0
let open = measure {
    for _ in 0..<packets {
        sealedCopy.withUnsafeBytes { (buffer + 16).copyMemory(from: $0.baseAddress!, byteCount: length + 16) }
        if !aead.open(key: key, nonce: ChaChaPoly.nonce(1), data: buffer + 16, length: length, tag: buffer + 16 + length) { failures += 1 }
    }
}
print("open 1420 B     sixgate \(f2(gb / open.best)) GB/s (includes a 1436-byte copy per packet)   failures \(failures)   allocations \(open.allocations)")

// Allowed IPs: 100,000 peers with a /128 each, plus shorter prefixes, looked up by destination.
let peers = 100_000
var table = AllowedIPs<Int>()
for i in 0..<peers { table.insert(.v6(IPv6Prefix(containing: IPv6Address(rawValue: 0x2001_0db8_0000_0000_0000_0000_0000_0000 | UInt128(i)), length: 128)), i) }
table.insert(.v6(IPv6Prefix(containing: IPv6Address(rawValue: 0x2001_0db8 << 96), length: 32)), -1)
for i in 0..<1000 { table.insert(.v4(IPv4Prefix(containing: IPv4Address(rawValue: 0x6440_0000 | UInt32(i) << 8), length: 24)), i) }
let lookups = quick ? 200_000 : 2_000_000
var found = 0
let lookup = measure {
    var x: UInt64 = 88172645463325252
    for _ in 0..<lookups {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        if table.lookup(v6: 0x2001_0db8_0000_0000_0000_0000_0000_0000 | UInt128(x % UInt64(peers + 1000))) != nil { found += 1 }
    }
}
print("allowed-IPs     \(f2(Double(lookups) / lookup.best / 1e6)) M lookups/s with \(peers) peers (\(table.count) prefixes)   allocations \(lookup.allocations)")

// The send path's per-packet work (lookup, header, seal) and the receive path's (open, replay check).
var window = ReplayWindow()
var counter: UInt64 = 0
let send = measure {
    for i in 0..<packets {
        guard table.lookup(v6: 0x2001_0db8_0000_0000_0000_0000_0000_0000 | UInt128(i % peers)) != nil else { continue }
        buffer.storeBytes(of: UInt32(4).littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: counter.littleEndian, toByteOffset: 8, as: UInt64.self)
        _ = aead.seal(key: key, nonce: ChaChaPoly.nonce(counter), data: buffer + 16, length: length, tag: buffer + 16 + length)
        counter += 1
    }
}
print("send path       \(f2(Double(packets) / send.best / 1e6)) M packets/s (\(f2(gb / send.best)) GB/s)   allocations \(send.allocations)")
var accepted = 0
let keepaliveTag = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
_ = aead.seal(key: key, nonce: ChaChaPoly.nonce(1), data: buffer + 16, length: 0, tag: keepaliveTag)
let receive = measure {
    for i in 0..<packets {
        if aead.open(key: key, nonce: ChaChaPoly.nonce(1), data: buffer + 16, length: 0, tag: keepaliveTag) {
            if window.accept(counter + UInt64(i)) { accepted += 1 }
        }
    }
    counter += UInt64(packets)
}
if accepted != packets * trials { print("FAIL: \(packets * trials - accepted) keepalives were not accepted"); exit(1) }
print("receive checks  \(f2(Double(packets) / receive.best / 1e6)) M packets/s (open of a keepalive + replay window)   allocations \(receive.allocations)")

// TUN offload: a 64 KiB TCP super-packet (IPv6, timestamps) cut into 1380-byte segments with every
// checksum summed (SuperPacket), and those segments coalesced again (TCPCoalescer, checksums
// verified, the super-packet's headers rewritten). The anchor is memcpy of the same bytes.
let superPayload = 47 * 1380
let superLength = 40 + 32 + superPayload
let superPacket = UnsafeMutableRawBufferPointer.allocate(byteCount: superLength, alignment: 16)
superPacket.initializeMemory(as: UInt8.self, repeating: 0x5a)
let ipv6Header: [UInt8] = [0x60, 0, 0, 0, UInt8((superLength - 40) >> 8), UInt8((superLength - 40) & 0xff), 6, 64]
    + [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1] + [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]
let tcpHeader: [UInt8] = [0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x80, 0x18, 2, 0, 0, 0, 0, 0, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]
(ipv6Header + tcpHeader).withUnsafeBytes { superPacket.copyMemory(from: $0) }
var vnet = VirtioNetHeader()
vnet.flags = VirtioNetHeader.needsChecksum; vnet.segmentationType = VirtioNetHeader.Segmentation.tcp6.rawValue
vnet.headerLength = 72; vnet.segmentSize = 1380; vnet.checksumStart = 40; vnet.checksumOffset = 16
let segmentSlots = UnsafeMutableRawPointer.allocate(byteCount: 64 * 2048, alignment: 16)
let superRounds = quick ? 200 : 2000
var segmentsMade = 0
let segmenting = measure {
    for _ in 0..<superRounds {
        guard let sp = try? SuperPacket(header: vnet, packet: superPacket) else { continue }
        for i in 0..<sp.count { _ = sp.segment(i, into: segmentSlots + i * 2048) }
        segmentsMade &+= sp.count
    }
}
let copying = measure {
    for _ in 0..<superRounds { for i in 0..<47 { memcpy(segmentSlots + i * 2048, superPacket.baseAddress! + 72 + i * 1380, 1380) } }
}
let superBytes = Double(superRounds * superPayload) / 1e9
print("segment 64 KiB  sixgate \(f2(superBytes / segmenting.best)) GB/s (47 segments, every checksum)   memcpy anchor \(f2(superBytes / copying.best)) GB/s   allocations \(segmenting.allocations)")
// The anchor overwrote the slots: the segments once more.
if let sp = try? SuperPacket(header: vnet, packet: superPacket) { for i in 0..<sp.count { _ = sp.segment(i, into: segmentSlots + i * 2048) } }
let coalescer = TCPCoalescer()
var superPacketsOut = 0
let coalescing = measure {
    for _ in 0..<superRounds {
        for i in 0..<47 {
            // The segments were cut above; the coalescer rewrites the first one's headers, so each round re-cuts it.
            coalescer.add(UnsafeMutableRawBufferPointer(start: segmentSlots + i * 2048, count: 72 + 1380)) { _, n in superPacketsOut &+= n > 2 ? 1 : 0 }
        }
        coalescer.flush { _, n in superPacketsOut &+= n > 2 ? 1 : 0 }
        if let sp = try? SuperPacket(header: vnet, packet: superPacket) { _ = sp.segment(0, into: segmentSlots) }
    }
}
if superPacketsOut != superRounds * trials { print("FAIL: \(superRounds * trials) super-packets expected from the coalescer, \(superPacketsOut) came"); exit(1) }
print("coalesce 47     sixgate \(f2(superBytes / coalescing.best)) GB/s (checksums verified, no copy)   allocations \(coalescing.allocations)")

// Queue management in front of the sealing thread (FairQueue, FQ-CoDel): a read's worth of packets
// of 16 flows (a 64 KiB super-packet and fifteen 1,400-byte packets) queued and taken out by the
// scheduler, CoDel deciding each. Reported per packet; the anchor is the copy a read makes anyway.
let fairQueue = FairQueue(maximumPacket: 65_536 + 64, headerOffset: VirtioNetHeader.size)
let small = UnsafeMutableRawPointer.allocate(byteCount: 1400, alignment: 16)
small.initializeMemory(as: UInt8.self, repeating: 0, count: 1400)
ipv6Header.withUnsafeBytes { small.copyMemory(from: $0.baseAddress!, byteCount: 40) }
var queued = 0, clock: Int64 = 0
let queueing = measure {
    for _ in 0..<superRounds {
        for f in 0..<16 {
            guard let slot = fairQueue.reserve() else { continue }
            let length = f == 0 ? superLength : 1400
            let source: UnsafeRawPointer = f == 0 ? UnsafeRawPointer(superPacket.baseAddress!) : UnsafeRawPointer(small)
            memcpy(slot + VirtioNetHeader.size, source, length)
            slot.storeBytes(of: UInt8(f), toByteOffset: VirtioNetHeader.size + 40 + 1, as: UInt8.self)   // a port per flow
            fairQueue.commit(length: VirtioNetHeader.size + length, at: clock)
        }
        clock &+= 1_000
        while let id = fairQueue.dequeue(now: clock) { queued &+= 1; fairQueue.release(id) }
    }
}
if queued != superRounds * trials * 16 { print("FAIL: \(superRounds * trials * 16) packets through the fair queue expected, \(queued) came"); exit(1) }
print("fq-codel        \(f2(Double(superRounds * 16) / queueing.best / 1e6)) M packets/s through FQ-CoDel (1 super-packet + 15 packets per round, copies included)   allocations \(queueing.allocations)")

let allAllocations: [UInt] = [sealAllocations, open.allocations, lookup.allocations, send.allocations, receive.allocations,
                               segmenting.allocations, coalescing.allocations, queueing.allocations]
if allAllocations.reduce(0, +) != 0 {
    print("FAIL: the per-packet paths allocated")
    exit(1)
}
