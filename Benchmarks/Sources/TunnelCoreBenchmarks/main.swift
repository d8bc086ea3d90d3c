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
if sealAllocations + open.allocations + lookup.allocations + send.allocations + receive.allocations != 0 {
    print("FAIL: the per-packet paths allocated")
    exit(1)
}
