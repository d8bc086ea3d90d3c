// One peer's packets sealed and opened on several cores (issue 21 §4): the TUN reader fills a batch,
// reserves the packets' counters in order under the device's lock, then seals the batch's slots
// together with a `Crew` of helper threads, each taking every (helpers + 1)-th slot, and sends the
// batch itself once all are done; the UDP reader looks up each datagram's session in order, opens the
// batch with its crew, then checks replay and writes to the TUN device in order. Order on the wire is the batch's order, so one flow stays in order (wireguard-go keeps order
// with per-peer queues between its encryption workers and its sender; one batch at a time is the
// same guarantee without a queue). Worth it where cores are to spare: each batch costs a wake-up of
// the helpers, so short batches are sealed by the reader alone.
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// One packet of a batch to seal: its counter and key (reserved in order by the reader), its length.
struct SealJob {
    var out: WireGuardEngine.Outbound
    var length: Int
    /// The sealed message's length; 0 if sealing failed.
    var sealed: Int
}

/// Work a `Crew` shares out: part `share` of `parts` (every `parts`-th item from `share`), with the
/// calling thread's AEAD context.
protocol CrewWork: AnyObject {
    func work(share: Int, of parts: Int, aead: ChaChaPoly)
}

/// Helper threads that take a share of one batch's crypto beside the thread that owns the batch,
/// which waits for them before it goes on (so what it sends or writes next keeps the batch's order).
final class Crew: @unchecked Sendable {
    let helpers: Int
    let condition = SystemCondition()
    var generation: UInt64 = 0
    var remaining = 0
    var stopping = false
    /// The work being shared (set under the condition's lock before a new generation).
    var current: CrewWork?
    var threads: [pthread_t] = []
    /// Batches shorter than this are done by their owner alone (a wake-up costs more).
    static let minimumParallel = 8

    init(helpers: Int, name: String) {
        self.helpers = helpers
        for i in 0..<helpers {
            threads.append(SystemThread.start(name: "\(name)\(i)") { [unowned self] in self.helperLoop(i + 1) })
        }
    }

    /// Runs `work` on the caller's thread and the helpers (all of it on the caller's for fewer
    /// than `minimumParallel` items); returns when every share is done.
    func run(_ work: CrewWork, items: Int, aead: ChaChaPoly) {
        guard helpers > 0, items >= Self.minimumParallel else {
            work.work(share: 0, of: 1, aead: aead)
            return
        }
        condition.lock()
        current = work
        remaining = helpers
        generation &+= 1
        condition.broadcast()
        condition.unlock()
        work.work(share: 0, of: helpers + 1, aead: aead)
        condition.lock()
        while remaining > 0 { condition.wait() }
        current = nil
        condition.unlock()
    }

    func helperLoop(_ share: Int) {
        let aead = ChaChaPoly()
        condition.lock()
        // From 0, not from `generation`: a helper that starts after the first batch was handed out
        // still takes its share (the owner waits for every helper before handing out another).
        var seen: UInt64 = 0
        while true {
            while generation == seen && !stopping { condition.wait() }
            if stopping { condition.unlock(); return }
            seen = generation
            guard let work = current else { continue }
            condition.unlock()
            work.work(share: share, of: helpers + 1, aead: aead)
            condition.lock()
            remaining -= 1
            if remaining == 0 { condition.broadcast() }
        }
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }
}

/// A TUN reader's send batch: packets placed in slots (each at slot + 16), their counters reserved
/// in order (`add`), sealed and sent together by `flush` — on the reader's thread, with the crew's
/// helpers if it has any.
final class SendBatch: CrewWork {
    let batch: DatagramBatch
    let socket: UDPSocket
    let crew: Crew?
    let aead = ChaChaPoly()
    /// The lengths of the packets being placed (index 0 = the next free slot).
    let lengths: UnsafeMutablePointer<Int>
    let jobs: UnsafeMutablePointer<SealJob>
    /// Slots holding packets whose counters are reserved.
    private(set) var filled = 0

    init(capacity: Int, bufferSize: Int, socket: UDPSocket, crew: Crew?) {
        batch = DatagramBatch(capacity: capacity, bufferSize: bufferSize)
        self.socket = socket; self.crew = crew
        lengths = .allocate(capacity: capacity); lengths.initialize(repeating: 0, count: capacity)
        jobs = .allocate(capacity: capacity)
    }

    deinit { lengths.deallocate(); jobs.deallocate() }

    var isFull: Bool { filled == batch.capacity }
    var room: Int { batch.capacity - filled }
    /// Where the `j`th next packet goes.
    @inline(__always) func slot(_ j: Int) -> UnsafeMutableRawPointer { batch.buffer(filled + j) + 16 }

    /// Takes the next `count` packets (lengths in `lengths`), the first with `out`'s counter.
    @inline(__always) func add(count: Int, out: WireGuardEngine.Outbound) {
        var o = out
        for j in 0..<count {
            o.counter = out.counter + UInt64(j)
            (jobs + filled + j).initialize(to: SealJob(out: o, length: lengths[j], sealed: 0))
        }
        filled += count
    }

    /// Seals every packet taken and sends them in order.
    func flush() {
        guard filled > 0 else { return }
        if let crew { crew.run(self, items: filled, aead: aead) } else { work(share: 0, of: 1, aead: aead) }
        for i in 0..<filled where jobs[i].sealed > 0 {
            batch.append(length: jobs[i].sealed, to: jobs[i].out.endpoint, slot: i)
        }
        jobs.deinitialize(count: filled)
        filled = 0
        if batch.count > 0 { socket.send(batch) }
    }

    func work(share: Int, of parts: Int, aead: ChaChaPoly) {
        var i = share
        while i < filled {
            jobs[i].sealed = TransportMessage.seal(jobs[i].out, buffer: batch.buffer(i), length: jobs[i].length, aead: aead) ?? 0
            i += parts
        }
    }
}

/// A UDP reader's transport messages of one receive, their sessions looked up in order, opened
/// together by `work` (the reader and the crew's helpers), then accepted in order by the reader.
final class OpenBatch: CrewWork {
    struct Job {
        var data: UnsafeMutableRawPointer
        var length: Int
        var source: Endpoint
        var keypair: Keypair
        var key: Bytes32
        var counter: UInt64
        var now: Double
        var sojourn: Int64
        var opened: Bool
    }
    let crew: Crew
    let capacity: Int
    let jobs: UnsafeMutablePointer<Job>
    private(set) var count = 0

    init(capacity: Int, crew: Crew) {
        self.capacity = capacity; self.crew = crew
        jobs = .allocate(capacity: capacity)
    }

    deinit { jobs.deinitialize(count: count); jobs.deallocate() }

    @inline(__always) func add(_ job: Job) {
        precondition(count < capacity, "OpenBatch: more messages than one receive holds")
        (jobs + count).initialize(to: job)
        count += 1
    }

    func reset() { jobs.deinitialize(count: count); count = 0 }

    func work(share: Int, of parts: Int, aead: ChaChaPoly) {
        var i = share
        while i < count {
            let payload = jobs[i].length - 32, data = jobs[i].data
            jobs[i].opened = aead.open(key: jobs[i].key, nonce: ChaChaPoly.nonce(jobs[i].counter), data: data + 16, length: payload, tag: data + 16 + payload)
            i += parts
        }
    }
}
