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
    let lock = NSLock()
    var uapi: UAPIServer?
    var advertiser: RouterAdvertiser?
    /// Router mode's LAN filter as applied (nil: none in place).
    var lanFilter: ForwardPolicy?
    /// What the last vetting left out of the lease (said once per change).
    var lastRefused: [String] = []
    /// The LAN filter's drop count, read from nft at most every 10 s (status is written every second).
    var lanDropCount: (value: UInt64?, readAt: Double) = (nil, -1e9)
    /// The CLAT's translator and its interface's index, while it runs.
    public private(set) var clat: TranslatorDevice?
    var clatIndex: Int32 = -1
    /// Why the CLAT is not running, logged once per reason.
    var clatIdleReason: String?
    var tunIndex: Int32 = 0
    var lanIndex: Int32 = 0
    var endpoint: Endpoint?
    var endpointResolvedAt = -1e9
    var installedAddresses: [InterfaceAddress] = []
    var installedRoutes: [Route] = []
    var bypassRoutes: [Route] = []
    var current: LeaseMessage?
    var state: ClientState
    var upHookRan = false
    var running = false
    var maintenance: Thread?
    // Lease exchange: the device's threads touch only these, under `exchange` (never `lock`,
    // which is held while the device is stopped).
    let exchange = NSLock()
    var leaseReplies: UInt64 = 0
    var transaction: UInt32 = 0
    var nextRequestAt = 0.0
    var requestBackoff = 1.0
    var renewAt = Double.infinity
    var pendingReply: LeaseMessage?
    var lastRouteCheck = 0.0
    let wakeUp = NSCondition()

    public init(config: ClientConfiguration) throws(ClientError) {
        self.config = config
        state = ClientState(interface: config.interface)
        do { rk = try RouteSocket() } catch { throw ClientError(.netlink, error) }
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
        let t = Thread { [weak self] in self?.maintain() }
        t.name = "sg-client"
        maintenance = t
        t.start()
        log("started: \(config.interface) toward \(config.endpoint) (\(ep)), public key \(X25519.publicKey(config.privateKey).base64)")
    }

    /// Restores what `start` and later leases changed: final router advertisements (lifetime 0),
    /// routes, the bypass routes, addresses, the device.
    public func stop() {
        let wasRunning: Bool = lock.withLock { let r = running; running = false; return r }
        wakeUp.broadcast()
        while maintenance?.isFinished == false { usleep(10_000) }
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
        for r in installedRoutes { try? rk.removeRoute(r) }
        installedRoutes = []
        for r in bypassRoutes { try? rk.removeRoute(r) }
        bypassRoutes = []
        for a in installedAddresses { try? rk.removeAddress(a) }
        installedAddresses = []
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
        guard let name = EndpointName(config.endpoint) else { throw ClientError(.endpoint(config.endpoint.debugDescription), "is not host:port") }
        endpointResolvedAt = MonotonicClock.seconds()
        if let e = Endpoint(config.endpoint) { return e }
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

    // MARK: Installing a lease

    /// Installs `lease` (replacing what an earlier one installed). Lock held.
    func apply(_ lease: LeaseMessage, extraAddresses: [AddressAssignment] = []) throws(ClientError) {
        if let old = current, old.sameConfiguration(as: lease) { current = lease; return }
        let changed = current != nil
        // What the lease asks for.
        var addresses: [InterfaceAddress] = []
        var lanPrefix: IPv6Prefix?
        if let v6 = lease.ipv6, case .v6(let a) = v6.address {
            if case .fixed = config.addresses {
                // Fixed addresses are installed as written (a wg-quick "Address = 2001:db8::2/64").
                addresses.append(InterfaceAddress(interfaceIndex: tunIndex, address: .v6(a), prefixLength: v6.prefixLength, flags: InterfaceAddress.noDAD))
            } else if v6.prefixLength < 128 {
                // A delegated prefix: its first /64 on the LAN (router mode), ::1 of it on the TUN otherwise.
                let p64 = IPv6Prefix(containing: a, length: max(64, v6.prefixLength))
                let first = IPv6Address(rawValue: p64.network.rawValue | 1)
                if config.router != nil {
                    lanPrefix = p64
                    addresses.append(InterfaceAddress(interfaceIndex: lanIndex, address: .v6(first), prefixLength: p64.length, flags: InterfaceAddress.noDAD))
                } else {
                    addresses.append(InterfaceAddress(interfaceIndex: tunIndex, address: .v6(first), prefixLength: 128, flags: InterfaceAddress.noDAD))
                }
            } else {
                addresses.append(InterfaceAddress(interfaceIndex: tunIndex, address: .v6(a), prefixLength: 128, flags: InterfaceAddress.noDAD))
            }
        }
        if let v4 = lease.ipv4 { addresses.append(InterfaceAddress(interfaceIndex: tunIndex, address: v4.address, prefixLength: v4.prefixLength)) }
        for a in extraAddresses {
            addresses.append(InterfaceAddress(interfaceIndex: tunIndex, address: a.address, prefixLength: a.prefixLength, flags: a.address.isV6 ? InterfaceAddress.noDAD : 0))
        }
        if config.router != nil, lease.ipv6 != nil, lanPrefix == nil {
            log("router mode: the lease is a single address (\(lease.ipv6!)), not a prefix: nothing to advertise on \(config.router!.interface)")
        }
        // Routes: per family, only when the client has an address of that family.
        var routes: [Route] = []
        var bypass: [Route] = []
        for v6 in [true, false] {
            let hasAddress = addresses.contains { $0.address.isV6 == v6 } || (v6 && lanPrefix != nil)
            guard hasAddress else { continue }
            let (r, b) = try routesFor(v6: v6, lease: lease, index: tunIndex)
            routes += r; bypass += b
        }
        // The CLAT: IPv4 through its interface, its IPv6 address into it, the NAT64 prefix into the tunnel.
        if let c = try prepareCLAT(lease) {
            addresses.append(InterfaceAddress(interfaceIndex: clatIndex, address: .v4(c.settings.ipv4), prefixLength: 32))
            routes.append(Route(destination: .v6(IPv6Prefix(containing: c.ipv6, length: 128)), interfaceIndex: clatIndex))
            routes.append(Route(destination: .v6(c.prefix), interfaceIndex: tunIndex))
            let (r, b) = try routesFor(v6: false, lease: lease, index: clatIndex)
            routes += r; bypass += b.filter { !bypass.contains($0) }
        }
        // Take the old state away, put the new in place.
        if changed {
            for r in installedRoutes where !routes.contains(r) { try? rk.removeRoute(r) }
            for a in installedAddresses where !addresses.contains(a) { try? rk.removeAddress(a) }
        }
        do {
            if config.router != nil, lanPrefix != nil { try Sysctl.write(try .ipv6Forwarding(.all), 1); warnAboutAcceptRA() }
            for a in addresses { try rk.ensureAddress(a) }
            for b in bypass { try rk.ensureRoute(b) }
            for r in routes { try rk.ensureRoute(r) }
        } catch {
            throw ClientError(.lease, error)
        }
        if let mtu = lease.mtu, config.mtu == nil, mtu >= 1280 { try? rk.setMTU(config.interface, UInt32(mtu)) }
        for b in bypassRoutes where !bypass.contains(b) { try? rk.removeRoute(b) }
        installedAddresses = addresses
        installedRoutes = routes
        bypassRoutes = bypass
        current = lease
        // Router mode: advertise the LAN prefix (again, if it changed).
        if let settings = config.router {
            let old = advertiser?.configuration
            if old?.prefixes != lanPrefix.map({ [$0] }) || old?.nat64Prefix != lease.nat64Prefix {
                advertiser?.stop(); advertiser = nil
                if let lanPrefix {
                    var ad = AdvertisementConfiguration(interface: settings.interface, prefixes: [lanPrefix])
                    ad.dnsServers = settings.dnsServers.isEmpty ? lease.dnsServers.compactMap { if case .v6(let a) = $0 { a } else { nil } } : settings.dnsServers
                    if ad.dnsServers.isEmpty, !lease.dnsServers.isEmpty {
                        log("router mode: the gateway's DNS servers (\(lease.dnsServers.map(\.description).joined(separator: " "))) are IPv4 only and RDNSS carries IPv6 addresses (RFC 8106): none advertised on \(settings.interface); set [router] dns, or an IPv6 server in the gateway's dns")
                    }
                    ad.mtu = max(1280, UInt32(lease.mtu ?? UInt16(clamping: config.mtu ?? 1420)))   // never below IPv6's minimum on the LAN
                    ad.maximumInterval = settings.interval
                    ad.nat64Prefix = lease.nat64Prefix
                    do {
                        let a = try RouterAdvertiser(ad)
                        a.log = log
                        a.start()
                        advertiser = a
                    } catch {
                        throw ClientError(.routerMode, error)
                    }
                }
            }
        }
        state.addresses = addresses.map { "\($0.address)/\($0.prefixLength)" }
        state.routes = routes.map { $0.destination.description }
        state.bypassRoutes = bypass.map(describe)
        state.dnsServers = lease.dnsServers.map(\.description)
        state.nat64Prefix = lease.nat64Prefix?.description
        state.mtu = lease.mtu.map(UInt32.init) ?? config.mtu
        state.advertisedPrefix = lanPrefix?.description
        try updateLANFilter(lanPrefix)
        log("\(changed ? "lease changed" : "configured"): \(state.addresses.joined(separator: " ")); routes \(state.routes.joined(separator: " "))"
            + (bypass.isEmpty ? "" : "; endpoint kept on \(bypass.map(describe).joined(separator: ", "))")
            + (lanPrefix.map { "; advertising \($0) on \(config.router!.interface)" } ?? ""))
        if !upHookRan {
            upHookRan = true
            runHook("up")
            runShell("postup")
        } else {
            runHook("lease-changed")
        }
    }

    /// The routes for one family and, when it takes the default route, the bypass route for the endpoint.
    func routesFor(v6: Bool, lease: LeaseMessage, index: Int32) throws(ClientError) -> ([Route], [Route]) {
        let selection = v6 ? config.ipv6Routes : config.ipv4Routes
        let zero: IPPrefix = v6 ? .v6(IPv6Prefix(containing: IPv6Address(rawValue: 0), length: 0)) : .v4(IPv4Prefix(containing: IPv4Address(rawValue: 0), length: 0))
        var wanted: [IPPrefix]
        switch selection {
        case .none: return ([], [])
        case .prefixes(let p): return (p.map { Route(destination: $0, interfaceIndex: index) }, [])
        case .all:
            let offered = lease.routes.filter { $0.network.isV6 == v6 }
            // The gateway may route less than everything (client_prefix_length): take what it offers.
            if !offered.isEmpty, !offered.contains(where: { $0.length == 0 }) {
                return (offered.map { Route(destination: $0, interfaceIndex: index) }, [])
            }
            wanted = [zero]
        }
        // The default route. Who holds one now (not us)?
        let others: [Route]
        do {
            others = try rk.routes(ipv6: v6, table: 254).filter { $0.destination.length == 0 && $0.type == 1 && !isOurs($0.interfaceIndex) }
        } catch {
            throw ClientError(.routes(ipv6: v6), error)
        }
        if !others.isEmpty {
            // IPv6: re6stnet's rule, refuse unless told. IPv4: the carrier's default route is the
            // normal case (the tunnel rides on it), and "default" in the config is the instruction.
            guard config.replaceDefaultRoute || !v6 else { throw ClientError(.defaultRoute(ipv6: v6), refusal(v6: v6, held: others), fatal: true) }
            // Shadow it with two half-space routes: the original stays, and is in force again the
            // moment ours go (on exit, or with the TUN device if the client dies).
            wanted = v6 ? [.v6(IPv6Prefix("::/1")!), .v6(IPv6Prefix("8000::/1")!)] : [.v4(IPv4Prefix("0.0.0.0/1")!), .v4(IPv4Prefix("128.0.0.0/1")!)]
        }
        var bypass: [Route] = []
        if let ep = endpoint, ep.address.isV6 == v6 {
            bypass.append(try bypassRoute(for: ep.address))
        }
        return (wanted.map { Route(destination: $0, interfaceIndex: index) }, bypass)
    }

    /// The tunnel's interface or the CLAT's.
    func isOurs(_ index: Int32?) -> Bool { index == tunIndex || (index == clatIndex && clat != nil) }

    /// "203.0.113.129/32 via 198.51.100.1 dev eth0", with the interface's name.
    func describe(_ r: Route) -> String {
        let name = r.interfaceIndex.flatMap { i in (try? rk.links())?.first { $0.index == i }?.name } ?? r.interfaceIndex.map { "#\($0)" } ?? "?"
        return "\(r.destination)" + (r.gateway.map { " via \($0)" } ?? "") + " dev \(name)"
    }

    /// A host route for the endpoint through the path the kernel uses now (RTM_GETROUTE, never
    /// parsed command output), so the tunnel's own UDP keeps leaving through the physical interface.
    func bypassRoute(for address: IPAddress) throws(ClientError) -> Route {
        let host = IPPrefix(host: address)
        // Ignore our own earlier bypass route (a restart after a crash, or a re-check).
        let found: Route
        do {
            if let mine = bypassRoutes.first(where: { $0.destination == host }) ?? (try? rk.routes(ipv6: address.isV6, table: 254))?.first(where: {
                $0.destination == host && $0.protocolNumber == RouteSocket.sixgateProtocol }) {
                try? rk.removeRoute(mine)
            }
            found = try rk.lookupRoute(to: address)
        } catch {
            throw ClientError(.endpointRoute("\(address)"), "no route to the gateway's endpoint \(address): \(error)", underlying: error)
        }
        guard let index = found.interfaceIndex, !isOurs(index) else {
            throw ClientError(.endpointRoute("\(address)"), "the route to the gateway's endpoint \(address) leads into the tunnel itself; give it a route through the physical interface")
        }
        return Route(destination: host, interfaceIndex: index, gateway: found.gateway)
    }

    func refusal(v6: Bool, held: [Route]) -> String {
        let names = held.map { r -> String in
            let name = (try? rk.links())?.first { $0.index == r.interfaceIndex }?.name ?? "interface \(r.interfaceIndex ?? 0)"
            return r.gateway.map { "\(name) via \($0)" } ?? name
        }
        let family = v6 ? "IPv6" : "IPv4"
        var text = "the \(family) default route is held by \(names.joined(separator: ", ")); tunnel-client does not take it over unless told to. "
            + "Set replace_default_route = true under [routes] (the existing route stays, shadowed by \(v6 ? "::/1 and 8000::/1" : "0.0.0.0/1 and 128.0.0.0/1") through the tunnel, and is back on exit), "
            + "or route only some prefixes (routes.\(v6 ? "ipv6" : "ipv4") = [\"...\"]), or \"none\""
        if v6, let first = held.first, let name = (try? rk.links())?.first(where: { $0.index == first.interfaceIndex })?.name {
            text += ". If that route comes from router advertisements and this host forwards (router mode), keep accepting them with: sysctl -w net.ipv6.conf.\(name).accept_ra=2"
        }
        return text
    }

    /// Router mode turns forwarding on, and with it the kernel stops taking router advertisements
    /// on interfaces with accept_ra=1: their RA-learned default route would expire.
    func warnAboutAcceptRA() {
        guard let routes = try? rk.routes(ipv6: true, table: 254), let links = try? rk.links() else { return }
        for r in routes where r.destination.length == 0 && r.protocolNumber == 9 && r.interfaceIndex != tunIndex {   // 9: RTPROT_RA
            guard let name = links.first(where: { $0.index == r.interfaceIndex })?.name,
                  let key = try? SysctlKey.acceptRA(.interface(name)), (try? Sysctl.read(key)) == 1 else { continue }
            log("warning: forwarding is on and \(name) has accept_ra=1, so its router-advertised default route will expire; fix: sysctl -w net.ipv6.conf.\(name).accept_ra=2")
        }
    }

    // MARK: The lease exchange

    var clientLinkLocal: IPv6Address {
        X25519.publicKey(config.privateKey).withUnsafeBytes { LeaseMessage.clientLinkLocal(publicKey: $0) }
    }

    func sendRequest() {
        guard let device else { return }
        let request = LeaseMessage(kind: .request, transaction: exchange.withLock { transaction })
        guard let payload = try? request.encode(),
              let packet = try? PacketRepr.ipv6(source: clientLinkLocal, destination: LeaseMessage.gatewayLinkLocal, hopLimit: 255,
                                                .udp(UDPRepr(sourcePort: LeaseMessage.port, destinationPort: LeaseMessage.port), payload: payload)).emit()
        else { return }
        state.leaseRequests += 1
        device.send(packet: packet, to: config.gatewayPublicKey)
    }

    /// Tells the gateway what was left out of its lease (one notice per change, no answer).
    func sendNotice(_ refused: [String]) {
        guard let device else { return }
        var notice = LeaseMessage(kind: .notice, transaction: exchange.withLock { transaction })
        var text = refused.joined(separator: "; ")
        while text.utf8.count > 200 { text.removeLast() }
        notice.message = text
        guard let payload = try? notice.encode(),
              let packet = try? PacketRepr.ipv6(source: clientLinkLocal, destination: LeaseMessage.gatewayLinkLocal, hopLimit: 255,
                                                .udp(UDPRepr(sourcePort: LeaseMessage.port, destinationPort: LeaseMessage.port), payload: payload)).emit()
        else { return }
        device.send(packet: packet, to: config.gatewayPublicKey)
    }

    /// What the vetting needs to know about this host (lock held): its connected networks and
    /// other routes (not the tunnel's, the CLAT's or our own), the endpoint, who holds defaults.
    func hostFacts() -> HostFacts {
        var facts = HostFacts(endpoint: endpoint?.address)
        for v6 in [true, false] {
            for r in (try? rk.routes(ipv6: v6, table: 254)) ?? [] where !isOurs(r.interfaceIndex) && r.protocolNumber != RouteSocket.sixgateProtocol {
                if r.destination.length == 0 {
                    if r.type == 1 { facts.defaultHeldElsewhere.insert(v6) }
                    continue
                }
                if case .v6(let p) = r.destination, p.network.isLinkLocal || p.network.isMulticast { continue }
                // Connected: the kernel's own prefix routes (proto kernel, or link scope).
                if r.protocolNumber == 2 || r.scope == 253 { facts.connected.append(r.destination) } else { facts.routed.append(r.destination) }
            }
        }
        return facts
    }

    /// A link-local packet from the gateway (receive thread): a lease reply is handed to the maintenance thread.
    func receiveControl(_ packet: UnsafeRawBufferPointer) {
        guard let ip = try? IPv6Packet(packet), ip.upperLayerProtocol == .udp, ip.destination == clientLinkLocal,
              let udp = try? UDPDatagram(ip.upperLayer), udp.sourcePort == LeaseMessage.port,
              udp.isChecksumValid(.ipv6(source: ip.source, destination: ip.destination)),
              let message = try? LeaseMessage(parsing: udp.payload), message.kind != .request else { return }
        exchange.withLock {
            guard message.transaction == transaction else { return }
            pendingReply = message
            leaseReplies += 1
        }
        wakeUp.broadcast()
    }

    func handle(_ event: PeerEvent) {
        switch event {
        case .handshakeCompleted:
            // A new session (first, after a gateway restart, or a rekey): ask again if the last
            // answer is old, so a gateway that lost or changed our lease is noticed at once.
            exchange.withLock { if case .lease = config.addresses, renewAt.isFinite { nextRequestAt = 0 } }
            wakeUp.broadcast()
        default: break
        }
    }

    /// The client's own thread: lease requests with backoff, renewals, replies, and a check every
    /// few seconds that the bypass route still matches the physical path and the endpoint's name.
    func maintain() {
        while lock.withLock({ running }) {
            wakeUp.lock()
            _ = wakeUp.wait(until: Date().addingTimeInterval(0.25))
            wakeUp.unlock()
            lock.lock()
            guard running else { lock.unlock(); return }
            let now = MonotonicClock.seconds()
            if case .lease = config.addresses {
                let reply: LeaseMessage? = exchange.withLock { let r = pendingReply; pendingReply = nil; return r }
                if let reply {
                    if reply.kind == .refusal {
                        log("the gateway refused a lease: \(escapedForLog(reply.message ?? "no reason given")); asking again in 30 s")
                        exchange.withLock { nextRequestAt = now + 30 }
                    } else if reply.kind == .reply {
                        do {
                            let vetted = config.vet(reply, host: hostFacts())
                            if !vetted.refused.isEmpty, vetted.refused != lastRefused {
                                for r in vetted.refused { log("lease: left out \(escapedForLog(r))") }
                                sendNotice(vetted.refused)
                            }
                            lastRefused = vetted.refused
                            try apply(vetted.lease)
                            let life = Double(vetted.lease.lifetime ?? 3600)
                            state.leaseTransaction = reply.transaction
                            exchange.withLock {
                                renewAt = now + life / 2
                                nextRequestAt = renewAt
                                requestBackoff = 1
                                transaction = UInt32.random(in: 1...UInt32.max)
                            }
                        } catch {
                            if error.isFatal, let onFatal {
                                log("lease from the gateway not installed: \(error)")
                                exchange.withLock { nextRequestAt = .infinity }
                                lock.unlock()
                                onFatal(error)
                                lock.lock()
                            } else {
                                log("lease from the gateway not installed: \(error); asking again in 10 s")
                                exchange.withLock { nextRequestAt = now + 10 }
                            }
                        }
                    }
                }
                let due: Bool = exchange.withLock {
                    guard now >= nextRequestAt else { return false }
                    nextRequestAt = now + requestBackoff
                    requestBackoff = min(requestBackoff * 2, 16)
                    return true
                }
                if due { sendRequest() }
            }
            if now - lastRouteCheck >= 3 {
                lastRouteCheck = now
                recheckPath(now: now)
            }
            lock.unlock()
        }
    }

    /// Network changes: the physical path to the endpoint moved (new default gateway, interface
    /// replaced) or the endpoint's name points elsewhere after handshakes stopped. Lock held.
    func recheckPath(now: Double) {
        guard let device, var ep = endpoint else { return }
        let peer = device.peerStatuses().first
        let sinceHandshake = Double(Int64(Date().timeIntervalSince1970) - (peer?.lastHandshake.seconds ?? 0))
        if Endpoint(config.endpoint) == nil, sinceHandshake > 135, now - endpointResolvedAt > 30 {
            if let fresh = try? resolveEndpoint(), fresh != ep {
                log("endpoint \(config.endpoint) now resolves to \(fresh) (was \(ep))")
                ep = fresh
                endpoint = fresh
                state.endpoint = fresh.description
                try? device.setPeer(PeerConfiguration(publicKey: config.gatewayPublicKey, presharedKey: config.presharedKey, endpoint: fresh,
                                                      allowedIPs: config.allowedIPs, persistentKeepalive: config.keepalive))
                if let lease = current { current = nil; try? apply(lease) }
                return
            }
        }
        // Is the bypass route still the path the kernel would take without it?
        for old in bypassRoutes {
            let others = (try? rk.routes(ipv6: ep.address.isV6, table: 254))?.filter {
                $0.destination.length == 0 && !isOurs($0.interfaceIndex) && $0.type == 1
            } ?? []
            guard let best = others.min(by: { $0.metric < $1.metric }) else { continue }
            // Only default-route changes are followed; a more specific physical route is used as found at start.
            let stillValid = (try? rk.links())?.contains { $0.index == old.interfaceIndex && $0.isUp } ?? true
            if !stillValid || (best.interfaceIndex != old.interfaceIndex || best.gateway != old.gateway) && old.gateway != nil {
                let fresh = Route(destination: old.destination, interfaceIndex: best.interfaceIndex, gateway: best.gateway)
                guard fresh != old else { continue }
                do {
                    try rk.removeRoute(old)
                    try rk.ensureRoute(fresh)
                    bypassRoutes = bypassRoutes.map { $0 == old ? fresh : $0 }
                    state.bypassRoutes = bypassRoutes.map(describe)
                    log("the physical path changed: endpoint route now \(describe(fresh))")
                } catch {
                    log("the physical path changed but the endpoint route could not follow: \(error)")
                }
            }
        }
    }

    // MARK: CLAT

    /// Starts, updates or stops the CLAT's translator for `lease`; what to install for it, or nil
    /// when it does not run (off, the lease gives IPv4 itself, or no CLAT address or prefix). Lock held.
    func prepareCLAT(_ lease: LeaseMessage) throws(ClientError) -> (settings: CLATSettings, ipv6: IPv6Address, prefix: IPv6Prefix)? {
        guard let settings = config.clat else { return nil }
        func idle(_ reason: String) -> (settings: CLATSettings, ipv6: IPv6Address, prefix: IPv6Prefix)? {
            if clatIdleReason != reason { log("clat: not running: \(reason)"); clatIdleReason = reason }
            stopCLAT()
            return nil
        }
        if let v4 = lease.ipv4 { return idle("the gateway gives IPv4 itself (\(v4)), no translation needed") }
        guard let ipv6 = settings.ipv6 ?? lease.clatAddress else {
            return idle("the lease names no CLAT address (the gateway needs [nat64] enabled = true and clat = true), and clat.ipv6 is not set")
        }
        guard let prefix = settings.prefix ?? lease.nat64Prefix else {
            return idle("the lease names no NAT64 prefix (the gateway needs [nat64] enabled = true), and clat.prefix is not set")
        }
        clatIdleReason = nil
        // An IPv4 packet grows by 20 bytes as IPv6: the CLAT's MTU is the tunnel's less 20.
        let mtu = Int(config.mtu ?? lease.mtu.map(UInt32.init) ?? 1420)
        let settingsForTranslator = TranslatorConfiguration(prefix: prefix, explicitMappings: [ExplicitMapping(ipv4: settings.ipv4, ipv6: ipv6)],
                                                            ipv6MTU: mtu, ipv4MTU: mtu - 20,
                                                            ipv4Address: CLATSettings.translatorIPv4, ipv6Address: ipv6)
        do {
            if let clat {
                if clat.configuration != settingsForTranslator { try clat.update(configuration: settingsForTranslator) }
            } else {
                let t = try TranslatorDevice(name: settings.interface, configuration: settingsForTranslator)
                clat = t
                clatIndex = try rk.interfaceIndex(settings.interface)
                t.start()
            }
            try rk.setMTU(settings.interface, UInt32(mtu - 20))
            try rk.setLink(settings.interface, up: true)
            // What comes back for the CLAT arrives on the tunnel and is forwarded into its interface.
            try Sysctl.write(try .ipv6Forwarding(.all), 1)
        } catch {
            stopCLAT()
            throw ClientError(.clat(interface: settings.interface), error)
        }
        warnAboutAcceptRA()
        state.clat = "\(settings.ipv4) <-> \(ipv6) via \(prefix) on \(settings.interface)"
        return (settings, ipv6, prefix)
    }

    /// Stops the CLAT: its interface goes, and with it its address and the routes through it.
    func stopCLAT() {
        clat?.stop()
        clat = nil
        clatIndex = -1
        state.clat = nil
    }

    // MARK: Hooks

    var hookEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["SIXGATE_INTERFACE"] = config.interface
        env["SIXGATE_GATEWAY_ENDPOINT"] = endpoint?.description ?? config.endpoint
        if let l = current {
            if let a = l.ipv6 { env[a.prefixLength == 128 ? "SIXGATE_IPV6_ADDRESS" : "SIXGATE_IPV6_PREFIX"] = a.description }
            if let a = l.ipv4 { env["SIXGATE_IPV4_ADDRESS"] = a.description }
            env["SIXGATE_DNS"] = l.dnsServers.map(\.description).joined(separator: " ")
            if let p = l.nat64Prefix { env["SIXGATE_NAT64_PREFIX"] = p.description }
            if let c = state.clat { env["SIXGATE_CLAT"] = c }
            if let m = l.mtu { env["SIXGATE_MTU"] = String(m) }
        }
        env["SIXGATE_ADDRESSES"] = state.addresses.joined(separator: " ")
        if let lan = config.router?.interface { env["SIXGATE_LAN_INTERFACE"] = lan }
        return env
    }

    func runHook(_ name: String) {
        guard let path = config.hooks[name] else { return }
        var env = hookEnvironment
        env["SIXGATE_EVENT"] = name
        if let problem = Hook.run(path, environment: env) { log("hook \(name): \(problem)") }
    }

    func runShell(_ name: String) {
        for command in config.shellHooks[name] ?? [] {
            if let problem = Hook.run("/bin/sh", arguments: ["-c", command.replacingOccurrences(of: "%i", with: config.interface)], environment: hookEnvironment) {
                log("\(name): \(problem)")
            }
        }
    }

}

extension LeaseMessage {
    /// Equal in everything that is installed (the transaction and lifetime aside).
    func sameConfiguration(as o: LeaseMessage) -> Bool {
        ipv6 == o.ipv6 && ipv4 == o.ipv4 && routes == o.routes && mtu == o.mtu && dnsServers == o.dnsServers && nat64Prefix == o.nat64Prefix
            && clatAddress == o.clatAddress
    }
}

