// Active queue management for a queue this program reads but does not own: the UDP socket's
// receive queue in front of the decrypting thread. Without it, TCP through the tunnel fills that
// queue (megabytes, a big buffer is what keeps a burst from being dropped) and every packet, a
// ping or a DNS answer too, waits behind it. CoDel (RFC 8289) looks at how long each packet waited
// (its sojourn time, from the kernel's receive timestamp) and, once the queue has stayed above
// `target` for a whole `interval`, drops or ECN-marks a packet at intervals shrinking with the
// square root of the count until the queue drains below target: a short standing queue, bursts
// still absorbed, TCP told early instead of by a tail drop.
import CTunnel

/// CoDel's decision for each packet taken off a queue (RFC 8289 §5, the per-packet form of
/// Linux's `codel_dequeue`). A value owned by the one thread that reads the queue; no allocation,
/// no lock.
///
/// ```swift
/// var codel = CoDel()
/// let now = RealtimeClock.nanoseconds()
/// if codel.congested(sojourn: now - batch.receivedAt(i), now: now) { /* mark CE or drop */ }
/// ```
public struct CoDel: Sendable, Equatable {
    /// The standing queue delay tolerated (RFC 8289: 5 ms).
    public let target: Int64
    /// How long the delay must stay above `target` before the first drop; about a worst-case
    /// round-trip time of the flows (RFC 8289: 100 ms).
    public let interval: Int64
    /// When the delay first went above target plus `interval` (0: it is below target).
    var firstAboveTime: Int64 = 0
    /// When the next drop is due while dropping.
    var dropNext: Int64 = 0
    var count: UInt32 = 0
    var lastCount: UInt32 = 0
    /// Whether the queue is in CoDel's dropping state.
    public private(set) var dropping = false

    /// Times in nanoseconds; the RFC's defaults: 5 ms and 100 ms.
    public init(target: Int64 = 5_000_000, interval: Int64 = 100_000_000) {
        precondition(target > 0 && interval > target, "CoDel needs 0 < target < interval")
        self.target = target; self.interval = interval
    }

    /// Whether the packet taken off the queue at `now` (nanoseconds) after waiting `sojourn`
    /// nanoseconds should be dropped, or ECN-marked if it is ECN-capable. Call it for every packet,
    /// in the order they leave the queue.
    @inline(__always)
    public mutating func congested(sojourn: Int64, now: Int64) -> Bool {
        let okToDrop: Bool
        if sojourn < target {
            firstAboveTime = 0
            okToDrop = false
        } else if firstAboveTime == 0 {
            firstAboveTime = now + interval
            okToDrop = false
        } else {
            okToDrop = now >= firstAboveTime
        }
        if dropping {
            guard okToDrop else { dropping = false; return false }
            guard now >= dropNext else { return false }
            count &+= 1
            dropNext = controlLaw(dropNext)
            return true
        }
        guard okToDrop else { return false }
        dropping = true
        // Back in the dropping state soon after leaving it: start from the drop rate it had, as
        // the queue is likely still too long (RFC 8289 §5.5).
        let delta = count &- lastCount
        count = delta > 1 && now - dropNext < 16 * interval ? delta : 1
        dropNext = controlLaw(now)
        lastCount = count
        return true
    }

    /// `t + interval / sqrt(count)`.
    @inline(__always) func controlLaw(_ t: Int64) -> Int64 {
        t + Int64(Double(interval) / Double(count).squareRoot())
    }
}

/// Explicit Congestion Notification on an IP packet (RFC 3168 §5, RFC 8311).
public enum ECN {
    /// Marks `packet` (an IPv4 or IPv6 packet) Congestion Experienced if it is ECN-capable (ECT(0)
    /// or ECT(1)); the IPv4 header checksum is updated (RFC 1624). Returns false for a packet that is
    /// not ECN-capable (Not-ECT, or no IP packet): it must be dropped instead. A packet already
    /// marked CE stays so (true).
    @inline(__always)
    public static func markCongestionExperienced(_ packet: UnsafeMutableRawBufferPointer) -> Bool {
        guard packet.count >= 20, let p = packet.baseAddress else { return false }
        switch p.load(as: UInt8.self) >> 4 {
        case 4:
            let tos = p.load(fromByteOffset: 1, as: UInt8.self)
            guard tos & 3 != 0 else { return false }
            guard tos & 3 != 3 else { return true }
            // The 16-bit word holding the TOS changes by (tos | 3) - tos in its low byte.
            let old = UInt32(p.load(as: UInt8.self)) << 8 | UInt32(tos)
            let new = old | 3
            p.storeBytes(of: tos | 3, toByteOffset: 1, as: UInt8.self)
            let hc = UInt32(p.load(fromByteOffset: 10, as: UInt8.self)) << 8 | UInt32(p.load(fromByteOffset: 11, as: UInt8.self))
            var sum = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
            sum = (sum & 0xFFFF) + (sum >> 16)
            sum = (sum & 0xFFFF) + (sum >> 16)
            let checksum = UInt16(truncatingIfNeeded: ~sum)
            p.storeBytes(of: UInt8(checksum >> 8), toByteOffset: 10, as: UInt8.self)
            p.storeBytes(of: UInt8(checksum & 0xFF), toByteOffset: 11, as: UInt8.self)
            return true
        case 6:
            guard packet.count >= 40 else { return false }
            // Traffic class = low nibble of byte 0, high nibble of byte 1; ECN is its low 2 bits.
            let b1 = p.load(fromByteOffset: 1, as: UInt8.self)
            guard b1 & 0x30 != 0 else { return false }
            p.storeBytes(of: b1 | 0x30, toByteOffset: 1, as: UInt8.self)
            return true
        default:
            return false
        }
    }
}

/// CLOCK_REALTIME in nanoseconds: the clock of the kernel's receive timestamps
/// (`DatagramBatch.receivedAt`).
public enum RealtimeClock {
    @inline(__always) public static func nanoseconds() -> Int64 { sixgate_realtime_ns() }
}
