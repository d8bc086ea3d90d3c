// The gateway role: composes TunnelCore (the WireGuard device), AddressPool (leases), RouteKit
// (addresses, routes, forwarding, NAT44, proxy NDP) into what gatewayd runs, and undoes it.
import AddressPool
import Foundation
import NDPProxy
import PacketKit
import RouteKit
import SixgateConfig
import SixgateDaemon
import SixgateSystem
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
    /// Seconds since 1970 when it last fetched its lease (tunnel-client), nil: not since gatewayd started.
    public var leaseFetchedAt: Int64? = nil
    /// With NPTv6: where the ISP's side sees its address (the current prefix first).
    public var outsideAddresses: [String]? = nil
    /// In a group (`[group] database`): the gateway that had the client's latest handshake, and when
    /// (seconds since 1970); nil when none of the group has had one.
    public var gateway: String? = nil
    public var gatewayHandshake: Int64? = nil
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
    /// The client prefix in force, where it comes from ("static", "external"), and (external, with
    /// lifetimes) when its preferred and valid lifetimes end, in seconds since 1970.
    public var prefix: String? = nil
    public var prefixSource: String? = nil
    public var prefixPreferredUntil: Int64? = nil
    public var prefixValidUntil: Int64? = nil
    /// Earlier prefixes still routed, deprecated, until their valid lifetime ends.
    public var retiringPrefixes: [RetiringPrefix]? = nil
    /// Seconds since 1970 of the last prefix change while running.
    public var prefixChangedAt: Int64? = nil
}

/// A running gateway. `start` sets everything up (idempotently: after a crash it reconciles),
/// `stop` removes exactly what `start` and later client additions put in place.
///
/// Its parts: `GatewayPlanner` (pure: what should exist), RouteKit's `KernelReconciler` (makes the
/// kernel hold it), `ClientRegistry` (the enrolled clients), the devices (TUN, translator,
/// responder) and the watcher (GatewayWatcher.swift). Every change (start, a client added or
/// removed, SIGHUP, the watcher) goes the same way: plan, then apply (`applyPlan`).
public final class Gateway: @unchecked Sendable {
    /// The configuration in force: the file's, with the prefix a renumbering set (`renumber`).
    public var config: GatewayConfiguration { configLock.withLock { storedConfig } }
    var storedConfig: GatewayConfiguration
    let configLock = SystemLock()
    public let privateKey: Bytes32
    public let publicKey: Bytes32
    public let allocator: AddressAllocator
    /// The enrolled clients: the clients/ folder (or the group's database) unless `init` was given another store.
    public let registry: any ClientStore
    /// The stores the configuration names (the state directory's files, or `[group] database`).
    let stores: GatewayStores
    /// Following the other gateways of a group (`[group] database`; GatewayGroup.swift).
    var group: GroupState?
    public private(set) var device: TunnelDevice?
    /// Called with one line per event (no secrets); gatewayd prints it.
    public var log: @Sendable (String) -> Void = { _ in }

    let rk: RouteSocket
    let reconciler: KernelReconciler
    let lock = SystemLock()
    var uapi: UAPIServer?
    var control: ControlServer?
    var tunIndex: Int32 = 0
    var uplinkIndex: Int32 = 0
    var translatorIndex: Int32?
    /// The ISP router is not on-link on the uplink: gatewayd keeps a host route to it.
    var ispRouteNeeded = false
    /// The plan last applied, and each client's part of it (a change of one client is applied
    /// as its part out and its new part in: `applyClient`).
    var plan = GatewayPlan()
    var parts: [String: ClientPlanPart] = [:]
    var natApplied = false
    /// NPTv6's chains are in place (`npt_prefix`).
    var nptApplied = false
    /// The firewall table is in place (`firewall = "on"`), and the clients it holds counters for.
    var filterApplied = false
    var filterHosts: Set<String> = []
    var responder: Responder?
    /// The thread that puts back what others took from the kernel (`watch`), and its stop flag.
    var watcher: pthread_t?
    var watching = false
    /// The uplink was missing at the last check (said once).
    var uplinkGone = false
    /// What `init` did that `start` logs (the log closure is set between the two).
    var notes: [String] = []
    /// The client prefix the leases were in before `ipv6.prefix` changed (a renumbering found at
    /// load): its stale routes and proxy entries are removed at start, and the hook is told.
    var previousPrefixes: [IPv6Prefix] = []
    /// The configuration file as read (before a renumbering).
    let fileConfig: GatewayConfiguration
    /// The prefix's lifetimes and the earlier prefixes still valid (PrefixState.swift), and the
    /// retiring ones the plan holds now (changed only by `renumber` and `checkPrefixLifetimes`).
    var prefixState: PrefixState
    var retiringPrefixes: [IPv6Prefix] = []
    /// The current prefix's end of preferred / valid lifetime has been said.
    var prefixDeprecationSaid = false, prefixExpirySaid = false
    /// A router-advertised prefix refused (said once).
    var lastRefusedAdvertisement: IPv6Prefix?
    /// The NAT64 translator (`[nat64]`), its mappings kept in step with the clients.
    var translator: TranslatorDevice?
    var peersByName: [String: ClientRecord] = [:]
    var connectedClients: Set<String> = []
    var leaseStats = LeaseServiceStatistics()
    var lastLeaseReply: [Bytes32: Double] = [:]
    /// When each client last fetched its lease (seconds since 1970), and when the prefix last
    /// changed: the doctor's clients still on an earlier prefix.
    var leaseFetchedAt: [String: Int64] = [:]
    var prefixChangedAt: Int64?
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

    static let v6Pool = GatewayPlanner.v6Pool, v4Pool = GatewayPlanner.v4Pool, nat64Pool = GatewayPlanner.nat64Pool

    /// Loads (or creates, mode 0600) the private key and opens the lease store; touches no kernel state.
    public init(config file: GatewayConfiguration, clientStore: (any ClientStore)? = nil) throws(GatewayError) {
        var config = file
        fileConfig = file
        prefixState = PrefixState(prefix: file.ipv6Prefix, fromSource: file.prefixSource == .static)
        // An external source's last prefix (gatewayctl prefix set), its lifetimes and the earlier
        // prefixes still valid outlive a restart.
        if file.prefixSource != .static, let text = try? String(contentsOfFile: file.prefixStatePath, encoding: .utf8),
           let state = PrefixState(parsing: text), file.prefixRefusal(state.prefix, preferred: nil, valid: nil) == nil {
            if state.prefix != file.ipv6Prefix { config = file.renumbered(to: state.prefix) }
            prefixState = state
            retiringPrefixes = state.retiringPrefixes(at: Self.wallClock())
        }
        // The uplink's router-advertised prefix as it is now (the leases move to it at load).
        if file.prefixSource == .ra {
            if let found = (try? RouteSocket()).flatMap({ Self.routerAdvertisedPrefix($0, uplink: file.uplink) }) {
                func seconds(_ v: UInt32) -> UInt32? { v == UInt32.max ? nil : v }
                let now = Self.wallClock()
                if found.prefix != prefixState.prefix {
                    prefixState = prefixState.moved(to: found.prefix, preferred: seconds(found.preferred), valid: seconds(found.valid), oldValid: nil, now: now)
                    retiringPrefixes = prefixState.retiringPrefixes(at: now)
                } else {
                    prefixState.preferredUntil = seconds(found.preferred).map { now + Int64($0) }
                    prefixState.validUntil = seconds(found.valid).map { now + Int64($0) }
                    prefixState.fromSource = true
                }
                config = file.renumbered(to: found.prefix)
                config.reservedIPv6.append(IPv6Prefix(containing: found.address, length: 128))
                notes.append("prefix \(found.prefix) from the router advertisements on \(file.uplink) (uplink address \(found.address))")
            } else {
                notes.append("warning: no router-advertised /64 on \(file.uplink) yet (is accept_ra = 2 on it? gatewayd forwards): \(config.ipv6Prefix) stands in until one is seen")
            }
        }
        storedConfig = config
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
        stores = try GatewayStores.open(config)
        registry = clientStore ?? stores.clients
        do {
            allocator = try AddressAllocator(pools: GatewayPlanner.pools(config), store: stores.leases)
        } catch {
            throw .setup(stores.database == nil ? "lease store" : "group database", error)
        }
        // SQLite makes its files 0644 (and the WAL and SHM files after the database's mode).
        if stores.database == nil { for suffix in ["", "-wal", "-shm", ".lock"] { chmod(config.leaseStorePath + suffix, 0o600) } }
        do { rk = try RouteSocket() } catch { throw .setup("netlink", error) }
        reconciler = KernelReconciler(rk)
        noteRenumbering()
    }

    // MARK: Planning

    /// The planner with the kernel's facts as they are now.
    var planner: GatewayPlanner {
        GatewayPlanner(config: config, tunnelIndex: tunIndex, uplinkIndex: uplinkIndex, translatorIndex: translatorIndex, ispRouteNeeded: ispRouteNeeded,
                       retiring: retiringPrefixes)
    }

    /// The plan for the clients gatewayd runs now (and `parts` made again with it).
    func currentPlan() -> GatewayPlan {
        let p = planner
        var plan = p.base()
        // A group's anycast endpoint addresses, for BIRD to announce while gatewayd runs.
        if let table = config.announceTable, tunIndex != 0 {
            for a in config.anycast { plan.kernel.routes.insert(Route(destination: IPPrefix(host: a), interfaceIndex: tunIndex, table: table)) }
        }
        var fresh: [String: ClientPlanPart] = [:]
        for c in peersByName.values.sorted(by: { $0.name < $1.name }) {
            let part = clientPart(c, p)
            fresh[c.name] = part
            plan.add(part)
        }
        parts = fresh
        return plan
    }

    /// A client's part of the plan; in a group with `announce_table`, while its session is on this
    /// gateway, its routes also go into that table (for BIRD to announce).
    func clientPart(_ c: ClientRecord, _ p: GatewayPlanner? = nil) -> ClientPlanPart {
        var part = (p ?? planner).part(c, leases: { allocator.leases(of: $0) })
        if let table = config.announceTable, group?.announced.contains(c.name) == true {
            for r in part.kernel.routes where r.table == 254 && r.nextHops.first?.interfaceIndex == tunIndex {
                var a = r
                a.table = table
                part.kernel.routes.insert(a)
            }
        }
        return part
    }

    /// After one client changed (added, removed, its record edited; lock held): its old part out
    /// of the plan and the kernel, its new part in. Work for that client only, so enrolment does
    /// not slow down as clients accumulate (Benchmarks/Sources/PlannerBenchmarks).
    /// `firewall`: when given, the client's firewall change is added there (the caller applies
    /// several in one transaction) instead of being applied now.
    func applyClient(_ name: String, _ context: String, firewall: UnsafeMutablePointer<FirewallBatch>? = nil) {
        let old = parts[name]
        let new = peersByName[name].map { clientPart($0) }
        parts[name] = new
        if let old { plan.remove(old) }
        if let new { plan.add(new) }
        let report = reconciler.apply(adding: new?.kernel ?? KernelState(), removing: old?.kernel ?? KernelState())
        for f in report.failures { log("\(context): \(describe(f)); retried every \(config.watchInterval) s") }
        if old?.hostAddresses != new?.hostAddresses { responder?.setAddresses(plan.hostAddresses) }
        if old?.mappings != new?.mappings { updateTranslator() }
        if old?.npt != new?.npt { do { try applyNPT() } catch { log("\(context): \(error)") } }
        if let firewall {
            if old?.host != new?.host { firewall.pointee.add(old: old?.host, new: new?.host) }
        } else {
            updateFirewall(old: old?.host, new: new?.host)
        }
    }

    /// After a change (lock held): the kernel, the responder, the translator and the firewall follow
    /// the new plan. What the kernel refuses now (the uplink gone, a netlink error) is logged and
    /// stays wanted: the watcher puts it in place when it can, so a client is enrolled anyway.
    func applyPlan(_ context: String) {
        let new = currentPlan()
        let report = reconciler.update(to: new.kernel)
        for f in report.failures { log("\(context): \(describe(f)); retried every \(config.watchInterval) s") }
        let old = plan
        plan = new
        if new.hostAddresses != old.hostAddresses { responder?.setAddresses(new.hostAddresses) }
        if new.translatorMappings != old.translatorMappings { updateTranslator() }
        updateNPT(old.npt)
        updateFirewall()
    }

    /// A failure as an operator reads it: the object by the names in the configuration.
    func describe(_ f: ReconcileFailure) -> String {
        let what: String
        switch f.object {
        case .proxyEntry(let p): what = "proxy entry \(p.address) on \(config.uplink)"
        case .route(let r): what = "route \(r.destination)"
        case .address(let a): what = "address \(a) on \(config.interface)"
        case .sysctl(let k, let v): what = "\(k) = \(v)"
        }
        return (f.action == .remove ? "removing " : "") + what + ": \(f.underlying)"
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
        let device = try step("TUN \(config.interface)") { try TunnelDevice(interfaceName: config.interface, listenPort: config.listenPort, queues: config.tunnelQueues,
                                                                                queueManagement: config.tunnelQueueManagement) }
        try step("key") { try device.configure(privateKey: privateKey) }
        log("tunnel: \(device.offloadSummary)")
        self.device = device
        tunIndex = try step("TUN \(config.interface)") { try rk.interfaceIndex(config.interface) }
        try step("MTU") { try rk.setMTU(config.interface, config.mtu) }
        try step("link up") { try rk.setLink(config.interface, up: true) }
        // The ISP router must be reachable on the uplink: if the uplink's address is a /128 (no
        // on-link prefix), a host route to the router is needed, as the howtos add by hand.
        if config.allocation == .hosts {
            let found = try? rk.lookupRoute(to: .v6(config.effectiveISPRouter))
            let ours = found.map { $0.protocolNumber == RouteSocket.sixgateProtocol && $0.destination == planner.ispRoute.destination } ?? false
            ispRouteNeeded = ours || found?.interfaceIndex != uplinkIndex
            if ispRouteNeeded && !ours { log("the ISP router \(config.effectiveISPRouter) is not on-link on \(config.uplink): adding a host route") }
        }
        if let n = config.nat64 { try createTranslator(n) }
        // Clients: every enrolled one gets its leases (idempotent) and a peer.
        let clients = try registry.all()
        for c in clients { _ = try lease(c); peersByName[c.name] = c }
        plan = currentPlan()
        let masquerade = plan.masquerade
        if !masquerade.isEmpty {
            try step("NAT44") { try NATTable(name: natTableName).apply(masquerade) }
            natApplied = true
        }
        // Where each client was when gatewayd last ran: after a restart the handshakes start from
        // here at once, instead of at each client's own rekey timer (about 15 s of loss).
        let lastEndpoints = loadEndpoints()
        for c in clients { try setPeer(c, endpoint: lastEndpoints[c.name]) }
        // The kernel: addresses, sysctls, routes and proxy entries, stale ones of an earlier run removed.
        let owning = KernelOwnership(routeFamilies: [true], proxyInterfaces: [uplinkIndex], proxyPrefixes: [config.ipv6Prefix] + previousPrefixes + prefixState.retiring.compactMap(\.ipv6Prefix))
        let report: ReconcileReport
        do { report = try reconciler.converge(to: plan.kernel, owning: owning) } catch { throw .setup(Self.setupStep(error.object, config), error) }
        if !report.removedRoutes.isEmpty { log("reconcile: removed \(report.removedRoutes.count) stale route(s)") }
        for p in report.removedProxyEntries { log("reconcile: removed stale proxy entry \(p.address)") }
        try startFirewall()
        try applyNPT()
        if let t = translator { updateTranslator(); t.start() }
        if config.ndpProxy == .responder {
            var rule = ProxyRule(interface: config.uplink, prefixes: [config.ipv6Prefix] + retiringPrefixes)
            rule.listType = .white
            rule.addresses = plan.hostAddresses
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
            watcher = SystemThread.start(name: "sg-gw-watch") { [weak self] in self?.watch() }
        }
        startGroup()
        log("up: \(config.interface) port \(device.listenPort), \(clients.count) client(s), public key \(publicKey.base64)\(config.groupDatabase == nil ? "" : ", gateway \(config.groupName) of the group on \(stores.database?.location ?? "?")")")
        runHook("up", [:])
        if !previousPrefixes.isEmpty {
            runHook("prefix-change", ["SIXGATE_OLD_PREFIX": previousPrefixes.map(\.description).joined(separator: " "), "SIXGATE_NEW_PREFIX": config.ipv6Prefix.description])
        }
    }

    /// The start step a kernel object belongs to, for the error gatewayd prints.
    static func setupStep(_ o: KernelObject, _ config: GatewayConfiguration) -> String {
        switch o {
        case .address: return "gateway address"
        case .sysctl: return "sysctl"
        case .route: return "routes"
        case .proxyEntry: return "proxy NDP on \(config.uplink)"
        }
    }

    var natTableName: String { config.natTableName }

    var nptTableName: String { config.natTableName + "_npt" }

    /// NPTv6 (`npt_prefix`): the uplink's translations as the plan has them (lock held).
    func applyNPT() throws(GatewayError) {
        guard config.nptPrefix != nil else { return }
        do { try NPTTable(name: nptTableName).apply(interface: config.uplink, pairs: Array(plan.npt)) } catch { throw .setup("NPTv6 on \(config.uplink)", error) }
        nptApplied = true
    }

    /// After a plan change: the NPTv6 table follows when its translations changed (lock held).
    func updateNPT(_ old: Set<NPTPair>) {
        guard plan.npt != old else { return }
        do { try applyNPT() } catch { log("\(error)") }
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
        stopGroup()
        lock.withLock { watching = false }
        if let w = watcher { pthread_join(w, nil) }
        watcher = nil
        lock.lock(); defer { lock.unlock() }
        runHook("down", [:])
        control?.stop(); control = nil
        uapi?.stop(); uapi = nil
        responder?.stop(); responder = nil
        translator?.stop(); translator = nil   // its interface goes, and the routes into it
        reconciler.removeAll()
        plan = GatewayPlan()
        if natApplied { try? NATTable(name: natTableName).remove(); natApplied = false }
        if nptApplied { try? NPTTable(name: nptTableName).remove(); nptApplied = false }
        stopFirewall()
        device?.stop()
        device = nil   // closing the TUN removes the interface and its addresses
        log("down: \(config.interface) removed")
    }
}
