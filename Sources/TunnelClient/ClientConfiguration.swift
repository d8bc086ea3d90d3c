// tunnel-client's configuration: a TOML file (docs/tunnel-client.toml.example), or a wg-quick
// file for a static setup against any WireGuard server. Errors name file:line:key.
import Foundation
import PacketKit
import RouteKit
import SixgateConfig
import TunnelCore

/// What the client routes through the tunnel, per address family.
public enum RouteSelection: Sendable, Equatable {
    /// Nothing (the family's traffic stays off the tunnel).
    case none
    /// The default route: everything but the gateway's own endpoint (kept on the physical path).
    case all
    /// Only these prefixes.
    case prefixes([IPPrefix])
}

/// How the client learns its addresses.
public enum AddressSource: Sendable, Equatable {
    /// Ask the gateway inside the tunnel (Sixgate's lease exchange).
    case lease
    /// Fixed addresses (from a wg-quick `Address =` line, or the TOML `[static]` table).
    case fixed(addresses: [AddressAssignment], dns: [IPAddress])
}

/// Router mode: hand the delegated prefix to a LAN and advertise it there.
public struct RouterSettings: Sendable, Equatable {
    public var interface: String
    /// RDNSS servers; empty: the ones the lease names.
    public var dnsServers: [IPv6Address] = []
    /// MaxRtrAdvInterval in seconds.
    public var interval: Double = 600
    /// A simple CPE's default filter (RFC 6092) toward the LAN: replies, ICMPv6 errors (RFC 4890) and
    /// echo requests pass, new inbound connections only to `open`; false: no filter of ours.
    public var firewall = true
    /// New inbound connections let through to every host of the LAN prefix ("tcp/22", "all").
    public var open: [PortOpening] = []
    /// Echo requests from outside reach the LAN.
    public var inboundEcho = true
    public init(interface: String) { self.interface = interface }
}

/// A CLAT (RFC 6877 464XLAT): programs that use IPv4 literals or IPv4-only APIs reach IPv4 hosts
/// through the gateway's NAT64 although the tunnel carries IPv6 only. A translator on a TUN of its
/// own maps `ipv4` to the CLAT's IPv6 address and every other IPv4 address into the NAT64 prefix.
public struct CLATSettings: Sendable, Equatable {
    /// The translator's TUN interface.
    public var interface: String
    /// The host's IPv4 address on the CLAT's interface (RFC 7335's 192.0.0.0/29, as Android's clatd).
    public var ipv4 = IPv4Address(rawValue: 0xc000_0002)   // 192.0.0.2
    /// The source of the translator's own ICMPv4 errors: 192.0.0.1, the CLAT's side of 192.0.0.0/29.
    public static let translatorIPv4 = IPv4Address(rawValue: 0xc000_0001)
    /// The CLAT's IPv6 address; nil: the one in the gateway's lease (`[nat64] clat = true` there).
    public var ipv6: IPv6Address?
    /// The NAT64 prefix; nil: the one in the gateway's lease.
    public var prefix: IPv6Prefix?
    public init(interface: String) { self.interface = interface }

    /// "<tunnel>-clat", shortened to fit 15 characters.
    public static func defaultInterface(for tunnel: String) -> String { String(tunnel.prefix(10)) + "-clat" }
}

public struct ClientConfiguration: Sendable, Equatable {
    public var path = ""
    public var interface = "sixgate0"
    public var privateKey: Bytes32 = .zero
    public var listenPort: UInt16 = 0
    /// nil: the MTU from the lease, else 1420.
    public var mtu: UInt32?

    /// The gateway (the one WireGuard peer).
    public var gatewayPublicKey: Bytes32 = .zero
    public var presharedKey: Bytes32 = .zero
    /// "host:port"; a host name is resolved at start and again when handshakes stop succeeding.
    public var endpoint = ""
    /// The group's other gateways (`endpoint = ["a:51820", "b:51820"]`: the first is `endpoint`):
    /// when the gateway stops answering (traffic sent, nothing back for 2 s, and no answer to a
    /// handshake for 1.5 s more) tunnel-client moves to the next one, round the list.
    public var fallbackEndpoints: [String] = []
    /// Every endpoint, in order.
    public var endpoints: [String] { [endpoint] + fallbackEndpoints }
    public var keepalive: UInt16 = 25
    /// Allowed IPs for the gateway peer (what may come from it and go to it).
    public var allowedIPs: [IPPrefix] = [.v6(IPv6Prefix(containing: IPv6Address(rawValue: 0), length: 0)),
                                          .v4(IPv4Prefix(containing: IPv4Address(rawValue: 0), length: 0))]

    public var addresses = AddressSource.lease
    public var ipv6Routes = RouteSelection.all
    public var ipv4Routes = RouteSelection.all
    /// Take the default route even when another interface holds one (the other route stays, and
    /// is shadowed by two half-space routes through the tunnel; it is there again on exit).
    public var replaceDefaultRoute = false
    /// With `routes = "default"`: the lease's routes other than the default are taken only inside
    /// these prefixes (nil: any that passes the safety checks, docs/security.md).
    public var acceptRoutes: [IPPrefix]?
    public var router: RouterSettings?
    /// The CLAT (`[clat]`); nil: off.
    public var clat: CLATSettings?
    /// Hook scripts (absolute paths) run with SIXGATE_* variables: up, down, lease-changed.
    public var hooks: [String: String] = [:]
    /// wg-quick PostUp/PostDown/PreUp/PreDown commands (run with /bin/sh -c, %i replaced).
    public var shellHooks: [String: [String]] = [:]
    public static let hookNames: Set<String> = ["up", "down", "lease-changed"]
    /// Said at start (and by --check-config): a private key in a file other users can read.
    public var warnings: [String] = []
    /// The file the private key came from (the config itself, or private_key_file).
    var keySource: String?

    public init() {}

    /// Every key the reader accepts (docs/tunnel-client.toml.example lists each: a test checks).
    public static let knownKeys: Set<String> = [
        "interface", "private_key", "private_key_file", "listen_port", "mtu",
        "gateway.public_key", "gateway.endpoint", "gateway.preshared_key", "gateway.keepalive", "gateway.allowed_ips",
        "routes.ipv6", "routes.ipv4", "routes.replace_default_route", "routes.accept_routes",
        "static.addresses", "static.dns",
        "router.interface", "router.dns", "router.interval", "router.firewall", "router.open", "router.inbound_echo",
        "clat.enabled", "clat.interface", "clat.ipv4", "clat.ipv6", "clat.prefix",
        "hooks.up", "hooks.down", "hooks.lease-changed",
    ]

    /// Reads a file: wg-quick format if it has an `[Interface]` section, else TOML.
    public static func load(_ path: String) throws(ConfigError) -> ClientConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, key: nil, message: "cannot read the file")
        }
        let text = String(decoding: data, as: UTF8.self)
        var c = try parse(text, path: path)
        if let source = c.keySource ?? (c.privateKey != .zero ? path : nil) { c.warnings += looseModeWarning(source) }
        return c
    }

    /// A warning when `path` (which holds a private key) is readable or writable by group or others,
    /// as wg-quick warns.
    static func looseModeWarning(_ path: String) -> [String] {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & 0o077 != 0 else { return [] }
        return ["\(path) holds a private key and is accessible to other users (mode \(String(st.st_mode & 0o777, radix: 8))): chmod 600 \(path)"]
    }

    public static func parse(_ text: String, path: String) throws(ConfigError) -> ClientConfiguration {
        if text.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == "[interface]" }) {
            return try WGQuickFile.parse(text, path: path)
        }
        return try ClientConfiguration(toml: text, path: path)
    }

    public init(toml text: String, path: String) throws(ConfigError) {
        self.path = path
        let f = try ConfigFile(text: text, path: path)
        try f.rejectUnknownKeys(Self.knownKeys)
        if let v = try f.string("interface") {
            guard Self.isInterfaceName(v) else { throw f.error("interface", "an interface name is 1-15 letters, digits, '-', '_' or '.'") }
            interface = v
        }
        let keyText = try f.string("private_key")
        let keyFile = try f.string("private_key_file")
        switch (keyText, keyFile) {
        case (let k?, nil):
            guard let key = Bytes32(base64: k) else { throw f.error("private_key", "not a WireGuard private key (44 characters of base64)") }
            privateKey = key
        case (nil, let file?):
            guard let data = FileManager.default.contents(atPath: file) else { throw f.error("private_key_file", "cannot read \(file)") }
            guard let key = Bytes32(base64: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw f.error("private_key_file", "\(file) does not hold a WireGuard private key")
            }
            privateKey = key
            keySource = file
        case (.some, .some): throw f.error("private_key_file", "give private_key or private_key_file, not both")
        case (nil, nil): throw ConfigError(file: path, line: 1, key: "private_key", message: "missing (or private_key_file)")
        }
        if let v = try f.integer("listen_port", in: 0...65535) { listenPort = UInt16(v) }
        if let v = try f.integer("mtu", in: 1280...65535) { mtu = UInt32(v) }

        guard let gk = try f.string("gateway.public_key") else {
            throw ConfigError(file: path, line: f.tables["gateway"] ?? 1, key: "gateway.public_key", message: "missing")
        }
        guard let gkey = Bytes32(base64: gk) else { throw f.error("gateway.public_key", "not a WireGuard public key") }
        gatewayPublicKey = gkey
        guard let list = try f.strings("gateway.endpoint"), let e = list.first else {
            throw ConfigError(file: path, line: f.tables["gateway"] ?? 1, key: "gateway.endpoint", message: "missing (host:port, or a list of them for a group of gateways)")
        }
        for text in list {
            guard EndpointName(text) != nil else { throw f.error("gateway.endpoint", "\(text.debugDescription) is not host:port (use [addr]:port for IPv6)") }
        }
        guard Set(list).count == list.count else { throw f.error("gateway.endpoint", "lists an endpoint twice") }
        endpoint = e
        fallbackEndpoints = Array(list.dropFirst())
        if let v = try f.string("gateway.preshared_key") {
            guard let k = Bytes32(base64: v) else { throw f.error("gateway.preshared_key", "not a WireGuard key") }
            presharedKey = k
        }
        if let v = try f.integer("gateway.keepalive", in: 0...65535) { keepalive = UInt16(v) }
        if let list = try f.strings("gateway.allowed_ips") {
            allowedIPs = []
            for s in list {
                guard let p = IPPrefix(s) else { throw f.error("gateway.allowed_ips", "\(s.debugDescription) is not a prefix") }
                allowedIPs.append(p)
            }
        }
        ipv6Routes = try Self.routes(f, "routes.ipv6", v6: true) ?? .all
        ipv4Routes = try Self.routes(f, "routes.ipv4", v6: false) ?? .all
        if let v = try f.boolean("routes.replace_default_route") { replaceDefaultRoute = v }
        if let list = try f.strings("routes.accept_routes") {
            acceptRoutes = []
            for s in list {
                guard let p = IPPrefix(s) else { throw f.error("routes.accept_routes", "\(s.debugDescription) is not a prefix such as 2001:db8::/32 or 198.51.100.0/24") }
                acceptRoutes!.append(p)
            }
        }

        if let list = try f.strings("static.addresses") {
            var assigned: [AddressAssignment] = []
            for s in list {
                guard let a = Self.assignment(s) else { throw f.error("static.addresses", "\(s.debugDescription) is not address/length") }
                assigned.append(a)
            }
            var dns: [IPAddress] = []
            for s in try f.strings("static.dns") ?? [] {
                guard let a = IPAddress(s) else { throw f.error("static.dns", "\(s.debugDescription) is not an IP address") }
                dns.append(a)
            }
            addresses = .fixed(addresses: assigned, dns: dns)
        } else if f.values["static.dns"] != nil {
            throw f.error("static.dns", "set without static.addresses")
        }

        if let lan = try f.string("router.interface") {
            guard Self.isInterfaceName(lan) else { throw f.error("router.interface", "not an interface name") }
            var r = RouterSettings(interface: lan)
            for s in try f.strings("router.dns") ?? [] {
                guard let a = IPv6Address(s) else { throw f.error("router.dns", "\(s.debugDescription) is not an IPv6 address (RDNSS carries IPv6 only)") }
                r.dnsServers.append(a)
            }
            if let v = try f.integer("router.interval", in: 4...1800) { r.interval = Double(v) }
            if let v = try f.string("router.firewall") {
                guard v == "on" || v == "off" else { throw f.error("router.firewall", "\(v.debugDescription) is not \"on\" or \"off\"") }
                r.firewall = v == "on"
            }
            for s in try f.strings("router.open") ?? [] {
                do { r.open.append(try PortOpening(parsing: s)) } catch { throw f.error("router.open", error.description) }
            }
            if let v = try f.boolean("router.inbound_echo") { r.inboundEcho = v }
            if !r.firewall {
                for k in ["router.open", "router.inbound_echo"] where f.values[k] != nil { throw f.error(k, "set, but router.firewall is \"off\"") }
            }
            router = r
        } else {
            for k in ["router.dns", "router.interval", "router.firewall", "router.open", "router.inbound_echo"] where f.values[k] != nil {
                throw f.error(k, "set without router.interface")
            }
        }
        if try f.boolean("clat.enabled") == true {
            var c = CLATSettings(interface: CLATSettings.defaultInterface(for: interface))
            if let v = try f.string("clat.interface") {
                guard Self.isInterfaceName(v), v != interface, v != router?.interface else {
                    throw f.error("clat.interface", "an interface name of 1-15 letters, digits, '-', '_' or '.', not the tunnel's or the LAN's")
                }
                c.interface = v
            }
            if let v = try f.parsed("clat.ipv4", "an IPv4 address such as 192.0.0.2", { IPv4Address($0) }) {
                guard v != CLATSettings.translatorIPv4 else { throw f.error("clat.ipv4", "192.0.0.1 is the translator's own (the source of its ICMP errors)") }
                c.ipv4 = v
            }
            c.ipv6 = try f.parsed("clat.ipv6", "an IPv6 address", { IPv6Address($0) })
            if let v = try f.parsed("clat.prefix", "an IPv6 prefix of length 32, 40, 48, 56, 64 or 96 such as 64:ff9b::/96", { IPv6Prefix($0) }) {
                guard [32, 40, 48, 56, 64, 96].contains(v.length) else { throw f.error("clat.prefix", "/\(v.length): RFC 6052 allows /32, /40, /48, /56, /64 or /96") }
                c.prefix = v
            }
            if case .fixed = addresses, c.ipv6 == nil || c.prefix == nil {
                throw f.error("clat.enabled", "with [static] addresses there is no lease to name the CLAT's address and prefix: set clat.ipv6 and clat.prefix")
            }
            clat = c
        } else {
            for key in ["clat.interface", "clat.ipv4", "clat.ipv6", "clat.prefix"] where f.has(key) {
                throw f.error(key, "set, but clat.enabled is not true")
            }
        }
        for name in Self.hookNames {
            if let v = try f.string("hooks." + name) {
                guard v.hasPrefix("/") else { throw f.error("hooks." + name, "must be an absolute path") }
                hooks[name] = v
            }
        }
    }

    static func routes(_ f: ConfigFile, _ key: String, v6: Bool) throws(ConfigError) -> RouteSelection? {
        guard let list = try f.strings(key) else { return nil }
        if list == ["default"] { return .all }
        if list == ["none"] || list.isEmpty { return RouteSelection.none }
        var out: [IPPrefix] = []
        for s in list {
            guard let p = IPPrefix(s), (p.network.isV6) == v6 else {
                throw f.error(key, "\(s.debugDescription) is not \"default\", \"none\" or a list of \(v6 ? "IPv6" : "IPv4") prefixes")
            }
            out.append(p)
        }
        return .prefixes(out)
    }

    static func assignment(_ s: String) -> AddressAssignment? {
        // Empty pieces kept: "/" or "/64" is refused, not an index out of range (found by fuzz-config-wgquick).
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, let a = IPAddress(first) else { return nil }
        let maximum: UInt8 = a.isV6 ? 128 : 32
        guard parts.count == 2 else { return AddressAssignment(a, prefixLength: maximum) }
        guard let len = UInt8(parts[1]), len <= maximum else { return nil }
        return AddressAssignment(a, prefixLength: len)
    }

    static func isInterfaceName(_ v: String) -> Bool {
        (1...15).contains(v.utf8.count) && v.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}

extension IPAddress {
    var isV6: Bool { if case .v6 = self { return true } else { return false } }
}

/// "host:port" with a literal address or a DNS name ("[2001:db8::1]:51820", "gw.example.net:51820").
public struct EndpointName: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public init?(_ text: String) {
        if let e = Endpoint(text) { host = e.address.description; port = e.port; return }
        guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":"), let p = UInt16(text[text.index(after: colon)...]), p > 0 else { return nil }
        host = String(text[..<colon])
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }) else { return nil }
        port = p
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
