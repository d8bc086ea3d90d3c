// WireGuard's protocol as a value that does no I/O (as boringtun's `Tunn` and wireguard-go's
// timers.go are read): handshakes (initiation, response, cookie reply), key rotation, the timers
// of the paper's §6, the replay window, keepalives, cryptokey routing. Time is passed in; what to
// send comes back in `outbox`, what happened in `events`. `TunnelDevice` drives one under its lock
// with real sockets and clocks; tests drive two against each other on a fake clock, without root.
import PacketKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// The WireGuard state machine of one device (its identity and peers), without sockets or clocks.
///
/// ```swift
/// let a = WireGuardEngine(now: 0), b = WireGuardEngine(now: 0)
/// a.configure(privateKey: ka); b.configure(privateKey: kb)
/// try a.setPeer(PeerConfiguration(publicKey: pubB, endpoint: eb, allowedIPs: [all]))
/// try b.setPeer(PeerConfiguration(publicKey: pubA, endpoint: ea, allowedIPs: [all]))
/// a.send(packet: p, now: 0)                      // no session yet: queued, an initiation in a.outbox
/// for (d, _) in a.takeOutput().datagrams { b.receive(datagram: d, from: ea, now: 0.001) }
/// ```
///
/// Not thread-safe: the owner serialises calls (TunnelDevice holds its lock around each).
public final class WireGuardEngine: @unchecked Sendable {
    public let timers: TunnelTimers
    /// Handshake messages per second above which MAC2 (a cookie) is required (paper §5.3).
    public let underLoadThreshold: Int
    /// At most this many peers; `setPeer` refuses the next with ENOSPC.
    public let maximumPeers: Int
    /// Reports `.unknownSession` events (a gateway of a group sets it).
    public var reportsUnknownSessions = false
    /// The wall clock (a peer's "latest handshake") and the TAI64N clock of initiations; tests set them.
    public var wallClock: () -> (seconds: Int64, nanoseconds: Int64) = { WallClock.now() }
    public var timestampClock: () -> TAI64N = { TAI64N.now() }

    var identity: StaticIdentity?
    var peers: [Bytes32: Peer] = [:]
    var allowed = AllowedIPs<Peer>()
    enum IndexEntry { case handshake(Peer), keypair(Keypair) }
    var indices: [UInt32: IndexEntry] = [:]
    var cookieChecker: CookieChecker
    var stats = DeviceStatistics()
    var loadWindowStart = 0.0
    var loadWindowCount = 0
    /// For handshakes, cookies, and the keepalives and queued packets sealed here.
    let aead = ChaChaPoly()
    /// When each endpoint's unknown session was last reported (bounded; cleared when full).
    var unknownReported: [Endpoint: Double] = [:]

    /// Datagrams to send, in order: handshake messages, cookie replies, keepalives and queued packets
    /// (sealed). The hot data path does not come through here (see `outbound` and `authenticated`).
    public private(set) var outbox: [(datagram: [UInt8], endpoint: Endpoint)] = []
    /// What happened to peers since the last `takeOutput`.
    public private(set) var events: [PeerEvent] = []

    public init(timers: TunnelTimers = TunnelTimers(), underLoadThreshold: Int = 1000,
                maximumPeers: Int = TunnelDevice.defaultMaximumPeers, now: Double) {
        self.timers = timers
        self.underLoadThreshold = underLoadThreshold
        self.maximumPeers = maximumPeers
        cookieChecker = CookieChecker(now: now)
    }

    /// Hands over (and clears) what is to be sent and what happened.
    public func takeOutput() -> (datagrams: [(datagram: [UInt8], endpoint: Endpoint)], events: [PeerEvent]) {
        defer { outbox.removeAll(); events.removeAll() }
        return (outbox, events)
    }

    var hasOutput: Bool { !outbox.isEmpty || !events.isEmpty || !wantedInitiations.isEmpty }
    /// Leave the Diffie-Hellman work of initiations to `createWantedInitiations` (the device sets it,
    /// so none runs under its lock); off, `startHandshake` writes them at once (the tests' engines).
    public var defersInitiationWork = false
    /// Peers an initiation is wanted for (`defersInitiationWork`).
    var wantedInitiations: [Peer] = []

    public var statistics: DeviceStatistics { stats }
    public var publicKey: Bytes32? { identity?.publicKey }
    public var privateKey: Bytes32? { identity?.privateKey }

    // MARK: Configuration

    /// Sets the private key, dropping every session (a new identity invalidates them).
    public func configure(privateKey: Bytes32?) {
        let newIdentity = privateKey.map { StaticIdentity(privateKey: $0) }
        guard newIdentity?.privateKey != identity?.privateKey else { return }
        identity = newIdentity
        for p in peers.values { clearSessions(p) }
        // A peer whose key equals our own public key cannot be talked to (as in wireguard-go).
        if let pub = newIdentity?.publicKey, let me = peers[pub] { removePeer(me) }
    }

    /// Adds a peer or updates one with the same public key (its sessions survive an update).
    public func setPeer(_ config: PeerConfiguration) throws(TunnelError) {
        if let pub = identity?.publicKey, pub == config.publicKey {
            throw TunnelError(operation: "add peer", object: "peer \(config.publicKey)", detail: "that is this device's own public key")
        }
        if peers[config.publicKey] == nil, peers.count >= maximumPeers {
            throw TunnelError(operation: "add peer", object: "peer \(config.publicKey)",
                              detail: "the device has \(maximumPeers) peers, its limit", errno: ENOSPC)
        }
        let peer: Peer
        if let p = peers[config.publicKey] {
            peer = p
            if p.config.presharedKey != config.presharedKey { clearSessions(p) }
            removeAllowedIPs(of: p)
            p.config = config
        } else {
            peer = Peer(config)
            peers[config.publicKey] = peer
        }
        // Work proportional to this peer's prefixes, not to the number of peers (a gateway has
        // tens of thousands). A prefix moves to its newest owner and leaves the old owner's list.
        for prefix in config.allowedIPs {
            if let previous = allowed.insert(prefix, peer), previous !== peer {
                previous.config.allowedIPs.removeAll { $0 == prefix }
            }
        }
    }

    func removeAllowedIPs(of p: Peer) {
        for prefix in p.config.allowedIPs where allowed.owner(of: prefix) === p { allowed.remove(prefix) }
    }

    /// Removes a peer with its sessions and allowed IPs. No error if it is absent.
    public func removePeer(_ publicKey: Bytes32) { if let p = peers[publicKey] { removePeer(p) } }

    func removePeer(_ p: Peer) {
        clearSessions(p)
        removeAllowedIPs(of: p)
        peers[p.config.publicKey] = nil
        events.append(.removed(p.config.publicKey))
    }

    func clearSessions(_ p: Peer) {
        for kp in [p.current, p.previous, p.next] { if let kp { indices[kp.localIndex] = nil } }
        if let pend = p.pending { indices[pend.localIndex] = nil }
        p.current = nil; p.previous = nil; p.next = nil; p.pending = nil; p.attemptStartedAt = nil
        p.queue.removeAll()
    }

    public func endpoint(of publicKey: Bytes32) -> Endpoint? { peers[publicKey]?.config.endpoint }
    public func peerStatus(_ publicKey: Bytes32) -> PeerStatus? { peers[publicKey]?.status }
    /// Every peer's configuration and counters, sorted by key as `wg` lists them.
    public func peerStatuses() -> [PeerStatus] {
        peers.values.map { ($0.config.publicKey.hex, $0.status) }.sorted { $0.0 < $1.0 }.map(\.1)
    }
    public func peerConfigurations() -> [Bytes32: PeerConfiguration] { peers.mapValues(\.config) }
    /// Which peer a packet for `address` goes to (cryptokey routing).
    public func peer(for address: IPAddress) -> Bytes32? { allowed.lookup(address)?.config.publicKey }

    /// Starts a handshake with the peer now. False if there is no such peer or it has no endpoint.
    @discardableResult
    public func initiateHandshake(with publicKey: Bytes32, now: Double) -> Bool {
        guard let peer = peers[publicKey], peer.config.endpoint != nil else { return false }
        startHandshake(peer, now: now)
        return true
    }

    // MARK: Sessions

    func newIndex(_ entry: IndexEntry) -> UInt32 {
        var rng = SystemRandomNumberGenerator()
        while true {
            let i: UInt32 = rng.next()
            if indices[i] == nil { indices[i] = entry; return i }
        }
    }

    /// Queues a handshake initiation to `peer` unless one went out less than rekey-timeout ago.
    /// With `defersInitiationWork`, the peer is only put on `wantedInitiations`; `createWantedInitiations`
    /// does the rest.
    func startHandshake(_ peer: Peer, now: Double, retry: Bool = false) {
        guard let identity, peer.config.endpoint != nil else { return }
        if !retry, let pend = peer.pending, now - pend.sentAt < timers.rekeyTimeout { return }
        if peer.attemptStartedAt == nil { peer.attemptStartedAt = now }
        if defersInitiationWork {
            if !peer.initiationWanted { peer.initiationWanted = true; wantedInitiations.append(peer) }
            return
        }
        guard let secrets = try? NoiseIKpsk2.InitiationSecrets(localPrivate: identity.privateKey, remoteStatic: peer.config.publicKey) else { return }
        sendInitiation(peer, identity: identity, secrets: secrets, now: now)
    }

    /// The initiations `startHandshake` left (with `defersInitiationWork`), step by step as
    /// `receiveHandshake` does: the peers taken under the owner's lock (`locked`), their X25519 work
    /// (three operations each) outside it, the messages written under it after checking that the
    /// peer and the device's key are still the ones the work was done for.
    public func createWantedInitiations(now: Double, locked: (() -> Void) -> Void = { $0() }) {
        var work: [(peer: Peer, identity: StaticIdentity)] = []
        locked {
            guard let identity = self.identity else { return }
            for p in self.wantedInitiations { p.initiationWanted = false; work.append((p, identity)) }
            self.wantedInitiations.removeAll(keepingCapacity: true)
        }
        guard !work.isEmpty else { return }
        let secrets = work.map { try? NoiseIKpsk2.InitiationSecrets(localPrivate: $0.identity.privateKey, remoteStatic: $0.peer.config.publicKey) }
        locked {
            for (i, (peer, identity)) in work.enumerated() {
                guard let secrets = secrets[i], let current = self.identity, current.privateKey == identity.privateKey,
                      self.peers[peer.config.publicKey] === peer, peer.config.endpoint != nil else { continue }
                self.sendInitiation(peer, identity: identity, secrets: secrets, now: now)
            }
        }
    }

    /// Writes an initiation from its secrets (under the lock: hashing and two small seals) and queues it.
    func sendInitiation(_ peer: Peer, identity: StaticIdentity, secrets: NoiseIKpsk2.InitiationSecrets, now: Double) {
        guard let endpoint = peer.config.endpoint else { return }
        if let pend = peer.pending { indices[pend.localIndex] = nil }
        let index = newIndex(.handshake(peer))
        let (message, state, mac1) = Handshake.createInitiation(local: identity, secrets: secrets, senderIndex: index, timestamp: timestampClock(),
                                                                cookie: peer.cookieJar.current(now: now), aead: aead)
        peer.pending = (index, state, now)
        peer.retryJitter = Double.random(in: 0..<0.333)
        peer.cookieJar.lastMAC1 = mac1
        peer.lastSent = now
        stats.handshakesInitiated += 1
        outbox.append((message, endpoint))
    }

    /// Installs a fresh keypair.
    func install(_ kp: Keypair, on peer: Peer) {
        if kp.isInitiator {
            if let next = peer.next {
                // An unconfirmed responder keypair loses to the one we initiated.
                if let prev = peer.previous { indices[prev.localIndex] = nil }
                peer.previous = next; peer.next = nil
                if let cur = peer.current { indices[cur.localIndex] = nil }
            } else {
                if let prev = peer.previous { indices[prev.localIndex] = nil }
                peer.previous = peer.current
            }
            peer.current = kp
        } else {
            if let old = peer.next { indices[old.localIndex] = nil }
            peer.next = kp
        }
        peer.lastHandshakeWall = wallClock()
        peer.handshakes += 1
        stats.handshakesCompleted += 1
        events.append(.handshakeCompleted(peer.config.publicKey))
    }

    /// The responder's keypair is confirmed by the first transport message under it.
    func confirm(_ kp: Keypair, on peer: Peer) {
        guard peer.next === kp else { return }
        if let prev = peer.previous { indices[prev.localIndex] = nil }
        peer.previous = peer.current
        peer.current = kp
        peer.next = nil
    }

    /// A packet ready to seal: everything taken from shared state.
    struct Outbound { var key: Bytes32; var counter: UInt64; var remoteIndex: UInt32; var endpoint: Endpoint }

    /// Reserves `count` consecutive counters on the peer's current keypair (the first returned), or
    /// nil if a handshake is needed first.
    @inline(__always)
    func reserve(_ peer: Peer, now: Double, bytes: Int, isData: Bool, count: Int = 1) -> Outbound? {
        guard let endpoint = peer.config.endpoint else { stats.droppedNoEndpoint += UInt64(count); return nil }
        guard let kp = peer.current, now - kp.created < timers.rejectAfterTime,
              kp.sendCounter + UInt64(count) <= WireGuard.rejectAfterMessages else { return nil }
        let counter = kp.sendCounter
        kp.sendCounter += UInt64(count)
        if kp.isInitiator, now - kp.created >= timers.rekeyAfterTime || kp.sendCounter > WireGuard.rekeyAfterMessages {
            startHandshake(peer, now: now)
        }
        peer.lastSent = now
        if isData { peer.lastDataSent = now; if peer.unansweredSince == nil { peer.unansweredSince = now } }
        peer.txBytes &+= UInt64(bytes)
        return Outbound(key: kp.sendKey, counter: counter, remoteIndex: kp.remoteIndex, endpoint: endpoint)
    }

    /// Seals `packet` (or a keepalive) under `out` into a transport message in the outbox.
    func sealToOutbox(_ out: Outbound, _ packet: [UInt8]) {
        let padded = (packet.count + 15) & ~15
        var message = [UInt8](repeating: 0, count: 16 + padded + 16)
        message.withUnsafeMutableBytes { m in
            let base = m.baseAddress!
            packet.withUnsafeBytes { if $0.count > 0 { (base + 16).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            _ = TransportMessage.seal(out, buffer: base, length: packet.count, aead: aead)
        }
        outbox.append((message, out.endpoint))
    }

    /// After a handshake completes as initiator: the queue, or one keepalive to confirm the keys.
    func drainQueue(_ peer: Peer, now: Double) {
        let queued = peer.queue
        peer.queue.removeAll()
        for p in queued { if let o = reserve(peer, now: now, bytes: p.count, isData: true) { sealToOutbox(o, p); stats.packetsSent += 1 } }
        if queued.isEmpty, let o = reserve(peer, now: now, bytes: 0, isData: false) { sealToOutbox(o, []); stats.keepalivesSent += 1 }
    }

    // MARK: The data path's two steps (the owner seals and opens outside its lock)

    /// Routes the packet at `p` (and `count - 1` more to the same destination: one read's segments)
    /// to its peer by cryptokey routing and reserves their counters; nil when they were dropped (no
    /// peer) or queued for a handshake, copied through `packet(j)`.
    @inline(__always)
    func outbound(_ p: UnsafeRawPointer, length n: Int, count: Int, bytes: Int, now: Double,
                  packet: (Int) -> UnsafeRawBufferPointer) -> Outbound? {
        let version = p.load(as: UInt8.self) >> 4
        let peer: Peer?
        if version == 4, n >= 20 {
            peer = allowed.lookup(v4: UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        } else if version == 6, n >= 40 {
            peer = allowed.lookup(v6: UInt128(bigEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt128.self)))
        } else {
            peer = nil
        }
        guard let peer else { stats.droppedNoPeer += UInt64(count); return nil }
        guard let out = reserve(peer, now: now, bytes: bytes, isData: true, count: count) else {
            // No usable session: keep the packets for when the handshake completes.
            if peer.config.endpoint != nil {
                for j in 0..<count {
                    if peer.queue.count >= Peer.queueLimit { peer.queue.removeFirst(); stats.droppedQueueFull += 1 }
                    peer.queue.append(Array(packet(j)))
                }
                startHandshake(peer, now: now)
            }
            return nil
        }
        stats.packetsSent += UInt64(count)
        return out
    }

    /// The live keypair a transport message's receiver index names, or nil (counted; with
    /// `reportsUnknownSessions`, an `.unknownSession` event at most once a second per endpoint).
    @inline(__always)
    func session(index: UInt32, now: Double, source: Endpoint) -> Keypair? {
        guard case .keypair(let kp)? = indices[index], now - kp.created < timers.rejectAfterTime else {
            stats.droppedUnknownIndex += 1
            if reportsUnknownSessions, now - (unknownReported[source] ?? -1) >= 1 {
                if unknownReported.count >= 4096 { unknownReported.removeAll(keepingCapacity: true) }
                unknownReported[source] = now
                events.append(.unknownSession(source))
            }
            return nil
        }
        return kp
    }

    /// What to do with an authenticated transport message.
    enum Inbound {
        case drop
        case keepalive
        /// In-tunnel control traffic (a link-local IPv6 source) for the control handler.
        case control(Bytes32, length: Int)
        /// A packet for the TUN device (after the program's filter, if any).
        case deliver(Bytes32, length: Int)
    }

    /// After the tag of a message under `kp` authenticated: the replay window, confirmation,
    /// roaming, the timers' bookkeeping, then the inner packet at `p` (`payloadLength` decrypted
    /// bytes): its length and whether its source belongs to the peer (cryptokey routing).
    @inline(__always)
    func authenticated(_ kp: Keypair, counter: UInt64, length: Int, inner p: UnsafeRawPointer, payloadLength: Int,
                       source: Endpoint, now: Double, hasControl: Bool) -> Inbound {
        guard kp.replay.accept(counter) else { stats.droppedReplay += 1; return .drop }
        let peer = kp.peer
        confirm(kp, on: peer)
        peer.config.endpoint = source   // roaming: the latest authenticated source wins (paper §2.1)
        peer.lastReceived = now; peer.unansweredSince = nil
        peer.rxBytes &+= UInt64(length)
        if kp.isInitiator, now - kp.created >= timers.rejectAfterTime - timers.keepaliveTimeout - timers.rekeyTimeout {
            startHandshake(peer, now: now)
        }
        if payloadLength == 0 { stats.keepalivesReceived += 1; return .keepalive }
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
        guard innerLength > 0, innerLength <= payloadLength else { stats.droppedInnerMalformed += 1; return .drop }
        // In-tunnel control traffic (link-local source) goes to the handler, not the kernel.
        if hasControl, version == 6, p.load(fromByteOffset: 8, as: UInt8.self) == 0xfe,
           p.load(fromByteOffset: 9, as: UInt8.self) & 0xc0 == 0x80 {
            peer.lastDataReceived = now
            stats.packetsReceived += 1
            return .control(peer.config.publicKey, length: innerLength)
        }
        guard owner === peer else { stats.droppedAllowedIPs += 1; return .drop }
        peer.lastDataReceived = now
        stats.packetsReceived += 1
        return .deliver(peer.config.publicKey, length: innerLength)
    }

    // MARK: Handshakes

    func underLoad(now: Double) -> Bool {
        if now - loadWindowStart >= 1 { loadWindowStart = now; loadWindowCount = 0 }
        loadWindowCount += 1
        return loadWindowCount > underLoadThreshold
    }

    /// A handshake message (initiation, response or cookie reply) from `source`, step by step:
    /// `locked` runs each engine step under the owner's lock (by default it just runs it), and the
    /// Diffie-Hellman work between the steps runs outside it, with the caller's `aead`.
    func receiveHandshake(_ type: MessageType, _ message: [UInt8], from source: Endpoint, now: Double, aead: ChaChaPoly,
                          locked: (() -> Void) -> Void = { $0() }) {
        var step = HandshakeStep.done
        locked { step = self.beginHandshake(type, message, from: source, now: now) }
        switch step {
        case .done:
            break
        case .initiation(let identity):
            let consumed = try? Handshake.consumeInitiation(local: identity, message: message, aead: aead)
            var plan: InitiationPlan?
            locked { plan = self.planResponse(consumed, now: now) }
            guard let plan else { return }
            let made = try? Handshake.createResponse(plan.state, senderIndex: plan.localIndex, receiverIndex: plan.senderIndex,
                                                     psk: plan.psk, cookie: plan.cookie, aead: aead)
            locked { self.finishInitiation(plan, made, from: source, now: now) }
        case .response(let plan):
            let keys = try? Handshake.consumeResponse(plan.state, local: plan.identity, psk: plan.psk, message: message, aead: aead)
            locked { self.finishResponse(plan, keys, from: source, now: now) }
        }
    }

    /// What a handshake message needs after `beginHandshake`: nothing more, or the Diffie-Hellman
    /// work of an initiation or a response, done by the caller outside its lock.
    enum HandshakeStep {
        case done
        /// Run `Handshake.consumeInitiation(local:message:aead:)` with this identity, then `planResponse`.
        case initiation(StaticIdentity)
        /// Run `Handshake.consumeResponse` with the plan's state, identity and key, then `finishResponse`.
        case response(ResponsePlan)
    }

    /// The state a response message is checked against (read under the lock).
    struct ResponsePlan {
        let peer: Peer
        let state: NoiseIKpsk2.InitiatorState
        let identity: StaticIdentity
        let psk: Bytes32
        let localIndex: UInt32
        let senderIndex: UInt32
    }

    /// What answering an initiation needs (read under the lock; the local index is reserved).
    struct InitiationPlan {
        let peer: Peer
        let state: NoiseIKpsk2.ResponderState
        let senderIndex: UInt32
        let localIndex: UInt32
        let psk: Bytes32
        let cookie: [UInt8]?
    }

    /// The cheap part of a handshake message, under the lock: a cookie reply is consumed here; an
    /// initiation or response has its MAC1 checked and, under load, its MAC2 (or gets a cookie reply).
    func beginHandshake(_ type: MessageType, _ message: [UInt8], from source: Endpoint, now: Double) -> HandshakeStep {
        guard let identity else { stats.droppedHandshakes += 1; return .done }
        if type == .cookieReply {
            let receiver = readLE32(message, 4)
            let peer: Peer?
            switch indices[receiver] {
            case .handshake(let p)?: peer = p
            case .keypair(let kp)?: peer = kp.peer
            case nil: peer = nil
            }
            guard let peer, peer.cookieJar.consume(reply: message, peerPublicKey: peer.config.publicKey, now: now, aead: aead) else {
                stats.droppedHandshakes += 1; return .done
            }
            stats.cookieRepliesReceived += 1
            return .done
        }
        guard MessageMACs.validMAC1(message, ownMAC1Key: identity.mac1Key) else { stats.droppedBadMAC1 += 1; return .done }
        if underLoad(now: now), !cookieChecker.validMAC2(message, source: source.cookieSource, now: now) {
            let reply = cookieChecker.reply(to: message, source: source.cookieSource, local: identity, now: now, aead: aead)
            outbox.append((reply, source))
            stats.cookieRepliesSent += 1
            return .done
        }
        switch type {
        case .initiation:
            return .initiation(identity)
        case .response:
            let (senderIndex, receiverIndex) = Handshake.responseIndices(message)
            guard case .handshake(let peer)? = indices[receiverIndex], let pend = peer.pending, pend.localIndex == receiverIndex else {
                stats.droppedHandshakes += 1; return .done
            }
            return .response(ResponsePlan(peer: peer, state: pend.state, identity: identity, psk: peer.config.presharedKey,
                                          localIndex: receiverIndex, senderIndex: senderIndex))
        default:
            return .done
        }
    }

    /// After the initiation was decrypted (nil: it did not decrypt): its peer, replay and flood
    /// checks (paper §5.1), and a local index reserved for the response.
    func planResponse(_ consumed: (senderIndex: UInt32, state: NoiseIKpsk2.ResponderState, timestamp: TAI64N)?, now: Double) -> InitiationPlan? {
        guard let (senderIndex, state, timestamp) = consumed, let peer = peers[state.remoteStatic] else { stats.droppedHandshakes += 1; return nil }
        // Replay (an old timestamp) and flood (more than 50 per second) protection.
        if let last = peer.lastTimestamp, timestamp <= last { stats.droppedHandshakes += 1; return nil }
        if now - peer.lastInitiationConsumedAt < 1.0 / 50 { stats.droppedHandshakes += 1; return nil }
        peer.lastTimestamp = timestamp
        peer.lastInitiationConsumedAt = now
        let localIndex = newIndex(.handshake(peer))
        return InitiationPlan(peer: peer, state: state, senderIndex: senderIndex, localIndex: localIndex,
                              psk: peer.config.presharedKey, cookie: peer.cookieJar.current(now: now))
    }

    /// After the response was made (nil: it could not be): the responder's keypair installed and the
    /// response queued, unless the peer went away or changed meanwhile.
    func finishInitiation(_ plan: InitiationPlan, _ made: (message: [UInt8], keys: NoiseIKpsk2.TransportKeys, mac1: [UInt8])?,
                          from source: Endpoint, now: Double) {
        let peer = plan.peer
        guard case .handshake(let p)? = indices[plan.localIndex], p === peer, peers[peer.config.publicKey] === peer,
              peer.config.presharedKey == plan.psk, let (response, keys, mac1) = made else {
            if case .handshake(let p)? = indices[plan.localIndex], p === peer { indices[plan.localIndex] = nil }
            stats.droppedHandshakes += 1
            return
        }
        let kp = Keypair(keys: keys, localIndex: plan.localIndex, remoteIndex: plan.senderIndex, created: now, isInitiator: false, peer: peer)
        indices[plan.localIndex] = .keypair(kp)
        install(kp, on: peer)
        peer.config.endpoint = source
        peer.cookieJar.lastMAC1 = mac1
        peer.lastSent = now
        peer.lastReceived = now; peer.unansweredSince = nil
        outbox.append((response, source))
    }

    /// After the response was decrypted (nil: it did not): the initiator's keypair installed and the
    /// queue sent, if that handshake is still the one pending.
    func finishResponse(_ plan: ResponsePlan, _ keys: NoiseIKpsk2.TransportKeys?, from source: Endpoint, now: Double) {
        let peer = plan.peer
        guard let keys, case .handshake(let p)? = indices[plan.localIndex], p === peer, peer.pending?.localIndex == plan.localIndex,
              peers[peer.config.publicKey] === peer, peer.config.presharedKey == plan.psk else {
            stats.droppedHandshakes += 1
            return
        }
        let kp = Keypair(keys: keys, localIndex: plan.localIndex, remoteIndex: plan.senderIndex, created: now, isInitiator: true, peer: peer)
        indices[plan.localIndex] = .keypair(kp)
        peer.pending = nil
        peer.attemptStartedAt = nil
        install(kp, on: peer)
        peer.config.endpoint = source
        peer.lastReceived = now; peer.unansweredSince = nil
        drainQueue(peer, now: now)
    }

    // MARK: Timers (paper §6)

    /// Runs every peer's timers at `now` (call it every `timers.tick`): retransmitted and abandoned
    /// initiations, passive and persistent keepalives, a new handshake after unanswered data, keys
    /// zeroed after three reject-after-times.
    public func updateTimers(now: Double) {
        for peer in peers.values {
            // Retransmit an unanswered initiation after rekey-timeout (+ jitter); give up after rekey-attempt-time.
            if let pend = peer.pending, now - pend.sentAt >= timers.rekeyTimeout + peer.retryJitter {
                if let start = peer.attemptStartedAt, now - start >= timers.rekeyAttemptTime {
                    indices[pend.localIndex] = nil
                    peer.pending = nil; peer.attemptStartedAt = nil
                    stats.droppedNoEndpoint += UInt64(peer.queue.count)
                    peer.queue.removeAll()
                    events.append(.handshakeFailed(peer.config.publicKey))
                } else {
                    startHandshake(peer, now: now, retry: true)
                }
            }
            // Passive keepalive: data came in and nothing went out for keepalive-timeout.
            if peer.lastDataReceived > peer.lastSent, now - peer.lastDataReceived >= timers.keepaliveTimeout {
                if let o = reserve(peer, now: now, bytes: 0, isData: false) { sealToOutbox(o, []); stats.keepalivesSent += 1 }
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
                if let o = reserve(peer, now: now, bytes: 0, isData: false) { sealToOutbox(o, []); stats.keepalivesSent += 1 } else { startHandshake(peer, now: now) }
            }
            // Zero the keys three reject-after-times after the last handshake (the newest keypair,
            // confirmed or not: an unconfirmed responder keypair must not live forever either).
            let newest = [peer.current, peer.next].compactMap { $0?.created }.max()
            if let newest, now - newest >= timers.rejectAfterTime * 3 {
                let queued = peer.queue
                clearSessions(peer)
                peer.queue = queued
                events.append(.sessionExpired(peer.config.publicKey))
            }
        }
    }

    // MARK: Whole datagrams (for a program without a batch data path, and for tests)

    /// Sends one inner packet by cryptokey routing: sealed into the outbox if a session exists,
    /// else queued and a handshake started. False when it was dropped (no peer for its destination,
    /// no endpoint, not an IP packet).
    @discardableResult
    public func send(packet: [UInt8], now: Double) -> Bool {
        guard !packet.isEmpty, packet.count <= 65535 else { return false }
        let before = stats.droppedNoPeer &+ stats.droppedNoEndpoint
        let out = packet.withUnsafeBytes { p in outbound(p.baseAddress!, length: p.count, count: 1, bytes: p.count, now: now) { _ in p } }
        if let out { sealToOutbox(out, packet); return true }
        return stats.droppedNoPeer &+ stats.droppedNoEndpoint == before
    }

    /// Sends one inner packet to the peer with `publicKey`, whatever its allowed IPs say (control
    /// traffic such as the lease exchange). False if there is no such peer or it has no endpoint.
    @discardableResult
    public func send(packet: [UInt8], to publicKey: Bytes32, now: Double) -> Bool {
        guard !packet.isEmpty, packet.count <= 65535, let peer = peers[publicKey], peer.config.endpoint != nil else { return false }
        guard let out = reserve(peer, now: now, bytes: packet.count, isData: true) else {
            if peer.queue.count >= Peer.queueLimit { peer.queue.removeFirst(); stats.droppedQueueFull += 1 }
            peer.queue.append(packet)
            startHandshake(peer, now: now)
            return true
        }
        stats.packetsSent += 1
        sealToOutbox(out, packet)
        return true
    }

    /// What `receive(datagram:from:now:)` made of a datagram.
    public enum Received: Equatable, Sendable {
        /// A handshake message or cookie reply, handled (its answer, if any, is in the outbox).
        case handshake
        case keepalive
        /// An inner packet for the TUN device from the peer with this key.
        case packet([UInt8], from: Bytes32)
        /// In-tunnel control traffic (link-local IPv6 source) from the peer with this key.
        case control([UInt8], from: Bytes32)
        /// Dropped; `statistics` says why.
        case dropped
    }

    /// Takes one datagram from `source`: handshakes answered into the outbox, transport messages
    /// opened and checked.
    public func receive(datagram: [UInt8], from source: Endpoint, now: Double) -> Received {
        guard let type = datagram.withUnsafeBytes({ MessageType.classify($0) }) else { stats.droppedMalformed += 1; return .dropped }
        guard type == .transport else { receiveHandshake(type, datagram, from: source, now: now, aead: aead); return .handshake }
        var m = datagram
        return m.withUnsafeMutableBytes { raw -> Received in
            let data = raw.baseAddress!
            guard let kp = session(index: loadLE32(data, 4), now: now, source: source) else { return .dropped }
            let counter = loadLE64(data, 8)
            let payloadLength = raw.count - 32
            guard aead.open(key: kp.receiveKey, nonce: ChaChaPoly.nonce(counter), data: data + 16, length: payloadLength, tag: data + 16 + payloadLength) else {
                stats.droppedAuthentication += 1; return .dropped
            }
            switch authenticated(kp, counter: counter, length: raw.count, inner: data + 16, payloadLength: payloadLength, source: source, now: now, hasControl: true) {
            case .drop: return .dropped
            case .keepalive: return .keepalive
            case .control(let key, let n): return .control(Array(UnsafeRawBufferPointer(start: data + 16, count: n)), from: key)
            case .deliver(let key, let n): return .packet(Array(UnsafeRawBufferPointer(start: data + 16, count: n)), from: key)
            }
        }
    }
}

/// Sealing a transport message in place (paper §5.4.6): header, counter, padding to 16, tag.
enum TransportMessage {
    /// `buffer` holds the packet at offset 16 with room for padding and the tag after it. Returns the
    /// message length, or nil if sealing failed.
    @inline(__always)
    static func seal(_ out: WireGuardEngine.Outbound, buffer: UnsafeMutableRawPointer, length: Int, aead: ChaChaPoly) -> Int? {
        let padded = (length + 15) & ~15
        if padded > length { (buffer + 16 + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
        guard aead.seal(key: out.key, nonce: ChaChaPoly.nonce(out.counter), data: buffer + 16, length: padded, tag: buffer + 16 + padded) else { return nil }
        buffer.storeBytes(of: UInt32(4).littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: out.remoteIndex.littleEndian, toByteOffset: 4, as: UInt32.self)
        buffer.storeBytes(of: out.counter.littleEndian, toByteOffset: 8, as: UInt64.self)
        return 16 + padded + 16
    }
}
