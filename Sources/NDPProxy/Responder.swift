// The NDP proxy responder: reads Neighbor Solicitations off an interface with a packet socket,
// validates them (RFC 4861 §7.1.1), and answers those its rule selects with a Neighbor
// Advertisement built as RFC 4861 §7.2.4 and §7.2.8 say for proxies.
import SixgateIO
import PacketKit
import RouteKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

public final class Responder: @unchecked Sendable {
    public let rule: ProxyRule
    /// The interface's index and MAC address now (both change when it is deleted and made again).
    public internal(set) var interfaceIndex: Int32
    public internal(set) var mac: MACAddress
    /// Called (on the responder's thread) when the interface goes away and when it is back.
    public var log: (@Sendable (String) -> Void)?
    /// Called for each answer (target, to whom); keep it short.
    public var onAnswer: (@Sendable (IPv6Address, IPv6Address) -> Void)?
    /// When set, called with one line per solicitation: its target, source and verdict with the
    /// reason ("outside the prefixes", "not routed through another interface", which RFC 4861
    /// §7.1.1 check it failed, ...). At most `traceLimit` lines a second; the lines over it are
    /// counted and said in one line when the next second starts, so a flood cannot fill a disk.
    /// Unset (the default), the answer path builds no text at all.
    public var trace: (@Sendable (String) -> Void)?
    /// Trace lines per second (see `trace`).
    public var traceLimit = 50
    /// Answers per second allowed overall and per solicitation source. An ISP router solicits for
    /// every client from one address, so the per-source bound is high: it only stops one host from
    /// taking the whole budget.
    public var rateLimit: (overall: Int, perSource: Int) = (200_000, 100_000)

    /// The packet socket on the interface (nil while the interface is gone).
    var socket: PacketSocket?
    let routes: RouteSocket
    let namespace: NetworkNamespace
    /// The interface is gone: the socket is closed and the thread waits for it to come back.
    var interfaceGone = false
    var interfaceCheckedAt = 0.0
    let lock = SystemLock()
    var stats = ResponderStatistics()
    var running = false
    var thread: pthread_t?
    var localAddresses: Set<IPv6Address> = []
    var linkLocal: IPv6Address?
    var localRefreshedAt = -1e9
    var routeCache: [IPv6Address: (Bool, Double)] = [:]
    var listAddresses: Set<IPv6Address>
    var window = (start: 0.0, overall: 0, perSource: [IPv6Address: Int]())
    // Touched only by the responder's thread: the batch's clock, counters, rule and answers.
    var now = 0.0
    var pending = ResponderStatistics()
    var activeRule: ProxyRule
    let batchCapacity = PacketSocket.batchCapacity
    static let answerStride = 96
    /// Answers written and not yet sent: frame i at `frames + i * answerStride`, its length, and
    /// (target, destination) for `onAnswer`.
    final class AnswerBatch {
        let frames: UnsafeMutableRawPointer
        let lengths: UnsafeMutablePointer<UInt32>
        let sent: UnsafeMutablePointer<(IPv6Address, IPv6Address)>
        var count = 0
        init(capacity: Int) {
            frames = .allocate(byteCount: capacity * Responder.answerStride, alignment: 16)
            lengths = .allocate(capacity: capacity)
            sent = .allocate(capacity: capacity)
        }
        deinit { frames.deallocate(); lengths.deallocate(); sent.deallocate() }
    }
    let outgoing: AnswerBatch
    // `iface` rules: a packet socket for advertisements on the inner interface, and what it said.
    var inner: (socket: PacketSocket, index: Int32, mac: MACAddress)?
    var innerLinkLocal: IPv6Address?
    /// An answer owed to a solicitation, sent once the inner host answers.
    struct Owed { var source: IPv6Address; var destinationMAC: MACAddress; var multicast: Bool }
    enum InnerState { case waiting([Owed]), present, absent }
    var innerCache: [IPv6Address: (state: InnerState, expires: Double)] = [:]
    /// Targets with a solicitation out (so the timeout check does not walk the whole cache).
    var innerWaiting: Set<IPv6Address> = []
    /// The inner interface of an `iface` rule is gone (deleted, or not yet made again).
    var innerGone = false
    var traceWindow = (start: 0.0, lines: 0, suppressed: 0)

    /// Opens the packet socket on `rule.interface` in `namespace` (needs CAP_NET_RAW).
    public init(rule: ProxyRule, namespace: NetworkNamespace = .current) throws(NDPProxyError) {
        self.rule = rule
        self.namespace = namespace
        listAddresses = rule.addresses
        activeRule = rule
        outgoing = AnswerBatch(capacity: PacketSocket.batchCapacity)
        do {
            routes = try RouteSocket(namespace: namespace)
            interfaceIndex = try routes.interfaceIndex(rule.interface)
        } catch {
            throw NDPProxyError(.interface(rule.interface), error)
        }
        let s = try openPacketSocket(in: namespace, rule.interface, index: interfaceIndex, .neighborSolicitations)
        let bytes: [UInt8]
        do { bytes = try s.macAddress() } catch {
            throw NDPProxyError(.interface(rule.interface), "cannot read its MAC address (\(String(cString: strerror(error.errno))))", errno: error.errno)
        }
        socket = s
        mac = bytes.withUnsafeBytes { MACAddress(bytes: $0) }
        // From here self is whole: a throw runs deinit (the sockets close themselves).
        try refreshLocal(force: true)
        if let name = rule.innerInterface {
            let innerIndex: Int32
            do { innerIndex = try routes.interfaceIndex(name) } catch { throw NDPProxyError(.innerInterface(name), error) }
            inner = try openInner(name, index: innerIndex)
        }
    }

    /// A packet socket for advertisements on the inner interface `name` (index `index`).
    func openInner(_ name: String, index: Int32) throws(NDPProxyError) -> (socket: PacketSocket, index: Int32, mac: MACAddress) {
        let s = try openPacketSocket(in: namespace, name, index: index, .icmpv6(136))
        let innerMAC: [UInt8]
        do { innerMAC = try s.macAddress() } catch { throw NDPProxyError(.interface(name), "cannot read its MAC address") }
        return (s, index, innerMAC.withUnsafeBytes { MACAddress(bytes: $0) })
    }

    deinit { stop() }

    public var statistics: ResponderStatistics { lock.withLock { stats } }

    /// Replaces the rule's address list (black or white) while running: a gateway keeps it equal
    /// to its clients' addresses.
    public func setAddresses(_ addresses: Set<IPv6Address>) { lock.withLock { listAddresses = addresses } }

    public func start() {
        lock.withLock { running = true }
        thread = SystemThread.start(name: "sg-ndp-" + rule.interface) { [self] in self.loop() }
    }

    public func stop() {
        let was = lock.withLock { let w = running; running = false; return w }
        if was, let t = thread { pthread_join(t, nil); thread = nil }
    }

    /// The interface's own addresses (for ignore-local) and its link-local (the answers' source).
    func refreshLocal(force: Bool = false) throws(NDPProxyError) {
        let now = MonotonicClock.seconds()
        guard force || now - localRefreshedAt > 2 else { return }
        localRefreshedAt = now
        do {
            let addrs = try routes.addresses(interface: rule.interface)
            var set = Set<IPv6Address>(), ll: IPv6Address?
            for a in addrs { if case .v6(let v) = a.address { set.insert(v); if v.isLinkLocal { ll = v } } }
            localAddresses = set
            linkLocal = ll
        } catch {
            throw NDPProxyError(.addresses(interface: rule.interface), error)
        }
    }

    func loop() {
        let stride = 2048
        let frames = UnsafeMutableRawPointer.allocate(byteCount: stride * batchCapacity, alignment: 16)
        let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: batchCapacity)
        defer { frames.deallocate(); lengths.deallocate() }
        var p = (pollfd(fd: socket?.fd ?? -1, events: Int16(POLLIN), revents: 0), pollfd(fd: inner?.socket.fd ?? -1, events: Int16(POLLIN), revents: 0))
        while lock.withLock({ running }) {
            if rule.innerInterface != nil { expireInner() }
            p.0.fd = socket?.fd ?? -1
            p.1.fd = inner?.socket.fd ?? -1
            p.0.revents = 0; p.1.revents = 0
            let ready = withUnsafeMutablePointer(to: &p) {
                $0.withMemoryRebound(to: pollfd.self, capacity: 2) { poll($0, inner == nil ? 1 : 2, inner == nil ? 100 : 50) }
            }
            // Every 2 s, and at once when the socket reports an error: is the interface still the one we opened?
            let now = MonotonicClock.seconds()
            let failed = Int16(POLLERR | POLLHUP | POLLNVAL)
            if interfaceGone || innerGone || p.0.revents & failed != 0 || p.1.revents & failed != 0 || now - interfaceCheckedAt >= 2 {
                interfaceCheckedAt = now
                checkInterface()
                if rule.innerInterface != nil { checkInner() }
                if interfaceGone { usleep(200_000); continue }
                if innerGone && ready <= 0 { usleep(200_000) }
            }
            guard ready > 0 else { continue }
            beginBatch()
            if let inner, p.1.revents & Int16(POLLIN) != 0 {
                let n = inner.socket.receive(into: frames, stride: stride, count: batchCapacity, lengths: lengths)
                for i in 0..<max(n, 0) { handleInner(UnsafeRawBufferPointer(start: frames + i * stride, count: Int(lengths[i]))) }
            }
            // Up to four batches per wakeup, then the inner socket and the running flag get a turn.
            for _ in 0..<4 {
                guard let socket else { break }
                let n = socket.receive(into: frames, stride: stride, count: batchCapacity, lengths: lengths)
                guard n > 0 else { break }
                for i in 0..<n { handle(UnsafeRawBufferPointer(start: frames + i * stride, count: Int(lengths[i]))) }
                flushAnswers()
                if n < batchCapacity { break }
            }
            endBatch()
        }
    }

    /// Per batch, not per packet: the clock, the local addresses, the rule's current address list.
    func beginBatch() {
        now = MonotonicClock.seconds()
        try? refreshLocal()
        let list = lock.withLock { listAddresses }
        if list != activeRule.addresses { activeRule.addresses = list }
    }

    /// Sends the answers written so far and publishes the batch's counters (one lock per batch).
    func endBatch() {
        flushAnswers()
        let add = pending
        pending = ResponderStatistics()
        lock.withLock { stats.add(add) }
    }

    /// One frame from the socket. Internal so tests can feed frames without a socket (then call
    /// `endBatch()` to send the answers and publish the counters).
    func handle(_ frame: UnsafeRawBufferPointer) {
        pending.received += 1
        guard let eth = try? EthernetFrame(frame), eth.etherType == .ipv6, let ip = try? IPv6Packet(eth.payload) else {
            pending.malformed += 1
            if trace != nil { note("malformed frame: not an IPv6 packet PacketKit can read (\(frame.count) bytes)") }
            return
        }
        let validation = Result { () throws(PacketError) in try NDPValidation.validate(ip) }
        guard case .success(.neighborSolicitation) = validation, let m = try? ICMPv6Message(ip.upperLayer),
              let ns = try? NeighborSolicitation(m) else {
            pending.invalid += 1
            if trace != nil { note("invalid solicitation from \(ip.source): \(Self.invalidReason(validation))") }
            return
        }
        let target = ns.target
        let verdict = activeRule.verdict(for: target, localAddresses: localAddresses)
        switch verdict {
        case .answer: break
        case .answerIfRouted:
            guard routedElsewhere(target) else {
                pending.notRouted += 1
                if trace != nil { note("solicitation for \(target) from \(ip.source): not answered: auto rule, and the kernel does not route it through another interface") }
                return
            }
        case .answerIfInnerAnswers:
            break   // decided below, after the rate limit: our own solicitation costs a packet too
        case .outsidePrefix:
            pending.outsidePrefix += 1
            if trace != nil { note("solicitation for \(target) from \(ip.source): not answered: outside the rule's prefixes") }
            return
        case .listed, .notListed:
            pending.excludedByList += 1
            if trace != nil { note("solicitation for \(target) from \(ip.source): not answered: \(verdict == .listed ? "on the deny (black) list" : "not on the allow (white) list")") }
            return
        case .local:
            pending.local += 1
            if trace != nil { note("solicitation for \(target) from \(ip.source): not answered: an address of \(rule.interface) itself (the kernel answers; ignoreLocal)") }
            return
        }
        let source = ip.source
        guard admit(source) else {
            pending.rateLimited += 1
            if trace != nil { note("solicitation for \(target) from \(source): not answered: rate-limited (\(rateLimit.overall)/s overall, \(rateLimit.perSource)/s per source)") }
            return
        }
        let destinationMAC = source.isUnspecified ? MACAddress(rawValue: 0x3333_0000_0001)
            : ns.options.first(.sourceLinkLayerAddress)?.linkLayerAddress ?? eth.source
        let owed = Owed(source: source, destinationMAC: destinationMAC, multicast: ip.destination.isMulticast)
        if verdict == .answerIfInnerAnswers {
            askInner(target, owed)
            return
        }
        if trace != nil { note("solicitation for \(target) from \(source): answered\(verdict == .answerIfRouted ? " (auto: routed through another interface)" : "")") }
        answer(target, owed)
    }

    /// One trace line, within `traceLimit` lines a second.
    func note(_ line: @autoclosure () -> String) {
        guard let trace else { return }
        let t = MonotonicClock.seconds()
        if t - traceWindow.start >= 1 {
            if traceWindow.suppressed > 0 { trace("\(rule.interface): \(traceWindow.suppressed) more solicitation lines in the last second not logged (limit \(traceLimit)/s)") }
            traceWindow = (t, 0, 0)
        }
        guard traceWindow.lines < traceLimit else { traceWindow.suppressed += 1; return }
        traceWindow.lines += 1
        trace("\(rule.interface): \(line())")
    }

    /// Which RFC 4861 §7.1.1 check (or which other rule) a packet that is not a valid Neighbor
    /// Solicitation failed.
    static func invalidReason(_ result: Result<ICMPv6Type, PacketError>) -> String {
        let rule: String
        switch result {
        case .success(let type): return "not a Neighbor Solicitation (ICMPv6 type \(type.rawValue))"
        case .failure(let e):
            switch e.reason {
            case .badHopLimit: rule = "the IP Hop Limit field is not 255"
            case .badChecksum: rule = "the ICMP checksum is not valid"
            case .badCode: rule = "the ICMP Code is not 0"
            case .truncated, .badLength: rule = "the ICMP length (derived from the IP length) is less than 24 octets"
            case .badOptionLength: rule = "an option has a length of zero (or runs past the message)"
            case .forbiddenOption: rule = "the source is the unspecified address and there is a source link-layer address option"
            case .badAddress where e.offset == 24: rule = "the source is the unspecified address and the destination is not a solicited-node multicast address"
            case .badAddress where e.offset == 8: return "the source is a multicast address (RFC 4291 §2.7)"
            case .badAddress: rule = "the Target Address is a multicast address"
            case .wrongType: return "not an ICMPv6 message (or another type): \(e)"
            default: return "\(e)"
            }
        }
        return "RFC 4861 §7.1.1: \(rule)"
    }

    /// Sends the advertisement for `target` owed to a solicitation.
    func answer(_ target: IPv6Address, _ owed: Owed) {
        let source = owed.source
        // RFC 4861 §7.2.4: to the solicitation's source with Solicited set; to all-nodes without it
        // when the source is unspecified (DAD). The target link-layer option is required when the
        // solicitation was multicast. §7.2.8: a proxy's advertisement has Override clear.
        let dad = source.isUnspecified
        let destination = dad ? IPv6Address(rawValue: 0xff02 << 112 | 1) : source
        var flags: NeighborAdvertisementFlags = dad ? [] : .solicited
        if rule.routerFlag { flags.insert(.router) }
        let option = (owed.multicast || rule.linkOption || dad) ? mac : nil
        // Written in place into the batch's next slot: the answer path allocates nothing
        // (Benchmarks/PacketKitBenchmarks); sent with the batch by one sendmmsg.
        if outgoing.count == batchCapacity { flushAnswers() }
        let slot = UnsafeMutableRawBufferPointer(start: outgoing.frames + outgoing.count * Self.answerStride, count: Self.answerStride)
        guard let n = try? NDPFrame.ethernetNeighborAdvertisement(
            into: slot, destinationMAC: owed.destinationMAC, sourceMAC: mac, source: linkLocal ?? target,
            destination: destination, hopLimit: rule.hopLimit, flags: flags, target: target, targetLinkLayer: option) else {
            pending.sendErrors += 1; return
        }
        outgoing.lengths[outgoing.count] = UInt32(n)
        outgoing.sent[outgoing.count] = (target, destination)
        outgoing.count += 1
    }

    /// Sends the answers waiting in the batch.
    func flushAnswers() {
        let count = outgoing.count
        guard count > 0 else { return }
        outgoing.count = 0
        let sent = socket?.send(frames: outgoing.frames, stride: Self.answerStride, lengths: outgoing.lengths, count: count) ?? 0
        pending.answered += UInt64(sent)
        pending.sendErrors += UInt64(count - sent)
        if let onAnswer { for i in 0..<sent { onAnswer(outgoing.sent[i].0, outgoing.sent[i].1) } }
    }
}
