// NDPFlood: sends Neighbor Solicitations for distinct targets inside a prefix at a bounded rate
// from a namespace, optionally interleaved with invalid ones (hop limit 254), and times each
// advertisement that comes back. Used by Benchmarks/ndp-proxy-side-by-side.sh for npd6, ndppd and
// ndp-proxy alike. Usage: NDPFlood NAMESPACE INTERFACE RATE SECONDS [INVALID_PER_VALID=0]
// The sender sends what is due every 0.2 ms and sleeps in between (it does not spin on a core the
// proxies need); latency runs from just before each sendto to the kernel's receive timestamp of the
// answer (SO_TIMESTAMPNS), so the receiver's own scheduling does not count.
// Targets are 2001:db8:5::1:0/96 + n; the source is 2001:db8:5::1 with MAC 02:00:00:00:0a:01.
import CPacketSocketBench
import Foundation
import PacketKit
import RouteKit

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)   // the clock SO_TIMESTAMPNS stamps with
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

let args = CommandLine.arguments
guard args.count >= 5, let rate = Int(args[3]), let seconds = Double(args[4]), rate > 0, rate <= 1_000_000, seconds > 0, seconds <= 60 else {
    print("usage: NDPFlood NAMESPACE INTERFACE RATE(1-1000000) SECONDS(<=60) [INVALID_PER_VALID=0]")
    exit(64)
}
let invalidPerValid = args.count > 5 ? Int(args[5]) ?? 0 : 0
let namespace = NetworkNamespace.named(args[1])
let ifindex = try RouteSocket(namespace: namespace).interfaceIndex(args[2])
let fd = try namespace.perform { () throws(RouteKitError) -> Int32 in socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(0x86dd).bigEndian)) }
guard fd >= 0 else { print("NDPFlood: packet socket: errno \(errno)"); exit(1) }
guard sixgate_packet_bind(fd, ifindex) == 0 else { print("NDPFlood: bind: errno \(errno)"); exit(1) }
var big: Int32 = 16 << 20
setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, 4)
guard sixgate_bench_timestamps(fd) == 0 else { print("NDPFlood: SO_TIMESTAMPNS: errno \(errno)"); exit(1) }

let mac = MACAddress(rawValue: 0x0200_0000_0a01)
let source = IPv6Address("2001:db8:5::1")!
func frame(target: IPv6Address, hopLimit: UInt8) -> [UInt8] {
    let dst = target.solicitedNodeMulticast
    let ip = try! PacketRepr.ipv6(source: source, destination: dst, hopLimit: hopLimit,
                                  .icmpv6(.neighborSolicitation(target: target, options: [.sourceLinkLayerAddress(mac)]))).emit()
    return [0x33, 0x33] + dst.bytes[12...] + mac.bytes + [0x86, 0xdd] + ip
}
let total = Int(Double(rate) * seconds)
let base: UInt128 = IPv6Address("2001:db8:5::1:0")!.rawValue
// Frames are built before the clock starts, so the sender's own cost is only sendto.
let frames = (0..<total).map { frame(target: IPv6Address(rawValue: base + UInt128($0)), hopLimit: 255) }
let invalid = (0..<min(total, 1000)).map { frame(target: IPv6Address(rawValue: base + UInt128(2_000_000 + $0)), hopLimit: 254) }

final class Results: @unchecked Sendable {
    /// When each valid solicitation left (written by the sender before its sendto, read by the
    /// receiver only for answers, which come after it); -1 once answered.
    let sentAt: UnsafeMutablePointer<Double>
    var latency = [Double]()
    var answered = 0
    var running = true
    let lock = NSLock()
    init(total: Int) { sentAt = .allocate(capacity: total); sentAt.initialize(repeating: 0, count: total) }
}
let results = Results(total: total)
let receiver = Thread {
    let stride = 256
    let buffers = UnsafeMutableRawPointer.allocate(byteCount: 64 * stride, alignment: 16)
    var lengths = [UInt32](repeating: 0, count: 64), stamps = [Double](repeating: 0, count: 64)
    var latency = [Double](), answered = 0
    latency.reserveCapacity(total)
    while results.lock.withLock({ results.running }) {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 50) > 0 else { continue }
        while true {
            let n = Int(sixgate_bench_receive_batch(fd, buffers, stride, 64, &lengths, &stamps))
            guard n > 0 else { break }
            for i in 0..<n {
                let b = buffers.advanced(by: i * stride).assumingMemoryBound(to: UInt8.self)
                guard lengths[i] >= 14 + 40 + 24, b[12] == 0x86, b[13] == 0xdd, b[14 + 6] == 58, b[14 + 40] == 136 else { continue }
                var raw: UInt128 = 0
                for j in 0..<16 { raw = raw << 8 | UInt128(b[14 + 40 + 8 + j]) }
                let offset = raw &- base
                guard offset < UInt128(total) else { continue }
                let index = Int(offset)
                let s = results.sentAt[index]
                if s > 0 { latency.append((stamps[i] > 0 ? stamps[i] : now()) - s); answered += 1; results.sentAt[index] = -1 }
            }
        }
    }
    buffers.deallocate()
    results.lock.withLock { results.latency = latency; results.answered = answered }
}
receiver.start()
let start = now()
var k = 0, i = 0
while i < total {
    // Pace: packet i is due at start + i/rate; what is due goes out, then a 0.2 ms sleep.
    let due = min(total, Int((now() - start) * Double(rate)) + 1)
    while i < due {
        results.sentAt[i] = now()
        _ = frames[i].withUnsafeBytes { sixgate_packet_send(fd, ifindex, $0.baseAddress, $0.count) }
        for _ in 0..<invalidPerValid {
            _ = invalid[k % invalid.count].withUnsafeBytes { sixgate_packet_send(fd, ifindex, $0.baseAddress, $0.count) }
            k += 1
        }
        i += 1
    }
    usleep(200)
}
let sendTime = now() - start
usleep(500_000)
results.lock.withLock { results.running = false }
while !receiver.isFinished { usleep(10_000) }
let lat = results.latency.sorted()
func pct(_ q: Double) -> String { lat.isEmpty ? "-" : String(format: "%.3f", lat[min(lat.count - 1, Int(Double(lat.count) * q))] * 1000) }
print(String(format: "sent %d valid (+%d invalid each) in %.2f s; answered %d (%.1f%%), %.0f answers/s; latency ms p50 %@ p99 %@",
             total, invalidPerValid, sendTime, results.answered, 100 * Double(results.answered) / Double(total),
             Double(results.answered) / sendTime, pct(0.5), pct(0.99)))
