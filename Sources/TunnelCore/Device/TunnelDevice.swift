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
    /// Packets to peers that queue management (CoDel) marked Congestion Experienced: they were
    /// ECN-capable and waited in a standing queue in front of the sealing thread.
    public var codelMarkedToPeers: UInt64 = 0
    /// Packets to peers that CoDel dropped for the same reason (not ECN-capable): how TCP learns to
    /// slow down, as at any router's queue. Not among the `dropped*` faults (which the gateway's
    /// drop report logs): a tunnel under full load drops a few by design.
    public var codelDroppedToPeers: UInt64 = 0
    /// Packets to peers dropped because the queue in front of the sealing thread was full (from
    /// its longest flow): traffic faster than CoDel could slow down, or a flood.
    public var droppedQueueOverflow: UInt64 = 0
    /// Decrypted packets from peers that CoDel marked CE: the UDP socket's receive queue had a
    /// standing delay (traffic from peers faster than this device opens it).
    public var codelMarkedFromPeers: UInt64 = 0
    /// Decrypted packets from peers that CoDel dropped for that reason (not ECN-capable).
    public var codelDroppedFromPeers: UInt64 = 0
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
    /// Every queue of the TUN device (`tun` first) and every socket on the port (`socket` first):
    /// one reader thread each (`queues`).
    let tunQueues: [TunDevice]
    let sockets: [UDPSocket]
    /// The protocol (WireGuardEngine: no I/O of its own), used under `lock`; what it asks to send
    /// goes out after the lock is released.
    let engine: WireGuardEngine
    public var timers: TunnelTimers { engine.timers }
    /// Handshake messages per second above which MAC2 (a cookie) is required (paper §5.3).
    public var underLoadThreshold: Int { engine.underLoadThreshold }
    /// At most this many peers; `setPeer` (and a UAPI set) refuses the next with ENOSPC.
    public var maximumPeers: Int { engine.maximumPeers }
    /// Called on the device's threads; keep it short.
    public var onEvent: (@Sendable (PeerEvent) -> Void)?
    /// Reports `.unknownSession` events (a gateway of a group sets it).
    public var reportsUnknownSessions: Bool {
        get { lock.withLock { engine.reportsUnknownSessions } }
        set { lock.withLock { engine.reportsUnknownSessions = newValue } }
    }
    /// Called for every decrypted inner packet with the peer's public key; false drops it (counted).
    public var inboundFilter: (@Sendable (UnsafeRawBufferPointer, Bytes32) -> Bool)?
    /// When set, decrypted IPv6 packets whose source is link-local (fe80::/10) go here with the
    /// peer's public key instead of the TUN device, before cryptokey routing: the in-tunnel
    /// control traffic (Sixgate's lease exchange) of a peer that has no addresses yet. Called on
    /// the receive thread; it may call `send(packet:to:)`. Costs one byte compare per packet when set.
    public var controlHandler: (@Sendable (UnsafeRawBufferPointer, Bytes32) -> Void)?

    let lock = SystemLock()
    var running = false
    var threads: [pthread_t] = []
    /// Why the last UAPI `set` was refused (line and key), for logs.
    public var lastUAPIError: String?
    let tunOffloadNote: String?
    /// The receive queue's CoDel settings (each receive thread a copy); nil: off.
    public let queueManagement: CoDel?
    /// Threads that seal beside each TUN reader (`init(sealHelpers:)`).
    public let sealHelpers: Int
    /// Threads that open beside each UDP reader (`init(openHelpers:)`).
    public let openHelpers: Int

    /// Which offloads are on, and why any that was asked for is off (one line for the program's log).
    public var offloadSummary: String {
        var on: [String] = []
        if tunQueues.count > 1 { on.append("\(tunQueues.count) queues") }
        if sealHelpers > 0 { on.append("\(sealHelpers) seal helper\(sealHelpers == 1 ? "" : "s") per queue") }
        if openHelpers > 0 { on.append("\(openHelpers) open helper\(openHelpers == 1 ? "" : "s") per queue") }
        if tun.offload { on.append(tun.udpOffload ? "TUN TSO+USO" : "TUN TSO") }
        if tun.offload { on.append("TCP coalescing") }
        if socket.segmentationOffload { on.append("UDP GSO") }
        if socket.receiveCoalescing { on.append("UDP GRO") }
        var line = on.isEmpty ? "offloads: none" : "offloads: " + on.joined(separator: ", ")
        for note in [tunOffloadNote, socket.offloadNote].compactMap({ $0 }) { line += "; " + note }
        if let q = queueManagement {
            let parts = (tun.offload ? ["FQ-CoDel to peers"] : []) + (socket.receiveTimestamps ? ["CoDel from peers"] : [])
            if !parts.isEmpty {
                line += "; queue management: " + parts.joined(separator: ", ") + " (target \(q.target / 1_000_000) ms, interval \(q.interval / 1_000_000) ms)"
            }
        }
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
    ///
    /// `queues` > 1 spreads the work over that many pairs of threads: the TUN device is made
    /// multi-queue (the kernel gives each flow to one queue) and that many UDP sockets share the port
    /// (SO_REUSEPORT: the kernel gives each peer's address to one socket), so a gateway with many
    /// clients uses several cores while every flow and every peer stays in order on one thread.
    ///
    /// `sealHelpers` > 0 seals each batch of packets read from the TUN device on that many more
    /// threads beside its reader (`Crew`), so one peer's single flow uses several cores while
    /// staying in order (the batch goes out in order once all its packets are sealed). `openHelpers`
    /// does the same for what arrives: each UDP reader looks up the sessions of a receive's messages
    /// in order, opens them with that many more threads, then checks replay and writes to the TUN
    /// device in order. For a machine with cores to spare; on one whose cores are already busy they
    /// only add wake-ups.
    ///
    /// `queueManagement` (CoDel with RFC 8289's 5 ms target and 100 ms interval by default; nil
    /// turns it off) watches how long received datagrams waited in the socket's queue and, when a
    /// standing queue forms (traffic faster than this device decrypts), ECN-marks or drops decrypted
    /// packets so that TCP slows down before the queue holds everyone's packets for milliseconds
    /// (`codelMarkedFromPeers`, `codelDroppedFromPeers`). Over an offload TUN device, packets to
    /// peers go through FQ-CoDel (`FairQueue`) that each TUN reader reads ahead into (the kernel's
    /// TUN ring says nothing of how long packets waited): sparse flows before bulk ones, each flow's
    /// standing queue held to the target (`codelMarkedToPeers`, `codelDroppedToPeers`,
    /// `droppedQueueOverflow`). Each reader thread runs its own.
    public init(interfaceName: String, listenPort: UInt16 = 0, namespace: NetworkNamespace = .current,
                timers: TunnelTimers = TunnelTimers(), underLoadThreshold: Int = 1000,
                maximumPeers: Int = TunnelDevice.defaultMaximumPeers, offload: Bool = true, queues: Int = 1,
                queueManagement: CoDel? = CoDel(), sealHelpers: Int = 0, openHelpers: Int = 0) throws(TunnelError) {
        self.sealHelpers = max(0, min(sealHelpers, 16))
        self.openHelpers = max(0, min(openHelpers, 16))
        var note: String?
        let multi = queues > 1
        if offload {
            do {
                tun = try TunDevice(name: interfaceName, namespace: namespace, multiQueue: multi, offload: true, udpOffload: true)
            } catch {
                note = "TUN offload unavailable (\(error)); one packet per read"
                tun = try TunDevice(name: interfaceName, namespace: namespace, multiQueue: multi)
            }
        } else {
            tun = try TunDevice(name: interfaceName, namespace: namespace, multiQueue: multi)
        }
        socket = try UDPSocket(port: listenPort, namespace: namespace, offload: offload, sharePort: multi, timestamps: queueManagement != nil)
        self.queueManagement = queueManagement
        var q = [tun], s = [socket]
        for _ in 1..<max(1, queues) {
            q.append(try tun.addQueue())
            s.append(try socket.sibling())
        }
        tunQueues = q; sockets = s
        tunOffloadNote = note
        engine = WireGuardEngine(timers: timers, underLoadThreshold: underLoadThreshold, maximumPeers: maximumPeers, now: MonotonicClock.seconds())
        engine.defersInitiationWork = true
    }

    deinit { stop() }

    // MARK: Configuration

    /// The interface name.
    public var name: String { tun.name }
    public var listenPort: UInt16 { socket.port }
    /// How many pairs of reader threads (TUN queues and UDP sockets) the device runs.
    public var queues: Int { tunQueues.count }

    /// Marks every datagram the device sends with `mark` (SO_MARK on each socket; 0 removes it).
    public func setMark(_ mark: UInt32) throws(TunnelError) {
        for s in sockets { try s.setMark(mark) }
    }
    public var publicKey: Bytes32? { lock.withLock { engine.publicKey } }
    public var privateKey: Bytes32? { lock.withLock { engine.privateKey } }
    public var statistics: DeviceStatistics { lock.withLock { engine.stats } }

    /// Sets the private key (dropping every session, as a new identity invalidates them) and the port.
    public func configure(privateKey: Bytes32?, listenPort: UInt16? = nil) throws(TunnelError) {
        if let listenPort, listenPort != socket.port {
            try socket.rebind(port: listenPort)
            for s in sockets.dropFirst() { try s.rebind(port: socket.port) }
        }
        lock.withLock { engine.configure(privateKey: privateKey) }
        flushOutput()
    }

    /// The default peer limit (wireguard-go's MaxPeers).
    public static let defaultMaximumPeers = 1 << 16

    /// The endpoint the device has for a peer now (configured, or learned from its packets).
    public func endpoint(of publicKey: Bytes32) -> Endpoint? { lock.withLock { engine.endpoint(of: publicKey) } }

    /// Adds a peer or updates one with the same public key (its sessions survive an update).
    /// The configuration replaces the peer's whole, its endpoint included.
    public func setPeer(_ config: PeerConfiguration) throws(TunnelError) {
        lock.lock(); defer { lock.unlock() }
        try engine.setPeer(config)
    }

    /// Removes a peer; its sessions and allowed IPs go with it. No error if it is absent.
    public func removePeer(_ publicKey: Bytes32) {
        lock.withLock { engine.removePeer(publicKey) }
        flushOutput()
    }

    /// Every peer's configuration and counters.
    public func peerStatuses() -> [PeerStatus] { lock.withLock { engine.peerStatuses() } }

    /// One peer's configuration and counters.
    public func peerStatus(_ publicKey: Bytes32) -> PeerStatus? { lock.withLock { engine.peerStatus(publicKey) } }

    /// Sends one inner packet (an IPv4 or IPv6 packet built by the caller) to the peer with
    /// `publicKey`, whatever its allowed IPs say: sealed now if a session exists, else queued and a
    /// handshake started. False if there is no such peer or it has no endpoint. Not for the data
    /// path (it copies the packet); for control traffic such as the lease exchange.
    @discardableResult
    public func send(packet: [UInt8], to publicKey: Bytes32) -> Bool {
        let ok = lock.withLock { engine.send(packet: packet, to: publicKey, now: MonotonicClock.seconds()) }
        flushOutput()
        return ok
    }

    /// Starts a handshake with the peer now (not waiting for a packet to it): a gateway that
    /// restarted uses it toward its clients' last endpoints, so their old sessions (which died with
    /// the process) are replaced within one round trip instead of at their own rekey timer. False if
    /// there is no such peer or it has no endpoint. Retried by the timers as any handshake.
    @discardableResult
    public func initiateHandshake(with publicKey: Bytes32) -> Bool {
        let ok = lock.withLock { engine.initiateHandshake(with: publicKey, now: MonotonicClock.seconds()) }
        flushOutput()
        return ok
    }

    /// Which peer the device would send a packet for `address` to (cryptokey routing).
    public func peer(for address: IPAddress) -> Bytes32? { lock.withLock { engine.peer(for: address) } }

    // MARK: Running

    /// Starts the TUN reader, the UDP reader and the timer thread.
    public func start() {
        lock.lock()
        guard !running else { lock.unlock(); return }
        running = true
        lock.unlock()
        for (i, (queue, udp)) in zip(tunQueues, sockets).enumerated() {
            let suffix = tunQueues.count > 1 ? "\(i)" : ""
            threads.append(SystemThread.start(name: "sg-tun" + suffix) { [unowned self] in self.tunLoop(tun: queue, socket: udp, name: suffix) })
            threads.append(SystemThread.start(name: "sg-udp" + suffix) { [unowned self] in self.udpLoop(socket: udp, tun: queue, name: suffix) })
        }
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

    /// Sends what the engine queued (outside the lock) and tells `onEvent` what happened.
    func flushOutput() {
        let lock = self.lock
        engine.createWantedInitiations(now: MonotonicClock.seconds()) { step in lock.withLock(step) }
        let (datagrams, events) = lock.withLock { () -> ([(datagram: [UInt8], endpoint: Endpoint)], [PeerEvent]) in
            engine.hasOutput ? engine.takeOutput() : ([], [])
        }
        for (d, e) in datagrams { _ = socket.send(d, to: e) }
        if let onEvent { for e in events { onEvent(e) } }
    }

    static let scratchSize = 65536 + 64
}
