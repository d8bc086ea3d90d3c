// gatewayd's configuration: every setting with its default, read from a TOML file (see
// docs/gatewayd.toml.example), validated before anything touches the kernel.
import PacketKit
import RouteKit
import SixgateConfig
import SixgateMetrics
import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

/// How client IPv6 space is handed out.
public enum ClientAllocation: String, Sendable, Equatable {
    /// One address per client from the uplink's prefix (a /64 shared with the ISP's link): the
    /// gateway answers the ISP router's neighbour solicitations for them (NDP proxy).
    case hosts
    /// One prefix per client (a /64 out of a routed /48 or /56) for clients that are routers.
    case prefixes
}

/// Where the client prefix comes from.
public enum PrefixSource: String, Sendable, Equatable {
    /// `ipv6.prefix` in the config file; changed by editing it (clients keep their positions at
    /// the next start).
    case `static`
    /// Set while running with `gatewayctl prefix set` (renumbered live) and remembered in the
    /// state directory (`prefix`); `ipv6.prefix` is only the first one.
    case external
    /// A DHCPv6-PD delegation (RFC 8415) obtained by dhcpcd, whose hook (dist/dhcpcd-hook-sixgate)
    /// hands it on with `gatewayctl prefix set` and its lifetimes: `external`, named for what it is.
    case dhcpv6PD = "dhcpv6-pd"
    /// The /64 the uplink configured by SLAAC from the ISP's router advertisements (a VPS's
    /// prefix), followed as it changes; `ipv6.prefix` stands in until one is seen.
    case ra

    /// Set from outside with `gatewayctl prefix set`.
    public var isSetFromOutside: Bool { self == .external || self == .dhcpv6PD }
}

/// How the ISP router finds client addresses on the uplink.
public enum NDPProxyMode: String, Sendable, Equatable {
    /// A kernel proxy entry per client address (`ip -6 neigh add proxy`), proxy_ndp=1 on the uplink.
    case kernel
    /// gatewayd answers the solicitations itself (NDPProxy's responder, a packet socket on the
    /// uplink) for its clients' addresses: no kernel entries, so no per-entry cost at large pools.
    case responder
    /// No proxying: the ISP routes the prefix to the gateway.
    case off
}

/// Everything gatewayd needs. The defaults follow the howtos (see shared/DESIGN.md).
public struct GatewayConfiguration: Sendable, Equatable {
    /// Where the private key, the lease store, the client files and the sockets live.
    public var stateDirectory = "/var/lib/sixgate"
    /// The TUN interface (and the UAPI socket's name).
    public var interface = "sixgate0"
    public var listenPort: UInt16 = 51820
    /// Reader thread pairs of the tunnel (a multi-queue TUN device and that many UDP sockets on the
    /// port): more than 1 spreads many clients over several cores.
    public var tunnelQueues = 1
    /// Queue management of the tunnel (CoDel, RFC 8289; FQ-CoDel toward clients): the standing
    /// delay tolerated and the interval it may last, in milliseconds; target 0 turns it off.
    public var tunnelQueueTarget = 5
    public var tunnelQueueInterval = 100
    /// The CoDel setting `tunnelQueueTarget` and `tunnelQueueInterval` make (nil: off).
    public var tunnelQueueManagement: CoDel? {
        tunnelQueueTarget == 0 ? nil : CoDel(target: Int64(tunnelQueueTarget) * 1_000_000, interval: Int64(tunnelQueueInterval) * 1_000_000)
    }
    public var mtu: UInt32 = 1420
    /// What clients are told to connect to ("host:port"); required to print client configs.
    public var endpoint: String?
    /// Seconds between keepalives the client config asks for (0: none).
    public var clientKeepalive: UInt16 = 25
    /// Seconds between checks that gatewayd's routes, proxy entries and uplink settings are still
    /// in the kernel (what went missing is put back and logged); 0: no checks.
    public var watchInterval: UInt32 = 2
    /// `metrics_listen`: where to serve /metrics over HTTP (`127.0.0.1:9469`, `[::1]:9469`); none by
    /// default. The textfile (metrics.prom) is written either way.
    public var metricsListen: MetricsListenAddress?

    public var uplink = "eth0"

    public var ipv6Prefix = IPv6Prefix.parseOrTrap("2001:db8::/64")
    /// Where the prefix comes from: the config file (`static`), or set at run time by
    /// `gatewayctl prefix set` (`external`: a DHCPv6-PD client's hook, a script watching router
    /// advertisements), remembered in the state directory across restarts.
    public var prefixSource = PrefixSource.static
    public var ispRouter: IPv6Address? = nil
    public var uplinkAddress: IPv6Address? = nil
    public var gatewayAddress: IPv6Address? = nil
    public var allocation = ClientAllocation.hosts
    /// For `.prefixes`: the delegated length.
    public var delegatedLength: UInt8 = 64
    /// The prefix length a client is told for its address (0: "route everything here", as cjdns's ip6Prefix).
    public var clientPrefixLength: UInt8 = 0
    public var ndpProxy = NDPProxyMode.kernel
    /// Extra IPv6 addresses or prefixes never handed out.
    public var reservedIPv6: [IPv6Prefix] = []
    /// A provider that gives only single addresses (issue 24): exactly these are handed out, one
    /// per client, inside `ipv6Prefix` (the uplink's link prefix); the first is the gateway's own
    /// unless `gatewayAddress` names another. Empty: the whole prefix is the pool.
    public var ipv6Addresses: [IPv6Address] = []
    /// NPTv6 (RFC 6296): clients' addresses come from this stable prefix (a ULA, say) and are
    /// translated to `ipv6Prefix` at the uplink, statelessly and checksum-neutrally, so the ISP can
    /// renumber without any client noticing (stock WireGuard clients keep their config). Same
    /// length as `ipv6Prefix`, at most a /64. nil: clients have addresses of `ipv6Prefix` itself.
    public var nptPrefix: IPv6Prefix?

    /// The prefix clients' addresses come from: the NPTv6 inside prefix, or the client prefix.
    public var poolPrefix: IPv6Prefix { nptPrefix ?? ipv6Prefix }
    /// The mapping in force with NPTv6.
    public var nptMapping: NPTv6Mapping? { nptPrefix.flatMap { NPTv6Mapping(inside: $0, outside: ipv6Prefix) } }

    /// nil: no IPv4 service.
    public var ipv4Pool: IPv4Prefix? = IPv4Prefix.parseOrTrap("100.64.0.0/24")
    public var ipv4Gateway: IPv4Address? = nil
    public var nat44 = true

    /// NAT64 for the clients (the `[nat64]` table); nil: off.
    public var nat64: NAT64Settings? = nil

    /// DNS servers told to Sixgate clients in the lease (and printed in wg-quick configs).
    public var dnsServers: [IPAddress] = []
    /// Seconds a lease answer is good for; clients ask again after half of it.
    public var leaseLifetime: UInt32 = 3600

    /// The firewall toward clients (`firewall = "on"`, the default): replies, ICMP errors (RFC 4890)
    /// and echo requests pass, new inbound connections only to what a client opened (`open` in its
    /// record); "off" for operators who filter elsewhere.
    public var firewall = true
    /// New connections between clients are dropped, except between clients whose record says
    /// `isolate = false`.
    public var isolateClients = true
    /// Echo requests from outside reach clients (RFC 4890 §4.3.1 suggests letting them through).
    public var inboundEcho = true
    /// What clients may open on the gateway host itself through the tunnel, beyond replies, ICMP
    /// errors and echo (RFC 4890 §4.4): nothing by default; DNS (udp/53, tcp/53) is added when `dns`
    /// names one of the gateway's own tunnel addresses.
    public var gatewayOpen: [PortOpening] = []

    /// A warning when the tunnel's MTU plus WireGuard's overhead (IPv4 carrier 60 bytes, IPv6 80:
    /// IP + UDP + the 32-byte WireGuard header and tag) does not fit the uplink's MTU, with the
    /// number that would; nil when it fits. The carrier's family comes from `endpoint`, else both.
    public func mtuWarning(uplinkMTU: UInt32) -> String? {
        let ipv6Carrier = endpoint.map { $0.hasPrefix("[") } 
        let overhead: UInt32 = ipv6Carrier == false ? 60 : 80
        guard mtu + overhead > uplinkMTU else { return nil }
        let fits = uplinkMTU > overhead ? uplinkMTU - overhead : 0
        return "mtu = \(mtu) does not fit \(uplink)'s MTU \(uplinkMTU): each tunnel packet needs \(mtu + overhead) bytes on the wire (\(overhead) of IP\(ipv6Carrier == nil ? "v6 (60 with an IPv4 carrier)" : ipv6Carrier! ? "v6" : "v4"), UDP and WireGuard); "
            + (fits >= 1280 ? "set mtu = \(fits)" : "the uplink is too small for IPv6's 1280 inside the tunnel: raise its MTU to \(1280 + overhead)")
    }

    /// `gatewayOpen`, with DNS when the gateway tells clients to ask itself.
    public var effectiveGatewayOpen: [PortOpening] {
        let own: [IPAddress] = [.v6(effectiveGatewayAddress)] + (effectiveIPv4Gateway.map { [.v4($0)] } ?? [])
        guard dnsServers.contains(where: { own.contains($0) }) else { return gatewayOpen }
        return gatewayOpen + [PortOpening(.udp, ports: 53...53), PortOpening(.tcp, ports: 53...53)]
    }

    /// `[group] database`: a libpq connection string ("host=/run/postgresql dbname=sixgate"); when
    /// set, leases and clients live in that PostgreSQL database, shared by the gateways of a group
    /// (issue 25), instead of leases.db and clients/.
    public var groupDatabase: String? = nil
    /// `[group] name`: this gateway's name in its group (status says which gateway holds which
    /// client); the host name by default.
    public var groupName: String = GatewayConfiguration.hostName
    /// `[group] announce_table`: the kernel routing table gatewayd keeps what this gateway should
    /// draw to itself in, for BIRD to learn and announce by BGP (`gatewayctl bird-config`): the
    /// anycast endpoint addresses while gatewayd runs, and each client's addresses while its session
    /// is on this gateway. Routes there point into the tunnel device, so they vanish with gatewayd.
    public var announceTable: UInt32? = nil
    /// `[group] anycast`: the endpoint addresses the gateways of the group share (each on a local
    /// interface such as lo), announced while gatewayd runs.
    public var anycast: [IPAddress] = []
    /// `[group] bird_socket`: BIRD's control socket, where the doctor asks for the BGP sessions.
    public var birdSocket = "/run/bird/bird.ctl"

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "gateway" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "gateway" : name
    }

    /// Hook scripts (absolute paths), run with the facts in environment variables.
    public var hooks: [String: String] = [:]
    public static let hookNames: Set<String> = ["up", "down", "client-connect", "client-disconnect", "prefix-change"]

    public init() {}

    // Files in the state directory.
    public var privateKeyPath: String { stateDirectory + "/private.key" }
    public var leaseStorePath: String { stateDirectory + "/leases.db" }
    /// With `prefix_source = "external"`: the prefix last set, one line.
    public var prefixStatePath: String { stateDirectory + "/prefix" }

    public var clientsDirectory: String { stateDirectory + "/clients" }
    public var controlSocketPath: String { stateDirectory + "/control.sock" }
    public var metricsPath: String { stateDirectory + "/metrics.prom" }
    /// gatewayd's nftables tables (`table ip NAME` for NAT44, `table inet NAME` for the firewall), one
    /// per tunnel interface.
    public var natTableName: String { "sixgate_" + interface.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() }

    /// The howto layout inside `ipv6Prefix`: ::1 the ISP router, ::2 the uplink, ::3 the gateway,
    /// unless set.
    public var effectiveISPRouter: IPv6Address { ispRouter ?? IPv6Address(rawValue: ipv6Prefix.network.rawValue | 1) }
    public var effectiveUplinkAddress: IPv6Address { uplinkAddress ?? IPv6Address(rawValue: ipv6Prefix.network.rawValue | 2) }
    public var effectiveGatewayAddress: IPv6Address { gatewayAddress ?? ipv6Addresses.first ?? IPv6Address(rawValue: poolPrefix.network.rawValue | 3) }
    public var effectiveIPv4Gateway: IPv4Address? {
        guard let pool = ipv4Pool else { return nil }
        return ipv4Gateway ?? IPv4Address(rawValue: pool.network.rawValue | 1)
    }

    static let knownKeys: Set<String> = [
        "state_directory", "interface", "listen_port", "tunnel_queues", "tunnel_queue_target", "tunnel_queue_interval", "mtu", "endpoint", "client_keepalive", "watch_interval", "dns", "lease_lifetime",
        "metrics_listen", "firewall", "isolate_clients", "inbound_echo", "gateway_open",
        "uplink.interface",
        "ipv6.prefix", "ipv6.prefix_source", "ipv6.isp_router", "ipv6.uplink_address", "ipv6.gateway_address", "ipv6.allocation",
        "ipv6.delegated_length", "ipv6.client_prefix_length", "ipv6.ndp_proxy", "ipv6.reserved", "ipv6.addresses", "ipv6.npt_prefix",
        "ipv4.enabled", "ipv4.pool", "ipv4.gateway_address", "ipv4.nat44",
        "nat64.enabled", "nat64.prefix", "nat64.pool", "nat64.interface", "nat64.clat", "nat64.icmp_errors_per_second", "nat64.amend_zero_udp_checksum", "nat64.lowest_ipv6_mtu",
        "hooks.up", "hooks.down", "hooks.client-connect", "hooks.client-disconnect", "hooks.prefix-change",
        "group.database", "group.name", "group.announce_table", "group.anycast", "group.bird_socket",
    ]

    /// Reads `text` (the contents of `path`), starting from the defaults.
    public init(text: String, path: String) throws(ConfigError) {
        let f = try ConfigFile(text: text, path: path)
        try f.rejectUnknownKeys(Self.knownKeys)
        if let v = try f.string("state_directory") {
            guard v.hasPrefix("/") else { throw f.error("state_directory", "must be an absolute path") }
            stateDirectory = v
        }
        if let v = try f.string("interface") {
            guard (1...15).contains(v.utf8.count), v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) else {
                throw f.error("interface", "an interface name is 1-15 letters, digits, '-', '_' or '.'")
            }
            interface = v
        }
        if let v = try f.integer("listen_port", in: 1...65535) { listenPort = UInt16(v) }
        if let v = try f.integer("tunnel_queues", in: 1...16) { tunnelQueues = v }
        if let v = try f.integer("tunnel_queue_target", in: 0...1000) { tunnelQueueTarget = v }
        if let v = try f.integer("tunnel_queue_interval", in: 1...10_000) { tunnelQueueInterval = v }
        if tunnelQueueTarget > 0, tunnelQueueInterval <= tunnelQueueTarget {
            throw f.error(f.has("tunnel_queue_interval") ? "tunnel_queue_interval" : "tunnel_queue_target",
                          "the interval (\(tunnelQueueInterval) ms) must exceed the target (\(tunnelQueueTarget) ms); tunnel_queue_target = 0 turns queue management off")
        }
        if let v = try f.integer("mtu", in: 1280...65535) { mtu = UInt32(v) }
        if let v = try f.parsed("endpoint", "host:port such as 198.51.100.1:51820 or [2001:db8::1]:51820", { Endpoint($0) }) { endpoint = v.description }
        if let v = try f.integer("client_keepalive", in: 0...65535) { clientKeepalive = UInt16(v) }
        if let v = try f.integer("watch_interval", in: 0...3600) { watchInterval = UInt32(v) }
        if let v = try f.string("uplink.interface") { uplink = v }
        if let list = try f.strings("dns") {
            dnsServers = []
            for s in list {
                guard let a = IPAddress(s) else { throw f.error("dns", "\(s.debugDescription) is not an IP address") }
                dnsServers.append(a)
            }
        }
        if let v = try f.integer("lease_lifetime", in: 60...604800) { leaseLifetime = UInt32(v) }
        if let v = try f.string("metrics_listen") {
            do { metricsListen = try MetricsListenAddress(parsing: v) } catch { throw f.error("metrics_listen", error.reason) }
        }
        if let v = try f.string("firewall") {
            guard v == "on" || v == "off" else { throw f.error("firewall", "\(v.debugDescription) is not \"on\" or \"off\"") }
            firewall = v == "on"
        }
        if let v = try f.boolean("isolate_clients") { isolateClients = v }
        if let v = try f.boolean("inbound_echo") { inboundEcho = v }
        for s in try f.strings("gateway_open") ?? [] {
            do { gatewayOpen.append(try PortOpening(parsing: s)) } catch { throw f.error("gateway_open", error.description) }
        }
        if !firewall {
            for key in ["isolate_clients", "inbound_echo", "gateway_open"] where f.has(key) { throw f.error(key, "set, but firewall is \"off\"") }
        }

        if let v = try f.parsed("ipv6.prefix", "an IPv6 prefix such as 2001:db8:1::/64", { IPv6Prefix($0) }) { ipv6Prefix = v }
        if let v = try f.parsed("ipv6.prefix_source", "static, external, dhcpv6-pd or ra", { PrefixSource(rawValue: $0) }) { prefixSource = v }
        ispRouter = try f.parsed("ipv6.isp_router", "an IPv6 address", { IPv6Address($0) })
        uplinkAddress = try f.parsed("ipv6.uplink_address", "an IPv6 address", { IPv6Address($0) })
        gatewayAddress = try f.parsed("ipv6.gateway_address", "an IPv6 address", { IPv6Address($0) })
        if let v = try f.parsed("ipv6.allocation", "hosts or prefixes", { ClientAllocation(rawValue: $0) }) { allocation = v }
        if let v = try f.integer("ipv6.delegated_length", in: 1...128) { delegatedLength = UInt8(v) }
        if let v = try f.integer("ipv6.client_prefix_length", in: 0...128) { clientPrefixLength = UInt8(v) }
        if let v = try f.string("ipv6.ndp_proxy") {
            guard let m = NDPProxyMode(rawValue: v) else { throw f.error("ipv6.ndp_proxy", "\(v.debugDescription) is not kernel, responder or off") }
            ndpProxy = m
        }
        if let list = try f.strings("ipv6.reserved") {
            reservedIPv6 = []
            for s in list {
                guard let p = IPv6Prefix(s) else { throw f.error("ipv6.reserved", "\(s.debugDescription) is not an IPv6 address or prefix") }
                reservedIPv6.append(p)
            }
        }
        if let list = try f.strings("ipv6.addresses") {
            ipv6Addresses = []
            for s in list {
                guard let a = IPv6Address(s) else { throw f.error("ipv6.addresses", "\(s.debugDescription) is not an IPv6 address") }
                ipv6Addresses.append(a)
            }
        }
        nptPrefix = try f.parsed("ipv6.npt_prefix", "an IPv6 prefix such as fd00:6296::/64", { IPv6Prefix($0) })
        if let n = nptPrefix {
            guard n.length == ipv6Prefix.length, n.length <= 64 else {
                throw f.error("ipv6.npt_prefix", "/\(n.length): NPTv6 maps prefixes of the same length, at most /64 (ipv6.prefix is /\(ipv6Prefix.length))")
            }
            guard !n.contains(ipv6Prefix.network), !ipv6Prefix.contains(n.network) else { throw f.error("ipv6.npt_prefix", "\(n) overlaps ipv6.prefix \(ipv6Prefix)") }
            guard ipv6Addresses.isEmpty else { throw f.error("ipv6.npt_prefix", "set together with ipv6.addresses: a list of single addresses is not a prefix to translate") }
        }
        if try f.boolean("ipv4.enabled") == false { ipv4Pool = nil }
        if let v = try f.parsed("ipv4.pool", "an IPv4 prefix such as 100.64.0.0/24", { IPv4Prefix($0) }) {
            guard try f.boolean("ipv4.enabled") != false else { throw f.error("ipv4.pool", "set, but ipv4.enabled is false") }
            ipv4Pool = v
        }
        ipv4Gateway = try f.parsed("ipv4.gateway_address", "an IPv4 address", { IPv4Address($0) })
        if let v = try f.boolean("ipv4.nat44") { nat44 = v }
        if try f.boolean("nat64.enabled") == true {
            var n = NAT64Settings(interface: NAT64Settings.defaultInterface(for: interface))
            if let v = try f.parsed("nat64.prefix", "an IPv6 prefix of length 32, 40, 48, 56, 64 or 96 such as 64:ff9b::/96", { IPv6Prefix($0) }) {
                guard [32, 40, 48, 56, 64, 96].contains(v.length) else { throw f.error("nat64.prefix", "/\(v.length): RFC 6052 allows /32, /40, /48, /56, /64 or /96") }
                n.prefix = v
            }
            if let v = try f.parsed("nat64.pool", "an IPv4 prefix such as 100.64.1.0/24", { IPv4Prefix($0) }) {
                guard v.length <= 30 else { throw f.error("nat64.pool", "/\(v.length) is too small: one address per client and one for the translator") }
                n.pool = v
            }
            if let v = try f.string("nat64.interface") {
                guard (1...15).contains(v.utf8.count), v != interface else { throw f.error("nat64.interface", "an interface name of 1-15 characters, not the tunnel's") }
                n.interface = v
            }
            if let v = try f.boolean("nat64.clat") { n.clat = v }
            if let v = try f.integer("nat64.icmp_errors_per_second", in: 0...1_000_000) { n.errorsPerSecond = v }
            if let v = try f.boolean("nat64.amend_zero_udp_checksum") { n.amendZeroUDPChecksum = v }
            if let v = try f.integer("nat64.lowest_ipv6_mtu", in: 1280...65535) {
                guard v <= Int(mtu) else { throw f.error("nat64.lowest_ipv6_mtu", "\(v) is more than the tunnel's mtu (\(mtu)), the IPv6 path's own") }
                n.lowestIPv6MTU = v
            }
            nat64 = n
        } else {
            for key in ["nat64.prefix", "nat64.pool", "nat64.interface", "nat64.clat", "nat64.icmp_errors_per_second", "nat64.amend_zero_udp_checksum", "nat64.lowest_ipv6_mtu"] where f.has(key) {
                throw f.error(key, "set, but nat64.enabled is not true")
            }
        }
        if let v = try f.string("group.database") {
            guard !v.trimmingCharacters(in: .whitespaces).isEmpty else { throw f.error("group.database", "empty: a libpq connection string such as \"host=/run/postgresql dbname=sixgate\"") }
            groupDatabase = v
        }
        if let v = try f.string("group.name") {
            guard (1...64).contains(v.utf8.count), v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) else {
                throw f.error("group.name", "a gateway's name is 1-64 letters, digits, '-', '_' or '.'")
            }
            groupName = v
        }
        if let v = try f.integer("group.announce_table", in: 1...4_294_967_295) {
            guard ![253, 254, 255].contains(v) else { throw f.error("group.announce_table", "\(v) is the kernel's default, main or local table: choose a table of its own (such as 7474) for BIRD to learn from") }
            announceTable = UInt32(v)
        }
        for text in try f.strings("group.anycast") ?? [] {
            guard let a = IPAddress(text) else { throw f.error("group.anycast", "\(text.debugDescription) is not an IP address") }
            anycast.append(a)
        }
        if let v = try f.string("group.bird_socket") {
            guard v.hasPrefix("/") else { throw f.error("group.bird_socket", "must be an absolute path (BIRD's -s)") }
            birdSocket = v
        }
        if !anycast.isEmpty, announceTable == nil { throw f.error("group.anycast", "set, but group.announce_table is not: the anycast addresses are announced from that table") }
        if groupDatabase == nil {
            for key in ["group.name", "group.announce_table", "group.anycast", "group.bird_socket"] where f.has(key) { throw f.error(key, "set, but group.database is not") }
        }
        for name in Self.hookNames {
            if let v = try f.string("hooks." + name) {
                guard v.hasPrefix("/") else { throw f.error("hooks." + name, "must be an absolute path") }
                hooks[name] = v
            }
        }
        try validate(f)
    }

    func validate(_ f: ConfigFile) throws(ConfigError) {
        switch allocation {
        case .hosts:
            guard ipv6Prefix.length <= 124 || !ipv6Addresses.isEmpty else {
                throw f.error("ipv6.prefix", "a /\(ipv6Prefix.length) leaves no room for clients; for a few single addresses, list them in ipv6.addresses")
            }
            if let outside = ipv6Addresses.first(where: { !ipv6Prefix.contains($0) }) { throw f.error("ipv6.addresses", "\(outside) is outside ipv6.prefix \(ipv6Prefix)") }
            // A small block (longer than a /64) sits beside the ISP's link, and a routed prefix
            // (ndp_proxy = "off": the upstream routes it to the gateway, by BGP in a group) is not
            // on it at all: its router and the uplink's address may be outside it (given explicitly).
            for (key, a, given) in [("ipv6.isp_router", effectiveISPRouter, ispRouter != nil), ("ipv6.uplink_address", effectiveUplinkAddress, uplinkAddress != nil)] {
                guard ipv6Prefix.contains(a) || (given && (ipv6Prefix.length > 64 || ndpProxy == .off)) else {
                    throw f.error(key, "\(a) is outside ipv6.prefix \(ipv6Prefix)")
                }
            }
            guard poolPrefix.contains(effectiveGatewayAddress) else {
                throw f.error("ipv6.gateway_address", "\(effectiveGatewayAddress) is outside \(nptPrefix == nil ? "ipv6.prefix" : "ipv6.npt_prefix") \(poolPrefix)")
            }
            if !ipv6Addresses.isEmpty {
                guard prefixSource == .static else { throw f.error("ipv6.addresses", "a fixed list of addresses does not follow a prefix_source of \"\(prefixSource.rawValue)\"") }
                for (key, a) in [("ipv6.isp_router", effectiveISPRouter), ("ipv6.uplink_address", effectiveUplinkAddress)] where ipv6Addresses.contains(a) {
                    throw f.error("ipv6.addresses", "\(a) is the \(key == "ipv6.isp_router" ? "ISP router's" : "uplink's") address")
                }
                guard ipv6Addresses.filter({ $0 != effectiveGatewayAddress }).count >= 1 else {
                    throw f.error("ipv6.addresses", "no address left for clients beside the gateway's own \(effectiveGatewayAddress)")
                }
            }
        case .prefixes:
            guard ipv6Addresses.isEmpty else { throw f.error("ipv6.addresses", "needs allocation = \"hosts\" (one address per client)") }
            guard nptPrefix == nil else { throw f.error("ipv6.npt_prefix", "needs allocation = \"hosts\": the translation is kept per client address") }
            guard delegatedLength > ipv6Prefix.length else { throw f.error("ipv6.delegated_length", "/\(delegatedLength) must be longer than ipv6.prefix /\(ipv6Prefix.length)") }
        }
        if let pool = ipv4Pool, let gw = effectiveIPv4Gateway, !pool.contains(gw) {
            throw f.error("ipv4.gateway_address", "\(gw) is outside ipv4.pool \(pool)")
        }
        if let n = nat64 {
            guard allocation == .hosts else {
                throw f.error("nat64.enabled", "needs ipv6.allocation = hosts (one address per client to map; clients with prefixes run their own NAT64)")
            }
            if let pool = ipv4Pool, pool.contains(n.pool.network) || n.pool.contains(pool.network) {
                throw f.error("nat64.pool", "\(n.pool) overlaps ipv4.pool \(pool)")
            }
            if n.prefix.contains(ipv6Prefix.network) || ipv6Prefix.contains(n.prefix.network) {
                throw f.error("nat64.prefix", "\(n.prefix) overlaps ipv6.prefix \(ipv6Prefix)")
            }
        }
    }
}

/// The gateway's NAT64 (a PLAT, RFC 6877): the prefix is routed into a translator, and each
/// client's IPv6 address is mapped to an IPv4 address of its own from `pool` (a lease in pool
/// "nat64", an RFC 7757 explicit mapping), which NAT44 takes out of the uplink: stateless NAT64 in
/// front of the kernel's stateful NAT44, as the tayga howtos build it. Clients are told the prefix
/// in the lease exchange.
public struct NAT64Settings: Sendable, Equatable {
    /// The NAT64 prefix (RFC 6052). The Well-Known Prefix maps only global IPv4 addresses.
    public var prefix = IPv6Prefix.parseOrTrap("64:ff9b::/96")
    /// One IPv4 address per client; the first one is the translator's own (the source of its ICMP errors).
    public var pool = IPv4Prefix.parseOrTrap("100.64.1.0/24")
    /// The translator's TUN interface.
    public var interface: String
    /// 464XLAT (RFC 6877) for clients that run a CLAT (tunnel-client's `[clat]`): each client
    /// also gets a second host address for its CLAT, told in the lease, mapped to a second
    /// address of `pool`. Off by default: it takes two pool addresses per client.
    public var clat = false
    /// The translator's own ICMP errors (for what it drops), at most this many a second; 0: none
    /// (RFC 7915 §4.4/§5.4: sent, rate-limited or not sent, the operator's choice).
    public var errorsPerSecond = 100
    /// IPv4 UDP without a checksum: computed (true) or dropped with an error (RFC 7915 §4.5).
    public var amendZeroUDPChecksum = true
    /// RFC 7915 §4.1 "lowest-ipv6-mtu": DF=0 IPv4 packets that translate to more are sent as IPv6
    /// fragments. nil: the tunnel's MTU, which is the whole IPv6 path to a client.
    public var lowestIPv6MTU: Int?

    /// The defaults: the Well-Known Prefix 64:ff9b::/96 and pool 100.64.1.0/24.
    public init(interface: String) { self.interface = interface }
    public init(prefix: IPv6Prefix, pool: IPv4Prefix, interface: String) { self.prefix = prefix; self.pool = pool; self.interface = interface }

    /// The translator's own IPv4 address: the pool's first.
    public var translatorAddress: IPv4Address { IPv4Address(rawValue: pool.network.rawValue | 1) }

    /// "<tunnel>-nat64", shortened to fit 15 characters.
    public static func defaultInterface(for tunnel: String) -> String { String(tunnel.prefix(9)) + "-nat64" }
}

extension IPv6Prefix {
    static func parseOrTrap(_ s: String) -> IPv6Prefix { IPv6Prefix(s)! }
}
extension IPv4Prefix {
    static func parseOrTrap(_ s: String) -> IPv4Prefix { IPv4Prefix(s)! }
}
