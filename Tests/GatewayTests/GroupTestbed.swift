import Foundation
import SixgateTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two gateways as one group (issue 25): `up` (the upstream router, with the "internet" host on its
/// loopback: 2001:db8:ffff::1 and 203.0.113.200), `gwa` and `gwb` (gatewayd each, uplinks to `up`,
/// the anycast endpoint 198.51.100.200 on loopback), `cl` and `cl2` (clients, reaching the gateways
/// through `up` as clients on the internet do), and a PostgreSQL server of the test's own. The client
/// prefix 2001:db8:1000::/64 is routed (no NDP proxy); `withBIRD` runs bird2 on all three routers.
/// Everything is removed by `destroy()`, processes by PID.
final class GroupTestbed: @unchecked Sendable {
    let id = uniqueSuffix()
    let up: String, gwa: String, gwb: String, cl: String, cl2: String
    /// The tunnel interfaces are `tun` + "a" and `tun` + "b" (their UAPI sockets share /var/run/wireguard).
    let tun: String
    let directory: String
    let database: PostgresServer
    static let anycast = "198.51.100.200"
    private(set) var gateways: [String: BackgroundProcess] = [:]
    private var others: [BackgroundProcess] = []
    private var wgNames: [String] = []
    private var destroyed = false

    /// Each gateway's namespace, uplink (its side, the router's side) and addresses.
    struct Site { let ns: String, uplink: String, routerSide: String, v6: String, routerV6: String, v4: String, routerV4: String }
    var sites: [String: Site] = [:]

    init() throws {
        up = "sg-xu-\(id)"; gwa = "sg-xa-\(id)"; gwb = "sg-xb-\(id)"; cl = "sg-xc-\(id)"; cl2 = "sg-xd-\(id)"
        tun = "sgt\(id)"
        directory = "/tmp/sg-grp-\(id)"
        database = try PostgresServer()
        do {
            for ns in [up, gwa, gwb, cl, cl2] {
                try run(["ip", "netns", "add", ns], check: true)
                try exec(ns, ["ip", "link", "set", "lo", "up"])
                try exec(ns, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"])
            }
            try exec(up, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1"])
            sites["a"] = Site(ns: gwa, uplink: "sya\(id)", routerSide: "sxa\(id)", v6: "2001:db8:a::2", routerV6: "2001:db8:a::1", v4: "198.51.100.2", routerV4: "198.51.100.1")
            sites["b"] = Site(ns: gwb, uplink: "syb\(id)", routerSide: "sxb\(id)", v6: "2001:db8:b::2", routerV6: "2001:db8:b::1", v4: "198.51.100.10", routerV4: "198.51.100.9")
            for s in sites.values {
                try link(up, s.routerSide, s.ns, s.uplink)
                try exec(up, ["ip", "-6", "addr", "add", s.routerV6 + "/64", "dev", s.routerSide, "nodad"])
                try exec(up, ["ip", "addr", "add", s.routerV4 + "/29", "dev", s.routerSide])
                try exec(s.ns, ["ip", "-6", "addr", "add", s.v6 + "/64", "dev", s.uplink, "nodad"])
                try exec(s.ns, ["ip", "addr", "add", s.v4 + "/29", "dev", s.uplink])
                try exec(s.ns, ["ip", "-6", "route", "add", "default", "via", s.routerV6, "dev", s.uplink])
                try exec(s.ns, ["ip", "route", "add", "default", "via", s.routerV4])
                try exec(s.ns, ["ip", "addr", "add", Self.anycast + "/32", "dev", "lo"])
            }
            // The clients' carriers through the upstream router.
            // cl (the stock client) has default routes through up; cl2 (tunnel-client, which takes the
            // default routes itself) only a route to the gateways' addresses.
            for (ns, mine, theirs, v6, v4) in [(cl, "syc\(id)", "sxc\(id)", "2001:db8:c::", "203.0.113."), (cl2, "syd\(id)", "sxd\(id)", "2001:db8:d::", "203.0.113.1")] {
                try link(up, theirs, ns, mine)
                try exec(up, ["ip", "-6", "addr", "add", v6 + "1/64", "dev", theirs, "nodad"])
                try exec(ns, ["ip", "-6", "addr", "add", v6 + "2/64", "dev", mine, "nodad"])
                try exec(up, ["ip", "addr", "add", v4 + "7/28", "dev", theirs])
                try exec(ns, ["ip", "addr", "add", v4 + "8/28", "dev", mine])
                if ns == cl {
                    try exec(ns, ["ip", "-6", "route", "add", "default", "via", v6 + "1"])
                    try exec(ns, ["ip", "route", "add", "default", "via", v4 + "7"])
                } else {
                    try exec(ns, ["ip", "route", "add", "198.51.100.0/24", "via", v4 + "7"])
                }
            }
            try exec(up, ["ip", "-6", "addr", "add", "2001:db8:ffff::1/128", "dev", "lo"])
            try exec(up, ["ip", "addr", "add", "203.0.113.200/32", "dev", "lo"])
            try FileManager.default.createDirectory(atPath: directory + "/a", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: directory + "/b", withIntermediateDirectories: true)
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

    func configPath(_ gw: String) -> String { directory + "/\(gw)/gatewayd.toml" }

    /// gatewayd's config for gateway `gw` ("a" or "b"): the group's database, its own name and
    /// state directory, the routed client prefix, its uplink; `extra` goes into [group].
    func writeConfig(_ gw: String, extra: String = "", ipv4Pool: String = "192.0.2.0/24") throws {
        let s = sites[gw]!
        let text = """
            state_directory = "\(directory)/\(gw)/state"
            interface = "\(tun)\(gw)"
            listen_port = 51820
            endpoint = "\(Self.anycast):51820"
            watch_interval = 2

            [uplink]
            interface = "\(s.uplink)"

            [ipv6]
            prefix = "2001:db8:1000::/64"
            ndp_proxy = "off"
            isp_router = "\(s.routerV6)"
            uplink_address = "\(s.v6)"

            [ipv4]
            pool = "\(ipv4Pool)"
            nat44 = true

            [group]
            database = "\(database.conninfo)"
            name = "gw-\(gw)"
            \(extra)
            """
        try text.write(toFile: configPath(gw), atomically: true, encoding: .utf8)
    }

    /// Starts gatewayd `gw` and waits for its "up" line. The second gateway gets the first's key
    /// (one WireGuard identity for the group).
    func startGateway(_ gw: String) throws {
        let state = directory + "/\(gw)/state"
        if let other = ["a", "b"].first(where: { $0 != gw }), FileManager.default.fileExists(atPath: directory + "/\(other)/state/private.key"),
           !FileManager.default.fileExists(atPath: state + "/private.key") {
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.copyItem(atPath: directory + "/\(other)/state/private.key", toPath: state + "/private.key")
        }
        let p = try BackgroundProcess(["ip", "netns", "exec", sites[gw]!.ns, "\(builtProductsDirectory)/gatewayd", "--config", configPath(gw)], captureOutput: true)
        gateways[gw] = p
        guard eventually(timeout: 20, { p.output.contains("up: \(tun)\(gw)") || !p.process.isRunning }), p.process.isRunning else {
            throw TransferError("gatewayd \(gw) did not come up: \(p.output)")
        }
    }

    func stopGateway(_ gw: String, signal: Int32 = SIGTERM) {
        guard let g = gateways.removeValue(forKey: gw) else { return }
        if signal == SIGTERM { g.stop(grace: 10) } else { kill(g.pid, signal); g.process.waitUntilExit() }
    }

    func log(_ gw: String) -> String { gateways[gw]?.output ?? "" }

    @discardableResult
    func gatewayctl(_ gw: String, _ args: [String], check: Bool = true) throws -> ProcessResult {
        try exec(sites[gw]!.ns, ["\(builtProductsDirectory)/gatewayctl"] + args + ["--config", configPath(gw)], check: check)
    }

    /// `gatewayctl status --json` of `gw`, its clients by name.
    func clients(on gw: String) throws -> [String: [String: Any]] {
        let r = try gatewayctl(gw, ["status", "--json"])
        guard let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], let list = o["clients"] as? [[String: Any]] else { return [:] }
        return Dictionary(uniqueKeysWithValues: list.compactMap { c in (c["name"] as? String).map { ($0, c) } })
    }

    /// A stock wireguard-go client in `ns`, set up wg-quick style from the printed config.
    func startStockClient(in ns: String, name: String, config: String) throws {
        let (p, _) = try NamespaceTools.startWireGuardGo(in: ns, name: name, config: config, keyDirectory: directory)
        others.append(p)
        wgNames.append(name)
        // The carrier keeps the endpoint; everything else goes through the tunnel.
        try exec(ns, ["ip", "-6", "route", "add", "2001:db8:ffff::/48", "dev", name])
        try exec(ns, ["ip", "route", "add", "203.0.113.200/32", "dev", name])
    }

    // MARK: BIRD

    /// Starts bird2 in `ns` with `config`; returns its control socket.
    @discardableResult
    func startBIRD(in ns: String, name: String, config: String) throws -> String {
        let conf = directory + "/bird-\(name).conf", socket = directory + "/bird-\(name).ctl"
        try config.write(toFile: conf, atomically: true, encoding: .utf8)
        let check = try exec(ns, ["bird", "-p", "-c", conf], check: false)
        guard check.succeeded else { throw TransferError("bird -p \(name): \(check.stderr)\n\(config)") }
        let p = try background(in: ns, ["bird", "-f", "-c", conf, "-s", socket, "-P", directory + "/bird-\(name).pid"])
        guard eventually(timeout: 10, { FileManager.default.fileExists(atPath: socket) }) else { throw TransferError("bird \(name) did not start: \(p.output)") }
        birds[name] = p
        return socket
    }
    var birds: [String: BackgroundProcess] = [:]

    func birdc(_ name: String, _ args: [String]) throws -> String {
        try run(["birdc", "-s", directory + "/bird-\(name).ctl"] + args, timeout: 10).stdout
    }

    /// The upstream router's BIRD: BGP with BFD to both gateways (AS 64501) as AS 64500, the best
    /// routes into its kernel.
    func startUpstreamBIRD() throws {
        var text = """
            router id 198.51.100.1;
            protocol device { scan time 10; }
            protocol kernel { ipv4 { import none; export all; }; }
            protocol kernel { ipv6 { import none; export all; }; }
            protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
            template bgp sixgw { local as 64500; bfd on; connect retry time 2; error wait time 1, 5; }

            """
        for (gw, s) in sites.sorted(by: { $0.key < $1.key }) {
            text += "protocol bgp gw\(gw)4 from sixgw { neighbor \(s.v4) as 64501; ipv4 { import all; export none; }; }\n"
            text += "protocol bgp gw\(gw)6 from sixgw { neighbor \(s.v6) as 64501; ipv6 { import all; export none; }; }\n"
        }
        try startBIRD(in: up, name: "up", config: text)
    }

    /// Gateway `gw`'s BIRD: gatewayctl's snippet and the two sessions toward the upstream router.
    func startGatewayBIRD(_ gw: String) throws {
        let s = sites[gw]!
        let snippet = try gatewayctl(gw, ["bird-config"]).stdout
        try snippet.write(toFile: directory + "/\(gw)/sixgate.conf", atomically: true, encoding: .utf8)
        let text = """
            router id \(s.v4);
            protocol device { scan time 10; }
            include "\(directory)/\(gw)/sixgate.conf";
            protocol bgp upstream4 from sixgate_upstream4 { local as 64501; neighbor \(s.routerV4) as 64500; connect retry time 2; error wait time 1, 5; }
            protocol bgp upstream6 from sixgate_upstream6 { local as 64501; neighbor \(s.routerV6) as 64500; connect retry time 2; error wait time 1, 5; }

            """
        try startBIRD(in: s.ns, name: gw, config: text)
    }

    /// The upstream's BGP sessions that are Established.
    func establishedSessions() -> Set<String> {
        let text = (try? birdc("up", ["show", "protocols"])) ?? ""
        return Set(text.split(separator: "\n").compactMap { line -> String? in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return f.count > 1 && f[1] == "BGP" && line.contains("Established") ? String(f[0]) : nil
        })
    }

    /// A background process in `ns`, stopped at `destroy`.
    func background(in ns: String, _ argv: [String]) throws -> BackgroundProcess {
        let p = try BackgroundProcess(["ip", "netns", "exec", ns] + argv, captureOutput: true)
        others.append(p)
        return p
    }

    /// Echo replies received by `ping` from `ns`.
    func ping(from ns: String, _ address: String, count: Int = 1, wait: Int = 1) throws -> Int {
        let r = try exec(ns, ["ping", "-c", "\(count)", "-i", "0.2", "-W", "\(wait)", address], timeout: Double(count * wait) + 10, check: false)
        guard let line = r.stdout.split(separator: "\n").first(where: { $0.contains("received") }),
              let n = line.split(separator: ",").first(where: { $0.contains("received") })?.split(separator: " ").first.flatMap({ Int($0) }) else { return 0 }
        return n
    }

    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        for gw in Array(gateways.keys) { stopGateway(gw) }
        for p in others { p.stop() }
        for ns in [up, gwa, gwb, cl, cl2] { _ = try? run(["ip", "netns", "del", ns]) }
        for name in wgNames + [tun + "a", tun + "b"] { unlink("/var/run/wireguard/\(name).sock") }
        database.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { destroy() }
}
