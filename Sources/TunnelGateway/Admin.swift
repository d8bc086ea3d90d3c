// What gatewayctl does, as library calls: through a running gatewayd's control socket when there is
// one (changes take effect live), on the state directory's files when there is not.
import AddressPool
import Foundation
import PacketKit
import RouteKit
import SixgatePostgres
import SixgateMetrics
import TunnelCore

public enum GatewayAdmin {
    /// Enrols `name` with `publicKey`. Returns the client and whether a running gatewayd did it.
    /// `open` and `isolated`: its firewall settings (see `ClientRecord`).
    public static func addClient(_ config: GatewayConfiguration, name: String, publicKey: String, open: [PortOpening] = [], isolated: Bool = true) throws(GatewayError) -> (ClientStatus, live: Bool) {
        let request = ControlRequest(command: .add, name: name, publicKey: publicKey, open: open, isolated: isolated)
        if let reply = try sendControlRequest(request, socketPath: config.controlSocketPath) {
            guard reply.ok, let client = reply.client else { throw .control(reply.error ?? "gatewayd refused") }
            return (client, true)
        }
        let gateway = try Gateway(config: config)
        return (try gateway.addClient(name: name, publicKey: publicKey, open: open, isolated: isolated), false)
    }

    /// Parses `--open` values ("tcp/22", "udp/51413-51420", "all"): all of them or none, the
    /// error naming the value.
    public static func parseOpenings(_ specs: [String]) throws(GatewayError) -> [PortOpening] {
        var out: [PortOpening] = []
        for s in specs {
            do { out.append(try PortOpening(parsing: s)) } catch { throw .firewall(error) }
        }
        return out
    }

    /// Opens or closes ports of a client, or changes its isolation; live through gatewayd (the
    /// firewall changes at once, sessions stay), or in its record when gatewayd does not run.
    public static func setFirewall(_ config: GatewayConfiguration, name: String, open: [PortOpening] = [], close: [PortOpening] = [], isolated: Bool? = nil) throws(GatewayError) -> (ClientStatus, live: Bool) {
        let request = ControlRequest(command: .firewall, name: name, open: open, close: close, isolated: isolated)
        if let reply = try sendControlRequest(request, socketPath: config.controlSocketPath) {
            guard reply.ok, let client = reply.client else { throw .control(reply.error ?? "gatewayd refused") }
            return (client, true)
        }
        return (try Gateway(config: config).setFirewall(client: name, open: open, close: close, isolated: isolated), false)
    }

    /// Removes `name`; returns whether a running gatewayd did it.
    public static func removeClient(_ config: GatewayConfiguration, name: String) throws(GatewayError) -> Bool {
        if let reply = try sendControlRequest(ControlRequest(command: .remove, name: name), socketPath: config.controlSocketPath) {
            guard reply.ok else { throw .control(reply.error ?? "gatewayd refused") }
            return true
        }
        try Gateway(config: config).removeClient(name: name)
        return false
    }

    /// Asks a running gatewayd to re-read the clients folder and put its firewall table back if it
    /// is gone (what SIGHUP does); false when no gatewayd runs.
    public static func reload(_ config: GatewayConfiguration) throws(GatewayError) -> Bool {
        guard let reply = try sendControlRequest(ControlRequest(command: .reload), socketPath: config.controlSocketPath) else { return false }
        guard reply.ok else { throw .control(reply.error ?? "gatewayd refused") }
        return true
    }

    /// Asks the running gatewayd to move to `prefix` (`prefix_source = "external"`) with these
    /// lifetimes (`Gateway.renumber`); nil when no gatewayd runs (then the prefix, its lifetimes
    /// and the one it replaces are written to the state directory for its next start).
    public static func setPrefix(_ config: GatewayConfiguration, _ prefix: IPv6Prefix, preferred: UInt32? = nil, valid: UInt32? = nil,
                                 oldValid: UInt32? = nil) throws(GatewayError) -> RenumberResult? {
        let request = ControlRequest(command: .prefix, prefix: prefix.description, preferred: preferred, valid: valid, oldValid: oldValid)
        guard let reply = try sendControlRequest(request, socketPath: config.controlSocketPath) else {
            guard config.prefixSource.isSetFromOutside else {
                throw .control("prefix_source is \"static\": the prefix is the config file's ipv6.prefix (clients keep their positions when it changes)")
            }
            if let why = config.prefixRefusal(prefix, preferred: preferred, valid: valid) { throw .control("\(why); nothing written") }
            let text = try? String(contentsOfFile: config.prefixStatePath, encoding: .utf8)
            let state = (text.flatMap(PrefixState.init(parsing:)) ?? PrefixState(prefix: config.ipv6Prefix, fromSource: false))
                .moved(to: prefix, preferred: preferred, valid: valid, oldValid: oldValid, now: Gateway.wallClock())
            guard state.render().write(atomicallyTo: config.prefixStatePath) else { throw .io(path: config.prefixStatePath, detail: "cannot write") }
            return nil
        }
        guard reply.ok, let result = reply.renumber else { throw .control(reply.error ?? "gatewayd refused") }
        return result
    }

    /// The gateway's status: live from gatewayd, or from the files (no endpoints or counters).
    public static func status(_ config: GatewayConfiguration) throws(GatewayError) -> (GatewayStatus, live: Bool) {
        if let reply = try sendControlRequest(ControlRequest(command: .status), socketPath: config.controlSocketPath) {
            guard reply.ok, let status = reply.status else { throw .control(reply.error ?? "gatewayd refused") }
            return (status, true)
        }
        let key = try Gateway.loadOrCreateKey(config.privateKeyPath)
        let leases = try self.leases(config)
        let active = leases.filter(\.isActive)
        let registry: any ClientStore = config.groupDatabase == nil ? ClientRegistry(directory: config.clientsDirectory) : try GatewayStores.open(config, readOnly: true).clients
        let sessions = (registry as? PostgresClientStore).flatMap { try? $0.sessions() } ?? [:]
        let clients = try registry.all().map { c in
            var s = Gateway.clientStatus(c, leases: active.filter { $0.client == c.name || $0.client == Gateway.clatKey(c.name) }, peer: nil)
            if let held = sessions[c.name] { s.gateway = held.gateway; s.gatewayHandshake = held.at }
            return s
        }
        return (GatewayStatus(interface: config.interface, publicKey: X25519.publicKey(key).base64, listenPort: config.listenPort,
                              endpoint: config.endpoint, clients: clients, counters: [:]), false)
    }

    /// Every lease record (read-only; works while gatewayd writes).
    public static func leases(_ config: GatewayConfiguration) throws(GatewayError) -> [LeaseRecord] {
        guard config.groupDatabase != nil || FileManager.default.fileExists(atPath: config.leaseStorePath) else { return [] }
        let store = try GatewayStores.open(config, readOnly: true).leases
        do {
            return try store.loadAll()
                .sorted { ($0.pool, $0.prefix.description) < ($1.pool, $1.prefix.description) }
        } catch {
            throw .setup("", error)
        }
    }

    /// A wg-quick configuration for a stock WireGuard client. Without `privateKey` the line says
    /// where the key belongs (the gateway never stores a client's private key).
    public static func clientConfiguration(_ config: GatewayConfiguration, client: ClientStatus, gatewayPublicKey: String, privateKey: String?) -> String {
        var allowed: [String] = [config.clientPrefixLength == 0 ? "::/0" : IPv6Prefix(containing: config.poolPrefix.network, length: config.clientPrefixLength).description]
        if config.ipv4Pool != nil, client.addresses.contains(where: { !$0.contains(":") }) { allowed.append("0.0.0.0/0") }
        var lines = [
            "# Sixgate client \(client.name) (wg-quick format)",
            "[Interface]",
            "PrivateKey = \(privateKey ?? "<the private key made with this client's public key; not stored on the gateway>")",
            "Address = \(client.addresses.joined(separator: ", "))",
            "MTU = \(config.mtu)",
        ]
        if !config.dnsServers.isEmpty { lines.append("DNS = \(config.dnsServers.map(\.description).joined(separator: ", "))") }
        lines += [
            "",
            "[Peer]",
            "PublicKey = \(gatewayPublicKey)",
        ]
        if let e = config.endpoint { lines.append("Endpoint = \(e)") } else { lines.append("# Endpoint = <set endpoint in the gateway's config>") }
        lines.append("AllowedIPs = \(allowed.joined(separator: ", "))")
        if config.clientKeepalive > 0 { lines.append("PersistentKeepalive = \(config.clientKeepalive)") }
        lines.insert(contentsOf: firewallComment(config, client), at: 1)
        return lines.joined(separator: "\n") + "\n"
    }

    /// What the gateway's firewall lets in, as comment lines for a printed config.
    static func firewallComment(_ config: GatewayConfiguration, _ client: ClientStatus) -> [String] {
        guard config.firewall else { return ["# The gateway's firewall is off: every inbound connection reaches this client."] }
        let open = client.open ?? []
        return ["# The gateway's firewall lets in replies, ICMP errors\(config.inboundEcho ? ", echo requests" : "") and new connections to: \(open.isEmpty ? "nothing" : open.joined(separator: ", "))",
                "# (gatewayctl clients open \(client.name) tcp/22 opens a port)."]
    }

    /// A tunnel-client configuration (TOML): the client learns its addresses, routes, MTU and DNS
    /// from the gateway's lease, so only the keys and the endpoint are in it.
    public static func tunnelClientConfiguration(_ config: GatewayConfiguration, client: ClientStatus, gatewayPublicKey: String, privateKey: String?) -> String {
        var lines = [
            "# Sixgate tunnel-client config for \(client.name) (addresses, routes, MTU and DNS come from the gateway's lease)",
            "interface = \"sixgate0\"",
            privateKey.map { "private_key = \"\($0)\"" } ?? "private_key_file = \"/etc/sixgate/client.key\"   # the private key made with this client's public key",
            "",
            "[gateway]",
            "public_key = \"\(gatewayPublicKey)\"",
            config.endpoint.map { "endpoint = \"\($0)\"" } ?? "# endpoint = \"<set endpoint in the gateway's config>\"",
            "keepalive = \(config.clientKeepalive)",
            "",
            "[routes]",
            "ipv6 = \"default\"",
        ]
        if config.allocation == .prefixes {
            // A delegated prefix is for a router: its LAN gets PREFIX::1/64 and router advertisements.
            lines += [
                "",
                "# This client gets a delegated /\(config.delegatedLength): as a router, it advertises its first /64 on a LAN.",
                "# Name the LAN interface and uncomment (docs/tunnel-client.toml.example, [router]):",
                "# [router]",
                "# interface = \"lan0\"",
                "# open = []                  # what the LAN's hosts accept from outside (a CPE's default filter, RFC 6092)",
            ]
        }
        let clat = config.nat64?.clat == true && !client.addresses.contains { !$0.contains(":") }
        lines.append(client.addresses.contains { !$0.contains(":") } || clat ? "ipv4 = \"default\"" : "ipv4 = \"none\"")
        lines.append("replace_default_route = false   # true: shadow a default route another interface holds (it is back on exit)")
        if clat {
            lines += [
                "",
                "# IPv4 through the gateway's NAT64: a CLAT (464XLAT) for programs that use IPv4 literals.",
                "# Its address and the NAT64 prefix come from the lease. Drop this table, or set ipv4 = \"none\"",
                "# above, on a host with IPv4 of its own.",
                "[clat]",
                "enabled = true",
            ]
        }
        lines.insert(contentsOf: firewallComment(config, client), at: 1)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Reads the config file at `path`.
    public static func loadConfiguration(_ path: String) throws(GatewayError) -> GatewayConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .io(path: path, detail: FileManager.default.fileExists(atPath: path) ? "unreadable" : "no such file (see docs/gatewayd.toml.example)")
        }
        do { return try GatewayConfiguration(text: String(decoding: data, as: UTF8.self), path: path) } catch { throw .config(error) }
    }
}

extension Gateway {
    /// The device's counters and each client's bytes, drops and last handshake, as one Prometheus page
    /// (served at `metrics_listen` and written to metrics.prom).
    public func metricsPage() throws(GatewayError) -> MetricsPage {
        let s = try status()
        var page = MetricsPage()
        for (k, v) in s.counters.sorted(by: { $0.key < $1.key }) {
            page.counter("sixgate_device_events_total", help: "Device counters (packets, handshakes, drops by reason).",
                         labels: [("interface", s.interface), ("counter", k)], value: v)
        }
        for c in s.clients {
            for (direction, bytes) in [("rx", c.receivedBytes), ("tx", c.sentBytes)] {
                page.counter("sixgate_client_bytes_total", help: "Bytes to and from each client through the tunnel.",
                             labels: [("client", c.name), ("direction", direction)], value: bytes)
            }
            if let d = c.inboundDropped {
                page.counter("sixgate_client_inbound_dropped_total", help: "New inbound connections' packets the firewall dropped toward each client.",
                             labels: [("client", c.name)], value: d)
            }
            page.gauge("sixgate_client_last_handshake_seconds", help: "Time of each client's last handshake (0: never).",
                       labels: [("client", c.name)], value: Double(c.lastHandshake))
        }
        return page
    }

    /// The same page as text.
    public func prometheusText() throws(GatewayError) -> String { try metricsPage().text }

    /// Writes `prometheusText()` to the state directory's metrics.prom atomically (for node_exporter's textfile collector).
    public func writeMetrics() {
        guard let text = try? prometheusText() else { return }
        let tmp = config.metricsPath + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8)) { rename(tmp, config.metricsPath) }
    }
}
