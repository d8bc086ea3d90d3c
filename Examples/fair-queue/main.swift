// FQ-CoDel in front of a slow consumer, as a TUN reader uses it before sealing (SixgateIO's
// FairQueue): a bulk flow queues 30 packets of 9,000 bytes, then a sparse flow (a ping) one small
// packet; the scheduler hands the ping out second, not 31st. Then the bulk flow keeps a standing
// queue (every packet has waited 20 ms when it leaves, for half a second): after CoDel's 100 ms
// interval its ECN-capable packets are marked Congestion Experienced, the others dropped, at a
// rate that grows until the queue would drain.
//   swift run fair-queue
import SixgateIO

/// An IPv4 UDP packet of `size` bytes from port `port`, ECN-capable (ECT(0)) when `ect`.
func packet(port: UInt16, size: Int, ect: Bool) -> [UInt8] {
    var p = [UInt8](repeating: 0, count: size)
    p[0] = 0x45; p[1] = ect ? 0x02 : 0x00; p[2] = UInt8(size >> 8); p[3] = UInt8(size & 0xff); p[8] = 64; p[9] = 17
    p.replaceSubrange(12..<20, with: [198, 51, 100, 1, 198, 51, 100, 2])
    p[20] = UInt8(port >> 8); p[21] = UInt8(port & 0xff); p[22] = 0x30; p[23] = 0x39
    return p
}

func enqueue(_ q: FairQueue, _ p: [UInt8], at t: Int64) {
    guard let slot = q.reserve() else { return }
    p.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: p.count) }
    q.commit(length: p.count, at: t)
}

let q = FairQueue(maximumPacket: 65_536)
for _ in 0..<30 { enqueue(q, packet(port: 5001, size: 9000, ect: false), at: 0) }
enqueue(q, packet(port: 7, size: 84, ect: false), at: 0)
var order: [String] = []
while let id = q.dequeue(now: 0) {
    let p = q.packet(id)
    order.append(p[21] == 7 ? "ping" : "bulk")
    q.release(id)
}
print("order out: \(order.prefix(4).joined(separator: ", ")), ... (ping is #\(order.firstIndex(of: "ping")! + 1) of \(order.count))")

// A standing queue: one packet in and one out per millisecond, each having waited 20 ms.
let ms: Int64 = 1_000_000
var marks: [Int64] = [], drops = 0
for i in 0..<500 {
    let now = Int64(i) * ms
    enqueue(q, packet(port: 5001, size: 1400, ect: i % 2 == 0), at: now - 20 * ms)
    if let id = q.dequeue(now: now) {
        if q.packet(id)[1] & 3 == 3 { marks.append(now / ms) }
        q.release(id)
    }
}
drops = Int(q.dropped)
print("standing queue of 20 ms for 500 ms: \(q.marked) marked (first at \(marks.first.map { "\($0) ms" } ?? "-")), \(drops) dropped")
