// The three threads: TUN → seal → UDP, UDP → open → TUN (and handshakes), and the timers.
import PacketKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

extension TunnelDevice {
    // MARK: TUN → peers

    /// Reads what the TUN device has waiting into the slots of a send batch, reserving each packet's
    /// counter in order, and seals and hands the batch to the kernel with one sendmmsg per
    /// `sendBatchSize` packets (or when the TUN runs dry), so a burst costs one system call per batch
    /// on the UDP side (one message per run of datagrams to a peer with UDP segmentation offload).
    /// With `sealHelpers`, the batch's packets are sealed on that many more cores (`Crew`).
    func tunLoop(tun: TunDevice, socket: UDPSocket, name: String) {
        let send = SendBatch(capacity: Self.sendBatchSize, bufferSize: Self.scratchSize, socket: socket,
                             crew: sealHelpers > 0 ? Crew(helpers: sealHelpers, name: "sg-seal" + name) : nil)
        defer { send.crew?.stop() }
        if tun.offload { return tunLoopOffload(tun: tun, send: send) }
        let capacity = 65535
        while isRunning {
            guard tun.waitReadable(timeoutMilliseconds: 100) else { continue }
            // Drain what is waiting, then poll again.
            for _ in 0..<256 {
                let n = tun.read(into: UnsafeMutableRawBufferPointer(start: send.slot(0), count: capacity))
                if n <= 0 { break }
                send.lengths[0] = n
                reserveInto(send, count: 1)
                if send.isFull { send.flush() }
            }
            send.flush()
        }
    }

    /// The same over an offload TUN device: each read is a virtio header and a packet or a TCP/UDP
    /// super-packet of up to 64 KiB, cut here into segments written straight into the batch's slots.
    func tunLoopOffload(tun: TunDevice, send: SendBatch) {
        if let setting = queueManagement {
            return tunLoopOffloadQueued(tun: tun, send: send, codel: setting)
        }
        let inputSize = 65536 + 64
        let input = UnsafeMutableRawPointer.allocate(byteCount: inputSize, alignment: 16)
        defer { input.deallocate() }
        while isRunning {
            guard tun.waitReadable(timeoutMilliseconds: 100) else { continue }
            for _ in 0..<256 {
                let n = tun.read(into: UnsafeMutableRawBufferPointer(start: input, count: inputSize))
                if n <= 0 { break }
                cutRead(UnsafeMutableRawBufferPointer(start: input, count: n), into: send)
            }
            send.flush()
        }
    }

    /// With queue management: reads run ahead of sealing into a `FairQueue` (FQ-CoDel), so the
    /// kernel's TUN ring (which says nothing of how long packets waited, and holds 500 super-packets)
    /// stays short, a sparse flow's packets (a ping, DNS, TCP's ACKs) go before a bulk flow's
    /// backlog, and each flow's standing queue is held to CoDel's target by ECN marks or drops.
    func tunLoopOffloadQueued(tun: TunDevice, send: SendBatch, codel: CoDel) {
        let queue = FairQueue(maximumPacket: 65536 + 64, headerOffset: VirtioNetHeader.size, codel: codel)
        var reported = (marked: UInt64(0), dropped: UInt64(0), overflow: UInt64(0)), sinceReport = 0
        // Into the device's counters when the queue runs dry, and every 4,096 packets under load.
        func report() {
            sinceReport = 0
            guard queue.marked != reported.marked || queue.dropped != reported.dropped || queue.overflowDropped != reported.overflow else { return }
            let m = queue.marked - reported.marked, d = queue.dropped - reported.dropped, o = queue.overflowDropped - reported.overflow
            lock.withLock { engine.stats.codelMarkedToPeers += m; engine.stats.codelDroppedToPeers += d; engine.stats.droppedQueueOverflow += o }
            reported = (queue.marked, queue.dropped, queue.overflowDropped)
        }
        while isRunning {
            // Read ahead what is waiting (one read that finds nothing ends it), at most 64 reads per
            // packet sealed: a sender faster than reading (a UDP flood) must not stop the sealing,
            // which a full queue would otherwise only answer with overflow drops.
            var reads = 0
            while reads < 64, let slot = queue.reserve() {
                reads += 1
                let n = tun.read(into: UnsafeMutableRawBufferPointer(start: slot, count: queue.maximumPacket))
                if n <= 0 { break }
                queue.commit(length: n, at: Int64(bitPattern: MonotonicClock.nanoseconds()))
            }
            guard let id = queue.dequeue(now: Int64(bitPattern: MonotonicClock.nanoseconds())) else {
                send.flush()
                report()
                _ = tun.waitReadable(timeoutMilliseconds: 100)
                continue
            }
            cutRead(queue.packet(id), into: send)
            queue.release(id)
            sinceReport += 1
            if sinceReport == 4096 { report() }
        }
    }

    /// One read from an offload TUN device (virtio header and packet): cut into the batch's slots,
    /// their counters reserved.
    @inline(__always)
    func cutRead(_ read: UnsafeMutableRawBufferPointer, into send: SendBatch) {
        let n = read.count
        guard n > VirtioNetHeader.size, let input = read.baseAddress else { lock.withLock { engine.stats.droppedBadOffload += 1 }; return }
        let header = VirtioNetHeader(UnsafeRawBufferPointer(start: input, count: n))
        let packet = UnsafeMutableRawBufferPointer(start: input + VirtioNetHeader.size, count: n - VirtioNetHeader.size)
        let sp: SuperPacket
        do { sp = try SuperPacket(header: header, packet: packet) } catch { lock.withLock { engine.stats.droppedBadOffload += 1 }; return }
        var i = 0
        while i < sp.count {
            if send.isFull { send.flush() }
            let k = min(sp.count - i, send.room)
            for j in 0..<k { send.lengths[j] = sp.segment(i + j, into: send.slot(j)) }
            reserveInto(send, count: k, superPacket: i == 0 && sp.count > 1)
            i += k
        }
    }

    static let sendBatchSize = 64

    /// Routes `count` packets sitting in the batch's next slots (each at slot + 16, all to the same
    /// destination: one read's segments) to their peer and reserves their counters under one lock;
    /// `send.flush()` seals and sends them. Without a session they are queued for a handshake.
    @inline(__always)
    func reserveInto(_ send: SendBatch, count: Int, superPacket: Bool = false) {
        var bytes = 0
        for j in 0..<count { bytes += send.lengths[j] }
        let now = MonotonicClock.seconds()
        lock.lock()
        if superPacket { engine.stats.superPacketsRead += 1 }   // counted under the lock this step takes anyway
        let out = engine.outbound(UnsafeRawPointer(send.slot(0)), length: send.lengths[0], count: count, bytes: bytes, now: now) { j in
            UnsafeRawBufferPointer(start: send.slot(j), count: send.lengths[j])
        }
        let pending = engine.hasOutput
        lock.unlock()
        if pending { flushOutput() }   // a handshake started, or rekeying
        guard let out else { return }
        send.add(count: count, out: out)
    }

    // MARK: UDP → TUN

    func udpLoop(socket: UDPSocket, tun: TunDevice, name: String) {
        let aead = ChaChaPoly()
        // With open helpers: each batch's transport messages are looked up in order, opened
        // together, then accepted in order (`OpenBatch`).
        let opening = openHelpers > 0 ? OpenBatch(capacity: 64 * 64, crew: Crew(helpers: openHelpers, name: "sg-open" + name)) : nil
        defer { opening?.crew.stop() }
        let batch = DatagramBatch(capacity: 64, bufferSize: 65536)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.scratchSize, alignment: 16)
        defer { scratch.deallocate() }
        // Over an offload TUN device, received TCP segments of a flow are written as one super-packet.
        let coalescer = tun.offload ? TCPCoalescer() : nil
        let write: TCPCoalescer.Writer = { v, n in tun.write(vectors: v, count: n) }
        var merged: UInt64 = 0, written: UInt64 = 0
        // Queue management: how long each datagram waited in the socket's queue decides (CoDel).
        var codel = queueManagement
        while isRunning {
            guard socket.waitReadable(timeoutMilliseconds: 100) else { continue }
            let count = socket.receive(batch)
            let now = codel != nil ? RealtimeClock.nanoseconds() : 0
            for i in 0..<count {
                let data = batch.buffer(i), length = batch.length(i), source = batch.source(i)
                let size = batch.segmentSize(i)
                let arrived = codel != nil ? batch.receivedAt(i) : 0
                let sojourn = arrived > 0 ? now - arrived : 0
                // Several datagrams coalesced by the kernel (UDP_GRO) lie back to back.
                let step = size > 0 && length > size ? size : length
                var offset = 0
                while offset < length {
                    let piece = min(step, length - offset)
                    if let opening {
                        stage(data + offset, length: piece, from: source, into: opening, sojourn: sojourn, aead: aead)
                    } else {
                        receive(data + offset, length: piece, from: source, aead: aead, scratch: scratch, coalescer: coalescer, write: write,
                                codel: &codel, sojourn: sojourn, now: now)
                    }
                    offset += piece
                }
            }
            if let opening, opening.count > 0 {
                opening.crew.run(opening, items: opening.count, aead: aead)
                var failed: UInt64 = 0
                for i in 0..<opening.count {
                    let j = opening.jobs[i]
                    guard j.opened else { failed += 1; continue }
                    accept(j.keypair, counter: j.counter, data: j.data, length: j.length, from: j.source, now: j.now, coalescer: coalescer, write: write,
                           codel: &codel, sojourn: j.sojourn, realtime: now)
                }
                if failed > 0 { lock.withLock { engine.stats.droppedAuthentication += failed } }
                opening.reset()
            }
            if let coalescer {
                coalescer.flush(write)
                if coalescer.coalesced != merged || coalescer.superPackets != written {
                    let m = coalescer.coalesced - merged, w = coalescer.superPackets - written
                    merged = coalescer.coalesced; written = coalescer.superPackets
                    lock.withLock { engine.stats.segmentsCoalesced += m; engine.stats.superPacketsWritten += w }
                }
            }
            flushOutput()
        }
    }

    @inline(__always)
    func receive(_ data: UnsafeMutableRawPointer, length: Int, from source: Endpoint, aead: ChaChaPoly, scratch: UnsafeMutableRawPointer,
                 coalescer: TCPCoalescer?, write: TCPCoalescer.Writer, codel: inout CoDel?, sojourn: Int64, now realtime: Int64) {
        guard let type = MessageType.classify(UnsafeRawBufferPointer(start: data, count: length)) else {
            lock.withLock { engine.stats.droppedMalformed += 1 }
            return
        }
        switch type {
        case .transport: receiveTransport(data, length: length, from: source, aead: aead, coalescer: coalescer, write: write,
                                          codel: &codel, sojourn: sojourn, now: realtime)
        default:
            receiveHandshake(type, Array(UnsafeRawBufferPointer(start: data, count: length)), from: source, aead: aead)
        }
    }

    /// With open helpers: a datagram's cheap, ordered part — classified, a handshake handled at once,
    /// a transport message's session looked up and the message queued in `opening` to be opened.
    @inline(__always)
    func stage(_ data: UnsafeMutableRawPointer, length: Int, from source: Endpoint, into opening: OpenBatch, sojourn: Int64, aead: ChaChaPoly) {
        guard let type = MessageType.classify(UnsafeRawBufferPointer(start: data, count: length)) else {
            lock.withLock { engine.stats.droppedMalformed += 1 }
            return
        }
        guard type == .transport else {
            receiveHandshake(type, Array(UnsafeRawBufferPointer(start: data, count: length)), from: source, aead: aead)
            return
        }
        let index = loadLE32(data, 4)
        let now = MonotonicClock.seconds()
        lock.lock()
        let kp = engine.session(index: index, now: now, source: source)
        lock.unlock()
        guard let kp else { return }
        opening.add(OpenBatch.Job(data: data, length: length, source: source, keypair: kp, key: kp.receiveKey, counter: loadLE64(data, 8),
                                  now: now, sojourn: sojourn, opened: false))
    }

    @inline(__always)
    func receiveTransport(_ data: UnsafeMutableRawPointer, length: Int, from source: Endpoint, aead: ChaChaPoly,
                          coalescer: TCPCoalescer?, write: TCPCoalescer.Writer, codel: inout CoDel?, sojourn: Int64, now realtime: Int64) {
        let index = loadLE32(data, 4)
        let counter = loadLE64(data, 8)
        let now = MonotonicClock.seconds()
        lock.lock()
        guard let kp = engine.session(index: index, now: now, source: source) else { lock.unlock(); return }
        let key = kp.receiveKey
        lock.unlock()
        let payloadLength = length - 32
        guard aead.open(key: key, nonce: ChaChaPoly.nonce(counter), data: data + 16, length: payloadLength, tag: data + 16 + payloadLength) else {
            lock.withLock { engine.stats.droppedAuthentication += 1 }
            return
        }
        accept(kp, counter: counter, data: data, length: length, from: source, now: now, coalescer: coalescer, write: write,
               codel: &codel, sojourn: sojourn, realtime: realtime)
    }

    /// An opened transport message: replay window, roaming and allowed IPs (the engine, under the
    /// lock), then the program's filter, queue management and the TUN device (or the control handler).
    @inline(__always)
    func accept(_ kp: Keypair, counter: UInt64, data: UnsafeMutableRawPointer, length: Int, from source: Endpoint, now: Double,
                coalescer: TCPCoalescer?, write: TCPCoalescer.Writer, codel: inout CoDel?, sojourn: Int64, realtime: Int64) {
        let payloadLength = length - 32
        let control = controlHandler
        lock.lock()
        let verdict = engine.authenticated(kp, counter: counter, length: length, inner: UnsafeRawPointer(data + 16), payloadLength: payloadLength,
                                           source: source, now: now, hasControl: control != nil)
        let filter = inboundFilter
        lock.unlock()
        switch verdict {
        case .drop, .keepalive:
            return
        case .control(let publicKey, let innerLength):
            control?(UnsafeRawBufferPointer(start: data + 16, count: innerLength), publicKey)
        case .deliver(let publicKey, let innerLength):
            let inner = UnsafeRawBufferPointer(start: data + 16, count: innerLength)
            if let filter, !filter(inner, publicKey) { lock.withLock { engine.stats.droppedByFilter += 1 }; return }
            // Queue management sees data packets only (not keepalives, handshakes or control).
            if codel?.congested(sojourn: sojourn, now: realtime) == true {
                if ECN.markCongestionExperienced(UnsafeMutableRawBufferPointer(start: data + 16, count: innerLength)) {
                    lock.withLock { engine.stats.codelMarkedFromPeers += 1 }
                } else {
                    lock.withLock { engine.stats.codelDroppedFromPeers += 1 }
                    return
                }
            }
            if let coalescer {
                coalescer.add(UnsafeMutableRawBufferPointer(start: data + 16, count: innerLength), write: write)
            } else {
                tun.write(inner)
            }
        }
    }

    /// A handshake message in the engine's steps: the checks and bookkeeping under the lock, the
    /// Diffie-Hellman work (two X25519 per message) outside it, so a burst of handshakes does not
    /// hold up the packets of every other peer.
    func receiveHandshake(_ type: MessageType, _ message: [UInt8], from source: Endpoint, aead: ChaChaPoly) {
        let lock = self.lock
        engine.receiveHandshake(type, message, from: source, now: MonotonicClock.seconds(), aead: aead) { step in lock.withLock(step) }
        flushOutput()
    }

    // MARK: Timers (paper §6, in WireGuardEngine.updateTimers)

    func timerLoop() {
        while isRunning {
            usleep(UInt32(engine.timers.tick * 1_000_000))
            let now = MonotonicClock.seconds()
            lock.withLock { engine.updateTimers(now: now) }
            flushOutput()
        }
    }
}

