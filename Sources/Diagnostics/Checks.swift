// The doctor's checks against kernel state: sysctls, addresses, routes, proxy entries, nftables
// and processes. Each returns one CheckResult; none changes anything.
import Foundation
import PacketKit
import RouteKit

struct KernelView {
    let setup: DoctorSetup
    let options: DoctorOptions
    let rk: RouteSocket?
    let links: [Link]
    let tunnel: Link?
    let uplink: Link?

    init(setup: DoctorSetup, options: DoctorOptions) {
        self.setup = setup
        self.options = options
        rk = try? RouteSocket()
        links = (try? rk?.links()) ?? []
        tunnel = links.first { $0.name == setup.tunnel }
        uplink = links.first { $0.name == setup.uplink }
    }

    func name(_ index: Int32?) -> String { index.flatMap { i in links.first { $0.index == i }?.name } ?? "?" }

    func sysctl(_ key: SysctlKey?) -> Int? { key.flatMap { try? Sysctl.read($0) } }

    /// The clients the per-client checks look at.
    var clients: [DoctorClient] {
        guard let only = options.client else { return setup.clients }
        return setup.clients.filter { $0.name == only }
    }

    /// Skips a check that needs the running daemon (its TUN, routes and tables go with it).
    func needsDaemon(_ id: String, _ title: String) -> CheckResult? {
        if !setup.daemonRunning || tunnel == nil {
            return CheckResult(id: id, title: title, status: .skipped, summary: "\(setup.tunnel) is not there: gatewayd is not running")
        }
        return nil
    }

    // MARK: The daemon

    func daemon() -> CheckResult {
        let title = "gatewayd running"
        var evidence: [String] = []
        if let t = tunnel { evidence.append("\(t.name): index \(t.index), mtu \(t.mtu), \(t.isUp ? "up" : "down")") }
        if uplink == nil {
            return CheckResult(id: "gatewayd", title: title, status: .problem, summary: "the uplink \(setup.uplink) does not exist in this network namespace",
                               evidence: ["interfaces: " + links.map(\.name).joined(separator: " ")],
                               advice: "set [uplink] interface in \(setup.configPath ?? "the config") to the interface toward the ISP")
        }
        if !setup.daemonRunning {
            return CheckResult(id: "gatewayd", title: title, status: .problem, summary: "gatewayd is not running (its control socket does not answer)",
                               evidence: evidence, fix: [setup.startCommand], advice: "journalctl -u gatewayd shows why it stopped")
        }
        guard let t = tunnel else {
            return CheckResult(id: "gatewayd", title: title, status: .problem, summary: "gatewayd answers but \(setup.tunnel) does not exist",
                               fix: ["systemctl restart gatewayd"])
        }
        if !t.isUp {
            return CheckResult(id: "gatewayd", title: title, status: .problem, summary: "\(t.name) is down", evidence: evidence,
                               fix: ["ip link set \(t.name) up"])
        }
        return CheckResult(id: "gatewayd", title: title, status: .ok, summary: "gatewayd answers; \(t.name) is up", evidence: evidence)
    }

    // MARK: Forwarding

    func forwardingIPv6() -> CheckResult {
        let id = "forwarding.ipv6", title = "IPv6 forwarding"
        var evidence: [String] = [], fix: [String] = []
        let all = sysctl(try? .ipv6Forwarding(.all))
        evidence.append("net.ipv6.conf.all.forwarding = \(all.map(String.init) ?? "unreadable")")
        if all != 1 { fix.append("sysctl -w net.ipv6.conf.all.forwarding=1") }
        // Per interface, the uplink's own switch decides router behaviour there: the kernel
        // answers solicitations for proxy entries only on an interface with forwarding on.
        let up = sysctl(try? .ipv6Forwarding(.interface(setup.uplink)))
        evidence.append("net.ipv6.conf.\(setup.uplink).forwarding = \(up.map(String.init) ?? "unreadable")")
        if all == 1, up == 0 { fix.append("sysctl -w net.ipv6.conf.\(setup.uplink).forwarding=1") }
        if fix.isEmpty {
            return CheckResult(id: id, title: title, status: .ok, summary: "on (all, \(setup.uplink))", evidence: evidence)
        }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: all != 1 ? "IPv6 forwarding is off: clients' packets are not routed" : "IPv6 forwarding is off on \(setup.uplink): proxy NDP and router behaviour stop there",
                           evidence: evidence, fix: fix,
                           advice: "to keep it over reboots: echo net.ipv6.conf.all.forwarding=1 > /etc/sysctl.d/90-sixgate.conf")
    }

    func forwardingIPv4() -> CheckResult {
        let id = "forwarding.ipv4", title = "IPv4 forwarding"
        // NAT64's IPv4 side is forwarded too: the translator's interface to the uplink and back.
        guard setup.ipv4Pool != nil || setup.nat64Interface != nil else { return CheckResult(id: id, title: title, status: .skipped, summary: "no IPv4 service configured") }
        var evidence: [String] = [], fix: [String] = []
        let global = sysctl(.ipv4Forwarding)
        evidence.append("net.ipv4.ip_forward = \(global.map(String.init) ?? "unreadable")")
        if global != 1 { fix.append("sysctl -w net.ipv4.ip_forward=1") }
        // IPv4 checks forwarding on the interface a packet arrives on: both directions matter.
        var names = [setup.uplink]
        if tunnel != nil, setup.ipv4Pool != nil { names.insert(setup.tunnel, at: 0) }
        if let x = setup.nat64Interface, links.contains(where: { $0.name == x }) { names.append(x) }
        for n in names {
            let v = sysctl(try? .ipv4InterfaceForwarding(.interface(n)))
            evidence.append("net.ipv4.conf.\(n).forwarding = \(v.map(String.init) ?? "unreadable")")
            if global == 1, v == 0 { fix.append("sysctl -w net.ipv4.conf.\(n).forwarding=1") }
        }
        if fix.isEmpty { return CheckResult(id: id, title: title, status: .ok, summary: "on (ip_forward, \(names.joined(separator: ", ")))", evidence: evidence) }
        return CheckResult(id: id, title: title, status: .problem, summary: "IPv4 forwarding is off\(global == 1 ? " on an interface" : ""): clients' IPv4\(setup.nat64Interface != nil ? " and NAT64" : "") is not routed",
                           evidence: evidence, fix: fix,
                           advice: "to keep it over reboots: echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-sixgate.conf")
    }

    // MARK: Proxy NDP (kernel mode)

    func proxyNDP() -> CheckResult {
        let id = "proxy-ndp", title = "kernel NDP proxy entries"
        guard setup.ndpProxy == "kernel" else { return CheckResult(id: id, title: title, status: .skipped, summary: "ndp_proxy is \(setup.ndpProxy)") }
        guard !setup.hostAddresses.isEmpty else { return CheckResult(id: id, title: title, status: .skipped, summary: "no client host addresses to proxy") }
        if let skip = needsDaemon(id, title) { return skip }
        guard let uplink else { return CheckResult(id: id, title: title, status: .skipped, summary: "no uplink") }
        var evidence: [String] = [], fix: [String] = []
        let iface = sysctl(try? .proxyNDP(.interface(setup.uplink))), all = sysctl(try? .proxyNDP(.all))
        evidence.append("net.ipv6.conf.\(setup.uplink).proxy_ndp = \(iface.map(String.init) ?? "?"), all.proxy_ndp = \(all.map(String.init) ?? "?")")
        if iface != 1 && all != 1 { fix.append("sysctl -w net.ipv6.conf.\(setup.uplink).proxy_ndp=1") }
        let entries = Set(((try? rk?.neighbours(ipv6: true, proxy: true)) ?? [])
            .filter { $0.interfaceIndex == uplink.index }
            .compactMap { n -> IPv6Address? in if case .v6(let a) = n.address { return a }; return nil })
        let missing = setup.hostAddresses.filter { !entries.contains($0.0) }
        evidence.append("\(entries.count) proxy entr\(entries.count == 1 ? "y" : "ies") on \(setup.uplink), \(setup.hostAddresses.count) client address\(setup.hostAddresses.count == 1 ? "" : "es")")
        for (a, who) in missing.prefix(20) {
            evidence.append("missing: \(a) (\(who))")
            fix.append("ip -6 neigh add proxy \(a) dev \(setup.uplink)")
        }
        if missing.count > 20 { evidence.append("... and \(missing.count - 20) more") }
        if fix.isEmpty { return CheckResult(id: id, title: title, status: .ok, summary: "proxy_ndp on, an entry for every client address", evidence: evidence) }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: missing.isEmpty ? "proxy_ndp is off on \(setup.uplink): the kernel ignores its proxy entries"
                                                    : "\(missing.count) client address\(missing.count == 1 ? " has" : "es have") no proxy entry: the ISP router cannot reach \(missing.count == 1 ? "it" : "them")",
                           evidence: evidence, fix: fix, advice: "gatewayd restores both when it starts (systemctl restart gatewayd)")
    }

    // MARK: Routes and addresses

    /// The route the kernel picks, as a line of evidence.
    func describe(_ r: Route) -> String {
        var s = r.destination.length == 0 ? "default" : r.destination.description
        if let g = r.gateway { s += " via \(g)" }
        s += " dev \(name(r.interfaceIndex))"
        if let m = r.mtu { s += " mtu \(m)" }
        return s
    }

    var ipv4GatewayMissing: Bool {
        guard let gw = setup.ipv4Gateway, let t = tunnel else { return false }
        let addrs = (try? rk?.addresses(interface: t.name)) ?? []
        return !addrs.contains { $0.address == .v4(gw) }
    }

    func clientRoutes() -> CheckResult {
        let id = "route.client", title = "client prefixes routed into the tunnel"
        if let skip = needsDaemon(id, title) { return skip }
        guard let t = tunnel else { return CheckResult(id: id, title: title, status: .skipped, summary: "no tunnel") }
        var evidence: [String] = [], fix: [String] = [], wrong = 0, checked = 0
        let skipV4 = ipv4GatewayMissing
        for c in clients {
            for p in c.prefixes {
                if case .v4 = p, skipV4 { continue }
                checked += 1
                guard let r = try? rk?.lookupRoute(to: p.network) else {
                    wrong += 1
                    evidence.append("\(p) (\(c.name)): no route at all")
                    fix.append(routeFix(p, t.name))
                    continue
                }
                if r.interfaceIndex != t.index || r.type != 1 {
                    wrong += 1
                    // Said plainly: the client's own route is gone, and where its packets go instead.
                    let instead = r.type == 1 ? "its packets go out of \(name(r.interfaceIndex))\(r.gateway.map { " via \($0)" } ?? "") instead"
                                              : "the kernel has \(describe(r)) for it (route type \(r.type))"
                    evidence.append("\(p) (\(c.name)): the route into \(t.name) is missing; \(instead)")
                    fix.append(routeFix(p, t.name))
                }
            }
        }
        if wrong == 0 {
            return CheckResult(id: id, title: title, status: checked == 0 ? .skipped : .ok,
                               summary: checked == 0 ? "no client has an address yet" : "\(checked) client prefix\(checked == 1 ? "" : "es") routed into \(t.name)")
        }
        return CheckResult(id: id, title: title, status: .problem, summary: "\(wrong) client prefix\(wrong == 1 ? " is" : "es are") not routed into \(t.name): replies to \(wrong == 1 ? "it" : "them") go elsewhere",
                           evidence: evidence, fix: fix, advice: "gatewayd installs these routes (protocol \(setup.routeProtocol)) when it starts; restarting it restores them")
    }

    func routeFix(_ p: IPPrefix, _ dev: String) -> String {
        if case .v4 = p { return "ip route replace \(p) dev \(dev) proto \(setup.routeProtocol)" }
        return "ip -6 route replace \(p) dev \(dev) proto \(setup.routeProtocol)"
    }

    func gatewayAddress() -> CheckResult {
        let id = "route.gateway-address", title = "gateway address on the tunnel"
        if let skip = needsDaemon(id, title) { return skip }
        guard let t = tunnel else { return CheckResult(id: id, title: title, status: .skipped, summary: "no tunnel") }
        let addrs = (try? rk?.addresses(interface: t.name)) ?? []
        var evidence = ["\(t.name): " + (addrs.isEmpty ? "no addresses" : addrs.map(\.description).joined(separator: " "))]
        var fix: [String] = []
        if !addrs.contains(where: { $0.address == .v6(setup.gatewayAddress) }) {
            fix.append("ip -6 addr add \(setup.gatewayAddress)/128 dev \(t.name) nodad")
        }
        if let gw = setup.ipv4Gateway, !addrs.contains(where: { $0.address == .v4(gw) }) {
            fix.append("ip addr add \(gw)/\(setup.ipv4PoolLength) dev \(t.name)")
        }
        if fix.isEmpty {
            return CheckResult(id: id, title: title, status: .ok, summary: "\(setup.gatewayAddress)\(setup.ipv4Gateway.map { " and \($0)" } ?? "") on \(t.name)", evidence: evidence)
        }
        evidence.append("expected: \(setup.gatewayAddress)/128\(setup.ipv4Gateway.map { ", \($0)/\(setup.ipv4PoolLength)" } ?? "")")
        return CheckResult(id: id, title: title, status: .problem, summary: "the gateway's own address is missing from \(t.name): clients cannot reach it (nor the lease service)",
                           evidence: evidence, fix: fix)
    }

    func ispRouterRoute() -> CheckResult {
        let id = "route.isp-router", title = "ISP router on-link on the uplink"
        guard let router = setup.ispRouter else { return CheckResult(id: id, title: title, status: .skipped, summary: "clients get routed prefixes: no ISP router address configured") }
        guard let uplink else { return CheckResult(id: id, title: title, status: .skipped, summary: "no uplink") }
        guard let r = try? rk?.lookupRoute(to: .v6(router)) else {
            return CheckResult(id: id, title: title, status: .problem, summary: "no route to the ISP router \(router)",
                               fix: ["ip -6 route replace \(router)/128 dev \(uplink.name)"])
        }
        if r.interfaceIndex == uplink.index && r.gateway == nil {
            return CheckResult(id: id, title: title, status: .ok, summary: "\(router) is on-link on \(uplink.name)", evidence: ["ip -6 route get \(router): \(describe(r))"])
        }
        return CheckResult(id: id, title: title, status: .problem, summary: "the ISP router \(router) is not on-link on \(uplink.name)",
                           evidence: ["ip -6 route get \(router): \(describe(r))"], fix: ["ip -6 route replace \(router)/128 dev \(uplink.name)"],
                           advice: "the uplink has no on-link prefix that holds the router (a /128 uplink address, or the /64 route was deleted)")
    }

    func defaultRoute() -> CheckResult {
        let id = "route.default", title = "default route via the uplink"
        guard let uplink else { return CheckResult(id: id, title: title, status: .skipped, summary: "no uplink") }
        var evidence: [String] = [], fix: [String] = [], problems: [String] = []
        for v6 in [true, false] {
            if !v6 && setup.ipv4Pool == nil { continue }
            let family = v6 ? "IPv6" : "IPv4"
            let defaults = ((try? rk?.routes(ipv6: v6, table: 254)) ?? []).filter { $0.destination.length == 0 && $0.type == 1 }
                .sorted { $0.metric < $1.metric }
            guard let best = defaults.first else {
                problems.append("no \(family) default route")
                if v6 {
                    fix.append("ip -6 route add default via \(setup.ispRouter.map(\.description) ?? "<the ISP router>") dev \(uplink.name)")
                } else {
                    fix.append("ip route add default via <the ISP's IPv4 router> dev \(uplink.name)")
                }
                continue
            }
            evidence.append("\(family): \(describe(best))")
            let out = best.interfaceIndex ?? best.nextHops.first?.interfaceIndex
            if out != uplink.index {
                problems.append("the \(family) default route leaves through \(name(out)), not \(uplink.name)")
                fix.append("ip \(v6 ? "-6 " : "")route replace default via \(best.gateway.map(\.description) ?? "<the ISP router>") dev \(uplink.name)")
            }
        }
        if problems.isEmpty { return CheckResult(id: id, title: title, status: .ok, summary: "default route\(setup.ipv4Pool == nil ? "" : "s") via \(uplink.name)", evidence: evidence) }
        return CheckResult(id: id, title: title, status: .problem, summary: problems.joined(separator: "; ") + ": clients' traffic has no way out",
                           evidence: evidence, fix: fix)
    }

    // MARK: NAT44 and the firewall

    func nat44() -> CheckResult {
        let id = "nat44", title = "NAT44 for the IPv4 pool"
        guard setup.nat44, let pool = setup.ipv4Pool else { return CheckResult(id: id, title: title, status: .skipped, summary: "NAT44 not configured") }
        if let skip = needsDaemon(id, title) { return skip }
        let table = NATTable(name: setup.natTable)
        let want = MasqueradeRule(source: pool, outInterface: setup.uplink)
        let nftFix = "nft 'add table ip \(setup.natTable); add chain ip \(setup.natTable) postrouting { type nat hook postrouting priority srcnat; policy accept; }; add rule ip \(setup.natTable) postrouting ip saddr \(pool) oifname \"\(setup.uplink)\" masquerade'"
        do {
            guard try table.exists() else {
                return CheckResult(id: id, title: title, status: .problem, summary: "the nftables table ip \(setup.natTable) is missing: clients' IPv4 leaves with private source addresses",
                                   evidence: ["nft list table ip \(setup.natTable): no such table"], fix: [nftFix],
                                   advice: "gatewayd creates the table when it starts (systemctl restart gatewayd)")
            }
            let rules = try table.rules()
            if rules.contains(want) {
                return CheckResult(id: id, title: title, status: .ok, summary: "masquerade \(pool) out of \(setup.uplink)")
            }
            return CheckResult(id: id, title: title, status: .problem, summary: "table ip \(setup.natTable) has no masquerade rule for \(pool) out of \(setup.uplink)",
                               evidence: rules.isEmpty ? ["no masquerade rules"] : rules.map { "masquerade \($0.source) out of \($0.outInterface)" },
                               fix: ["nft add rule ip \(setup.natTable) postrouting ip saddr \(pool) oifname \"\(setup.uplink)\" masquerade"])
        } catch {
            return CheckResult(id: id, title: title, status: .skipped, summary: "cannot read nftables: \(error)")
        }
    }

    /// A packet the doctor follows through a chain: where it comes from and goes, its conntrack
    /// state, and for ICMP its type as nft names it.
    struct Probe {
        var iif: String, oif: String
        /// "new", "established" or "related".
        var state: String
        var ipv6 = true
        /// "tcp", "udp", "ipv6-icmp", "icmp" (nil: whatever; a rule on it cannot be judged).
        var l4proto: String? = nil
        var icmpType: String? = nil
    }

    /// Whether a rule's matches hold for a packet from `iif` to `oif`; nil when it depends on more
    /// than interfaces (addresses, ports, marks): the doctor cannot judge those.
    static func ruleMatches(_ r: FilterRule, iif: String, oif: String, reply: Bool) -> Bool? {
        ruleMatches(r, Probe(iif: iif, oif: oif, state: reply ? "established" : "new"))
    }

    static func ruleMatches(_ r: FilterRule, _ probe: Probe) -> Bool? {
        for m in r.matches {
            let value: String
            switch m.key {
            case "iifname", "iif": value = probe.iif
            case "oifname", "oif": value = probe.oif
            case "ct state":
                // New outbound connections are "new"; their replies "established".
                let hit = m.values.contains(probe.state)
                if (m.op == "!=") == hit { return false }
                continue
            case "l4proto", "ip6 nexthdr", "ip protocol":
                guard let p = probe.l4proto else { return nil }
                value = p
            case "icmpv6 type", "icmp type":
                guard let t = probe.icmpType else { return nil }
                // An ICMPv6 match never holds for an IPv4 packet, nor an ICMP one for IPv6.
                if (m.key == "icmpv6 type") != probe.ipv6 { if m.op == "!=" { continue } else { return false } }
                value = t
            default: return nil
            }
            let hit = m.values.contains { $0 == value || ($0.hasSuffix("*") && value.hasPrefix($0.dropLast())) }
            if (m.op == "!=") == hit { return false }
        }
        return true
    }

    /// What a base chain does to a packet from `iif` to `oif`: "accept", "drop", or "unknown".
    static func verdict(_ chain: FilterChain, iif: String, oif: String, reply: Bool) -> (String, FilterRule?) {
        verdict(chain, Probe(iif: iif, oif: oif, state: reply ? "established" : "new"))
    }

    static func verdict(_ chain: FilterChain, _ probe: Probe) -> (String, FilterRule?) {
        for r in chain.rules {
            guard let v = r.verdict else { continue }
            switch ruleMatches(r, probe) {
            case .some(false): continue
            case .none: if v == .accept { return ("unknown", r) } else { continue }
            case .some(true):
                switch v {
                case .accept: return ("accept", r)
                case .drop, .reject: return ("drop", r)
                case .jump, .goto: return ("unknown", r)
                case .return: return (chain.policy, r)
                case .continue: continue
                }
            }
        }
        return (chain.policy, nil)
    }

    /// gatewayd's firewall: its table is there (or, with `firewall = "off"`, something else drops
    /// unsolicited inbound connections), and no forward chain that lets replies through drops
    /// Packet Too Big toward clients (PMTUD; chains that drop the replies too are the
    /// firewall.forward check's).
    func firewallClients() -> CheckResult {
        let id = "firewall.clients", title = "firewall protects clients and lets PMTUD work"
        guard let on = setup.firewall else { return CheckResult(id: id, title: title, status: .skipped, summary: "no firewall in this setup") }
        // Stopped, gatewayd has removed its table and its tunnel: nothing reaches the clients.
        if on && !setup.daemonRunning { return CheckResult(id: id, title: title, status: .skipped, summary: "gatewayd is not running (its firewall comes up with it)") }
        let chains: [FilterChain]
        do { chains = try Firewall.baseChains(hook: "forward") } catch {
            return CheckResult(id: id, title: title, status: .skipped, summary: "cannot read nftables: \(error)")
        }
        var evidence: [String] = [], fix: [String] = [], problems: [String] = []
        let ours = chains.first { $0.family == "inet" && $0.table == setup.filterTable }
        let syn = Probe(iif: setup.uplink, oif: setup.tunnel, state: "new", l4proto: "tcp")
        if on {
            if let ours {
                evidence.append("\(ours): \(ours.rules.count) rules")
            } else {
                problems.append("gatewayd's firewall (table inet \(setup.filterTable)) is missing: every client is open to the internet")
                fix.append(setup.daemonRunning ? setup.reloadCommand : setup.startCommand)
            }
        } else {
            let dropping = chains.filter { $0.applies(ipv6: true) && Self.verdict($0, syn).0 == "drop" }
            evidence.append("firewall = \"off\" in gatewayd's config")
            if dropping.isEmpty {
                problems.append("firewall is off and no forward chain drops new inbound connections to \(setup.tunnel): every service on the clients is open to the internet")
                if let path = setup.configPath {
                    fix += ["sed -i 's/^firewall *= *\"off\"/firewall = \"on\"/' \(path)", setup.restartCommand]
                }
            } else {
                evidence += dropping.map { "\($0) drops new inbound connections to \(setup.tunnel)" }
            }
        }
        for chain in chains where chain.applies(ipv6: true) && chain != ours {
            let replies = Self.verdict(chain, iif: setup.uplink, oif: setup.tunnel, reply: true)
            guard replies.0 != "drop" else { continue }   // firewall.forward names it
            let ptb = Self.verdict(chain, Probe(iif: setup.uplink, oif: setup.tunnel, state: "related", l4proto: "ipv6-icmp", icmpType: "packet-too-big"))
            evidence.append("\(chain): Packet Too Big toward \(setup.tunnel) \(ptb.0)\(ptb.1.map { " (\($0))" } ?? "")")
            if ptb.0 == "drop" {
                problems.append("\(chain.family) \(chain.table) \(chain.name) drops Packet Too Big toward clients: PMTUD breaks (RFC 4890 §4.3.1)")
                fix.append("nft insert rule \(chain.family) \(chain.table) \(chain.name) oifname \"\(setup.tunnel)\" icmpv6 type packet-too-big accept")
            }
        }
        if problems.isEmpty {
            let summary = on ? "table inet \(setup.filterTable) drops unsolicited inbound to clients; Packet Too Big passes every forward chain"
                             : "firewall is off, another forward chain drops new inbound connections; Packet Too Big passes"
            return CheckResult(id: id, title: title, status: .ok, summary: summary, evidence: evidence)
        }
        return CheckResult(id: id, title: title, status: .problem, summary: problems.joined(separator: "; "), evidence: evidence, fix: fix,
                           advice: on ? "gatewayd puts its table back by itself every watch_interval seconds unless watch_interval = 0" : "RFC 4890 §4.3.1: Packet Too Big must never be dropped in transit")
    }

    func firewallForward() -> CheckResult {
        let id = "firewall.forward", title = "firewall lets tunnel traffic through"
        let chains: [FilterChain]
        do { chains = try Firewall.baseChains(hook: "forward") } catch {
            return CheckResult(id: id, title: title, status: .skipped, summary: "cannot read nftables: \(error)")
        }
        if chains.isEmpty { return CheckResult(id: id, title: title, status: .ok, summary: "no forward chains (nothing filters forwarded packets)") }
        var evidence: [String] = [], fix: [String] = [], blocked: [String] = []
        // The tunnel's traffic (IPv6, and IPv4 with a pool), and NAT64's IPv4 side: the translator's
        // interface to the uplink and back.
        var paths: [(interface: String, what: String, ipv6: Bool, ipv4: Bool)] = [(setup.tunnel, "clients'", true, setup.ipv4Pool != nil)]
        if let x = setup.nat64Interface { paths.append((x, "NAT64's", false, true)) }
        for chain in chains {
            for path in paths {
                guard (path.ipv6 && chain.applies(ipv6: true)) || (path.ipv4 && chain.applies(ipv6: false)) else { continue }
                let out = Self.verdict(chain, iif: path.interface, oif: setup.uplink, reply: false)
                let back = Self.verdict(chain, iif: setup.uplink, oif: path.interface, reply: true)
                evidence.append("\(chain): \(path.interface) -> \(setup.uplink) \(out.0)\(out.1.map { " (\($0))" } ?? ""), replies \(back.0)\(back.1.map { " (\($0))" } ?? "")")
                let where_ = "\(chain.family) \(chain.table) \(chain.name)"
                if out.0 == "drop" {
                    blocked.append("\(where_) drops \(path.what) packets")
                    fix.append("nft insert rule \(where_) iifname \"\(path.interface)\" accept")
                }
                if back.0 == "drop" {
                    blocked.append("\(where_) drops replies to \(path.what == "clients'" ? "clients" : "NAT64")")
                    fix.append("nft insert rule \(where_) oifname \"\(path.interface)\" ct state established,related accept")
                }
            }
        }
        if blocked.isEmpty { return CheckResult(id: id, title: title, status: .ok, summary: "forward chains let tunnel traffic through", evidence: evidence) }
        return CheckResult(id: id, title: title, status: .problem, summary: blocked.joined(separator: "; "), evidence: evidence, fix: fix,
                           advice: "with iptables: iptables -I FORWARD -i \(setup.tunnel) -j ACCEPT; iptables -I FORWARD -o \(setup.tunnel) -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT (and ip6tables); make it permanent in your firewall's config")
    }

    // MARK: Router advertisement daemons and RA-learned routes

    func raDaemon() -> CheckResult {
        let id = "ra-daemon", title = "no RA daemon on the uplink"
        let procs = RunningProcess.inThisNetworkNamespace()
        var evidence: [String] = [], fix: [String] = [], offending: [String] = []
        let pids = Dictionary(procs.map { ($0.pid, $0.name) }, uniquingKeysWith: { a, _ in a })
        // A daemon's own helper processes (radvd's privilege-separation child) are not counted twice.
        for p in procs where pids[p.parent] != p.name {
            switch p.name {
            case "radvd":
                let conf = p.option(["-C", "--config"]) ?? "/etc/radvd.conf"
                let text = (try? String(contentsOfFile: conf, encoding: .utf8)) ?? ""
                let interfaces = Self.radvdInterfaces(text)
                evidence.append("radvd pid \(p.pid), \(conf): interfaces \(interfaces.isEmpty ? "(unreadable or none)" : interfaces.joined(separator: " "))")
                if interfaces.contains(setup.uplink) {
                    offending.append("radvd (pid \(p.pid)) advertises on \(setup.uplink)")
                    fix.append("kill \(p.pid)")
                }
            case "dnsmasq", "odhcpd":
                evidence.append("\(p.name) pid \(p.pid) runs in this namespace: check that it sends no router advertisements on \(setup.uplink)")
            default: continue
            }
        }
        if offending.isEmpty {
            return CheckResult(id: id, title: title, status: .ok, summary: evidence.isEmpty ? "no radvd, dnsmasq or odhcpd in this network namespace" : "no RA daemon advertises on \(setup.uplink)", evidence: evidence)
        }
        return CheckResult(id: id, title: title, status: .problem, summary: offending.joined(separator: "; ") + ": the ISP's link learns a second router and prefix",
                           evidence: evidence, fix: fix,
                           advice: "remove the `interface \(setup.uplink) { ... }` block from radvd's config and `systemctl restart radvd`: advertise only on LANs, never toward the ISP")
    }

    /// The interface names of a radvd.conf (`interface NAME {`), comments skipped.
    static func radvdInterfaces(_ text: String) -> [String] {
        var out: [String] = []
        for line in text.split(separator: "\n") {
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = code.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "{" })
            for (i, w) in words.enumerated() where w == "interface" && i + 1 < words.count { out.append(String(words[i + 1])) }
        }
        return out
    }

    /// The re6st conflict: a default route learned from router advertisements stops being renewed
    /// once forwarding is on, unless accept_ra is 2; it then expires and the gateway loses the way out.
    func raDefaultRoute() -> CheckResult {
        let id = "ra-default-route", title = "RA-learned default route survives forwarding"
        let learned = ((try? rk?.routes(ipv6: true, table: 254)) ?? []).filter { $0.destination.length == 0 && $0.protocolNumber == 9 }
        guard !learned.isEmpty else { return CheckResult(id: id, title: title, status: .ok, summary: "no IPv6 default route learned from router advertisements") }
        var evidence: [String] = [], fix: [String] = []
        let all = sysctl(try? .ipv6Forwarding(.all))
        for r in learned {
            let dev = name(r.interfaceIndex ?? r.nextHops.first?.interfaceIndex)
            let fwd = sysctl(try? .ipv6Forwarding(.interface(dev))) ?? all
            let accept = sysctl(try? .acceptRA(.interface(dev)))
            evidence.append("\(describe(r)) proto ra; net.ipv6.conf.\(dev).forwarding = \(fwd.map(String.init) ?? "?"), accept_ra = \(accept.map(String.init) ?? "?")")
            if fwd == 1 && accept != 2 && !fix.contains("sysctl -w net.ipv6.conf.\(dev).accept_ra=2") {
                fix.append("sysctl -w net.ipv6.conf.\(dev).accept_ra=2")
            }
        }
        if fix.isEmpty { return CheckResult(id: id, title: title, status: .ok, summary: "accept_ra=2 where a learned default route meets forwarding", evidence: evidence) }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: "the default route was learned from RAs, but with forwarding on and accept_ra below 2 the kernel ignores new RAs: it expires and is not renewed",
                           evidence: evidence, fix: fix,
                           advice: "re6st and Sixgate's tunnel-client ask for the same (accept_ra=2); or set a static default route")
    }

    // MARK: Clients

    func handshakes() -> CheckResult {
        let id = "clients.handshake", title = "clients connected"
        if let skip = needsDaemon(id, title) { return skip }
        let list = clients
        if list.isEmpty {
            return CheckResult(id: id, title: title, status: options.client == nil ? .skipped : .problem,
                               summary: options.client.map { "no client named \($0)" } ?? "no clients enrolled")
        }
        var evidence: [String] = [], stale: [String] = []
        let known = list.filter { $0.lastHandshake != nil }
        if known.isEmpty { return CheckResult(id: id, title: title, status: .skipped, summary: "no handshake records for these clients") }
        // A gateway that came up moments ago has not met again every client it knew (it starts a
        // handshake toward each last endpoint): not a problem before those attempts' retries end
        // (rekey-attempt-time, 90 s). A client with no endpoint never connected at all.
        let uptime = setup.daemonStartedAt.map { options.now - $0 }
        let young = uptime.map { $0 < 90 } ?? false
        for c in known {
            let last = c.lastHandshake ?? 0
            let age = options.now - last
            if last == 0, young, let ep = c.endpoint {
                // Known from before a restart (gatewayd keeps endpoints and reaches out): on its way.
                evidence.append("\(c.name): no handshake yet with this gatewayd (up \(uptime!) s), one started toward \(ep)")
            } else if last == 0 {
                stale.append(c.name)
                evidence.append("\(c.name): never completed a handshake")
            } else if age > options.handshakeStaleAfter {
                stale.append(c.name)
                evidence.append("\(c.name): last handshake \(age) s ago from \(c.endpoint ?? "?")")
            } else {
                evidence.append("\(c.name): handshake \(age) s ago from \(c.endpoint ?? "?")")
            }
        }
        if stale.isEmpty {
            let waiting = evidence.filter { $0.contains("no handshake yet with this gatewayd") }.count
            return CheckResult(id: id, title: title, status: .ok,
                               summary: waiting > 0 ? "\(known.count - waiting) of \(known.count) connected; gatewayd started \(uptime ?? 0) s ago, the others not judged yet"
                                                    : "\(known.count) of \(known.count) connected (handshake within \(options.handshakeStaleAfter) s)", evidence: evidence)
        }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: "not connected: \(stale.joined(separator: ", "))", evidence: evidence,
                           fix: stale.map { "gatewayctl clients show \($0)   # on \($0): bring the tunnel up with this config" },
                           advice: "a client that never connects: check its Endpoint reaches udp/\(setup.listenPort) here and that its PublicKey line is the gateway's; one that stopped: it is down, or lost its carrier")
    }
}

/// A process as /proc shows it.
struct RunningProcess {
    var pid: Int32
    var parent: Int32
    var name: String
    var arguments: [String]

    /// The value of an option such as `-C FILE`, `-CFILE` or `--config=FILE`.
    func option(_ names: [String]) -> String? {
        for (i, a) in arguments.enumerated() {
            for n in names {
                if a == n, i + 1 < arguments.count { return arguments[i + 1] }
                if n.hasPrefix("--"), a.hasPrefix(n + "=") { return String(a.dropFirst(n.count + 1)) }
                if !n.hasPrefix("--"), a.hasPrefix(n), a.count > n.count { return String(a.dropFirst(n.count)) }
            }
        }
        return nil
    }

    /// Processes whose network namespace is the caller's (other namespaces' daemons do not matter).
    static func inThisNetworkNamespace() -> [RunningProcess] {
        func netns(_ pid: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net") }
        guard let mine = netns("self"), let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [RunningProcess] = []
        for e in entries where e.allSatisfy(\.isNumber) {
            guard netns(e) == mine, let pid = Int32(e),
                  let comm = try? String(contentsOfFile: "/proc/\(e)/comm", encoding: .utf8) else { continue }
            let raw = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") ?? Data()
            let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
            let stat = (try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8)) ?? ""
            let afterComm = stat.range(of: ")", options: .backwards).map { stat[$0.upperBound...] } ?? ""
            let parent = afterComm.split(separator: " ").dropFirst().first.flatMap { Int32($0) } ?? 0
            out.append(RunningProcess(pid: pid, parent: parent, name: comm.trimmingCharacters(in: .whitespacesAndNewlines), arguments: Array(args.dropFirst())))
        }
        return out
    }
}
