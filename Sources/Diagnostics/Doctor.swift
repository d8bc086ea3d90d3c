// The doctor: the troubleshooting checklist of the tunnel-gateway howtos, run against the kernel.
// Each check is a small value: ok / problem / skipped, the evidence it saw, and the fix as
// commands. The role (TunnelGateway) says what the gateway should look like (DoctorSetup); the
// doctor looks at what is (sysctls, routes, addresses, proxy entries, nftables, processes, and a
// short capture on the tunnel and the uplink).
import Foundation
import PacketKit
import RouteKit

/// The outcome of one check.
public enum CheckStatus: String, Sendable, Codable, Equatable {
    case ok, problem, skipped
}

/// One check's result.
public struct CheckResult: Sendable, Codable, Equatable {
    /// Stable identifier for monitoring: "forwarding.ipv6", "route.client", "ndp.unanswered"...
    public var id: String
    public var title: String
    public var status: CheckStatus
    /// One line: what is right or wrong.
    public var summary: String
    /// What was seen (values, routes, counts), one fact per line.
    public var evidence: [String]
    /// Commands that fix it, in order (run as root on the gateway unless the advice says otherwise).
    public var fix: [String]
    /// Prose: why, how to make it permanent, what else to look at.
    public var advice: String?

    public init(id: String, title: String, status: CheckStatus, summary: String, evidence: [String] = [], fix: [String] = [], advice: String? = nil) {
        self.id = id
        self.title = title
        self.status = status
        self.summary = summary
        self.evidence = evidence
        self.fix = fix
        self.advice = advice
    }
}

/// A client as the doctor needs it.
public struct DoctorClient: Sendable, Equatable {
    public var name: String
    /// Its leases: "2001:db8:1::4/128", "192.0.2.2/32" or a delegated prefix.
    public var prefixes: [IPPrefix]
    /// Where its packets come from ("198.51.100.130:41234"), if it ever connected.
    public var endpoint: String?
    /// Unix seconds of its last handshake, 0 if none; nil when nothing records handshakes (a
    /// tunnel not run by gatewayd): the handshake check then skips the client.
    public var lastHandshake: Int64?

    public init(name: String, prefixes: [IPPrefix], endpoint: String? = nil, lastHandshake: Int64? = nil) {
        self.name = name
        self.prefixes = prefixes
        self.endpoint = endpoint
        self.lastHandshake = lastHandshake
    }
}

/// Counters the doctor reads before and after its capture.
public struct DoctorSample: Sendable, Equatable {
    /// The tunnel device's counters by name ("droppedAllowedIPs"...).
    public var counters: [String: UInt64]
    /// Bytes received from each client, by name.
    public var receivedBytes: [String: UInt64]
    public init(counters: [String: UInt64], receivedBytes: [String: UInt64]) {
        self.counters = counters
        self.receivedBytes = receivedBytes
    }
}

/// What the gateway is configured to be.
public struct DoctorSetup: Sendable {
    /// A group's BGP (`[group] announce_table`): BIRD's protocols as read; nil: not announced by BGP.
    public var bgp: DoctorBGP? = nil
    /// The TUN interface.
    public var tunnel: String
    /// The interface toward the ISP.
    public var uplink: String
    /// The tunnel MTU the config asks for.
    public var tunnelMTU: UInt32
    /// The config file, named in advice ("set mtu = 1320 in PATH").
    public var configPath: String?
    /// Whether the daemon answers on its control socket.
    public var daemonRunning: Bool
    /// Unix seconds when it came up (nil: unknown).
    public var daemonStartedAt: Int64?
    /// How to start it, printed as the fix when it does not run.
    public var startCommand: String = "systemctl start gatewayd"
    /// How to restart it after a config change.
    public var restartCommand: String = "systemctl restart gatewayd"
    public var gatewayAddress: IPv6Address
    public var ipv4Gateway: IPv4Address?
    public var ipv4Pool: IPv4Prefix?
    public var ipv4PoolLength: UInt8 { ipv4Pool?.length ?? 32 }
    /// The ISP router on the uplink's link (when client addresses share the ISP's /64); nil otherwise.
    public var ispRouter: IPv6Address?
    /// "kernel", "responder" or "off": how the ISP router's solicitations for clients are answered.
    public var ndpProxy: String
    public var nat44: Bool
    public var natTable: String = "sixgate"
    /// NAT64: the prefix and the translator's interface (nil: no NAT64).
    public var nat64Prefix: IPv6Prefix?
    public var nat64Interface: String?
    /// gatewayd's firewall toward clients: true on (its table is `table inet <filterTable>`), false
    /// off (`firewall = "off"`), nil when the setup has none (the check is skipped).
    public var firewall: Bool?
    public var filterTable: String = "sixgate"
    /// How to make a running gatewayd put its firewall table back (printed as the fix).
    public var reloadCommand: String = "gatewayctl reload"
    /// The route protocol the daemon marks its routes with.
    public var routeProtocol: UInt8 = RouteSocket.sixgateProtocol
    /// UDP port the tunnel listens on.
    public var listenPort: UInt16
    /// The client prefix's life (nil: not known, gatewayd not running).
    public var prefix: DoctorPrefix?
    public var clients: [DoctorClient]
    /// Reads the live counters (nil when the daemon does not run).
    public var sample: (@Sendable () -> DoctorSample?)?

    public init(tunnel: String, uplink: String, tunnelMTU: UInt32, daemonRunning: Bool, gatewayAddress: IPv6Address,
                ndpProxy: String, nat44: Bool, listenPort: UInt16, clients: [DoctorClient]) {
        self.tunnel = tunnel
        self.uplink = uplink
        self.tunnelMTU = tunnelMTU
        self.daemonRunning = daemonRunning
        self.gatewayAddress = gatewayAddress
        self.ndpProxy = ndpProxy
        self.nat44 = nat44
        self.listenPort = listenPort
        self.clients = clients
    }

    /// Client host addresses (/128) the ISP router solicits on the uplink.
    public var hostAddresses: [(IPv6Address, String)] {
        clients.flatMap { c in c.prefixes.compactMap { p -> (IPv6Address, String)? in
            if case .v6(let q) = p, q.length == 128 { return (q.network, c.name) }
            return nil
        } }
    }
}

/// How the doctor runs.
public struct DoctorOptions: Sendable {
    /// Seconds of capture on the tunnel and the uplink (0: no capture; those checks are skipped).
    public var captureSeconds: Double = 3
    /// Only this client for the per-client checks.
    public var client: String?
    /// Unix seconds "now" (for handshake ages).
    public var now = Int64(Date().timeIntervalSince1970)
    /// A handshake older than this (seconds) counts as "not connected". WireGuard renews a
    /// session every 2 minutes while packets flow and rejects one after 3 (REJECT_AFTER_TIME).
    public var handshakeStaleAfter: Int64 = 180
    public init(captureSeconds: Double = 3, client: String? = nil) {
        self.captureSeconds = captureSeconds
        self.client = client
    }
}

/// Every check's result, in a stable order.
public struct DoctorReport: Sendable, Codable, Equatable {
    public var checks: [CheckResult]
    public var captureSeconds: Double
    public var problems: Int { checks.filter { $0.status == .problem }.count }

    enum CodingKeys: String, CodingKey { case checks, captureSeconds, problems }
    public init(checks: [CheckResult], captureSeconds: Double) {
        self.checks = checks
        self.captureSeconds = captureSeconds
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        checks = try c.decode([CheckResult].self, forKey: .checks)
        captureSeconds = try c.decode(Double.self, forKey: .captureSeconds)
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(checks, forKey: .checks)
        try c.encode(captureSeconds, forKey: .captureSeconds)
        try c.encode(problems, forKey: .problems)
    }

    /// The text gatewayctl prints: one line per check, evidence and fix under problems.
    public func render(verbose: Bool = false) -> String {
        var out = ""
        for c in checks {
            let tag = c.status == .problem ? "PROBLEM" : c.status.rawValue
            out += "\(tag.padding(toLength: 8, withPad: " ", startingAt: 0)) \(c.id.padding(toLength: 22, withPad: " ", startingAt: 0)) \(c.summary)\n"
            if c.status == .problem || verbose {
                for e in c.evidence { out += "           seen: \(e)\n" }
                for f in c.fix { out += "           fix:  \(f)\n" }
                if let a = c.advice { out += "           note: \(a)\n" }
            }
        }
        let n = problems
        out += n == 0 ? "no problems found\n" : "\(n) problem\(n == 1 ? "" : "s") found\n"
        return out
    }
}

/// Runs the checks. Needs root (or CAP_NET_ADMIN and CAP_NET_RAW) in the gateway's network namespace.
public enum Doctor {
    public static func run(_ setup: DoctorSetup, options: DoctorOptions = DoctorOptions()) -> DoctorReport {
        let k = KernelView(setup: setup, options: options)
        var checks = [k.daemon(), k.forwardingIPv6(), k.forwardingIPv4(), k.proxyNDP(), k.clientRoutes(), k.gatewayAddress(),
                      k.ispRouterRoute(), k.defaultRoute(), k.nat44(), k.firewallForward(), k.firewallClients(), k.raDaemon(), k.raDefaultRoute(), k.handshakes(),
                      k.prefixSource(), k.stalePrefix(), k.clientsOnStalePrefix(), k.bgp()]
        // The capture-based checks, then the MTU check (it uses the capture's PTBs too).
        let capture = k.capture()
        checks.append(k.traffic(capture))
        checks.append(k.unansweredSolicitations(capture))
        checks.append(k.mtu(capture))
        checks.append(k.nat64(capture))
        return DoctorReport(checks: checks, captureSeconds: options.captureSeconds)
    }
}
