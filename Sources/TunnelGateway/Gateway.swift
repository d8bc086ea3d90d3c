// The gateway role: composes TunnelCore (the WireGuard device), AddressPool (leases), RouteKit
// (addresses, routes, forwarding, NAT44, proxy NDP) into what gatewayd runs, and undoes it.
import AddressPool
import Foundation
import NDPProxy
import PacketKit
import RouteKit
import SixgateConfig
import SixgateDaemon
import Translator
import TunnelCore

/// A client as status output shows it.
public struct ClientStatus: Sendable, Equatable, Codable {
    public var name: String
    public var publicKey: String
    /// Allocated prefixes ("2001:db8:1::4/128", "100.64.0.2/32"): the client's own.
    public var addresses: [String]
    /// The IPv4 address NAT64 translates this client's IPv6 address to ("100.64.1.2/32"), if on.
    public var nat64Address: String? = nil
    /// The address the client's CLAT translates from ("2001:db8:1::5/128") and the IPv4 address
    /// NAT64 maps it to, with `[nat64] clat = true`.
    public var clatAddress: String? = nil
    public var clatNAT64Address: String? = nil
    public var endpoint: String?
    /// Seconds since 1970 of the last handshake, 0 if none.
    public var lastHandshake: Int64
    public var receivedBytes: UInt64
    public var sentBytes: UInt64
    /// What the gateway's firewall lets in to this client ("tcp/22", "all"); nil when the firewall is off.
    public var open: [String]? = nil
    /// false: exempt from `isolate_clients`.
    public var isolated: Bool? = nil
    /// New inbound connections (packets) the firewall dropped toward this client since gatewayd started.
    public var inboundDropped: UInt64? = nil
}

/// The gateway's state for `gatewayctl status`.
public struct GatewayStatus: Sendable, Equatable, Codable {
    public var interface: String
    public var publicKey: String
    public var listenPort: UInt16
    public var endpoint: String?
    public var clients: [ClientStatus]
    /// The device's counters by name (drops by reason among them).
    public var counters: [String: UInt64]
    /// Seconds since 1970 when this gatewayd came up (nil: not running).
    public var startedAt: Int64? = nil
}

/// A running gateway. `start` sets everything up (idempotently: after a crash it reconciles),
/// `stop` removes exactly what `start` and later client additions put in place.
public final class Gateway: @unchecked Sendable {
    public let config: GatewayConfiguration
    public let privateKey: Bytes32
    public let publicKey: Bytes32
    public let allocator: AddressAllocator
    public let registry: ClientRegistry
    public private(set) var device: TunnelDevice?
    /// Called with one line per event (no secrets); gatewayd prints it.
    public var log: @Sendable (String) -> Void = { _ in }

    let rk: RouteSocket
    let lock = NSLock()
    var uapi: UAPIServer?
    var control: ControlServer?
    var tunIndex: Int32 = 0
    var uplinkIndex: Int32 = 0
    var routes: Set<Route> = []
    var proxies: Set<IPv6Address> = []
    var natApplied = false
    /// The firewall table is in place (`firewall = "on"`), and the clients it holds counters for.
    var filterApplied = false
    var filterHosts: Set<String> = []
    /// Every client host address (/128): kernel proxy entries or the responder's list are made from it.
    var hostAddresses: Set<IPv6Address> = []
    var responder: Responder?
    /// The thread that puts back what others took from the kernel (`watch`), and its stop flag.
    var watcher: Thread?
    var watching = false
    /// The uplink was missing at the last check (said once).
    var uplinkGone = false
    /// The host route to the ISP router gatewayd added (the router not on-link), if any.
    var ispRoute: Route?
    /// What `init` did that `start` logs (the log closure is set between the two).
    var notes: [String] = []
    /// The NAT64 translator (`[nat64]`), its mappings kept in step with the clients.
    var translator: TranslatorDevice?
    var peersByName: [String: ClientRecord] = [:]
    var connectedClients: Set<String> = []
    var leaseStats = LeaseServiceStatistics()
    var lastLeaseReply: [Bytes32: Double] = [:]
    var lastNotice: [Bytes32: Double] = [:]
    /// Drop counters as last logged by `reportDrops` (only its caller's thread touches them).
    var reportedDrops: [String: UInt64] = [:]
    /// When `start` finished (status and the doctor: a client that has not yet had its handshake
    /// with a gateway up for seconds is not a problem).
    var startedAt: Date?
    /// The endpoints file as last written (`saveEndpoints` writes only changes).
    var savedEndpoints = ""
    /// Hooks run here, one at a time, in order: a thread of ours (not libdispatch's, which block the
    /// signal the privilege drop reaches threads with), so hooks start with its capabilities.
    let hookQueue = SerialWorker(name: "sg-hooks")

    static let v6Pool = "ipv6", v4Pool = "ipv4", nat64Pool = "nat64"

    /// Loads (or creates, mode 0600) the private key and opens the lease store; touches no kernel state.
    public init(config: GatewayConfiguration) throws(GatewayError) {
        self.config = config
        do {
            try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .io(path: config.stateDirectory, detail: "cannot create the state directory: \(error.localizedDescription)")
        }
        // An existing directory (made by a package or by hand) is closed to other users too: it
        // holds the key, the clients and the leases.
        var st = stat()
        if stat(config.stateDirectory, &st) == 0, st.st_uid == geteuid(), st.st_mode & 0o077 != 0 {
            if chmod(config.stateDirectory, 0o700) == 0 {
                notes.append("state directory \(config.stateDirectory) was mode \(String(st.st_mode & 0o777, radix: 8)): made 0700")
            }
        }
        privateKey = try Self.loadOrCreateKey(config.privateKeyPath)
        publicKey = X25519.publicKey(privateKey)
        registry = ClientRegistry(directory: config.clientsDirectory)
        do {
            allocator = try AddressAllocator(pools: Self.pools(config), store: try SQLiteLeaseStore(path: config.leaseStorePath))
        } catch {
            throw .setup("lease store", error)
        }
        // SQLite makes its files 0644 (and the WAL and SHM files after the database's mode).
        for suffix in ["", "-wal", "-shm", ".lock"] { chmod(config.leaseStorePath + suffix, 0o600) }
        do { rk = try RouteSocket() } catch { throw .setup("netlink", error) }
    }

    static func pools(_ c: GatewayConfiguration) -> [PoolConfiguration] {
        var reserved: [IPPrefix] = [.v6(IPv6Prefix(containing: c.effectiveGatewayAddress, length: 128))]
        if c.allocation == .hosts {
            reserved += [c.effectiveISPRouter, c.effectiveUplinkAddress].map { .v6(IPv6Prefix(containing: $0, length: 128)) }
        }
        reserved += c.reservedIPv6.map { .v6($0) }
        var pools = [PoolConfiguration(name: v6Pool, prefix: .v6(c.ipv6Prefix),
                                       kind: c.allocation == .hosts ? .ipv6Hosts : .ipv6Prefixes(length: c.delegatedLength),
                                       reserved: reserved.filter { Self.inside($0, c.ipv6Prefix) })]
        if let pool = c.ipv4Pool, let gw = c.effectiveIPv4Gateway {
            pools.append(PoolConfiguration(name: v4Pool, prefix: .v4(pool), kind: .ipv4Hosts, reserved: [.v4(IPv4Prefix(containing: gw, length: 32))]))
        }
        if let n = c.nat64 {
            pools.append(PoolConfiguration(name: nat64Pool, prefix: .v4(n.pool), kind: .ipv4Hosts,
                                           reserved: [.v4(IPv4Prefix(containing: n.translatorAddress, length: 32))]))
        }
        return pools
    }

    static func inside(_ p: IPPrefix, _ pool: IPv6Prefix) -> Bool {
        if case .v6(let q) = p { return pool.contains(q) }
        return false
    }

    var poolNames: [String] {
        [Self.v6Pool] + (config.ipv4Pool == nil ? [] : [Self.v4Pool]) + (config.nat64 == nil ? [] : [Self.nat64Pool])
    }

    /// Reads the base64 key at `path`, or creates one there with mode 0600.
    public static func loadOrCreateKey(_ path: String) throws(GatewayError) -> Bytes32 {
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let key = Bytes32(base64: text) else { throw .io(path: path, detail: "not a WireGuard private key (44 characters of base64, as `wg genkey` prints)") }
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
                guard chmod(path, 0o600) == 0 else { throw .io(path: path, detail: "readable by others and cannot chmod 0600") }
            }
            return key
        }
        let key = X25519.generatePrivateKey()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, detail: "cannot create: \(String(cString: strerror(errno)))") }
        let text = key.base64 + "\n"
        let ok = text.withCString { write(fd, $0, strlen($0)) } == text.utf8.count && fsync(fd) == 0
        close(fd)
        guard ok else { throw .io(path: path, detail: "cannot write the key") }
        return key
    }

    // MARK: Start and stop

    /// Creates the device and puts the kernel in shape; safe to run after a crash.
    public func start() throws(GatewayError) {
        lock.lock(); defer { lock.unlock() }
        func step<T>(_ what: String, _ body: () throws -> T) throws(GatewayError) -> T {
            do { return try body() } catch { throw .setup(what, error) }
        }
        for n in notes { log(n) }
        notes = []
        uplinkIndex = try step("uplink \(config.uplink)") { try rk.interfaceIndex(config.uplink) }
        if let up = (try? rk.links())?.first(where: { $0.index == uplinkIndex }), let w = config.mtuWarning(uplinkMTU: up.mtu) { log("warning: \(w)") }
        let device = try step("TUN \(config.interface)") { try TunnelDevice(interfaceName: config.interface, listenPort: config.listenPort) }
        try step("key") { try device.configure(privateKey: privateKey) }
        self.device = device
        tunIndex = try step("TUN \(config.interface)") { try rk.interfaceIndex(config.interface) }
        try step("MTU") { try rk.setMTU(config.interface, config.mtu) }
        try step("gateway address") {
            try rk.ensureAddress(InterfaceAddress(interfaceIndex: tunIndex, address: .v6(config.effectiveGatewayAddress), prefixLength: 128, flags: InterfaceAddress.noDAD))
            if let gw = config.effectiveIPv4Gateway, let pool = config.ipv4Pool {
                // The pool's connected route comes with the address (proto kernel), and goes with it.
                try rk.ensureAddress(InterfaceAddress(interfaceIndex: tunIndex, address: .v4(gw), prefixLength: pool.length))
            }
        }
        try step("link up") { try rk.setLink(config.interface, up: true) }
        try step("sysctl") {
            try Sysctl.write(try .ipv6Forwarding(.all), 1)
            if config.ipv4Pool != nil || config.nat64 != nil { try Sysctl.write(.ipv4Forwarding, 1) }
            if config.ndpProxy == .kernel { try Sysctl.write(try .proxyNDP(.interface(config.uplink)), 1) }
        }
        let masquerade = [config.ipv4Pool, config.nat64?.pool].compactMap { $0 }.map { MasqueradeRule(source: $0, outInterface: config.uplink) }
        if config.nat44, !masquerade.isEmpty {
            try step("NAT44") { try NATTable(name: natTableName).apply(masquerade) }
            natApplied = true
        }
        // Clients: every enrolled one gets its leases (idempotent) and a peer.
        let clients = try registry.all()
        var desiredRoutes: [Route] = []
        hostAddresses = []
        // Where each client was when gatewayd last ran: after a restart the handshakes start from
        // here at once, instead of at each client's own rekey timer (about 15 s of loss).
        let lastEndpoints = loadEndpoints()
        for c in clients {
            let leases = try lease(c)
            try setPeer(c, leases, endpoint: lastEndpoints[c.name])
            for l in leases {
                if case .v6(let p) = l.prefix {
                    desiredRoutes.append(Route(destination: .v6(p), interfaceIndex: tunIndex))
                    if p.length == 128 { hostAddresses.insert(p.network) }
                }
            }
        }
        // The ISP router must be reachable on the uplink: if the uplink's address is a /128 (no
        // on-link prefix), a host route to the router is needed, as the howtos add by hand.
        let ispRoute = Route(destination: .v6(IPv6Prefix(containing: config.effectiveISPRouter, length: 128)), interfaceIndex: uplinkIndex)
        if config.allocation == .hosts {
            let found = try? rk.lookupRoute(to: .v6(config.effectiveISPRouter))
            let ours = found.map { $0.protocolNumber == RouteSocket.sixgateProtocol && $0.destination == ispRoute.destination } ?? false
            if ours || found?.interfaceIndex != uplinkIndex {
                desiredRoutes.append(ispRoute)
                self.ispRoute = ispRoute
                if !ours { log("the ISP router \(config.effectiveISPRouter) is not on-link on \(config.uplink): adding a host route") }
            }
        }
        let result = try step("routes") { try rk.reconcileRoutes(desiredRoutes, ipv6: true) }
        routes = Set(desiredRoutes)
        if !result.removed.isEmpty { log("reconcile: removed \(result.removed.count) stale route(s)") }
        try reconcileProxies(hostAddresses)
        try startFirewall()
        if let n = config.nat64 { try startTranslator(n) }
        if config.ndpProxy == .responder {
            var rule = ProxyRule(interface: config.uplink, prefixes: [config.ipv6Prefix])
            rule.listType = .white
            rule.addresses = hostAddresses
            responder = try step("NDP responder on \(config.uplink)") { try Responder(rule: rule) }
            responder?.log = { [weak self] in self?.log("ndp: \($0)") }
            responder?.start()
        }
        device.onEvent = { [weak self] event in self?.handle(event) }
        device.controlHandler = { [weak self] packet, key in self?.handleControl(packet, from: key) }
        device.start()
        let reached = clients.filter { lastEndpoints[$0.name] != nil }.compactMap { c in Bytes32(base64: c.publicKey).map { device.initiateHandshake(with: $0) } }.filter { $0 }.count
        if reached > 0 { log("handshakes started toward \(reached) client(s) at their last endpoints") }
        startedAt = Date()
        uapi = try step("UAPI") { try UAPIServer(device: device) }
        uapi?.start()
        control = try step("control socket") { try ControlServer(path: config.controlSocketPath, gateway: self) }
        control?.start()
        if config.watchInterval > 0 {
            watching = true
            let w = Thread { [weak self] in self?.watch() }
            w.name = "sg-gw-watch"
            watcher = w
            w.start()
        }
        log("up: \(config.interface) port \(device.listenPort), \(clients.count) client(s), public key \(publicKey.base64)")
        runHook("up", [:])
    }

    var natTableName: String { config.natTableName }

    // MARK: Watching the kernel

    /// Every `watch_interval` seconds (2): what gatewayd put in the kernel that something else took
    /// away is put back, and said. A link going down flushes the uplink's proxy entries, a re-created uplink comes with
    /// proxy_ndp off and a new index, an operator's `ip route flush` takes the client routes.
    func watch() {
        while true {
            for _ in 0..<(config.watchInterval * 10) {
                usleep(100_000)
                if !lock.withLock({ watching }) { return }
            }
            lock.withLock { restoreKernelState() }
        }
    }

    /// One check (lock held). Failures are logged and tried again at the next check.
    func restoreKernelState() {
        guard watching, device != nil else { return }
        restoreFirewall()
        guard let index = try? rk.interfaceIndex(config.uplink) else {
            if !uplinkGone { log("uplink \(config.uplink) is gone; clients keep their tunnel, the internet is back when it is") }
            uplinkGone = true
            return
        }
        if uplinkGone || index != uplinkIndex {
            log("uplink \(config.uplink) is back (index \(index))")
            uplinkGone = false
            if index != uplinkIndex {
                uplinkIndex = index
                if config.ndpProxy == .kernel { try? Sysctl.write(try .proxyNDP(.interface(config.uplink)), 1) }
            }
        }
        // Forwarding: without it no client packet goes anywhere (someone's sysctl -p, a network
        // manager's reload). Put back and said, as the routes are.
        var forwarding: [(SysctlKey, String)] = []
        if let k = try? SysctlKey.ipv6Forwarding(.all) { forwarding.append((k, "net.ipv6.conf.all.forwarding")) }
        if config.ipv4Pool != nil || config.nat64 != nil { forwarding.append((.ipv4Forwarding, "net.ipv4.ip_forward")) }
        for (key, name) in forwarding where (try? Sysctl.read(key)) == 0 {
            do {
                try Sysctl.write(key, 1)
                log("restored \(name) = 1 (it was turned off: clients' packets were not forwarded)")
            } catch { log("watch: \(name) is 0 and cannot be set: \(error)") }
        }
        do {
            if config.ndpProxy == .kernel {
                if let key = try? SysctlKey.proxyNDP(.interface(config.uplink)), (try? Sysctl.read(key)) != 1 {
                    try Sysctl.write(key, 1)
                    log("restored proxy_ndp = 1 on \(config.uplink)")
                }
                // Only what is missing: entries of others in the prefix are the start's business, not the watcher's.
                let missing = try ProxyEntries.reconcile(proxies, on: uplinkIndex, inside: { _ in false }, removingOthers: false, with: rk).added
                if !missing.isEmpty { log("restored \(missing.count) proxy entr\(missing.count == 1 ? "y" : "ies") on \(config.uplink) (flushed, e.g. when the link went down)") }
            }
            // The ISP host route rides on the uplink and follows its index; the others (the tunnel's,
            // the translator's) are on interfaces gatewayd owns.
            if let old = ispRoute, old.interfaceIndex != uplinkIndex {
                let moved = Route(destination: old.destination, interfaceIndex: uplinkIndex)
                routes.remove(old); routes.insert(moved); ispRoute = moved
            }
            let present = try rk.routes(ipv6: true, table: 254) + rk.routes(ipv6: false, table: 254)
            let lost = routes.filter { want in !present.contains { $0.satisfies(want) } }
            for r in lost { try rk.ensureRoute(r) }
            if !lost.isEmpty { log("restored \(lost.count) route(s) (\(lost.prefix(3).map(\.destination.description).joined(separator: " "))\(lost.count > 3 ? " ..." : ""))") }
        } catch {
            log("watch: \(error); trying again in \(config.watchInterval) s")
        }
    }

    func reconcileProxies(_ desired: Set<IPv6Address>) throws(GatewayError) {
        // In responder or off mode no kernel entry of ours should remain (e.g. after a mode change).
        let desired = config.ndpProxy == .kernel ? desired : []
        do {
            let prefix = config.ipv6Prefix
            let (_, removed) = try ProxyEntries.reconcile(desired, on: uplinkIndex, inside: { prefix.contains($0) }, with: rk)
            for a in removed { log("reconcile: removed stale proxy entry \(a)") }
            proxies = desired
        } catch {
            throw .setup("proxy NDP on \(config.uplink)", error)
        }
    }

    /// Removes what `start` added: proxy entries, routes, the NAT table, the device (and with it
    /// its addresses), the sockets. Leases and client files stay. Sysctls stay as they are
    /// (forwarding may serve others on this host).
    public func stop() {
        saveEndpoints()
        hookQueue.drain()   // let client hooks already queued finish first
        // The device's threads call back into the gateway (events, lease requests) under its
        // lock: stop them before taking the lock, so a join never waits on a thread that waits on us.
        lock.withLock { device }?.stop()
        lock.withLock { watching = false }
        while watcher?.isFinished == false { usleep(10_000) }
        watcher = nil
        lock.lock(); defer { lock.unlock() }
        runHook("down", [:])
        control?.stop(); control = nil
        uapi?.stop(); uapi = nil
        responder?.stop(); responder = nil
        translator?.stop(); translator = nil   // its interface goes, and the routes into it
        for a in proxies { try? rk.removeProxyNeighbour(a, interfaceIndex: uplinkIndex) }
        proxies = []
        hostAddresses = []
        for r in routes { try? rk.removeRoute(r) }
        routes = []
        ispRoute = nil
        if natApplied { try? NATTable(name: natTableName).remove(); natApplied = false }
        stopFirewall()
        device?.stop()
        device = nil   // closing the TUN removes the interface and its addresses
        log("down: \(config.interface) removed")
    }

    // MARK: Clients

    func lease(_ c: ClientRecord) throws(GatewayError) -> [Lease] {
        do {
            var leases = try allocator.allocate(client: c.name, inPools: poolNames)
            if config.nat64?.clat == true { leases += try allocator.allocate(client: Self.clatKey(c.name), inPools: [Self.v6Pool, Self.nat64Pool]) }
            return leases
        } catch {
            throw .setup("client \(c.name)", error)
        }
    }

    /// The lease key of a client's CLAT address and its NAT64 address ('#' is not allowed in names).
    static func clatKey(_ name: String) -> String { name + "#clat" }

    /// A client's leases and, when it has them, its CLAT's.
    func leases(of name: String) -> [Lease] { allocator.leases(of: name) + allocator.leases(of: Self.clatKey(name)) }

    /// Gives back a client's leases and its CLAT's (kept for the quiet period).
    func release(_ name: String) throws(AddressPoolError) {
        _ = try allocator.release(client: name)
        _ = try allocator.release(client: Self.clatKey(name))
    }

    func setPeer(_ c: ClientRecord, _ leases: [Lease], endpoint: Endpoint? = nil) throws(GatewayError) {
        guard let device, let key = Bytes32(base64: c.publicKey) else { return }
        // A NAT64 address is the translator's, never the client's to send from.
        let allowed = leases.filter { $0.pool != Self.nat64Pool }.map(\.prefix)
        do { try device.setPeer(PeerConfiguration(publicKey: key, endpoint: endpoint, allowedIPs: allowed)) } catch { throw .setup("peer \(c.name)", error) }
        peersByName[c.name] = c
    }

    /// Enrols a client: its file, its leases, and (when running) its peer, route and proxy entry.
    /// `open` and `isolated` are its firewall settings (see `ClientRecord`).
    public func addClient(name: String, publicKey: String, open: [PortOpening] = [], isolated: Bool = true) throws(GatewayError) -> ClientStatus {
        lock.lock(); defer { lock.unlock() }
        try ClientRegistry.validate(name: name)
        guard Bytes32(base64: publicKey) != nil else { throw .invalidKey(publicKey) }
        let existing = try registry.all()
        if existing.contains(where: { $0.name == name }) { throw .clientExists(name) }
        if let other = existing.first(where: { $0.publicKey == publicKey }) { throw .keyInUse(key: publicKey, client: other.name) }
        let record = ClientRecord(name: name, publicKey: publicKey, open: open, isolated: isolated)
        let leases = try lease(record)
        try registry.write(record)
        if device != nil { try install(record, leases); updateFirewall() }
        log("client added: \(name) \(leases.map(\.prefix.description).joined(separator: " "))")
        return status(record, leases, peers: peerTable())
    }

    func install(_ c: ClientRecord, _ leases: [Lease]) throws(GatewayError) {
        try setPeer(c, leases)
        for l in leases {
            guard case .v6(let p) = l.prefix else { continue }
            // What the kernel refuses now (the uplink gone, a netlink error) is logged and stays
            // wanted: the watcher puts it in place when it can, so the client is enrolled anyway.
            let r = Route(destination: .v6(p), interfaceIndex: tunIndex)
            routes.insert(r)
            do { try rk.ensureRoute(r) } catch { log("client \(c.name): route \(p): \(error); retried every \(config.watchInterval) s") }
            guard p.length == 128 else { continue }
            // A CLAT address is reached through the translator only: no proxy entry on the uplink.
            guard l.client == c.name else { continue }
            hostAddresses.insert(p.network)
            if config.ndpProxy == .kernel {
                proxies.insert(p.network)
                do { try rk.ensureProxyNeighbour(p.network, interfaceIndex: uplinkIndex) } catch {
                    log("client \(c.name): proxy entry \(p.network) on \(config.uplink): \(error); retried every \(config.watchInterval) s")
                }
            }
        }
        responder?.setAddresses(hostAddresses)
        updateTranslator()
    }

    /// Takes back what `install` put in the kernel for these leases.
    func uninstall(_ leases: [Lease]) {
        for l in leases {
            guard case .v6(let p) = l.prefix else { continue }
            let r = Route(destination: .v6(p), interfaceIndex: tunIndex)
            if routes.remove(r) != nil { try? rk.removeRoute(r) }
            if proxies.remove(p.network) != nil { try? rk.removeProxyNeighbour(p.network, interfaceIndex: uplinkIndex) }
            if p.length == 128 { hostAddresses.remove(p.network) }
        }
        responder?.setAddresses(hostAddresses)
    }

    /// Removes a client: peer, route, proxy entry, file; its leases are released (kept, so the
    /// same name gets the same addresses back if re-added before the quiet period ends).
    public func removeClient(name: String) throws(GatewayError) {
        lock.lock(); defer { lock.unlock() }
        let record = try registry.read(name)
        let leases = leases(of: name)
        if let device, let key = Bytes32(base64: record.publicKey) { device.removePeer(key) }
        uninstall(leases)
        do { try release(name) } catch { throw .setup("release \(name)", error) }
        try registry.remove(name)
        peersByName[name] = nil
        updateTranslator()
        updateFirewall()
        log("client removed: \(name)")
    }

    /// Re-reads the clients folder (SIGHUP): new files become peers, removed files stop being
    /// peers; sessions of unchanged clients are kept.
    public func reloadClients() throws(GatewayError) -> (added: Int, removed: Int) {
        lock.lock(); defer { lock.unlock() }
        let clients = try registry.all()
        let names = Set(clients.map(\.name))
        var added = 0, removed = 0
        var firewallChanged = 0
        for c in clients where peersByName[c.name] != c {
            if let old = peersByName[c.name], old.publicKey == c.publicKey {
                // Only its firewall settings changed: the peer and its session stay as they are.
                peersByName[c.name] = c; firewallChanged += 1
                continue
            }
            if let old = peersByName[c.name], old.publicKey != c.publicKey, let k = Bytes32(base64: old.publicKey) { device?.removePeer(k) }
            try install(c, try lease(c)); added += 1
        }
        for (name, c) in peersByName where !names.contains(name) {
            if let k = Bytes32(base64: c.publicKey) { device?.removePeer(k) }
            uninstall(leases(of: name))
            try? release(name)
            peersByName[name] = nil; removed += 1
        }
        updateTranslator()
        if filterApplied, (try? filterTable.exists()) == false {
            log("firewall: table inet \(filterTable.name) is gone; putting it back")
            filterApplied = false
            do { try applyFirewall() } catch { log("firewall: \(error)") }
        } else {
            updateFirewall()
        }
        log("reload: \(added) client(s) added or changed, \(removed) removed\(firewallChanged > 0 ? ", \(firewallChanged) firewall setting(s) changed" : "")")
        return (added, removed)
    }

    /// The device's peers by key, read once per status call.
    func peerTable() -> [Bytes32: PeerStatus] {
        Dictionary((device?.peerStatuses() ?? []).map { ($0.configuration.publicKey, $0) }, uniquingKeysWith: { a, _ in a })
    }

    func status(_ c: ClientRecord, _ leases: [Lease], peers: [Bytes32: PeerStatus]) -> ClientStatus {
        Self.clientStatus(c, leases: leases, peer: Bytes32(base64: c.publicKey).flatMap { peers[$0] })
    }

    /// A client as status shows it, from its leases and its CLAT's (`leases(of:)`, or the store's
    /// records) and, when running, its peer. Shared by the live and the offline status.
    static func clientStatus(_ c: ClientRecord, leases: [Lease], peer: PeerStatus?) -> ClientStatus {
        let own = leases.filter { $0.client == c.name }, clat = leases.filter { $0.client == clatKey(c.name) }
        return ClientStatus(name: c.name, publicKey: c.publicKey, addresses: own.filter { $0.pool != nat64Pool }.map(\.prefix.description),
                            nat64Address: own.first { $0.pool == nat64Pool }?.prefix.description,
                            clatAddress: clat.first { $0.pool == v6Pool }?.prefix.description,
                            clatNAT64Address: clat.first { $0.pool == nat64Pool }?.prefix.description,
                            endpoint: peer?.configuration.endpoint?.description, lastHandshake: peer?.lastHandshake.seconds ?? 0,
                            receivedBytes: peer?.receivedBytes ?? 0, sentBytes: peer?.sentBytes ?? 0,
                            open: c.open.map(\.description), isolated: c.isolated)
    }

    public func status() throws(GatewayError) -> GatewayStatus {
        lock.lock(); defer { lock.unlock() }
        let peers = peerTable()
        let drops = firewallCounters()
        let clients = try registry.all().map { c in
            var s = status(c, leases(of: c.name), peers: peers)
            s.inboundDropped = drops[ProtectedHost(name: c.name, prefixes: []).counterName]?.packets
            return s
        }
        var counters: [String: UInt64] = [:]
        if let other = drops[FilterTable.otherCounter] { counters["firewallDroppedOther"] = other.packets }
        if let input = drops[FilterTable.inputCounter] { counters["firewallDroppedToGateway"] = input.packets }
        if let redirects = drops[FilterTable.redirectCounter] { counters["firewallDroppedRedirects"] = redirects.packets }
        if filterApplied { counters["firewallDroppedClients"] = drops.filter { $0.key.hasPrefix("in_") }.values.reduce(0) { $0 + $1.packets } }
        if let s = device?.statistics {
            for child in Mirror(reflecting: s).children { if let l = child.label, let v = child.value as? UInt64 { counters[l] = v } }
        }
        if let t = translator?.statistics {
            counters["nat64Translated4to6"] = t.translation.translated4to6
            counters["nat64Translated6to4"] = t.translation.translated6to4
            counters["nat64SuperPackets"] = t.translation.superPackets
            counters["nat64ErrorsSent"] = t.translation.errorsSent
            counters["nat64WriteErrors"] = t.writeErrors
            for r in TranslationDrop.allCases { counters["nat64Dropped-\(r)"] = t.translation.dropped[r] }
        }
        counters["leaseRequests"] = leaseStats.requests
        counters["leaseReplies"] = leaseStats.replies
        counters["leaseRefusals"] = leaseStats.refusals
        counters["leaseDropped"] = leaseStats.dropped
        counters["leaseNotices"] = leaseStats.notices
        return GatewayStatus(interface: config.interface, publicKey: publicKey.base64, listenPort: device?.listenPort ?? config.listenPort,
                             endpoint: config.endpoint, clients: clients, counters: counters, startedAt: startedAt.map { Int64($0.timeIntervalSince1970) })
    }

    // MARK: NAT64

    /// The translator's settings: the prefix, and one explicit mapping per running client from its
    /// host address to its NAT64 address (and one from its CLAT address to its CLAT's).
    func translatorConfiguration(_ n: NAT64Settings) -> TranslatorConfiguration {
        var mappings: [ExplicitMapping] = []
        for name in peersByName.keys.sorted() {
            for key in [name, Self.clatKey(name)] {
                var v6: IPv6Address?, v4: IPv4Address?
                for l in allocator.leases(of: key) {
                    switch l.prefix {
                    case .v6(let p) where l.pool == Self.v6Pool && p.length == 128: v6 = p.network
                    case .v4(let p) where l.pool == Self.nat64Pool: v4 = p.network
                    default: break
                    }
                }
                if let v6, let v4 { mappings.append(ExplicitMapping(ipv4: v4, ipv6: v6)) }
            }
        }
        // Toward clients the tunnel's MTU; toward IPv4 the uplink's Ethernet.
        return TranslatorConfiguration(prefix: n.prefix, explicitMappings: mappings, ipv6MTU: Int(config.mtu), ipv4MTU: 1500,
                                       lowestIPv6MTU: n.lowestIPv6MTU ?? Int(config.mtu), ipv4Address: n.translatorAddress, ipv6Address: config.effectiveGatewayAddress,
                                       computeZeroUDPChecksum: n.amendZeroUDPChecksum, errorsPerSecond: n.errorsPerSecond)
    }

    /// Creates the translator's TUN, routes the prefix and the NAT64 pool into it, starts it.
    func startTranslator(_ n: NAT64Settings) throws(GatewayError) {
        let t: TranslatorDevice
        do { t = try TranslatorDevice(name: n.interface, configuration: translatorConfiguration(n)) } catch { throw .setup("NAT64 \(n.interface)", error) }
        do {
            try rk.setLink(n.interface, up: true)
            let index = try rk.interfaceIndex(n.interface)
            for r in [Route(destination: .v6(n.prefix), interfaceIndex: index), Route(destination: .v4(n.pool), interfaceIndex: index)] {
                try rk.ensureRoute(r)
                routes.insert(r)
            }
        } catch {
            throw .setup("NAT64 \(n.interface)", error)
        }
        t.start()
        translator = t
        log("nat64: \(n.prefix) on \(n.interface) (\(t.tun.offload ? "with" : "without") TCP segmentation offload), pool \(n.pool)")
        // The Well-Known Prefix carries global IPv4 only (RFC 6052 §3.1): hosts on a non-global
        // IPv4 network of the uplink's are out of reach through it. Said once, at start.
        if n.prefix == NAT64Settings(interface: "").prefix {
            let local = ((try? rk.addresses(interface: config.uplink)) ?? []).compactMap { a -> String? in
                guard case .v4(let v4) = a.address, !v4.isGloballyRoutable else { return nil }
                return "\(IPv4Prefix(containing: v4, length: a.prefixLength))"
            }
            if !local.isEmpty {
                log("warning: nat64 uses the Well-Known Prefix \(n.prefix), which carries only global IPv4 addresses (RFC 6052 §3.1): clients cannot reach the uplink's own network \(local.joined(separator: ", ")) through it; set [nat64] prefix to a network-specific prefix (e.g. 64:ff9b:1::/96, RFC 8215) if they must")
            }
        }
    }

    /// Brings the translator's mappings in step with the clients (called under the lock).
    func updateTranslator() {
        guard let t = translator, let n = config.nat64 else { return }
        do { try t.update(configuration: translatorConfiguration(n)) } catch { log("nat64: mappings not updated: \(error)") }
    }

    // MARK: Events and hooks

    func handle(_ event: PeerEvent) {
        let key: Bytes32, hook: String, what: String
        switch event {
        case .handshakeCompleted(let k): key = k; hook = "client-connect"; what = "handshake"
        case .sessionExpired(let k): key = k; hook = "client-disconnect"; what = "idle (session expired)"
        default: return
        }
        lock.lock()
        let client = peersByName.values.first { $0.publicKey == key.base64 }
        let connected = client.map { connectedClients.contains($0.name) } ?? false
        if let client { if hook == "client-connect" { connectedClients.insert(client.name) } else { connectedClients.remove(client.name) } }
        lock.unlock()
        guard let client else { return }
        // client-connect once per session start (not per rekey), client-disconnect once when idle.
        if hook == "client-connect" && connected { return }
        log("\(what): \(client.name)")
        let env = ["SIXGATE_CLIENT": client.name, "SIXGATE_CLIENT_KEY": client.publicKey,
                   "SIXGATE_CLIENT_ADDRESSES": allocator.leases(of: client.name).map(\.prefix.description).joined(separator: " ")]
        // Events arrive on the device's packet threads: hooks run elsewhere, one at a time, in order.
        hookQueue.submit { self.runHook(hook, env) }
    }

    /// Runs hook `name` if configured, with SIXGATE_* facts in its environment; waits at most 10 s.
    func runHook(_ name: String, _ extra: [String: String]) {
        guard let path = config.hooks[name] else { return }
        var env = ProcessInfo.processInfo.environment
        env["SIXGATE_EVENT"] = name
        env["SIXGATE_INTERFACE"] = config.interface
        env["SIXGATE_UPLINK"] = config.uplink
        env["SIXGATE_PREFIX"] = config.ipv6Prefix.description
        env["SIXGATE_GATEWAY_ADDRESS"] = config.effectiveGatewayAddress.description
        if let p = config.ipv4Pool { env["SIXGATE_IPV4_POOL"] = p.description }
        for (k, v) in extra { env[k] = v }
        if let problem = Hook.run(path, environment: env) { log("hook \(name): \(problem)") }
    }
}
