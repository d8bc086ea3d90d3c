// `gatewayctl doctor` as a library call: what the config says the gateway should be, handed to
// Diagnostics' doctor, which compares it with the kernel and a short capture.
import Diagnostics
import Foundation
import PacketKit

extension GatewayAdmin {
    /// The doctor's view of the gateway configured by `config` (read from `configPath`): the live
    /// status when gatewayd runs (clients, handshakes, counters), the state files when not.
    public static func doctorSetup(_ config: GatewayConfiguration, configPath: String? = nil) throws(GatewayError) -> DoctorSetup {
        let (status, live) = try status(config)
        let clients = status.clients.map { c in
            DoctorClient(name: c.name, prefixes: c.addresses.compactMap { IPPrefix($0) }, endpoint: c.endpoint, lastHandshake: c.lastHandshake)
        }
        var setup = DoctorSetup(tunnel: config.interface, uplink: config.uplink, tunnelMTU: config.mtu, daemonRunning: live,
                                gatewayAddress: config.effectiveGatewayAddress, ndpProxy: config.ndpProxy.rawValue,
                                nat44: config.nat44 && config.ipv4Pool != nil, listenPort: config.listenPort, clients: clients)
        setup.configPath = configPath
        setup.daemonStartedAt = status.startedAt
        setup.ipv4Pool = config.ipv4Pool
        setup.ipv4Gateway = config.effectiveIPv4Gateway
        setup.ispRouter = config.allocation == .hosts ? config.effectiveISPRouter : nil
        setup.natTable = config.natTableName
        setup.startCommand = configPath.map { "systemctl start gatewayd   # or: gatewayd --config \($0)" } ?? "systemctl start gatewayd"
        setup.restartCommand = configPath.map { "systemctl restart gatewayd   # or stop gatewayd and run: gatewayd --config \($0)" } ?? "systemctl restart gatewayd"
        setup.firewall = config.firewall
        setup.nat64Prefix = config.nat64?.prefix
        setup.nat64Interface = config.nat64?.interface
        setup.filterTable = config.natTableName
        setup.reloadCommand = "gatewayctl reload" + (configPath.map { " --config \($0)" } ?? "")
        if live, let p = status.prefix.flatMap(IPv6Prefix.init) {
            var d = DoctorPrefix(prefix: p, source: status.prefixSource ?? "static", preferredUntil: status.prefixPreferredUntil, validUntil: status.prefixValidUntil,
                                 retiring: (status.retiringPrefixes ?? []).compactMap { r in r.ipv6Prefix.map { ($0, r.validUntil) } },
                                 changedAt: status.prefixChangedAt,
                                 leaseFetchedAt: Dictionary(status.clients.compactMap { c in c.leaseFetchedAt.map { (c.name, $0) } }, uniquingKeysWith: max))
            d.showCommand = "gatewayctl clients show" + (configPath.map { " --config \($0)" } ?? "")
            setup.prefix = d
        }
        if let table = config.announceTable {
            let command = "gatewayctl bird-config" + (configPath.map { " --config \($0)" } ?? "")
            switch birdProtocols(socket: config.birdSocket) {
            case .success(let p): setup.bgp = DoctorBGP(protocols: p, error: nil, announceTable: table, snippetCommand: command)
            case .failure(let e): setup.bgp = DoctorBGP(protocols: nil, error: e.message, announceTable: table, snippetCommand: command)
            }
        }
        if live {
            setup.sample = { @Sendable in
                guard let (s, live) = try? GatewayAdmin.status(config), live else { return nil }
                return DoctorSample(counters: s.counters, receivedBytes: Dictionary(s.clients.map { ($0.name, $0.receivedBytes) }, uniquingKeysWith: { a, _ in a }))
            }
        }
        return setup
    }

    /// Runs every check (see Diagnostics' `Doctor`).
    public static func doctor(_ config: GatewayConfiguration, configPath: String? = nil, options: DoctorOptions = DoctorOptions()) throws(GatewayError) -> DoctorReport {
        Doctor.run(try doctorSetup(config, configPath: configPath), options: options)
    }
}
