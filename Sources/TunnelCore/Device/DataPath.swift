// The three threads: TUN → seal → UDP, UDP → open → TUN (and handshakes), and the timers.
import PacketKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

extension TunnelDevice {
    // MARK: TUN → peers

    /// Reads what the TUN device has waiting, seals each packet in its own slot of a send batch and
    /// hands the batch to the kernel with one sendmmsg per `sendBatchSize` packets (or when the TUN
    /// runs dry), so a burst costs one system call per batch on the UDP side (one message per run of
    /// datagrams to a peer with UDP segmentation offload).
    func tunLoop() {
        let aead = ChaChaPoly()
        let batch = DatagramBatch(capacity: Self.sendBatchSize, bufferSize: Self.scratchSize)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: Self.sendBatchSize)
        defer { lengths.deallocate() }
        if tun.offload { return tunLoopOffload(aead: aead, batch: batch, lengths: lengths) }
        let capacity = 65535
        while isRunning {
            guard tun.waitReadable(timeoutMilliseconds: 100) else { continue }
            // Drain what is waiting, then poll again.
            for _ in 0..<256 {
                let slot = batch.buffer(batch.count)
                let n = tun.read(into: UnsafeMutableRawBufferPointer(start: slot + 16, count: capacity))
                if n <= 0 { break }
                lengths[0] = n
                sealInto(batch, first: batch.count, count: 1, lengths: lengths, aead: aead)
                if batch.count == batch.capacity { socket.send(batch) }
            }
            if batch.count > 0 { socket.send(batch) }
        }
    }

    /// The same over an offload TUN device: each read is a virtio header and a packet or a TCP/UDP
    /// super-packet of up to 64 KiB, cut here into segments written straight into the batch's slots.
    func tunLoopOffload(aead: ChaChaPoly, batch: DatagramBatch, lengths: UnsafeMutablePointer<Int>) {
        let inputSize = 65536 + 64
        let input = UnsafeMutableRawPointer.allocate(byteCount: inputSize, alignment: 16)
        defer { input.deallocate() }
        while isRunning {
            guard tun.waitReadable(timeoutMilliseconds: 100) else { continue }
            for _ in 0..<256 {
                let n = tun.read(into: UnsafeMutableRawBufferPointer(start: input, count: inputSize))
                if n <= 0 { break }
                guard n > VirtioNetHeader.size else { lock.withLock { stats.droppedBadOffload += 1 }; continue }
                let header = VirtioNetHeader(UnsafeRawBufferPointer(start: input, count: n))
                let packet = UnsafeMutableRawBufferPointer(start: input + VirtioNetHeader.size, count: n - VirtioNetHeader.size)
                let sp: SuperPacket
                do { sp = try SuperPacket(header: header, packet: packet) } catch { lock.withLock { stats.droppedBadOffload += 1 }; continue }
                if sp.count > 1 { lock.withLock { stats.superPacketsRead += 1 } }
                var i = 0
                while i < sp.count {
                    if batch.count == batch.capacity { socket.send(batch) }
                    let first = batch.count
                    let k = min(sp.count - i, batch.capacity - first)
                    for j in 0..<k { lengths[j] = sp.segment(i + j, into: batch.buffer(first + j) + 16) }
                    sealInto(batch, first: first, count: k, lengths: lengths, aead: aead)
                    i += k
                }
            }
            if batch.count > 0 { socket.send(batch) }
        }
    }

    static let sendBatchSize = 64

    /// Routes `count` packets sitting in the batch's slots `first...` (each at slot + 16, all to the
    /// same destination: one read's segments) to their peer, reserves their counters under one lock,
    /// seals them and queues them in the batch. Without a session they are queued for a handshake.
    @inline(__always)
    func sealInto(_ batch: DatagramBatch, first: Int, count: Int, lengths: UnsafeMutablePointer<Int>, aead: ChaChaPoly) {
        var bytes = 0
        for j in 0..<count { bytes += lengths[j] }
        guard let out = sendFromTUN(batch: batch, first: first, count: count, lengths: lengths, bytes: bytes) else { return }
        var o = out
        for j in 0..<count {
            o.counter = out.counter + UInt64(j)
            let slot = batch.buffer(first + j)
            if let total = seal(o, buffer: slot, length: lengths[j], aead: aead) { batch.append(length: total, to: out.endpoint) }
        }
    }

    /// Routes the packets in slots `first..<first+count` (read from the TUN device, at slot + 16) to
    /// their peer by the first one's destination and reserves their counters; nil when they were
    /// dropped or queued for a handshake.
    @inline(__always)
    func sendFromTUN(batch: DatagramBatch, first: Int, count: Int, lengths: UnsafeMutablePointer<Int>, bytes: Int) -> Outbound? {
        let p = UnsafeRawPointer(batch.buffer(first) + 16)
        let n = lengths[0]
        let version = p.load(as: UInt8.self) >> 4
        let now = MonotonicClock.seconds()
        lock.lock()
        let peer: Peer?
        if version == 4, n >= 20 {
            peer = allowed.lookup(v4: UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        } else if version == 6, n >= 40 {
            peer = allowed.lookup(v6: UInt128(bigEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt128.self)))
        } else {
            peer = nil
        }
        guard let peer else { stats.droppedNoPeer += UInt64(count); lock.unlock(); return nil }
        guard let out = reserve(peer, now: now, bytes: bytes, isData: true, count: count) else {
            // No usable session: keep the packets for when the handshake completes.
            if peer.config.endpoint != nil {
                for j in 0..<count {
                    if peer.queue.count >= Peer.queueLimit { peer.queue.removeFirst(); stats.droppedQueueFull += 1 }
                    peer.queue.append(Array(UnsafeRawBufferPointer(start: batch.buffer(first + j) + 16, count: lengths[j])))
                }
                startHandshake(peer, now: now)
            }
            lock.unlock()
            return nil
        }
        stats.packetsSent += UInt64(count)
        lock.unlock()
        return out
    }

    // MARK: UDP → TUN

    func udpLoop() {
        let aead = ChaChaPoly()
        let batch = DatagramBatch(capacity: 64, bufferSize: 65536)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.scratchSize, alignment: 16)
        defer { scratch.deallocate() }
        // Over an offload TUN device, received TCP segments of a flow are written as one super-packet.
        let coalescer = tun.offload ? TCPCoalescer() : nil
        let tun = self.tun
        let write: TCPCoalescer.Writer = { v, n in tun.write(vectors: v, count: n) }
        var merged: UInt64 = 0, written: UInt64 = 0
        while isRunning {
            guard socket.waitReadable(timeoutMilliseconds: 100) else { continue }
            let count = socket.receive(batch)
            for i in 0..<count {
                let data = batch.buffer(i), length = batch.length(i), source = batch.source(i)
                let size = batch.segmentSize(i)
                if size > 0, length > size {
                    // Several datagrams coalesced by the kernel (UDP_GRO), back to back.
                    var offset = 0
                    while offset < length {
                        receive(data + offset, length: min(size, length - offset), from: source, aead: aead, scratch: scratch, coalescer: coalescer, write: write)
                        offset += size
                    }
                } else {
                    receive(data, length: length, from: source, aead: aead, scratch: scratch, coalescer: coalescer, write: write)
                }
            }
            if let coalescer {
                coalescer.flush(write)
                if coalescer.coalesced != merged || coalescer.superPackets != written {
                    let m = coalescer.coalesced - merged, w = coalescer.superPackets - written
                    merged = coalescer.coalesced; written = coalescer.superPackets
                    lock.withLock { stats.segmentsCoalesced += m; stats.superPacketsWritten += w }
                }
            }
            flushEvents()
        }
    }

    @inline(__always)
    func receive(_ data: UnsafeMutableRawPointer, length: Int, from source: Endpoint, aead: ChaChaPoly, scratch: UnsafeMutableRawPointer,
                 coalescer: TCPCoalescer?, write: TCPCoalescer.Writer) {
        guard let type = MessageType.classify(UnsafeRawBufferPointer(start: data, count: length)) else {
            lock.withLock { stats.droppedMalformed += 1 }
            return
        }
        switch type {
        case .transport: receiveTransport(data, length: length, from: source, aead: aead, coalescer: coalescer, write: write)
        default:
            let message = Array(UnsafeRawBufferPointer(start: data, count: length))
            var items: [(Outbound, [UInt8])] = []
            lock.withLock { receiveHandshake(type, message, from: source, items: &items) }
            sendCollected(items, aead: aead, scratch: scratch)
        }
    }

    @inline(__always)
    func receiveTransport(_ data: UnsafeMutableRawPointer, length: Int, from source: Endpoint, aead: ChaChaPoly,
                          coalescer: TCPCoalescer?, write: TCPCoalescer.Writer) {
        let index = loadLE32(data, 4)
        let counter = loadLE64(data, 8)
        let now = MonotonicClock.seconds()
        lock.lock()
        guard case .keypair(let kp)? = indices[index], now - kp.created < timers.rejectAfterTime else {
            stats.droppedUnknownIndex += 1
            if reportsUnknownSessions, now - (unknownReported[source] ?? -1) >= 1 {
                if unknownReported.count >= 4096 { unknownReported.removeAll(keepingCapacity: true) }
                unknownReported[source] = now
                pendingEvents.append(.unknownSession(source))
            }
            lock.unlock(); return
        }
        let key = kp.receiveKey
        lock.unlock()
        let payloadLength = length - 32
        guard aead.open(key: key, nonce: ChaChaPoly.nonce(counter), data: data + 16, length: payloadLength, tag: data + 16 + payloadLength) else {
            lock.withLock { stats.droppedAuthentication += 1 }
            return
        }
        lock.lock()
        guard kp.replay.accept(counter) else { stats.droppedReplay += 1; lock.unlock(); return }
        let peer = kp.peer
        confirm(kp, on: peer)
        peer.config.endpoint = source   // roaming: the latest authenticated source wins (paper §2.1)
        peer.lastReceived = now; peer.unansweredSince = nil
        peer.rxBytes &+= UInt64(length)
        if kp.isInitiator, now - kp.created >= timers.rejectAfterTime - timers.keepaliveTimeout - timers.rekeyTimeout {
            startHandshake(peer, now: now)
        }
        if payloadLength == 0 { stats.keepalivesReceived += 1; lock.unlock(); return }
        // The inner packet: its real length (the rest is padding) and its source.
        let p = UnsafeRawPointer(data + 16)
        let version = p.load(as: UInt8.self) >> 4
        var innerLength = 0
        var owner: Peer?
        if version == 4, payloadLength >= 20 {
            innerLength = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            owner = allowed.lookup(v4: UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
        } else if version == 6, payloadLength >= 40 {
            innerLength = 40 + Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
            owner = allowed.lookup(v6: UInt128(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt128.self)))
        }
        guard innerLength > 0, innerLength <= payloadLength else { stats.droppedInnerMalformed += 1; lock.unlock(); return }
        // In-tunnel control traffic (link-local source) goes to the handler, not the kernel.
        // (The address bytes first: binding the closure retains it, which data packets need not pay.)
        if version == 6, p.load(fromByteOffset: 8, as: UInt8.self) == 0xfe,
           p.load(fromByteOffset: 9, as: UInt8.self) & 0xc0 == 0x80, let control = controlHandler {
            peer.lastDataReceived = now
            stats.packetsReceived += 1
            let publicKey = peer.config.publicKey
            lock.unlock()
            control(UnsafeRawBufferPointer(start: p, count: innerLength), publicKey)
            return
        }
        guard owner === peer else { stats.droppedAllowedIPs += 1; lock.unlock(); return }
        peer.lastDataReceived = now
        stats.packetsReceived += 1
        let publicKey = peer.config.publicKey
        let filter = inboundFilter
        lock.unlock()
        let inner = UnsafeRawBufferPointer(start: p, count: innerLength)
        if let filter, !filter(inner, publicKey) { lock.withLock { stats.droppedByFilter += 1 }; return }
        if let coalescer {
            coalescer.add(UnsafeMutableRawBufferPointer(start: data + 16, count: innerLength), write: write)
        } else {
            tun.write(inner)
        }
    }

    // MARK: Handshakes (lock held)

    func underLoad(now: Double) -> Bool {
        if now - loadWindowStart >= 1 { loadWindowStart = now; loadWindowCount = 0 }
        loadWindowCount += 1
        return loadWindowCount > underLoadThreshold
    }

    func receiveHandshake(_ type: MessageType, _ message: [UInt8], from source: Endpoint, items: inout [(Outbound, [UInt8])]) {
        let now = MonotonicClock.seconds()
        guard let identity else { stats.droppedHandshakes += 1; return }
        if type == .cookieReply {
            let receiver = readLE32(message, 4)
            let peer: Peer?
            switch indices[receiver] {
            case .handshake(let p)?: peer = p
            case .keypair(let kp)?: peer = kp.peer
            case nil: peer = nil
            }
            guard let peer, peer.cookieJar.consume(reply: message, peerPublicKey: peer.config.publicKey, now: now, aead: handshakeAEAD) else {
                stats.droppedHandshakes += 1; return
            }
            stats.cookieRepliesReceived += 1
            return
        }
        guard MessageMACs.validMAC1(message, ownMAC1Key: identity.mac1Key) else { stats.droppedBadMAC1 += 1; return }
        if underLoad(now: now), !cookieChecker.validMAC2(message, source: source.cookieSource, now: now) {
            let reply = cookieChecker.reply(to: message, source: source.cookieSource, local: identity, now: now, aead: handshakeAEAD)
            _ = socket.send(reply, to: source)
            stats.cookieRepliesSent += 1
            return
        }
        switch type {
        case .initiation:
            guard let (senderIndex, state, timestamp) = try? Handshake.consumeInitiation(local: identity, message: message, aead: handshakeAEAD),
                  let peer = peers[state.remoteStatic] else { stats.droppedHandshakes += 1; return }
            // Replay (an old timestamp) and flood (more than 50 per second) protection, paper §5.1.
            if let last = peer.lastTimestamp, timestamp <= last { stats.droppedHandshakes += 1; return }
            if now - peer.lastInitiationConsumedAt < 1.0 / 50 { stats.droppedHandshakes += 1; return }
            peer.lastTimestamp = timestamp
            peer.lastInitiationConsumedAt = now
            let localIndex = newIndex(.handshake(peer))
            guard let (response, keys, mac1) = try? Handshake.createResponse(state, senderIndex: localIndex, receiverIndex: senderIndex,
                                                                            psk: peer.config.presharedKey, cookie: peer.cookieJar.current(now: now),
                                                                            aead: handshakeAEAD) else {
                indices[localIndex] = nil; stats.droppedHandshakes += 1; return
            }
            let kp = Keypair(keys: keys, localIndex: localIndex, remoteIndex: senderIndex, created: now, isInitiator: false, peer: peer)
            indices[localIndex] = .keypair(kp)
            install(kp, on: peer, now: now)
            peer.config.endpoint = source
            peer.cookieJar.lastMAC1 = mac1
            peer.lastSent = now
            peer.lastReceived = now; peer.unansweredSince = nil
            _ = socket.send(response, to: source)
        case .response:
            let (senderIndex, receiverIndex) = Handshake.responseIndices(message)
            guard case .handshake(let peer)? = indices[receiverIndex], let pend = peer.pending, pend.localIndex == receiverIndex,
                  let keys = try? Handshake.consumeResponse(pend.state, local: identity, psk: peer.config.presharedKey, message: message, aead: handshakeAEAD)
            else { stats.droppedHandshakes += 1; return }
            let kp = Keypair(keys: keys, localIndex: receiverIndex, remoteIndex: senderIndex, created: now, isInitiator: true, peer: peer)
            indices[receiverIndex] = .keypair(kp)
            peer.pending = nil
            peer.attemptStartedAt = nil
            install(kp, on: peer, now: now)
            peer.config.endpoint = source
            peer.lastReceived = now; peer.unansweredSince = nil
            drainQueue(peer, now: now, into: &items)
        default:
            break
        }
    }

    // MARK: Timers (paper §6)

    func timerLoop() {
        let aead = ChaChaPoly()
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.scratchSize, alignment: 16)
        defer { scratch.deallocate() }
        while isRunning {
            usleep(UInt32(timers.tick * 1_000_000))
            var items: [(Outbound, [UInt8])] = []
            lock.withLock { tickLocked(now: MonotonicClock.seconds(), items: &items) }
            sendCollected(items, aead: aead, scratch: scratch)
            flushEvents()
        }
    }

    func tickLocked(now: Double, items: inout [(Outbound, [UInt8])]) {
        for peer in peers.values {
            // Retransmit an unanswered initiation after rekey-timeout (+ jitter); give up after rekey-attempt-time.
            if let pend = peer.pending, now - pend.sentAt >= timers.rekeyTimeout + peer.retryJitter {
                if let start = peer.attemptStartedAt, now - start >= timers.rekeyAttemptTime {
                    indices[pend.localIndex] = nil
                    peer.pending = nil; peer.attemptStartedAt = nil
                    stats.droppedNoEndpoint += UInt64(peer.queue.count)
                    peer.queue.removeAll()
                    pendingEvents.append(.handshakeFailed(peer.config.publicKey))
                } else {
                    startHandshake(peer, now: now, retry: true)
                }
            }
            // Passive keepalive: data came in and nothing went out for keepalive-timeout.
            if peer.lastDataReceived > peer.lastSent, now - peer.lastDataReceived >= timers.keepaliveTimeout {
                if let o = reserve(peer, now: now, bytes: 0, isData: false) { items.append((o, [])); stats.keepalivesSent += 1 }
            }
            // Data went out and nothing came back for keepalive + rekey timeout: handshake again.
            // Counted from the first unanswered packet: a steady stream of sends must not keep
            // pushing it back (a peer that lost its state would never be handshaken with again).
            if peer.pending == nil, let since = peer.unansweredSince, since > peer.lastReceived,
               now - since >= timers.keepaliveTimeout + timers.rekeyTimeout {
                peer.unansweredSince = nil
                startHandshake(peer, now: now)
            }
            // Persistent keepalive.
            let interval = Double(peer.config.persistentKeepalive)
            if interval > 0, peer.config.endpoint != nil, now - peer.lastSent >= interval {
                if let o = reserve(peer, now: now, bytes: 0, isData: false) { items.append((o, [])); stats.keepalivesSent += 1 } else { startHandshake(peer, now: now) }
            }
            // Zero the keys three reject-after-times after the last handshake (the newest keypair,
            // confirmed or not: an unconfirmed responder keypair must not live forever either).
            let newest = [peer.current, peer.next].compactMap { $0?.created }.max()
            if let newest, now - newest >= timers.rejectAfterTime * 3 {
                let queued = peer.queue
                clearSessions(peer)
                peer.queue = queued
                pendingEvents.append(.sessionExpired(peer.config.publicKey))
            }
        }
    }
}
