// The doctor's capture-based checks: a short capture on the tunnel and on the uplink at once, then
// what it shows: clients' packets reaching the TUN device (or dropped before it), the ISP router's
// neighbour solicitations for client addresses and whether they were answered, and packet-too-big
// messages (with the static MTU arithmetic of the tunnel's path).
import Foundation
import PacketKit
import RouteKit

/// What one capture window saw.
struct CaptureFindings {
    var seconds: Double = 0
    var skipped: String?
    var tunnelError: String?
    var uplinkError: String?
    var tunnelPackets = 0
    var uplinkPackets = 0
    /// Packets on the TUN device from each client's addresses, by client name.
    var fromClient: [String: Int] = [:]
    /// Neighbour solicitations on the uplink by target, with their senders and the time of the first.
    var solicitations: [IPv6Address: (count: Int, sources: Set<IPv6Address>, first: Double)] = [:]
    /// When the capture ended (seconds since 1970).
    var ended: Double = 0
    /// Neighbour advertisements on the uplink (either direction) by target.
    var advertisements: [IPv6Address: Int] = [:]
    /// Packet-too-big / fragmentation-needed messages: who sent them, about what, which MTU, where seen.
    var tooBig: [(from: String, about: String, mtu: UInt32, on: String)] = []
    var before: DoctorSample?
    var after: DoctorSample?
}

/// Collects findings from one interface's capture; used from that capture's thread only.
final class CaptureCollector: @unchecked Sendable {
    let clients: [DoctorClient]
    var findings = CaptureFindings()
    /// Why the capture stopped early, if it did.
    var error: String?
    init(clients: [DoctorClient]) { self.clients = clients }

    func client(owning a: IPAddress) -> String? {
        for c in clients where c.prefixes.contains(where: { Self.prefix($0, contains: a) }) { return c.name }
        return nil
    }

    static func prefix(_ p: IPPrefix, contains a: IPAddress) -> Bool {
        switch (p, a) {
        case (.v6(let p), .v6(let a)): return p.contains(a)
        case (.v4(let p), .v4(let a)): return p.contains(a)
        default: return false
        }
    }

    /// A packet on the TUN device (raw IP), captured short (the snap length).
    func tunnel(_ b: UnsafeRawBufferPointer, interface: String) {
        findings.tunnelPackets += 1
        if b.count >= 40, b[0] >> 4 == 6 {
            let source = IPv6Address(bytes: UnsafeRawBufferPointer(rebasing: b[8..<24]))
            if let name = client(owning: .v6(source)) { findings.fromClient[name, default: 0] += 1 }
        } else if b.count >= 20, b[0] >> 4 == 4 {
            if let name = client(owning: .v4(IPv4Address(b[12], b[13], b[14], b[15]))) { findings.fromClient[name, default: 0] += 1 }
        }
        tooBig(b, interface: interface)
    }

    /// A frame on the uplink (Ethernet).
    func uplink(_ bytes: UnsafeRawBufferPointer, time: Double, interface: String) {
        findings.uplinkPackets += 1
        guard let e = try? EthernetFrame(bytes) else { return }
        tooBig(e.payload, interface: interface)
        guard e.etherType == .ipv6, let p = try? IPv6Packet(e.payload), p.hasUpperLayerHeader, p.upperLayerProtocol == .icmpv6,
              let m = try? ICMPv6Message(p.upperLayer) else { return }
        if m.type == .neighborSolicitation, let ns = try? NeighborSolicitation(m), !p.source.isUnspecified {
            var entry = findings.solicitations[ns.target] ?? (0, [], time)
            entry.count += 1
            entry.sources.insert(p.source)
            findings.solicitations[ns.target] = entry
        } else if m.type == .neighborAdvertisement, let na = try? NeighborAdvertisement(m) {
            findings.advertisements[na.target, default: 0] += 1
        }
    }

    /// Records an ICMPv6 packet-too-big or an ICMP fragmentation-needed in the raw IP packet `b`.
    /// Read at fixed offsets: captures are cut short (the snap length), and a truncated packet does
    /// not pass PacketKit's length checks.
    func tooBig(_ b: UnsafeRawBufferPointer, interface: String) {
        if b.count >= 48, b[0] >> 4 == 6, b[6] == 58, b[40] == 2 {
            // Type 2 right after the fixed header: MTU at 4, the invoking packet at 8.
            let mtu = UInt32(b[44]) << 24 | UInt32(b[45]) << 16 | UInt32(b[46]) << 8 | UInt32(b[47])
            let about = b.count >= 88 && b[48] >> 4 == 6 ? IPv6Address(bytes: UnsafeRawBufferPointer(rebasing: b[72..<88])).description : "?"
            let from = IPv6Address(bytes: UnsafeRawBufferPointer(rebasing: b[8..<24]))
            findings.tooBig.append((from.description, about, mtu, interface))
        } else if b.count >= 20, b[0] >> 4 == 4, b[9] == 1, b[6] & 0x1f == 0, b[7] == 0 {
            // Type 3 code 4 in an unfragmented packet: next-hop MTU at 6, the invoking header at 8.
            let ihl = Int(b[0] & 0x0f) * 4
            guard ihl >= 20, b.count >= ihl + 8, b[ihl] == 3, b[ihl + 1] == 4 else { return }
            let mtu = UInt32(b[ihl + 6]) << 8 | UInt32(b[ihl + 7])
            let about = b.count >= ihl + 28 ? IPv4Address(b[ihl + 24], b[ihl + 25], b[ihl + 26], b[ihl + 27]).description : "?"
            findings.tooBig.append((IPv4Address(b[12], b[13], b[14], b[15]).description, about, mtu, interface))
        }
    }
}

extension KernelView {
    /// Captures on the tunnel and the uplink at once for `captureSeconds`, sampling the counters before and after.
    func capture() -> CaptureFindings {
        guard options.captureSeconds > 0 else { return CaptureFindings(skipped: "no capture asked for (--capture-seconds 0)") }
        guard setup.daemonRunning, tunnel != nil else { return CaptureFindings(skipped: "gatewayd is not running") }
        let tun = CaptureCollector(clients: clients), up = CaptureCollector(clients: clients)
        var tunCapture: LiveCapture? = nil, upCapture: LiveCapture? = nil
        var result = CaptureFindings(seconds: options.captureSeconds)
        do { tunCapture = try LiveCapture(interface: setup.tunnel, snapLength: 128) } catch { result.tunnelError = error.description }
        do { upCapture = try LiveCapture(interface: setup.uplink, filter: "icmp6 or (icmp and icmp[0] == 3)", snapLength: 1600) } catch { result.uplinkError = error.description }
        result.before = setup.sample?()
        let group = DispatchGroup()
        let seconds = options.captureSeconds
        let tunnelName = setup.tunnel, uplinkName = setup.uplink
        for (capture, collector, isTunnel) in [(tunCapture, tun, true), (upCapture, up, false)] {
            guard let capture else { continue }
            DispatchQueue.global().async(group: group) {
                do {
                    try capture.run(duration: seconds) { packet in
                        if isTunnel { collector.tunnel(packet.bytes, interface: tunnelName) } else { collector.uplink(packet.bytes, time: Double(packet.seconds) + Double(packet.microseconds) / 1e6, interface: uplinkName) }
                        return true
                    }
                } catch {
                    collector.error = "\(error)"
                }
            }
        }
        group.wait()
        result.ended = Date().timeIntervalSince1970
        result.after = setup.sample?()
        result.tunnelPackets = tun.findings.tunnelPackets
        result.fromClient = tun.findings.fromClient
        result.uplinkPackets = up.findings.uplinkPackets
        result.solicitations = up.findings.solicitations
        result.advertisements = up.findings.advertisements
        result.tooBig = tun.findings.tooBig + up.findings.tooBig
        if let e = tun.error { result.tunnelError = e }
        if let e = up.error { result.uplinkError = e }
        return result
    }

    /// Device drop counters that mean "arrived through the tunnel, never reached the TUN device".
    static let dropReasons: [(String, String)] = [
        ("droppedAllowedIPs", "source address outside the sender's allocation"),
        ("droppedInnerMalformed", "malformed inner packet"),
        ("droppedByFilter", "refused by the gateway's filter"),
    ]

    func traffic(_ capture: CaptureFindings) -> CheckResult {
        let id = "traffic.tunnel", title = "clients' traffic reaches the tunnel device"
        if let skip = needsDaemon(id, title) { return skip }
        if let why = capture.skipped { return CheckResult(id: id, title: title, status: .skipped, summary: why) }
        if let e = capture.tunnelError { return CheckResult(id: id, title: title, status: .skipped, summary: "cannot capture: \(e)") }
        var evidence = ["\(capture.tunnelPackets) packets on \(setup.tunnel) in \(formatSeconds(capture.seconds)) s"]
        var drops: [(String, UInt64)] = []
        if let b = capture.before, let a = capture.after {
            for (key, reason) in Self.dropReasons {
                let d = (a.counters[key] ?? 0) &- (b.counters[key] ?? 0)
                if d > 0 && d < 1 << 40 { drops.append((reason, d)); evidence.append("\(key) +\(d) (\(reason))") }
            }
        }
        var ok: [String] = [], bad: [String] = [], fix: [String] = []
        for c in clients {
            let seen = capture.fromClient[c.name] ?? 0
            let rx: UInt64 = {
                guard let b = capture.before?.receivedBytes[c.name], let a = capture.after?.receivedBytes[c.name], a >= b else { return 0 }
                return a - b
            }()
            if seen > 0 {
                ok.append(c.name)
                evidence.append("\(c.name): \(seen) packets from its addresses reached \(setup.tunnel)")
            } else if rx > 0, !drops.isEmpty {
                bad.append(c.name)
                evidence.append("\(c.name): \(rx) bytes arrived through the tunnel, nothing from its addresses reached \(setup.tunnel)")
                fix.append("gatewayctl clients show \(c.name)   # on \(c.name): send from its own addresses: \(c.prefixes.map(\.description).joined(separator: ", "))")
            } else if rx > 0 {
                evidence.append("\(c.name): \(rx) bytes through the tunnel (keepalives), no packets")
            } else {
                evidence.append("\(c.name): no traffic")
            }
        }
        if !bad.isEmpty {
            return CheckResult(id: id, title: title, status: .problem,
                               summary: "traffic from \(bad.joined(separator: ", ")) arrives but is dropped before \(setup.tunnel): " + drops.map { "\($0.1) × \($0.0)" }.joined(separator: ", "),
                               evidence: evidence, fix: fix,
                               advice: "the gateway forwards a client's packet only if its source lies in that client's leases; a wg-quick client needs exactly the Address line gatewayctl printed")
        }
        if !ok.isEmpty { return CheckResult(id: id, title: title, status: .ok, summary: "packets from \(ok.joined(separator: ", ")) reach \(setup.tunnel)", evidence: evidence) }
        return CheckResult(id: id, title: title, status: .skipped,
                           summary: "no traffic from \(options.client ?? "any client") during the \(formatSeconds(capture.seconds)) s capture (ping from a client and run it again)",
                           evidence: evidence)
    }

    /// Seconds a solicitation gets for its answer before the doctor calls it unanswered.
    static let answerGrace = 1.0

    func unansweredSolicitations(_ capture: CaptureFindings) -> CheckResult {
        let id = "ndp.unanswered", title = "ISP solicitations for clients answered"
        let hosts = Dictionary(setup.hostAddresses, uniquingKeysWith: { a, _ in a })
        guard !hosts.isEmpty else { return CheckResult(id: id, title: title, status: .skipped, summary: "no client host addresses on the ISP's link") }
        if let why = capture.skipped { return CheckResult(id: id, title: title, status: .skipped, summary: why) }
        if let e = capture.uplinkError { return CheckResult(id: id, title: title, status: .skipped, summary: "cannot capture: \(e)") }
        let asked = capture.solicitations.filter { hosts[$0.key] != nil }
        if asked.isEmpty {
            return CheckResult(id: id, title: title, status: .ok, summary: "no solicitations for client addresses on \(setup.uplink) in \(formatSeconds(capture.seconds)) s")
        }
        var evidence: [String] = [], unanswered: [IPv6Address] = []
        for (target, s) in asked.sorted(by: { $0.key < $1.key }) {
            let answers = capture.advertisements[target] ?? 0
            var line = "\(target) (\(hosts[target]!)): \(s.count) solicitation\(s.count == 1 ? "" : "s") from \(s.sources.map(\.description).sorted().joined(separator: ", ")), \(answers) advertisement\(answers == 1 ? "" : "s")"
            // A proxy may wait before answering a multicast solicitation (Linux: up to proxy_delay,
            // 0.8 s; RFC 4861 §7.2.8): one seen too late in the window is not judged.
            if answers == 0 && capture.ended - s.first < Self.answerGrace { line += " (too late in the capture to judge)" }
            else if answers == 0 { unanswered.append(target) }
            evidence.append(line)
        }
        if unanswered.isEmpty {
            return CheckResult(id: id, title: title, status: .ok, summary: "\(asked.count) client address\(asked.count == 1 ? "" : "es") solicited, all answered", evidence: evidence)
        }
        var fix: [String] = []
        switch setup.ndpProxy {
        case "responder": fix = ["systemctl restart gatewayd"]
        default:
            fix = ["sysctl -w net.ipv6.conf.\(setup.uplink).proxy_ndp=1"] + unanswered.prefix(20).map { "ip -6 neigh add proxy \($0) dev \(setup.uplink)" }
        }
        let advice: String
        switch setup.ndpProxy {
        case "off": advice = "ipv6.ndp_proxy is off and no NDP proxy answered (ndp-proxy, npd6 or ndppd stopped?): start it again, or let the kernel answer as above, or set ipv6.ndp_proxy = \"kernel\" in \(setup.configPath ?? "the config")"
        case "responder": advice = "gatewayd's own responder did not answer: its packet socket on \(setup.uplink) is gone or the address is not in its list"
        default: advice = "with the kernel's proxy the uplink needs forwarding=1 and proxy_ndp=1, and an entry per address"
        }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: "the ISP's solicitations for \(unanswered.count) client address\(unanswered.count == 1 ? " go" : "es go") unanswered: traffic to \(unanswered.count == 1 ? "it" : "them") never leaves the ISP router",
                           evidence: evidence, fix: fix, advice: advice)
    }

    func mtu(_ capture: CaptureFindings) -> CheckResult {
        let id = "mtu", title = "MTU fits the path (1280 floor)"
        if let skip = needsDaemon(id, title) { return skip }
        guard let t = tunnel else { return CheckResult(id: id, title: title, status: .skipped, summary: "no tunnel") }
        let mtu = t.mtu
        var evidence = ["\(t.name) mtu \(mtu)" + (uplink.map { ", \($0.name) mtu \($0.mtu)" } ?? "")]
        var problems: [String] = [], best: UInt32 = mtu, raise: [String] = []
        if mtu < 1280 {
            problems.append("\(t.name)'s MTU \(mtu) is below IPv6's minimum of 1280 (RFC 8200 §5)")
            best = 1280
        }
        if let u = uplink, u.mtu < mtu {
            problems.append("clients' \(mtu)-byte packets do not fit \(u.name)'s MTU \(u.mtu)")
            best = min(best, max(1280, u.mtu))
        }
        for c in clients {
            guard let ep = c.endpoint, let host = Self.endpointHost(ep), let r = try? rk?.lookupRoute(to: host) else { continue }
            let out = links.first { $0.index == r.interfaceIndex }
            guard let linkMTU = out?.mtu else { continue }
            let path = min(linkMTU, r.mtu ?? linkMTU)
            let overhead: UInt32 = { if case .v4 = host { return 60 }; return 80 }()
            evidence.append("path to \(c.name) (\(host)): dev \(out?.name ?? "?") mtu \(linkMTU)\(r.mtu.map { ", path MTU \($0) learned" } ?? ""): room for \(path > overhead ? path - overhead : 0) inside the tunnel (\(overhead) bytes of IP, UDP and WireGuard headers)")
            if mtu + overhead > path {
                problems.append("the tunnel's \(mtu)-byte packets need \(mtu + overhead) bytes on the way to \(c.name), the path carries \(path)")
                if path >= 1280 + overhead { best = min(best, path - overhead) } else if let o = out { raise.append("ip link set \(o.name) mtu \(1280 + overhead)") }
            }
        }
        if capture.skipped == nil {
            for pkt in capture.tooBig.prefix(10) {
                evidence.append("packet too big from \(pkt.from) about \(pkt.about): mtu \(pkt.mtu) (seen on \(pkt.on))")
            }
            let narrow = capture.tooBig.filter { $0.mtu < mtu && $0.mtu >= 68 }.map(\.mtu).min()
            if let narrow {
                problems.append("a link on the way carries only \(narrow) bytes (packet-too-big seen)")
                best = min(best, max(1280, narrow))
            }
        }
        if problems.isEmpty {
            // No client endpoint known: the paths to clients were not checked, and the summary says so.
            let paths = clients.filter { $0.endpoint != nil }.count
            let summary = paths == 0 ? "\(t.name) mtu \(mtu) fits the uplink; the paths to clients could not be checked (no client endpoint known yet)"
                                     : "\(t.name) mtu \(mtu) fits the uplink and the paths to \(paths) client(s)"
            return CheckResult(id: id, title: title, status: .ok, summary: summary, evidence: evidence)
        }
        var fix = raise
        if best != mtu { fix.append("ip link set \(t.name) mtu \(best)") }
        return CheckResult(id: id, title: title, status: .problem, summary: problems.joined(separator: "; "), evidence: evidence, fix: fix,
                           advice: "then set mtu = \(best) in \(setup.configPath ?? "gatewayd's config") and MTU = \(best) in wg-quick clients (tunnel-client takes it from the lease); never below 1280, IPv6's floor")
    }

    /// The address part of "198.51.100.130:41234" or "[2001:db8::1]:51820".
    static func endpointHost(_ s: String) -> IPAddress? {
        if s.hasPrefix("["), let end = s.firstIndex(of: "]") { return IPAddress(String(s[s.index(after: s.startIndex)..<end])) }
        if let colon = s.lastIndex(of: ":"), s.filter({ $0 == ":" }).count == 1 { return IPAddress(String(s[..<colon])) }
        return IPAddress(s)
    }
}

func formatSeconds(_ s: Double) -> String { s == s.rounded() ? String(Int(s)) : String(format: "%.1f", s) }

extension KernelView {
    /// NAT64: the translator's interface is there and up, and nothing it dropped during the capture
    /// went unexplained (the counters before and after, as gatewayctl status shows them).
    func nat64(_ capture: CaptureFindings) -> CheckResult {
        let id = "nat64", title = "NAT64 translates what clients send"
        guard let prefix = setup.nat64Prefix, let name = setup.nat64Interface else {
            return CheckResult(id: id, title: title, status: .skipped, summary: "no NAT64 configured")
        }
        guard setup.daemonRunning else { return CheckResult(id: id, title: title, status: .skipped, summary: "gatewayd is not running") }
        var evidence = ["prefix \(prefix) on \(name)"]
        guard let link = links.first(where: { $0.name == name }), link.isUp else {
            return CheckResult(id: id, title: title, status: .problem, summary: "the translator's interface \(name) is \(links.contains { $0.name == name } ? "down" : "missing"): all NAT64 traffic is lost",
                               evidence: evidence, fix: [setup.restartCommand])
        }
        guard let before = capture.before, let after = capture.after else {
            return CheckResult(id: id, title: title, status: .ok, summary: "\(name) is up (no capture: drops not watched)", evidence: evidence)
        }
        var dropped: [String] = []
        for (key, value) in after.counters where key.hasPrefix("nat64Dropped-") && key != "nat64Dropped-multicast" {
            let d = value &- (before.counters[key] ?? 0)
            if d > 0 { dropped.append("\(key.dropFirst("nat64Dropped-".count)) \(d)") }
        }
        let translated = (after.counters["nat64Translated6to4"] ?? 0) &- (before.counters["nat64Translated6to4"] ?? 0)
        evidence.append("during \(Int(capture.seconds)) s: \(translated) packet(s) translated to IPv4, dropped: \(dropped.isEmpty ? "none" : dropped.sorted().joined(separator: ", "))")
        guard !dropped.isEmpty else { return CheckResult(id: id, title: title, status: .ok, summary: "\(name) is up and drops nothing", evidence: evidence) }
        let wkp = prefix == IPv6Prefix(containing: IPv6Address(rawValue: 0x0064_ff9b << 96), length: 96)
        let unmappable = dropped.contains { $0.hasPrefix("unmappable") }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: "the translator drops clients' packets (\(dropped.sorted().joined(separator: ", ")))\(unmappable && wkp ? ": most likely non-global IPv4 destinations behind the Well-Known Prefix" : "")",
                           evidence: evidence,
                           fix: unmappable && wkp ? ["set [nat64] prefix = \"64:ff9b:1::/96\" (or another network-specific prefix) in \(setup.configPath ?? "gatewayd.toml")", setup.restartCommand] : [],
                           advice: "gatewayd's log names each drop class every 10 s with the last packet's addresses; "
                               + (wkp ? "the Well-Known Prefix \(prefix) carries only global IPv4 addresses (RFC 6052 §3.1), so private and documentation addresses need a network-specific prefix (RFC 8215's 64:ff9b:1::/48 is for local use)" : "see docs/doctor.md"))
    }
}
