// The client role: a WireGuard device toward one gateway (TunnelCore), the lease exchange inside
// the tunnel, addresses and routes through RouteKit (the default route with a bypass for the
// gateway's endpoint computed from the kernel's own route lookup), router mode (NDPProxy's
// RouterAdvertiser on a LAN), a CLAT (Translator on a TUN of its own), hooks, and recovery when the
// gateway or the network goes away.
import Foundation
import NDPProxy
import PacketKit
import RouteKit
import SixgateConfig
import SixgateDaemon
import Translator
import TunnelCore
import SixgateSystem

/// Why the client could not do something: what it is about, the reason, the error underneath kept
/// typed (RouteKit's, TunnelCore's...), and whether retrying can help (issue 27).
public struct ClientError: Error, Sendable, CustomStringConvertible {
    public enum Subject: Sendable, Equatable {
        case netlink
        /// The gateway's endpoint as configured (host:port).
        case endpoint(String)
        /// The route toward the gateway's endpoint, outside the tunnel.
        case endpointRoute(String)
        /// Putting a lease's addresses and routes in place.
        case lease
        /// The routing table of one family.
        case routes(ipv6: Bool)
        /// A default route another interface holds.
        case defaultRoute(ipv6: Bool)
        case routerMode
        case lanFirewall
        case clat(interface: String)
        /// A step of start-up, named.
        case step(String)
    }
    public let subject: Subject
    public let reason: String
    public let underlying: (any Error & Sendable)?
    /// A conflict retrying cannot solve (the config must change): the client gives up.
    public var isFatal = false

    public init(_ subject: Subject, _ reason: String, underlying: (any Error & Sendable)? = nil, fatal: Bool = false) {
        self.subject = subject; self.reason = reason; self.underlying = underlying; isFatal = fatal
    }
    init(_ subject: Subject, _ underlying: any Error & Sendable) { self.init(subject, "\(underlying)", underlying: underlying) }

    public var description: String {
        switch subject {
        case .netlink: "netlink: \(reason)"
        case .endpoint(let e): "endpoint \(e): \(reason)"
        case .endpointRoute: reason
        case .lease: "installing the lease: \(reason)"
        case .routes(let v6): "reading the \(v6 ? "IPv6" : "IPv4") routes: \(reason)"
        case .defaultRoute: reason
        case .routerMode: "router mode: \(reason)"
        case .lanFirewall: "router mode: LAN firewall: \(reason)"
        case .clat(let i): "clat \(i): \(reason)"
        case .step(let what): "\(what): \(reason)"
        }
    }
}

/// What the client has put in place, for status output and tests.
public struct ClientState: Sendable, Equatable, Codable {
    public var interface: String
    public var endpoint: String?
    public var addresses: [String] = []
    public var routes: [String] = []
    /// Host routes that keep the gateway's endpoint on the physical path.
    public var bypassRoutes: [String] = []
    public var dnsServers: [String] = []
    public var mtu: UInt32?
    /// The delegated prefix advertised on the LAN in router mode.
    public var advertisedPrefix: String?
    /// Addresses of an earlier lease kept deprecated after the gateway was renumbered.
    public var deprecatedAddresses: [String]? = nil
    /// The gateway's NAT64 prefix from the lease (advertised on the LAN in PREF64 in router mode).
    public var nat64Prefix: String?
    /// The CLAT when it runs: "192.0.0.2 <-> 2001:db8:1::5 via 64:ff9b::/96 on sixgate0-clat".
    public var clat: String?
    /// Router mode's LAN filter: "table inet NAME: open tcp/22" or "off".
    public var lanFirewall: String?
    /// New inbound connections' packets the LAN filter dropped.
    public var lanInboundDropped: UInt64?
    /// ICMPv6 Destination Unreachable messages this host received on the tunnel (the kernel's
    /// per-interface count): the gateway could not deliver or translate something (its NAT64 says
    /// Address Unreachable for a destination it cannot map). nil where the kernel has no count.
    public var unreachableReceived: UInt64?
    public var leaseTransaction: UInt32?
    public var lastHandshake: Int64 = 0
    public var leaseRequests: UInt64 = 0
    public var leaseReplies: UInt64 = 0
}

/// A running client. `start()` creates the device and, for fixed addresses, installs everything at
/// once; with leases, it installs when the gateway answers (and again when the answer changes).
/// `stop()` removes what it added; routes through the TUN go with the device even after a crash,
/// and the one host route it leaves behind on a crash is replaced at the next start.
public final class SixgateClient: @unchecked Sendable {
    public let config: ClientConfiguration
    /// One line per event; tunnel-client prints it.
    public var log: @Sendable (String) -> Void = { _ in }
    /// Called (from the client's thread) when it cannot go on, e.g. a lease that would take a
    /// default route the config forbids; tunnel-client then stops and exits non-zero.
    public var onFatal: (@Sendable (ClientError) -> Void)?

    public private(set) var device: TunnelDevice?
    let rk: RouteSocket
    /// Holds the kernel to the current lease's plan (addresses, routes, bypass routes, sysctls).
    let reconciler: KernelReconciler
    let lock = SystemLock()
    var uapi: UAPIServer?
    var advertiser: RouterAdvertiser?
    /// Router mode's LAN filter as applied (nil: none in place).
    var lanFilter: ForwardPolicy?
    /// What the last vetting left out of the lease (said once per change).
    var lastRefused: [String] = []
    /// The LAN filter's drop count, read from nft at most every 10 s (status is written every second).
    var lanDropCount: (value: UInt64?, readAt: Double) = (nil, -1e9)
    /// The CLAT's translator and its interface's index, while it runs.
    public internal(set) var clat: TranslatorDevice?
    var clatIndex: Int32 = -1
    /// Why the CLAT is not running, logged once per reason.
    var clatIdleReason: String?
    var tunIndex: Int32 = 0
    var lanIndex: Int32 = 0
    var endpoint: Endpoint?
    var endpointResolvedAt = -1e9
    /// Which of `config.endpoints` is in use, and the failover watch's facts (ClientExchange.swift).
    var endpointIndex = 0
    var failover = FailoverWatch()
    /// The endpoint in use, as configured.
    var endpointText: String { config.endpoints[endpointIndex % config.endpoints.count] }
    var bypassRoutes: [Route] = []
    var current: LeaseMessage?
    /// When each earlier lease in `current.deprecated` ends (MonotonicClock seconds).
    var deprecatedUntil: [IPv6Prefix: Double] = [:]
    var state: ClientState
    var upHookRan = false
    var running = false
    var maintenance: pthread_t?
    // Lease exchange: the device's threads touch only these, under `exchange` (never `lock`,
    // which is held while the device is stopped).
    let exchange = SystemLock()
    var leaseReplies: UInt64 = 0
    var transaction: UInt32 = 0
    var nextRequestAt = 0.0
    var requestBackoff = 1.0
    var renewAt = Double.infinity
    var pendingReply: LeaseMessage?
    var lastRouteCheck = 0.0
    let wakeUp = SystemCondition()

    public init(config: ClientConfiguration) throws(ClientError) {
        self.config = config
        state = ClientState(interface: config.interface)
        do { rk = try RouteSocket() } catch { throw ClientError(.netlink, error) }
        reconciler = KernelReconciler(rk)
    }

    // MARK: Start and stop

    public func start() throws(ClientError) {
        lock.lock(); defer { lock.unlock() }
        guard !running else { return }
        func step<T>(_ what: String, _ body: () throws -> T) throws(ClientError) -> T {
            do { return try body() } catch let e as ClientError { throw e } catch { throw ClientError(.step(what), "\(error)", underlying: error) }
        }
        runShell("preup")
        let ep = try resolveEndpoint()
        endpoint = ep
        if let lan = config.router?.interface {
            lanIndex = try step("router interface \(lan)") { try rk.interfaceIndex(lan) }
        }
        let device = try step("TUN \(config.interface)") { try TunnelDevice(interfaceName: config.interface, listenPort: config.listenPort) }
        self.device = device
        log("tunnel: \(device.offloadSummary)")
        do {
            try step("key") { try device.configure(privateKey: config.privateKey) }
            try step("gateway peer") {
                try device.setPeer(PeerConfiguration(publicKey: config.gatewayPublicKey, presharedKey: config.presharedKey, endpoint: ep,
                                                     allowedIPs: config.allowedIPs, persistentKeepalive: config.keepalive))
            }
            tunIndex = try step("TUN \(config.interface)") { try rk.interfaceIndex(config.interface) }
            try step("MTU") { try rk.setMTU(config.interface, config.mtu ?? 1420) }
            try step("link up") { try rk.setLink(config.interface, up: true) }
            // Redirects through a point-to-point tunnel mean nothing: the gateway is the only next
            // hop. (The settings go with the interface on exit.)
            for v6 in [true, false] { try? Sysctl.write(try SysctlKey.acceptRedirects(ipv6: v6, .interface(config.interface)), 0) }
            device.controlHandler = { [weak self] packet, _ in self?.receiveControl(packet) }
            device.onEvent = { [weak self] event in self?.handle(event) }
            device.start()
            uapi = try? UAPIServer(device: device)
            uapi?.start()
            switch config.addresses {
            case .fixed(let addresses, let dns):
                var lease = LeaseMessage(kind: .reply, transaction: 0)
                lease.ipv6 = addresses.first { $0.address.isV6 }
                lease.ipv4 = addresses.first { !$0.address.isV6 }
                lease.dnsServers = dns
                lease.mtu = config.mtu.map { UInt16(clamping: $0) }
                try apply(lease, extraAddresses: addresses.filter { $0 != lease.ipv6 && $0 != lease.ipv4 })
            case .lease:
                exchange.withLock { transaction = UInt32.random(in: 1...UInt32.max); nextRequestAt = 0 }
            }
        } catch {
            teardownLocked()
            throw error
        }
        running = true
        state.endpoint = ep.description
        maintenance = SystemThread.start(name: "sg-client") { [weak self] in self?.maintain() }
        log("started: \(config.interface) toward \(config.endpoint) (\(ep)), public key \(X25519.publicKey(config.privateKey).base64)")
    }

    /// Restores what `start` and later leases changed: final router advertisements (lifetime 0),
    /// routes, the bypass routes, addresses, the device.
    public func stop() {
        let wasRunning: Bool = lock.withLock { let r = running; running = false; return r }
        wakeUp.broadcast()
        if let m = maintenance { pthread_join(m, nil); maintenance = nil }
        device?.stop()
        lock.lock(); defer { lock.unlock() }
        guard wasRunning || device != nil else { return }
        if upHookRan { runHook("down"); runShell("predown") }
        teardownLocked()
        runShell("postdown")
        log("stopped: \(config.interface) removed, routes restored")
    }

    func teardownLocked() {
        advertiser?.stop(); advertiser = nil
        removeLANFilter()
        // Routes least specific first (the default route before the endpoint's host route), then addresses.
        reconciler.removeAll()
        bypassRoutes = []
        stopCLAT()
        uapi?.stop(); uapi = nil
        device?.stop()
        device = nil
    }

    /// A counter of /proc/net/dev_snmp6/IFACE (the kernel's per-interface ICMPv6 statistics).
    static func interfaceCounter(_ interface: String, _ name: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/net/dev_snmp6/\(interface)", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            return line.split(whereSeparator: \.isWhitespace).last.flatMap { UInt64($0) }
        }
        return nil
    }

    /// A snapshot of what is installed.
    public var currentState: ClientState {
        lock.withLock {
            var s = state
            if let p = device?.peerStatuses().first { s.lastHandshake = p.lastHandshake.seconds }
            s.leaseReplies = exchange.withLock { leaseReplies }
            s.lanInboundDropped = lanDrops()
            s.unreachableReceived = Self.interfaceCounter(config.interface, "Icmp6InDestUnreachs")
            return s
        }
    }

    /// Waits until a lease is installed (or fixed addresses are); false on timeout.
    public func waitUntilConfigured(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if lock.withLock({ current != nil }) { return true }
            usleep(50_000)
        }
        return false
    }

    // MARK: Endpoint

    func resolveEndpoint() throws(ClientError) -> Endpoint {
        let configured = endpointText
        guard let name = EndpointName(configured) else { throw ClientError(.endpoint(configured.debugDescription), "is not host:port") }
        endpointResolvedAt = MonotonicClock.seconds()
        if let e = Endpoint(configured) { return e }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name.host, String(name.port), &hints, &result)
        guard rc == 0, let first = result else {
            throw ClientError(.endpoint(name.host), "cannot resolve (\(String(cString: gai_strerror(rc))))")
        }
        defer { freeaddrinfo(result) }
        var text = [CChar](repeating: 0, count: 64)
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            if ai.pointee.ai_family == AF_INET6 || ai.pointee.ai_family == AF_INET {
                getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &text, 64, nil, 0, NI_NUMERICHOST)
                let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: "%").first.map(String.init) ?? ""
                if let a = IPAddress(host) { return Endpoint(address: a, port: name.port) }
            }
            p = ai.pointee.ai_next
        }
        throw ClientError(.endpoint(name.host), "no IPv4 or IPv6 address")
    }
}
