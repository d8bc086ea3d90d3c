// A router's side of RFC 4861 §6 for one LAN interface, as radvd does it for the common case:
// unsolicited Router Advertisements at random intervals, answers to Router Solicitations, and
// final advertisements with router lifetime 0 when it stops. Prefix information (on-link and
// autonomous, so hosts configure themselves by SLAAC), RDNSS (RFC 8106), MTU and the source
// link-layer address go in every advertisement.
import SixgateIO
import PacketKit
import RouteKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// What to advertise and how often. Defaults are RFC 4861 §6.2.1's and radvd's.
public struct AdvertisementConfiguration: Sendable, Equatable {
    public var interface: String
    /// Prefixes advertised on-link and autonomous (SLAAC needs a /64).
    public var prefixes: [IPv6Prefix]
    public var dnsServers: [IPv6Address] = []
    /// Link MTU option; nil leaves it out.
    public var mtu: UInt32?
    /// MaxRtrAdvInterval (4...1800 s); MinRtrAdvInterval is a third of it.
    public var maximumInterval: Double = 600
    /// Router lifetime in seconds (default 3 × MaxRtrAdvInterval, at most 9000).
    public var routerLifetime: UInt16?
    public var validLifetime: UInt32 = 86400
    public var preferredLifetime: UInt32 = 14400
    /// A NAT64 prefix announced in a PREF64 option (RFC 8781), so hosts on the link run their own
    /// CLAT (464XLAT) and synthesize IPv6 for IPv4 literals without DNS64; nil leaves it out.
    public var nat64Prefix: IPv6Prefix?
    /// Prefixes of an earlier lease (the gateway was renumbered): advertised with preferred
    /// lifetime 0 and the valid lifetime that remains, counting down, so hosts stop starting
    /// connections from them at once and drop them when they end (RFC 9096 §3.1, RFC 4862 §5.5.3).
    public var deprecatedPrefixes: [DeprecatedPrefix] = []

    public init(interface: String, prefixes: [IPv6Prefix]) {
        self.interface = interface
        self.prefixes = prefixes
    }

    var effectiveRouterLifetime: UInt16 { routerLifetime ?? UInt16(min(9000, max(4, 3 * maximumInterval))) }
    var minimumInterval: Double { max(3, maximumInterval / 3) }
}

/// A prefix advertised as deprecated until `validUntil` (MonotonicClock seconds): with the valid
/// lifetime that remains, or, `withdrawn`, with valid lifetime 0 (its source took it back at once;
/// hosts deprecate their addresses in it at once and keep them at most two hours, RFC 4862 §5.5.3 e).
public struct DeprecatedPrefix: Sendable, Equatable {
    public var prefix: IPv6Prefix
    public var validUntil: Double
    public var withdrawn: Bool
    public init(prefix: IPv6Prefix, validUntil: Double, withdrawn: Bool = false) {
        self.prefix = prefix
        self.validUntil = validUntil
        self.withdrawn = withdrawn
    }
}

public struct AdvertiserStatistics: Sendable, Equatable, CustomStringConvertible {
    public var solicitationsReceived: UInt64 = 0
    /// Failed RFC 4861 §6.1.1 validation (hop limit, code, length, options, SLLA from ::).
    public var solicitationsInvalid: UInt64 = 0
    public var advertisementsSent: UInt64 = 0
    public var sendErrors: UInt64 = 0
    public var description: String {
        "rs-received \(solicitationsReceived) rs-invalid \(solicitationsInvalid) ra-sent \(advertisementsSent) send-errors \(sendErrors)"
    }
}

/// Advertises on one interface from a thread of its own until `stop()`.
public final class RouterAdvertiser: @unchecked Sendable {
    /// What it advertises (`update` changes it).
    public var configuration: AdvertisementConfiguration { lock.withLock { current } }
    var current: AdvertisementConfiguration
    public let interfaceIndex: Int32
    public let mac: MACAddress?
    /// Called with a line when something goes wrong (a send error, say); keep it short.
    public var log: (@Sendable (String) -> Void)?

    let socket: RouterSocket
    let lock = SystemLock()
    var stats = AdvertiserStatistics()
    var running = false
    var thread: pthread_t?
    var lastMulticast = -1e9
    /// `update` changed the configuration: advertise again soon.
    var changed = false

    static let allNodes = IPv6Address(rawValue: 0xff02 << 112 | 1)
    /// RFC 4861 §10: MAX_INITIAL_RTR_ADVERTISEMENTS, MAX_INITIAL_RTR_ADVERT_INTERVAL,
    /// MIN_DELAY_BETWEEN_RAS, MAX_RA_DELAY_TIME, MAX_FINAL_RTR_ADVERTISEMENTS.
    static let initialCount = 3, initialInterval = 16.0, minimumDelay = 3.0, maximumDelay = 0.5, finalCount = 3

    public init(_ configuration: AdvertisementConfiguration, namespace: NetworkNamespace = .current) throws(NDPProxyError) {
        current = configuration
        guard (4...1800).contains(configuration.maximumInterval) else {
            throw NDPProxyError(.routerAdvertisements(interface: configuration.interface), "the interval must be 4 to 1800 seconds (RFC 4861 §6.2.1)")
        }
        do {
            let rk = try RouteSocket(namespace: namespace)
            let link = try rk.link(named: configuration.interface)
            interfaceIndex = link.index
            mac = link.mac
        } catch {
            throw NDPProxyError(.interface(configuration.interface), error)
        }
        do {
            socket = try RouterSocket(interfaceIndex: interfaceIndex, interfaceName: configuration.interface, namespace: namespace)
        } catch {
            throw NDPProxyError(error)
        }
    }

    deinit { stop() }

    public var statistics: AdvertiserStatistics { lock.withLock { stats } }

    /// The advertisement as sent; `final` gives router lifetime 0, preferred lifetime 0 and an
    /// RDNSS lifetime of 0 (RFC 4861 §6.2.5, RFC 8106 §5.1).
    public func advertisement(final: Bool = false) -> RouterAdvertisementRepr {
        let c = configuration
        let now = MonotonicClock.seconds()
        var options: [NDPOptionRepr] = []
        if let mac { options.append(.sourceLinkLayerAddress(mac)) }
        if let mtu = c.mtu { options.append(.mtu(mtu)) }
        for p in c.prefixes {
            options.append(.prefixInformation(.init(prefix: p, onLink: true, autonomous: p.length == 64,
                                                    validLifetime: final ? min(c.validLifetime, 7200) : c.validLifetime,
                                                    preferredLifetime: final ? 0 : c.preferredLifetime)))
        }
        for d in c.deprecatedPrefixes where d.validUntil > now && !c.prefixes.contains(d.prefix) {
            let left = d.withdrawn ? 0 : UInt32(clamping: Int64(d.validUntil - now))
            options.append(.prefixInformation(.init(prefix: d.prefix, onLink: true, autonomous: d.prefix.length == 64,
                                                    validLifetime: min(left, c.validLifetime), preferredLifetime: 0)))
        }
        if !c.dnsServers.isEmpty {
            // RFC 8106 §5.1: a lifetime of at least 3 × MaxRtrAdvInterval.
            options.append(.rdnss(lifetime: final ? 0 : UInt32(3 * c.maximumInterval), servers: c.dnsServers))
        }
        if let p = c.nat64Prefix {
            // RFC 8781 §4.1: a lifetime of at least 3 × MaxRtrAdvInterval, in units of 8 s, at most 65528.
            let life = UInt16(min(65528, (Int(3 * c.maximumInterval) + 7) / 8 * 8))
            options.append(.pref64(lifetime: final ? 0 : life, prefix: p))
        }
        return RouterAdvertisementRepr(currentHopLimit: 64, routerLifetime: final ? 0 : c.effectiveRouterLifetime, options: options)
    }

    /// Starts advertising: three quick initial advertisements, then every MinRtrAdvInterval to
    /// MaxRtrAdvInterval seconds, and an answer to each valid solicitation.
    public func start() {
        lock.withLock { running = true }
        thread = SystemThread.start(name: "sg-radv") { [unowned self] in self.loop() }
    }

    /// Advertises `configuration` from now on (same interface), at once and then as the initial
    /// advertisements do (RFC 4861 §6.2.4: changed information is sent again soon), without the
    /// final advertisements a stop and a new start would send (hosts keep their default router).
    public func update(_ configuration: AdvertisementConfiguration) {
        lock.withLock {
            current = configuration
            changed = true
        }
    }

    /// Sends the final advertisements (router lifetime 0) and stops the thread.
    public func stop() {
        let was = lock.withLock { let r = running; running = false; return r }
        guard was else { return }
        if let t = thread { pthread_join(t, nil); thread = nil }
        for i in 0..<Self.finalCount {
            send(advertisement(final: true), to: Self.allNodes)
            if i + 1 < Self.finalCount { usleep(200_000) }
        }
    }

    func loop() {
        var sent = 0
        var next = MonotonicClock.seconds()
        var pendingReply: Double?
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1500, alignment: 8)
        defer { buffer.deallocate() }
        var source = [UInt8](repeating: 0, count: 16)
        while lock.withLock({ running }) {
            let now = MonotonicClock.seconds()
            if lock.withLock({ let c = changed; changed = false; return c }) {
                sent = 0
                next = min(next, max(now, lastMulticast + Self.minimumDelay))
            }
            if now >= next || (pendingReply.map { now >= $0 } ?? false) {
                send(advertisement(), to: Self.allNodes)
                lastMulticast = now
                sent += 1
                pendingReply = nil
                var interval = Double.random(in: configuration.minimumInterval...configuration.maximumInterval)
                if sent <= Self.initialCount { interval = min(interval, Self.initialInterval) }
                next = now + interval
            }
            let wait = min(next, pendingReply ?? next) - MonotonicClock.seconds()
            let (n, sourceBytes, hopLimit) = socket.receive(into: buffer, capacity: 1500, timeoutMilliseconds: Int32(max(1, min(200, wait * 1000))))
            guard n > 0 else { continue }
            source = sourceBytes
            lock.withLock { stats.solicitationsReceived += 1 }
            let from = source.withUnsafeBytes { IPv6Address(bytes: $0) }
            guard Self.isValidSolicitation(UnsafeRawBufferPointer(start: buffer, count: n), from: from, hopLimit: hopLimit) else {
                lock.withLock { stats.solicitationsInvalid += 1 }
                continue
            }
            // RFC 4861 §6.2.6: answer after a random delay up to MAX_RA_DELAY_TIME, by multicast,
            // no sooner than MIN_DELAY_BETWEEN_RAS after the last multicast advertisement.
            if pendingReply == nil {
                let at = MonotonicClock.seconds() + Double.random(in: 0...Self.maximumDelay)
                pendingReply = max(at, lastMulticast + Self.minimumDelay)
            }
        }
    }

    /// RFC 4861 §6.1.1: hop limit 255, code 0, at least 8 bytes, options well formed with no zero
    /// length, and no source link-layer address option when the source is unspecified.
    public static func isValidSolicitation(_ bytes: UnsafeRawBufferPointer, from source: IPv6Address, hopLimit: Int32) -> Bool {
        guard hopLimit == 255, let m = try? ICMPv6Message(bytes), m.code == 0, let rs = try? RouterSolicitation(m) else { return false }
        if source.rawValue == 0, rs.options.first(.sourceLinkLayerAddress) != nil { return false }
        return true
    }

    func send(_ ra: RouterAdvertisementRepr, to destination: IPv6Address) {
        let message: [UInt8]
        do {
            let repr = ICMPv6Repr.routerAdvertisement(ra)
            var out = [UInt8](repeating: 0, count: repr.length)
            // The kernel computes the checksum on raw ICMPv6 sockets; the addresses here are placeholders.
            _ = try out.withUnsafeMutableBytes { b throws(PacketError) in try repr.emit(into: b, source: destination, destination: destination) }
            message = out
        } catch {
            lock.withLock { stats.sendErrors += 1 }
            return
        }
        var dst = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: destination.rawValue.bigEndian) { for i in 0..<16 { dst[i] = $0[i] } }
        switch socket.send(message, to: dst) {
        case .failure(let e):
            lock.withLock { stats.sendErrors += 1 }
            log?("router advertisement on \(configuration.interface): \(String(cString: strerror(e.errno)))")
        case .success:
            lock.withLock { stats.advertisementsSent += 1 }
        }
    }
}
