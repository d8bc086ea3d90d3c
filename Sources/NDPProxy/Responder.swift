// The NDP proxy responder: reads Neighbor Solicitations off an interface with a packet socket,
// validates them (RFC 4861 §7.1.1), and answers those its rule selects with a Neighbor
// Advertisement built as RFC 4861 §7.2.4 and §7.2.8 say for proxies.
import CPacketSocket
import PacketKit
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

/// What a responder has seen and done.
public struct ResponderStatistics: Sendable, Equatable, CustomStringConvertible {
    public var received: UInt64 = 0
    public var answered: UInt64 = 0
    /// Failed RFC 4861 §7.1.1 validation (hop limit, checksum, code, length, addresses, options).
    public var invalid: UInt64 = 0
    /// Not an IPv6 packet PacketKit could read (truncated, bad version, extension headers in the way).
    public var malformed: UInt64 = 0
    public var outsidePrefix: UInt64 = 0
    /// `auto` targets the kernel does not route through another interface.
    public var notRouted: UInt64 = 0
    public var excludedByList: UInt64 = 0
    /// `iface` targets no host on the inner interface answered for (within the timeout, or cached).
    public var innerSilent: UInt64 = 0
    /// Our own solicitations sent on the inner interface, and the advertisements that came back.
    public var innerSolicitations: UInt64 = 0
    public var innerAnswers: UInt64 = 0
    public var local: UInt64 = 0
    /// Over the rate limit (per source or overall).
    public var rateLimited: UInt64 = 0
    public var sendErrors: UInt64 = 0

    public var description: String {
        "received \(received) answered \(answered) invalid \(invalid) malformed \(malformed) outside-prefix \(outsidePrefix) not-routed \(notRouted) "
            + "inner-silent \(innerSilent) inner-solicitations \(innerSolicitations) inner-answers \(innerAnswers) "
            + "excluded \(excludedByList) local \(local) rate-limited \(rateLimited) send-errors \(sendErrors)"
    }
}

public struct NDPProxyError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ d: String) { description = d }
}

/// Answers solicitations on one interface according to one rule, on a thread of its own.
public final class Responder: @unchecked Sendable {
    public let rule: ProxyRule
    public let interfaceIndex: Int32
    public let mac: MACAddress
    /// Called for each answer (target, to whom); keep it short.
    public var onAnswer: (@Sendable (IPv6Address, IPv6Address) -> Void)?
    /// Answers per second allowed overall and per solicitation source. An ISP router solicits for
    /// every client from one address, so the per-source bound is high: it only stops one host from
    /// taking the whole budget.
    public var rateLimit: (overall: Int, perSource: Int) = (200_000, 100_000)

    let fd: Int32
    let routes: RouteSocket
    let lock = SimpleMutex()
    var stats = ResponderStatistics()
    var running = false
    var thread: pthread_t?
    var localAddresses: Set<IPv6Address> = []
    var linkLocal: IPv6Address?
    var localRefreshedAt = -1e9
    var routeCache: [IPv6Address: (Bool, Double)] = [:]
    var listAddresses: Set<IPv6Address>
    var window = (start: 0.0, overall: 0, perSource: [IPv6Address: Int]())
    // `iface` rules: a packet socket for advertisements on the inner interface, and what it said.
    var inner: (fd: Int32, index: Int32, mac: MACAddress)?
    var innerLinkLocal: IPv6Address?
    /// An answer owed to a solicitation, sent once the inner host answers.
    struct Owed { var source: IPv6Address; var destinationMAC: MACAddress; var multicast: Bool }
    enum InnerState { case waiting([Owed]), present, absent }
    var innerCache: [IPv6Address: (state: InnerState, expires: Double)] = [:]
    /// Targets with a solicitation out (so the timeout check does not walk the whole cache).
    var innerWaiting: Set<IPv6Address> = []

    /// Opens the packet socket on `rule.interface` in `namespace` (needs CAP_NET_RAW).
    public init(rule: ProxyRule, namespace: NetworkNamespace = .current) throws(NDPProxyError) {
        self.rule = rule
        listAddresses = rule.addresses
        do {
            routes = try RouteSocket(namespace: namespace)
            interfaceIndex = try routes.interfaceIndex(rule.interface)
        } catch {
            throw NDPProxyError("interface \(rule.interface): \(error)")
        }
        let index = interfaceIndex
        fd = try openSocket(in: namespace, "packet socket on \(rule.interface)") { sixgate_ns_socket(index) }
        var bytes = [UInt8](repeating: 0, count: 6)
        guard sixgate_interface_mac(index, &bytes) == 0 else {
            close(fd)
            throw NDPProxyError("interface \(rule.interface): cannot read its MAC address (\(String(cString: strerror(errno))))")
        }
        mac = bytes.withUnsafeBytes { MACAddress(bytes: $0) }
        try refreshLocal(force: true)
        if let name = rule.innerInterface {
            let innerIndex: Int32
            do { innerIndex = try routes.interfaceIndex(name) } catch { close(fd); throw NDPProxyError("inner interface \(name): \(error)") }
            let innerFD: Int32
            do { innerFD = try openSocket(in: namespace, "packet socket on \(name)") { sixgate_ndp_socket(innerIndex, 136) } } catch { close(fd); throw error }
            var innerMAC = [UInt8](repeating: 0, count: 6)
            guard sixgate_interface_mac(innerIndex, &innerMAC) == 0 else {
                close(fd); close(innerFD)
                throw NDPProxyError("interface \(name): cannot read its MAC address")
            }
            inner = (innerFD, innerIndex, innerMAC.withUnsafeBytes { MACAddress(bytes: $0) })
        }
    }

    deinit { stop(); close(fd); if let inner { close(inner.fd) } }

    public var statistics: ResponderStatistics { lock.withLock { stats } }

    /// Replaces the rule's address list (black or white) while running: a gateway keeps it equal
    /// to its clients' addresses.
    public func setAddresses(_ addresses: Set<IPv6Address>) { lock.withLock { listAddresses = addresses } }

    public func start() {
        lock.withLock { running = true }
        var t = pthread_t()
        let box = Unmanaged.passRetained(self)
        pthread_create(&t, nil, { arg in
            let r = Unmanaged<Responder>.fromOpaque(arg!).takeRetainedValue()
            r.loop()
            return nil
        }, box.toOpaque())
        thread = t
    }

    public func stop() {
        let was = lock.withLock { let w = running; running = false; return w }
        if was, let t = thread { pthread_join(t, nil); thread = nil }
    }

    /// The interface's own addresses (for ignore-local) and its link-local (the answers' source).
    func refreshLocal(force: Bool = false) throws(NDPProxyError) {
        let now = monotonic()
        guard force || now - localRefreshedAt > 2 else { return }
        localRefreshedAt = now
        do {
            let addrs = try routes.addresses(interface: rule.interface)
            var set = Set<IPv6Address>(), ll: IPv6Address?
            for a in addrs { if case .v6(let v) = a.address { set.insert(v); if v.isLinkLocal { ll = v } } }
            localAddresses = set
            linkLocal = ll
        } catch {
            throw NDPProxyError("addresses of \(rule.interface): \(error)")
        }
    }

    func loop() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while lock.withLock({ running }) {
            var p = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: inner?.fd ?? -1, events: Int16(POLLIN), revents: 0)]
            if inner != nil { expireInner() }
            guard poll(&p, inner == nil ? 1 : 2, inner == nil ? 100 : 50) > 0 else { continue }
            if let inner, p[1].revents != 0 {
                for _ in 0..<64 {
                    let n = buffer.withUnsafeMutableBytes { recv(inner.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                    if n <= 0 { break }
                    buffer.withUnsafeBytes { handleInner(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                }
            }
            for _ in 0..<64 {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n <= 0 { break }
                buffer.withUnsafeBytes { handle(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            }
        }
    }

    /// One frame from the socket. Internal so tests can feed frames without a socket.
    func handle(_ frame: UnsafeRawBufferPointer) {
        lock.withLock { stats.received += 1 }
        guard let eth = try? EthernetFrame(frame), eth.etherType == .ipv6, let ip = try? IPv6Packet(eth.payload) else {
            lock.withLock { stats.malformed += 1 }; return
        }
        guard (try? NDPValidation.validate(ip)) == .neighborSolicitation, let m = try? ICMPv6Message(ip.upperLayer),
              let ns = try? NeighborSolicitation(m) else {
            lock.withLock { stats.invalid += 1 }; return
        }
        try? refreshLocal()
        let target = ns.target
        var current = rule
        current.addresses = lock.withLock { listAddresses }
        switch current.verdict(for: target, localAddresses: localAddresses) {
        case .answer: break
        case .answerIfRouted:
            guard routedElsewhere(target) else { lock.withLock { stats.notRouted += 1 }; return }
        case .answerIfInnerAnswers:
            break   // decided below, after the rate limit: our own solicitation costs a packet too
        case .outsidePrefix: lock.withLock { stats.outsidePrefix += 1 }; return
        case .listed, .notListed: lock.withLock { stats.excludedByList += 1 }; return
        case .local: lock.withLock { stats.local += 1 }; return
        }
        let source = ip.source
        guard admit(source) else { lock.withLock { stats.rateLimited += 1 }; return }
        let destinationMAC = source.isUnspecified ? MACAddress(rawValue: 0x3333_0000_0001)
            : ns.options.first(.sourceLinkLayerAddress)?.linkLayerAddress ?? eth.source
        let owed = Owed(source: source, destinationMAC: destinationMAC, multicast: ip.destination.isMulticast)
        if current.verdict(for: target, localAddresses: localAddresses) == .answerIfInnerAnswers {
            askInner(target, owed)
            return
        }
        answer(target, owed)
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
        // Built on the stack, in place: the answer path allocates nothing (Benchmarks/PacketKitBenchmarks).
        let (length, sent) = withUnsafeTemporaryAllocation(byteCount: 96, alignment: 8) { buffer -> (Int, Int) in
            guard let n = try? NDPFrame.ethernetNeighborAdvertisement(
                into: buffer, destinationMAC: owed.destinationMAC, sourceMAC: mac, source: linkLocal ?? target,
                destination: destination, hopLimit: rule.hopLimit, flags: flags, target: target, targetLinkLayer: option) else { return (0, -1) }
            return (n, sixgate_packet_send(fd, interfaceIndex, buffer.baseAddress, n))
        }
        lock.withLock { if sent == length { stats.answered += 1 } else { stats.sendErrors += 1 } }
        if sent == length { onAnswer?(target, destination) }
    }

    // MARK: iface rules

    /// Answers at once if a host on the inner interface answered recently; otherwise owes the
    /// answer and asks there (one solicitation per target per timeout), like ndppd's sessions.
    func askInner(_ target: IPv6Address, _ owed: Owed) {
        guard let inner else { return }
        let now = monotonic()
        if let entry = innerCache[target], entry.expires > now {
            switch entry.state {
            case .present: answer(target, owed); return
            case .absent: lock.withLock { stats.innerSilent += 1 }; return
            case .waiting(var list):
                if list.count < 16 { list.append(owed) }
                innerCache[target] = (.waiting(list), entry.expires)
                return
            }
        }
        if innerCache.count > 65536 { innerCache = innerCache.filter { $0.value.expires > now } }
        innerCache[target] = (.waiting([owed]), now + rule.solicitTimeout)
        innerWaiting.insert(target)
        if innerLinkLocal == nil || now - localRefreshedAt > 2 {
            let addrs = (try? routes.addresses(interface: rule.innerInterface ?? "")) ?? []
            innerLinkLocal = addrs.compactMap { a -> IPv6Address? in if case .v6(let v) = a.address, v.isLinkLocal { return v } else { return nil } }.first
        }
        // RFC 4861 §7.2.2: to the target's solicited-node group, with our link-layer address.
        let group = IPv6Address(rawValue: IPv6Address("ff02::1:ff00:0")!.rawValue | (target.rawValue & 0xff_ffff))
        let packet = PacketRepr.ipv6(source: innerLinkLocal ?? IPv6Address(rawValue: 0), destination: group, hopLimit: 255,
                                     .icmpv6(.neighborSolicitation(target: target, options: innerLinkLocal == nil ? [] : [.sourceLinkLayerAddress(inner.mac)])))
        guard let bytes = try? packet.emit() else { return }
        let frame = MACAddress(multicast: group).bytes + inner.mac.bytes + [0x86, 0xdd] + bytes
        let sent = frame.withUnsafeBytes { sixgate_packet_send(inner.fd, inner.index, $0.baseAddress, $0.count) }
        lock.withLock { if sent == frame.count { stats.innerSolicitations += 1 } else { stats.sendErrors += 1 } }
    }

    /// An advertisement from the inner interface: the target is there; pay what is owed.
    func handleInner(_ frame: UnsafeRawBufferPointer) {
        guard let eth = try? EthernetFrame(frame), eth.etherType == .ipv6, let ip = try? IPv6Packet(eth.payload),
              (try? NDPValidation.validate(ip)) == .neighborAdvertisement, let m = try? ICMPv6Message(ip.upperLayer),
              let na = try? NeighborAdvertisement(m) else { return }
        let target = na.target
        guard let entry = innerCache[target] else { return }   // not something we asked about
        lock.withLock { stats.innerAnswers += 1 }
        innerCache[target] = (.present, monotonic() + rule.cacheTTL)
        innerWaiting.remove(target)
        if case .waiting(let owed) = entry.state { for o in owed { answer(target, o) } }
    }

    /// Targets whose inner host did not answer within the timeout are absent for the cache TTL.
    func expireInner() {
        guard !innerWaiting.isEmpty else { return }
        let now = monotonic()
        for target in innerWaiting {
            guard let entry = innerCache[target] else { innerWaiting.remove(target); continue }
            if case .waiting(let owed) = entry.state, entry.expires <= now {
                innerCache[target] = (.absent, now + rule.cacheTTL)
                innerWaiting.remove(target)
                lock.withLock { stats.innerSilent += UInt64(owed.count) }
            }
        }
    }

    /// Whether the kernel routes `target` out of another interface (cached for `rule.routeTTL`).
    func routedElsewhere(_ target: IPv6Address) -> Bool {
        let now = monotonic()
        if let (answer, expires) = routeCache[target], expires > now { return answer }
        var answer = false
        if let r = try? routes.lookupRoute(to: .v6(target)), r.type == 1, let i = r.interfaceIndex { answer = i != interfaceIndex }
        if routeCache.count > 65536 { routeCache.removeAll(keepingCapacity: true) }
        routeCache[target] = (answer, now + rule.routeTTL)
        return answer
    }

    /// A one-second window per source and overall.
    func admit(_ source: IPv6Address) -> Bool {
        lock.withLock {
            let now = monotonic()
            if now - window.start >= 1 { window = (now, 0, [:]) }
            guard window.overall < rateLimit.overall else { return false }
            let n = window.perSource[source, default: 0]
            guard n < rateLimit.perSource else { return false }
            window.overall += 1
            window.perSource[source] = n + 1
            return true
        }
    }
}

func monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A pthread mutex.
final class SimpleMutex: @unchecked Sendable {
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    @inline(__always) func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m); defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// Opens a socket with `open` inside `namespace`; the error names `what` and the errno, with the
/// capability hint for EPERM.
func openSocket(in namespace: NetworkNamespace, _ what: String, _ open: () -> Int32) throws(NDPProxyError) -> Int32 {
    let opened: (Int32, Int32)
    do {
        opened = try namespace.perform { () throws(RouteKitError) -> (Int32, Int32) in
            let fd = open()
            return (fd, fd < 0 ? errno : 0)
        }
    } catch {
        throw NDPProxyError("\(what): namespace \(namespace): \(error)")
    }
    guard opened.0 >= 0 else {
        let hint = opened.1 == EPERM ? " (needs CAP_NET_RAW: run as root)" : ""
        throw NDPProxyError("\(what): \(String(cString: strerror(opened.1)))\(hint)")
    }
    return opened.0
}

/// Starts an OS thread running `body` (the blocking socket loops want threads of their own).
func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var t = pthread_t()
    let rc = pthread_create(&t, nil, { arg in
        let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
        b.body()
        return nil
    }, Unmanaged.passRetained(Box(body)).toOpaque())
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return t
}
