// Flow queueing with CoDel (RFC 8290, "FQ-CoDel") for the packets a TUN reader reads ahead of
// sealing them. The kernel's fq_codel cannot do this job in front of a TUN device: the device drops
// from the tail of its own ring when full and never stops the queue, so a qdisc above it never holds
// a packet (Linux 6.x). Read ahead into this queue instead, and the packets of a sparse flow (a ping,
// a DNS query, an SSH keystroke, TCP's ACKs) leave before a bulk flow's backlog, and each flow's own
// standing queue is held to CoDel's target.
import CTunnel

/// FQ-CoDel over preallocated packet slots (RFC 8290): packets hash by their 5-tuple into 1024
/// queues served by deficit round robin, new (sparse) flows first; each queue has its own `CoDel`;
/// when every slot is taken the head of the longest queue is dropped. Owned by one thread; no
/// allocation after `init`, no lock.
///
/// ```swift
/// let q = FairQueue(maximumPacket: 65_600, headerOffset: 12)   // a virtio header before each packet
/// while let slot = q.reserve() {                                // room for one more read?
///     let n = read(fd, slot, q.maximumPacket); guard n > 0 else { break }
///     q.commit(length: n, at: now)
/// }
/// while let id = q.dequeue(now: now) { use(q.packet(id)); q.release(id) }
/// ```
public final class FairQueue {
    /// Bytes of the largest packet a slot holds (a read's size).
    public let maximumPacket: Int
    /// Where the IP header starts in each packet (after a virtio header, say).
    public let headerOffset: Int
    /// Packets up to this size are moved to a small slot after the read.
    public static let smallSize = 2048
    public static let flowCount = 1024
    /// Bytes of credit a flow gets per round (RFC 8290: an MTU; a super-packet takes several rounds).
    public static let quantum = 1514

    let bigCount: Int, smallCount: Int
    let big: UnsafeMutableRawPointer, small: UnsafeMutableRawPointer
    // Per slot (small slots 0..<smallCount, big slots after): length, read time, next in its flow.
    let lengths: UnsafeMutablePointer<Int>
    let times: UnsafeMutablePointer<Int64>
    let nextPacket: UnsafeMutablePointer<Int32>
    let freeBig: UnsafeMutablePointer<Int32>, freeSmall: UnsafeMutablePointer<Int32>
    var freeBigCount: Int, freeSmallCount: Int
    // Per flow: its packets, backlog, credit, CoDel, and which list it is on (0 none, 1 new, 2 old).
    let flowHead: UnsafeMutablePointer<Int32>, flowTail: UnsafeMutablePointer<Int32>
    let flowBytes: UnsafeMutablePointer<Int>, deficit: UnsafeMutablePointer<Int>
    let codel: UnsafeMutablePointer<CoDel>
    let list: UnsafeMutablePointer<UInt8>, nextFlow: UnsafeMutablePointer<Int32>
    var newHead: Int32 = -1, newTail: Int32 = -1, oldHead: Int32 = -1, oldTail: Int32 = -1
    /// A per-queue secret in the hash, so no sender can aim its flows at another's queue.
    let seed: UInt64
    /// The slot `reserve()` handed out.
    var reserved: Int32 = -1

    /// Packets held.
    public private(set) var count = 0
    /// Bytes held.
    public private(set) var bytes = 0
    /// Packets marked Congestion Experienced by CoDel (ECN-capable ones), dropped by CoDel (the
    /// others) and dropped because every slot was taken (from the longest queue), since `init`.
    public private(set) var marked: UInt64 = 0
    public private(set) var dropped: UInt64 = 0
    public private(set) var overflowDropped: UInt64 = 0

    /// `bigSlots` slots of `maximumPacket` bytes and `smallSlots` of 2 KiB; `codel` is each flow's
    /// setting (nil: no CoDel, flow queueing only).
    public init(maximumPacket: Int, headerOffset: Int = 0, bigSlots: Int = 96, smallSlots: Int = 1024, codel setting: CoDel? = CoDel()) {
        precondition(bigSlots >= 2 && smallSlots >= 0 && maximumPacket > Self.smallSize)
        self.maximumPacket = (maximumPacket + 15) & ~15
        self.headerOffset = headerOffset
        bigCount = bigSlots; smallCount = smallSlots
        big = .allocate(byteCount: bigSlots * self.maximumPacket, alignment: 16)
        small = .allocate(byteCount: max(1, smallSlots) * Self.smallSize, alignment: 16)
        let slots = bigSlots + smallSlots
        lengths = .allocate(capacity: slots); lengths.initialize(repeating: 0, count: slots)
        times = .allocate(capacity: slots); times.initialize(repeating: 0, count: slots)
        nextPacket = .allocate(capacity: slots); nextPacket.initialize(repeating: -1, count: slots)
        freeBig = .allocate(capacity: bigSlots); freeSmall = .allocate(capacity: max(1, smallSlots))
        for i in 0..<bigSlots { freeBig[i] = Int32(smallSlots + bigSlots - 1 - i) }
        for i in 0..<smallSlots { freeSmall[i] = Int32(smallSlots - 1 - i) }
        freeBigCount = bigSlots; freeSmallCount = smallSlots
        let n = Self.flowCount
        flowHead = .allocate(capacity: n); flowHead.initialize(repeating: -1, count: n)
        flowTail = .allocate(capacity: n); flowTail.initialize(repeating: -1, count: n)
        flowBytes = .allocate(capacity: n); flowBytes.initialize(repeating: 0, count: n)
        deficit = .allocate(capacity: n); deficit.initialize(repeating: 0, count: n)
        codel = .allocate(capacity: n); codel.initialize(repeating: setting ?? CoDel(), count: n)
        usesCoDel = setting != nil
        list = .allocate(capacity: n); list.initialize(repeating: 0, count: n)
        nextFlow = .allocate(capacity: n); nextFlow.initialize(repeating: -1, count: n)
        var r = SystemRandomNumberGenerator()
        seed = r.next()
    }
    let usesCoDel: Bool

    deinit {
        big.deallocate(); small.deallocate(); lengths.deallocate(); times.deallocate(); nextPacket.deallocate()
        freeBig.deallocate(); freeSmall.deallocate(); flowHead.deallocate(); flowTail.deallocate(); flowBytes.deallocate()
        deficit.deallocate(); codel.deinitialize(count: Self.flowCount); codel.deallocate(); list.deallocate(); nextFlow.deallocate()
    }

    public var isEmpty: Bool { count == 0 }

    @inline(__always) func address(_ id: Int32) -> UnsafeMutableRawPointer {
        Int(id) < smallCount ? small + Int(id) * Self.smallSize : big + (Int(id) - smallCount) * maximumPacket
    }

    /// The packet in slot `id` (from `dequeue`).
    @inline(__always) public func packet(_ id: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: address(Int32(id)), count: lengths[id])
    }

    /// When the packet in slot `id` was committed.
    @inline(__always) public func time(_ id: Int) -> Int64 { times[id] }

    /// Room for one read of up to `maximumPacket` bytes. When every slot is taken, the head of the
    /// longest queue is dropped to make room (`overflowDropped`); nil only if nothing can be freed.
    @inline(__always) public func reserve() -> UnsafeMutableRawPointer? {
        if reserved >= 0 { return address(reserved) }
        while freeBigCount == 0 {
            guard dropFromLongest() else { return nil }
        }
        freeBigCount -= 1
        reserved = freeBig[freeBigCount]
        return address(reserved)
    }

    /// Queues the `length` bytes read into the last `reserve()`d slot, read at `time`.
    @inline(__always) public func commit(length: Int, at time: Int64) {
        precondition(reserved >= 0 && length > 0 && length <= maximumPacket)
        var id = reserved
        reserved = -1
        if length <= Self.smallSize, freeSmallCount > 0 {
            freeSmallCount -= 1
            let s = freeSmall[freeSmallCount]
            address(s).copyMemory(from: address(id), byteCount: length)
            freeBig[freeBigCount] = id; freeBigCount += 1
            id = s
        }
        let i = Int(id)
        lengths[i] = length; times[i] = time; nextPacket[i] = -1
        let f = Int(flow(of: UnsafeRawBufferPointer(start: address(id), count: length)))
        if flowTail[f] >= 0 { nextPacket[Int(flowTail[f])] = id } else { flowHead[f] = id }
        flowTail[f] = id
        flowBytes[f] += length
        count += 1; bytes += length
        if list[f] == 0 {
            list[f] = 1; deficit[f] = Self.quantum
            append(Int32(f), toNew: true)
        }
    }

    /// The next packet to send (its slot; `release` it when done), by RFC 8290's scheduler: new
    /// flows first, then the old ones in turn, each by its credit; CoDel decides per flow, marking
    /// (ECN-capable) or dropping the packet at the head of a flow with a standing queue.
    public func dequeue(now: Int64) -> Int? {
        while true {
            let fromNew = newHead >= 0
            let f32 = fromNew ? newHead : oldHead
            guard f32 >= 0 else { return nil }
            let f = Int(f32)
            if deficit[f] <= 0 {
                deficit[f] += Self.quantum
                removeHead(fromNew: fromNew)
                list[f] = 2; append(f32, toNew: false)
                continue
            }
            guard let id = pop(flow: f) else {
                // Empty: a new flow goes to the old list (so it cannot stay first by emptying), an
                // old one leaves.
                removeHead(fromNew: fromNew)
                if fromNew && oldHead >= 0 { list[f] = 2; append(f32, toNew: false) } else { list[f] = 0 }
                continue
            }
            let i = Int(id)
            if usesCoDel, codel[f].congested(sojourn: now - times[i], now: now) {
                let p = UnsafeMutableRawBufferPointer(start: address(id) + headerOffset, count: lengths[i] - headerOffset)
                if lengths[i] > headerOffset, ECN.markCongestionExperienced(p) {
                    marked += 1
                } else {
                    dropped += 1
                    free(id)
                    continue
                }
            }
            deficit[f] -= lengths[i]
            return i
        }
    }

    /// Gives back a slot `dequeue` handed out.
    @inline(__always) public func release(_ id: Int) { free(Int32(id)) }

    // MARK: Internals

    @inline(__always) func pop(flow f: Int) -> Int32? {
        let id = flowHead[f]
        guard id >= 0 else { return nil }
        flowHead[f] = nextPacket[Int(id)]
        if flowHead[f] < 0 { flowTail[f] = -1 }
        flowBytes[f] -= lengths[Int(id)]
        count -= 1; bytes -= lengths[Int(id)]
        return id
    }

    @inline(__always) func free(_ id: Int32) {
        if Int(id) < smallCount { freeSmall[freeSmallCount] = id; freeSmallCount += 1 } else { freeBig[freeBigCount] = id; freeBigCount += 1 }
    }

    /// Drops the head of the flow with the longest backlog (RFC 8290 §4.1.2); false if all empty.
    func dropFromLongest() -> Bool {
        var longest = -1, most = 0
        for start in 0..<2 {
            var f = start == 0 ? newHead : oldHead
            while f >= 0 { if flowBytes[Int(f)] > most { most = flowBytes[Int(f)]; longest = Int(f) }; f = nextFlow[Int(f)] }
        }
        guard longest >= 0, let id = pop(flow: longest) else { return false }
        overflowDropped += 1
        free(id)
        return true
    }

    @inline(__always) func append(_ f: Int32, toNew: Bool) {
        nextFlow[Int(f)] = -1
        if toNew {
            if newTail >= 0 { nextFlow[Int(newTail)] = f } else { newHead = f }
            newTail = f
        } else {
            if oldTail >= 0 { nextFlow[Int(oldTail)] = f } else { oldHead = f }
            oldTail = f
        }
    }

    @inline(__always) func removeHead(fromNew: Bool) {
        if fromNew {
            let f = newHead; newHead = nextFlow[Int(f)]; if newHead < 0 { newTail = -1 }
        } else {
            let f = oldHead; oldHead = nextFlow[Int(f)]; if oldHead < 0 { oldTail = -1 }
        }
    }

    /// The queue of a packet: its addresses, protocol and ports hashed with `seed` (non-IP and
    /// truncated packets share queue 0).
    @inline(__always) func flow(of buffer: UnsafeRawBufferPointer) -> Int32 {
        let n = buffer.count - headerOffset
        guard n >= 20, let base = buffer.baseAddress else { return 0 }
        let p = base + headerOffset
        var h = seed
        @inline(__always) func mix(_ v: UInt64) { h = (h ^ v) &* 0x9E37_79B9_7F4A_7C15; h ^= h >> 29 }
        var proto: UInt8, transport: Int
        switch p.load(as: UInt8.self) >> 4 {
        case 4:
            mix(UInt64(p.loadUnaligned(fromByteOffset: 12, as: UInt64.self)))   // source and destination
            proto = p.load(fromByteOffset: 9, as: UInt8.self)
            transport = Int(p.load(as: UInt8.self) & 0x0F) * 4
            // A fragment after the first has no ports.
            if p.loadUnaligned(fromByteOffset: 6, as: UInt16.self).bigEndian & 0x1FFF != 0 { transport = n }
        case 6:
            guard n >= 40 else { return 0 }
            for o in stride(from: 8, to: 40, by: 8) { mix(p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
            proto = p.load(fromByteOffset: 6, as: UInt8.self)
            transport = 40
        default:
            return 0
        }
        mix(UInt64(proto))
        if proto == 6 || proto == 17, n >= transport + 4 { mix(UInt64(p.loadUnaligned(fromByteOffset: transport, as: UInt32.self))) }
        return Int32(truncatingIfNeeded: (h >> 32) % UInt64(Self.flowCount))
    }
}
