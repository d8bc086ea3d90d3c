// The device: a TUN interface, a UDP socket, peers, and the threads that move packets between them
// (paper §6 for the timers; wireguard-go device/send.go, receive.go, timers.go for the shape).
import CTunnel
import PacketKit
import RouteKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// The protocol's timer constants (paper §6.1). Tests shorten them to watch a rekey happen.
public struct TunnelTimers: Sendable {
    public var rekeyAfterTime = 120.0
    public var rejectAfterTime = 180.0
    public var rekeyAttemptTime = 90.0
    public var rekeyTimeout = 5.0
    public var keepaliveTimeout = 10.0
    /// How often the timer thread looks at every peer.
    public var tick = 0.1
    public init() {}
}

/// Counters of what the device did and dropped. Every drop has a reason here.
public struct DeviceStatistics: Sendable, Equatable {
    public var packetsSent: UInt64 = 0
    public var packetsReceived: UInt64 = 0
    public var keepalivesSent: UInt64 = 0
    public var keepalivesReceived: UInt64 = 0
    public var handshakesInitiated: UInt64 = 0
    public var handshakesCompleted: UInt64 = 0
    public var cookieRepliesSent: UInt64 = 0
    public var cookieRepliesReceived: UInt64 = 0
    /// Datagrams that are no WireGuard message (wrong type, size, reserved bytes).
    public var droppedMalformed: UInt64 = 0
    /// Handshake messages with a wrong MAC1.
    public var droppedBadMAC1: UInt64 = 0
    /// Handshake messages refused: unknown key, bad decryption, replayed timestamp, flood, no pending handshake.
    public var droppedHandshakes: UInt64 = 0
    /// Transport messages for an unknown receiver index or an expired keypair.
    public var droppedUnknownIndex: UInt64 = 0
    /// Transport messages whose tag did not authenticate (tampered, wrong key).
    public var droppedAuthentication: UInt64 = 0
    /// Transport messages whose counter was seen before or is too old.
    public var droppedReplay: UInt64 = 0
    /// Decrypted packets whose inner source is outside the sending peer's allowed IPs.
    public var droppedAllowedIPs: UInt64 = 0
    /// Decrypted packets refused by the program's filter.
    public var droppedByFilter: UInt64 = 0
    /// Decrypted payloads that are no IPv4/IPv6 packet.
    public var droppedInnerMalformed: UInt64 = 0
    /// Packets from the TUN device with no peer for their destination.
    public var droppedNoPeer: UInt64 = 0
    /// Packets for a peer without an endpoint, or queued too long for a handshake.
    public var droppedNoEndpoint: UInt64 = 0
    public var droppedQueueFull: UInt64 = 0
    /// Reads from an offload TUN device whose virtio header or super-packet did not hold together
    /// (truncated, a lying header length, a bad segment size).
    public var droppedBadOffload: UInt64 = 0
    /// TCP/UDP super-packets read from the TUN device and cut into segments here.
    public var superPacketsRead: UInt64 = 0
    /// Super-packets written to the TUN device, coalesced from received segments.
    public var superPacketsWritten: UInt64 = 0
    /// Received segments merged into those super-packets (beyond each one's first).
    public var segmentsCoalesced: UInt64 = 0
    public init() {}
}

/// Something a program may want to know about a peer.
public enum PeerEvent: Sendable, Equatable {
    case handshakeCompleted(Bytes32)
    /// No handshake succeeded within rekey-attempt-time; queued packets were dropped.
    case handshakeFailed(Bytes32)
    /// No handshake for three reject-after-times (9 minutes with the protocol's constants): the
    /// session keys were zeroed and the peer is idle (a client that went away).
    case sessionExpired(Bytes32)
    case removed(Bytes32)
    /// A transport message for a session this device does not have, from `endpoint` (with
    /// `reportsUnknownSessions`; at most once a second per endpoint): a client whose gateway went
    /// away, sent here by an anycast route, which a group's gateway can answer with a handshake.
    case unknownSession(Endpoint)
}

/// A WireGuard-compatible device in userspace: configure it (private key, port, peers), start it,
/// and it carries the TUN interface's packets to peers and back.
///
/// ```swift
/// let device = try TunnelDevice(interfaceName: "wg0")
/// try device.configure(privateKey: key, listenPort: 51820)
/// try device.setPeer(PeerConfiguration(publicKey: peer, endpoint: Endpoint("192.0.2.2:51820"),
///                                      allowedIPs: [try IPPrefix.parse("2001:db8::/64")]))
/// try device.start()
/// ```
public final class TunnelDevice: @unchecked Sendable {
    public let tun: TunDevice
    public let socket: UDPSocket
    public let timers: TunnelTimers
    /// Handshake messages per second above which MAC2 (a cookie) is required (paper §5.3).
    public let underLoadThreshold: Int
    /// At most this many peers; `setPeer` (and a UAPI set) refuses the next with ENOSPC.
    public let maximumPeers: Int
    /// Called on the device's threads; keep it short.
    public var onEvent: (@Sendable (PeerEvent) -> Void)?
    /// Reports `.unknownSession` events (a gateway of a group sets it).
    public var reportsUnknownSessions = false
    /// When each endpoint's unknown session was last reported (bounded; cleared when full).
    var unknownReported: [Endpoint: Double] = [:]
    /// Called for every decrypted inner packet with the peer's public key; false drops it (counted).
    public var inboundFilter: (@Sendable (UnsafeRawBufferPointer, Bytes32) -> Bool)?
    /// When set, decrypted IPv6 packets whose source is link-local (fe80::/10) go here with the
    /// peer's public key instead of the TUN device, before cryptokey routing: the in-tunnel
    /// control traffic (Sixgate's lease exchange) of a peer that has no addresses yet. Called on
    /// the receive thread; it may call `send(packet:to:)`. Costs one byte compare per packet when set.
    public var controlHandler: (@Sendable (UnsafeRawBufferPointer, Bytes32) -> Void)?

    let lock = SystemLock()
    var identity: StaticIdentity?
    var peers: [Bytes32: Peer] = [:]
    var allowed = AllowedIPs<Peer>()
    enum IndexEntry { case handshake(Peer), keypair(Keypair) }
    var indices: [UInt32: IndexEntry] = [:]
    var cookieChecker = CookieChecker(now: MonotonicClock.seconds())
    var stats = DeviceStatistics()
    var loadWindowStart = 0.0
    var loadWindowCount = 0
    var handshakeAEAD = ChaChaPoly()
    var running = false
    var threads: [pthread_t] = []
    var pendingEvents: [PeerEvent] = []
    /// Why the last UAPI `set` was refused (line and key), for logs.
    public var lastUAPIError: String?
    let tunOffloadNote: String?

    /// Which offloads are on, and why any that was asked for is off (one line for the program's log).
    public var offloadSummary: String {
        var on: [String] = []
        if tun.offload { on.append(tun.udpOffload ? "TUN TSO+USO" : "TUN TSO") }
        if tun.offload { on.append("TCP coalescing") }
        if socket.segmentationOffload { on.append("UDP GSO") }
        if socket.receiveCoalescing { on.append("UDP GRO") }
        var line = on.isEmpty ? "offloads: none" : "offloads: " + on.joined(separator: ", ")
        for note in [tunOffloadNote, socket.offloadNote].compactMap({ $0 }) { line += "; " + note }
        return line
    }

    /// Creates TUN interface `interfaceName` and binds UDP `listenPort` (0: any free port) in `namespace`.
    ///
    /// `offload` (the default) uses what the kernel offers to move 64 KiB per system call instead of
    /// one packet: the TUN device with virtio headers (TCP, and UDP on Linux 6.2, segmentation
    /// offload: super-packets are cut and sealed per segment here; received TCP segments of a flow
    /// are coalesced into super-packets), UDP segmentation offload for sends and UDP receive
    /// coalescing. Each is checked once; what the kernel lacks is left off (`offloadSummary` says
    /// what is on, for the program's log). The peer needs none of it: the wire is unchanged.
    public init(interfaceName: String, listenPort: UInt16 = 0, namespace: NetworkNamespace = .current,
                timers: TunnelTimers = TunnelTimers(), underLoadThreshold: Int = 1000,
                maximumPeers: Int = TunnelDevice.defaultMaximumPeers, offload: Bool = true) throws(TunnelError) {
        var note: String?
        if offload {
            do {
                tun = try TunDevice(name: interfaceName, namespace: namespace, offload: true, udpOffload: true)
            } catch {
                note = "TUN offload unavailable (\(error)); one packet per read"
                tun = try TunDevice(name: interfaceName, namespace: namespace)
            }
        } else {
            tun = try TunDevice(name: interfaceName, namespace: namespace)
        }
        socket = try UDPSocket(port: listenPort, namespace: namespace, offload: offload)
        tunOffloadNote = note
        self.timers = timers
        self.underLoadThreshold = underLoadThreshold
        self.maximumPeers = maximumPeers
    }

    deinit { stop() }

    // MARK: Configuration

    /// The interface name.
    public var name: String { tun.name }
    public var listenPort: UInt16 { socket.port }
    public var publicKey: Bytes32? { lock.withLock { identity?.publicKey } }
    public var privateKey: Bytes32? { lock.withLock { identity?.privateKey } }
    public var statistics: DeviceStatistics { lock.withLock { stats } }

    /// Sets the private key (dropping every session, as a new identity invalidates them) and the port.
    public func configure(privateKey: Bytes32?, listenPort: UInt16? = nil) throws(TunnelError) {
        if let listenPort, listenPort != socket.port { try socket.rebind(port: listenPort) }
        lock.withLock {
            let newIdentity = privateKey.map { StaticIdentity(privateKey: $0) }
            if newIdentity?.privateKey != identity?.privateKey {
                identity = newIdentity
                for p in peers.values { clearSessions(p) }
                // A peer whose key equals our own public key cannot be talked to (as in wireguard-go).
                if let pub = newIdentity?.publicKey, let me = peers[pub] { removePeerLocked(me) }
            }
        }
    }

    /// The default peer limit (wireguard-go's MaxPeers).
    public static let defaultMaximumPeers = 1 << 16

    /// The endpoint the device has for a peer now (configured, or learned from its packets).
    public func endpoint(of publicKey: Bytes32) -> Endpoint? {
        lock.withLock { peers[publicKey]?.config.endpoint }
    }

    /// Adds a peer or updates one with the same public key (its sessions survive an update).
    /// The configuration replaces the peer's whole, its endpoint included.
    public func setPeer(_ config: PeerConfiguration) throws(TunnelError) {
        lock.lock(); defer { lock.unlock() }
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

    /// Drops the table entries that still belong to `p`. Lock held.
    func removeAllowedIPs(of p: Peer) {
        for prefix in p.config.allowedIPs where allowed.owner(of: prefix) === p { allowed.remove(prefix) }
    }

    /// Removes a peer; its sessions and allowed IPs go with it. No error if it is absent.
    public func removePeer(_ publicKey: Bytes32) {
        lock.withLock { if let p = peers[publicKey] { removePeerLocked(p) } }
        flushEvents()
    }

    func removePeerLocked(_ p: Peer) {
        clearSessions(p)
        removeAllowedIPs(of: p)
        peers[p.config.publicKey] = nil
        pendingEvents.append(.removed(p.config.publicKey))
    }

    func clearSessions(_ p: Peer) {
        for kp in [p.current, p.previous, p.next] { if let kp { indices[kp.localIndex] = nil } }
        if let pend = p.pending { indices[pend.localIndex] = nil }
        p.current = nil; p.previous = nil; p.next = nil; p.pending = nil; p.attemptStartedAt = nil
        p.queue.removeAll()
    }

    /// Every peer's configuration and counters.
    public func peerStatuses() -> [PeerStatus] {
        // Sorted by key (as `wg` lists them); the text of each key made once, not per comparison.
        lock.withLock { peers.values.map { ($0.config.publicKey.hex, $0.status) }.sorted { $0.0 < $1.0 }.map(\.1) }
    }

    /// One peer's configuration and counters.
    public func peerStatus(_ publicKey: Bytes32) -> PeerStatus? {
        lock.withLock { peers[publicKey]?.status }
    }

    /// Sends one inner packet (an IPv4 or IPv6 packet built by the caller) to the peer with
    /// `publicKey`, whatever its allowed IPs say: sealed now if a session exists, else queued and a
    /// handshake started. False if there is no such peer or it has no endpoint. Not for the data
    /// path (it copies the packet); for control traffic such as the lease exchange.
    @discardableResult
    public func send(packet: [UInt8], to publicKey: Bytes32) -> Bool {
        guard !packet.isEmpty, packet.count <= 65535 else { return false }
        let now = MonotonicClock.seconds()
        lock.lock()
        guard let peer = peers[publicKey], peer.config.endpoint != nil else { lock.unlock(); return false }
        guard let out = reserve(peer, now: now, bytes: packet.count, isData: true) else {
            if peer.queue.count >= Peer.queueLimit { peer.queue.removeFirst(); stats.droppedQueueFull += 1 }
            peer.queue.append(packet)
            startHandshake(peer, now: now)
            lock.unlock()
            return true
        }
        stats.packetsSent += 1
        lock.unlock()
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: packet.count + 64, alignment: 16)
        defer { scratch.deallocate() }
        packet.withUnsafeBytes { (scratch + 16).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        sealAndSend(out, buffer: scratch, length: packet.count, aead: ChaChaPoly())
        return true
    }

    /// Starts a handshake with the peer now (not waiting for a packet to it): a gateway that
    /// restarted uses it toward its clients' last endpoints, so their old sessions (which died with
    /// the process) are replaced within one round trip instead of at their own rekey timer. False if
    /// there is no such peer or it has no endpoint. Retried by the timers as any handshake.
    @discardableResult
    public func initiateHandshake(with publicKey: Bytes32) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let peer = peers[publicKey], peer.config.endpoint != nil else { return false }
        startHandshake(peer, now: MonotonicClock.seconds())
        return true
    }

    /// Which peer the device would send a packet for `address` to (cryptokey routing).
    public func peer(for address: IPAddress) -> Bytes32? { lock.withLock { allowed.lookup(address)?.config.publicKey } }

    // MARK: Running

    /// Starts the TUN reader, the UDP reader and the timer thread.
    public func start() {
        lock.lock()
        guard !running else { lock.unlock(); return }
        running = true
        lock.unlock()
        threads.append(SystemThread.start(name: "sg-tun") { [unowned self] in self.tunLoop() })
        threads.append(SystemThread.start(name: "sg-udp") { [unowned self] in self.udpLoop() })
        threads.append(SystemThread.start(name: "sg-timers") { [unowned self] in self.timerLoop() })
    }

    /// Stops the threads (within one poll interval) and waits for them.
    public func stop() {
        lock.lock()
        let wasRunning = running
        running = false
        lock.unlock()
        guard wasRunning else { return }
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }

    var isRunning: Bool { lock.withLock { running } }

    func flushEvents() {
        let events: [PeerEvent] = lock.withLock { let e = pendingEvents; pendingEvents.removeAll(); return e }
        if let onEvent { for e in events { onEvent(e) } }
    }

    // MARK: Sessions

    func newIndex(_ entry: IndexEntry) -> UInt32 {
        var rng = SystemRandomNumberGenerator()
        while true {
            let i: UInt32 = rng.next()
            if indices[i] == nil { indices[i] = entry; return i }
        }
    }

    /// Sends a handshake initiation to `peer` unless one went out less than rekey-timeout ago.
    /// Lock held.
    func startHandshake(_ peer: Peer, now: Double, retry: Bool = false) {
        guard let identity, let endpoint = peer.config.endpoint else { return }
        if !retry, let pend = peer.pending, now - pend.sentAt < timers.rekeyTimeout { return }
        if peer.attemptStartedAt == nil { peer.attemptStartedAt = now }
        if let pend = peer.pending { indices[pend.localIndex] = nil }
        let index = newIndex(.handshake(peer))
        guard let (message, state, mac1) = try? Handshake.createInitiation(
            local: identity, peerPublicKey: peer.config.publicKey, senderIndex: index, timestamp: TAI64N.now(),
            cookie: peer.cookieJar.current(now: now), aead: handshakeAEAD) else {
            indices[index] = nil
            return
        }
        peer.pending = (index, state, now)
        peer.retryJitter = Double.random(in: 0..<0.333)
        peer.cookieJar.lastMAC1 = mac1
        peer.lastSent = now
        stats.handshakesInitiated += 1
        _ = socket.send(message, to: endpoint)
    }

    /// Installs a fresh keypair. Lock held.
    func install(_ kp: Keypair, on peer: Peer, now: Double) {
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
        peer.lastHandshakeWall = WallClock.now()
        peer.handshakes += 1
        stats.handshakesCompleted += 1
        pendingEvents.append(.handshakeCompleted(peer.config.publicKey))
    }

    /// The responder's keypair is confirmed by the first transport message under it.
    func confirm(_ kp: Keypair, on peer: Peer) {
        guard peer.next === kp else { return }
        if let prev = peer.previous { indices[prev.localIndex] = nil }
        peer.previous = peer.current
        peer.current = kp
        peer.next = nil
    }

    /// A packet ready to seal: everything taken from shared state under the lock.
    struct Outbound { var key: Bytes32; var counter: UInt64; var remoteIndex: UInt32; var endpoint: Endpoint }

    /// Reserves `count` consecutive counters on the peer's current keypair (the first returned), or
    /// nil if a handshake is needed first.
    /// Lock held.
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

    /// Pads and seals in place into a transport message. `buffer` holds the packet at offset 16
    /// with room for padding and the tag after it. Returns the message length, or nil if sealing
    /// failed. Not under the lock.
    @inline(__always)
    func seal(_ out: Outbound, buffer: UnsafeMutableRawPointer, length: Int, aead: ChaChaPoly) -> Int? {
        let padded = (length + 15) & ~15
        if padded > length { (buffer + 16 + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
        guard aead.seal(key: out.key, nonce: ChaChaPoly.nonce(out.counter), data: buffer + 16, length: padded, tag: buffer + 16 + padded) else { return nil }
        buffer.storeBytes(of: UInt32(4).littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: out.remoteIndex.littleEndian, toByteOffset: 4, as: UInt32.self)
        buffer.storeBytes(of: out.counter.littleEndian, toByteOffset: 8, as: UInt64.self)
        return 16 + padded + 16
    }

    /// Seals and sends one message at once (handshake-time traffic; the data path batches).
    @inline(__always)
    func sealAndSend(_ out: Outbound, buffer: UnsafeMutableRawPointer, length: Int, aead: ChaChaPoly) {
        guard let total = seal(out, buffer: buffer, length: length, aead: aead) else { return }
        socket.send(UnsafeRawBufferPointer(start: buffer, count: total), to: out.endpoint)
    }

    /// Seals and sends queued packets and keepalives collected under the lock.
    func sendCollected(_ items: [(Outbound, [UInt8])], aead: ChaChaPoly, scratch: UnsafeMutableRawPointer) {
        for (out, packet) in items {
            packet.withUnsafeBytes { (scratch + 16).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(scratch), byteCount: $0.count) }
            sealAndSend(out, buffer: scratch, length: packet.count, aead: aead)
        }
    }

    /// After a handshake completes as initiator: the queue, or one keepalive to confirm the keys.
    /// Lock held.
    func drainQueue(_ peer: Peer, now: Double, into items: inout [(Outbound, [UInt8])]) {
        let queued = peer.queue
        peer.queue.removeAll()
        for p in queued { if let o = reserve(peer, now: now, bytes: p.count, isData: true) { items.append((o, p)) } }
        if queued.isEmpty, let o = reserve(peer, now: now, bytes: 0, isData: false) { items.append((o, [])); stats.keepalivesSent += 1 }
    }

    static let scratchSize = 65536 + 64
}
