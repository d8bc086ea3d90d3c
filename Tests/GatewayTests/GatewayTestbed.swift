import Foundation
import SixgateTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Four namespaces: `isp` (the upstream router: owns 2001:db8:1::/64 on-link and, on its loopback,
/// the "internet" host 2001:db8:ffff::1 and 203.0.113.1), `gw` (gatewayd; uplink to isp, and one
/// outer link to each client), `cl` and `cl2` (stock wireguard-go clients set up wg-quick style from
/// the config gatewayctl prints). Everything is removed by `destroy()`, processes by PID.
final class GatewayTestbed: @unchecked Sendable {
    let id = uniqueSuffix()
    let isp: String, gw: String, cl: String, cl2: String
    let uplink: String, ispSide: String, tun: String
    let stateDirectory: String
    var configPath: String { stateDirectory + "/gatewayd.toml" }
    private(set) var gateway: BackgroundProcess?
    private var others: [BackgroundProcess] = []
    private var wgNames: [String] = []
    private var destroyed = false

    init() throws {
        isp = "sg-gi-\(id)"; gw = "sg-gg-\(id)"; cl = "sg-gc-\(id)"; cl2 = "sg-gd-\(id)"
        uplink = "sgu\(id)"; ispSide = "sgi\(id)"; tun = "sgt\(id)"
        stateDirectory = "/tmp/sg-gw-\(id)"
        do {
            for ns in [isp, gw, cl, cl2] {
                try run(["ip", "netns", "add", ns], check: true)
                try exec(ns, ["ip", "link", "set", "lo", "up"])
                try exec(ns, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"])
            }
            try link(isp, ispSide, gw, uplink)
            try link(gw, "sgo\(id)", cl, "sgc\(id)")
            try link(gw, "sgp\(id)", cl2, "sgd\(id)")
            // The ISP: the /64 on-link toward the gateway, the internet host on loopback.
            try exec(isp, ["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", ispSide, "nodad"])
            try exec(isp, ["ip", "addr", "add", "198.51.100.1/25", "dev", ispSide])
            try exec(isp, ["ip", "-6", "addr", "add", "2001:db8:ffff::1/128", "dev", "lo"])
            try exec(isp, ["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"])
            // The gateway's uplink, as the operator set it up before gatewayd.
            try exec(gw, ["ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", uplink, "nodad"])
            try exec(gw, ["ip", "addr", "add", "198.51.100.2/25", "dev", uplink])
            try exec(gw, ["ip", "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", uplink])
            try exec(gw, ["ip", "route", "add", "default", "via", "198.51.100.1"])
            // The clients' carriers.
            try exec(gw, ["ip", "addr", "add", "198.51.100.129/25", "dev", "sgo\(id)"])
            try exec(cl, ["ip", "addr", "add", "198.51.100.130/25", "dev", "sgc\(id)"])
            try exec(gw, ["ip", "addr", "add", "203.0.113.129/25", "dev", "sgp\(id)"])
            try exec(cl2, ["ip", "addr", "add", "203.0.113.130/25", "dev", "sgd\(id)"])
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        } catch {
            destroy()
            throw error
        }
    }

    private func link(_ a: String, _ aName: String, _ b: String, _ bName: String) throws { try NamespaceTools.link(a, aName, b, bName) }

    @discardableResult
    func exec(_ ns: String, _ argv: [String], timeout: Double = 30, check: Bool = true) throws -> ProcessResult {
        try NamespaceTools.exec(ns, argv, timeout: timeout, check: check)
    }

    var hookLog: String { stateDirectory + "/hooks.log" }

    /// `ipv6` replaces the [ipv6] table's body, `ipv4` the [ipv4] table's; `extra` goes at the top,
    /// `tables` (more tables) at the end.
    func writeConfig(ndpProxy: String, ipv6: String? = nil, ipv4: String? = nil, extra: String = "", tables: String = "") throws {
        let hook = stateDirectory + "/hook.sh"
        try writeExecutable("#!/bin/sh\necho \"$SIXGATE_EVENT $SIXGATE_INTERFACE $SIXGATE_CLIENT $SIXGATE_CLIENT_ADDRESSES\" >> \(hookLog)\n", to: hook)
        let text = """
            # gatewayd for the end-to-end test
            \(extra)
            state_directory = "\(stateDirectory)"
            interface = "\(tun)"
            listen_port = 51820
            endpoint = "198.51.100.129:51820"

            [uplink]
            interface = "\(uplink)"

            [ipv6]
            \(ipv6 ?? "prefix = \"2001:db8:1::/64\"      # ::1 ISP router, ::2 uplink, ::3 gateway (the defaults)")
            ndp_proxy = "\(ndpProxy)"

            [ipv4]
            \(ipv4 ?? "pool = \"192.0.2.0/24\"\nnat44 = true")

            [hooks]
            up = "\(hook)"
            down = "\(hook)"
            client-connect = "\(hook)"

            \(tables)
            """
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts gatewayd in `gw` and waits for its "up" line.
    func startGateway(_ extraArguments: [String] = []) throws {
        let p = try BackgroundProcess(["ip", "netns", "exec", gw, "\(builtProductsDirectory)/gatewayd", "--config", configPath] + extraArguments, captureOutput: true)
        gateway = p
        guard eventually(timeout: 15, { p.output.contains("up: \(tun)") || !p.process.isRunning }), p.process.isRunning else {
            throw TransferError.named("gatewayd did not come up: \(p.output)")
        }
    }

    func gatewayctl(_ args: [String], check: Bool = true) throws -> ProcessResult {
        try exec(gw, ["\(builtProductsDirectory)/gatewayctl"] + args + ["--config", configPath], check: check)
    }

    /// Sets up wireguard-go in `ns` from a wg-quick config, as wg-quick would: the device, `wg set`,
    /// the addresses, the MTU, default routes for ::/0 and 0.0.0.0/0.
    /// `endpoint` replaces the config's Endpoint (the second client reaches the gateway over its own link).
    func startClient(in ns: String, name: String, config: String, endpoint override: String? = nil) throws {
        let (p, fields) = try NamespaceTools.startWireGuardGo(in: ns, name: name, config: config, keyDirectory: stateDirectory, endpoint: override)
        others.append(p)
        wgNames.append(name)
        let allowed = fields["AllowedIPs"] ?? ""
        if allowed.contains("::/0") { try exec(ns, ["ip", "-6", "route", "add", "default", "dev", name]) }
        if allowed.contains("0.0.0.0/0") { try exec(ns, ["ip", "route", "add", "default", "dev", name]) }
    }

    /// gatewayd with the default config (kernel NDP proxy, an IPv4 pool), and alice enrolled on
    /// stock wireguard-go in `cl`; true once she reaches the internet host over IPv6.
    func startGatewayWithAlice() throws -> Bool {
        try writeConfig(ndpProxy: "kernel")
        try startGateway()
        let alice = try gatewayctl(["clients", "add", "alice"]).stdout
        try startClient(in: cl, name: "sgw\(id)", config: alice)
        return eventually(timeout: 30) { (try? ping(from: cl, "2001:db8:ffff::1", count: 1)) == 1 }
    }

    /// Starts tunnel-client in `ns` with the config text at a file of its own; returns the process.
    @discardableResult
    /// Enrols `name` with `--format tunnel-client` and runs it in host mode on the second carrier
    /// (cl2, toward the gateway's 203.0.113.129), its TUN named sgk<id>. Returns it and the TUN's name.
    func startTunnelClientOnSecondCarrier(_ name: String) throws -> (client: BackgroundProcess, tun: String) {
        let tun = "sgk\(id)"
        let config = try gatewayctl(["clients", "add", name, "--format", "tunnel-client"]).stdout
            .replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"\(tun)\"")
            .replacingOccurrences(of: "198.51.100.129:51820", with: "203.0.113.129:51820")
        return (try startTunnelClient(in: cl2, config: config, name: name), tun)
    }

    func startTunnelClient(in ns: String, config: String, name: String, extraArguments: [String] = []) throws -> BackgroundProcess {
        let path = stateDirectory + "/\(name).toml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let p = try BackgroundProcess(["ip", "netns", "exec", ns, "\(builtProductsDirectory)/tunnel-client", "--config", path,
                                       "--state-file", stateDirectory + "/\(name).json"] + extraArguments, captureOutput: true)
        others.append(p)
        return p
    }

    func tunnelClientStatus(_ name: String) throws -> [String: Any] {
        let r = try run(["\(builtProductsDirectory)/tunnel-client", "status", "--json", "--config", stateDirectory + "/\(name).toml",
                         "--state-file", stateDirectory + "/\(name).json"])
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    /// Starts `argv` inside `ns` in the background; stopped (by PID) by `destroy()` at the latest.
    @discardableResult
    func background(in ns: String, _ argv: [String]) throws -> BackgroundProcess {
        let p = try BackgroundProcess(["ip", "netns", "exec", ns] + argv, captureOutput: true)
        others.append(p)
        return p
    }

    /// Adds a namespace linked to `to` through a veth pair; removed by `destroy()`.
    func addNamespace(_ ns: String, linkedTo to: String, _ inside: String, _ outside: String) throws {
        try run(["ip", "netns", "add", ns], check: true)
        extraNamespaces.append(ns)
        try exec(ns, ["ip", "link", "set", "lo", "up"])
        try link(ns, inside, to, outside)
    }
    private var extraNamespaces: [String] = []

    /// Echo replies received by `ping` from `ns`.
    func ping(from ns: String, _ address: String, source: String? = nil, count: Int = 3) throws -> Int {
        var argv = ["ping", "-c", "\(count)", "-i", "0.3", "-W", "2"]
        if let source { argv += ["-I", source] }
        let r = try exec(ns, argv + [address], timeout: Double(count) * 3 + 10, check: false)
        guard let line = r.stdout.split(separator: "\n").first(where: { $0.contains("received") }),
              let n = line.split(separator: ",").first(where: { $0.contains("received") })?.split(separator: " ").first.flatMap({ Int($0) }) else { return 0 }
        return n
    }

    func stopGateway(signal: Int32 = SIGTERM) {
        guard let g = gateway else { return }
        if signal == SIGTERM { g.stop(grace: 10) } else {
            kill(g.pid, signal)
            // ip netns exec execs gatewayd in place, so the PID is gatewayd's own.
            g.process.waitUntilExit()
        }
        gateway = nil
    }

    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        stopGateway()
        for p in others { p.stop() }
        for ns in [isp, gw, cl, cl2] + extraNamespaces { _ = try? run(["ip", "netns", "del", ns]) }
        for name in wgNames + [tun] { unlink("/var/run/wireguard/\(name).sock") }
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }

    deinit { destroy() }
}

extension TransferError {
    static func named(_ s: String) -> TransferError { TransferError(s) }
}
