// The doctor's checks of the client prefix's life (issue 24): its source is healthy (a delegated
// prefix renewed before its lifetimes end), nothing of an earlier prefix is still in the kernel
// after its valid lifetime, and which clients have not moved to the new prefix yet.
import PacketKit
import RouteKit

/// The client prefix as the doctor needs it.
public struct DoctorPrefix: Sendable, Equatable {
    public var prefix: IPv6Prefix
    /// "static" or "external".
    public var source: String
    /// Unix seconds when its preferred / valid lifetime ends (nil: no lifetime).
    public var preferredUntil: Int64?
    public var validUntil: Int64?
    /// Earlier prefixes still valid, and when each ends.
    public var retiring: [(prefix: IPv6Prefix, validUntil: Int64)]
    /// Unix seconds of the last prefix change gatewayd made (nil: none since it started).
    public var changedAt: Int64?
    /// Per client, unix seconds when it last fetched its lease (tunnel-client); absent: never.
    public var leaseFetchedAt: [String: Int64]
    /// How a client is given its new config ("gatewayctl clients show NAME").
    public var showCommand: String = "gatewayctl clients show"

    public init(prefix: IPv6Prefix, source: String, preferredUntil: Int64? = nil, validUntil: Int64? = nil,
                retiring: [(prefix: IPv6Prefix, validUntil: Int64)] = [], changedAt: Int64? = nil, leaseFetchedAt: [String: Int64] = [:]) {
        self.prefix = prefix
        self.source = source
        self.preferredUntil = preferredUntil
        self.validUntil = validUntil
        self.retiring = retiring
        self.changedAt = changedAt
        self.leaseFetchedAt = leaseFetchedAt
    }

    public static func == (a: DoctorPrefix, b: DoctorPrefix) -> Bool {
        a.prefix == b.prefix && a.source == b.source && a.preferredUntil == b.preferredUntil && a.validUntil == b.validUntil
            && a.retiring.map(\.prefix) == b.retiring.map(\.prefix) && a.retiring.map(\.validUntil) == b.retiring.map(\.validUntil)
            && a.changedAt == b.changedAt && a.leaseFetchedAt == b.leaseFetchedAt
    }
}

extension KernelView {
    /// The prefix's source: lifetimes not over.
    func prefixSource() -> CheckResult {
        let id = "prefix.source", title = "client prefix source"
        guard let p = setup.prefix else { return CheckResult(id: id, title: title, status: .skipped, summary: "gatewayd is not running: its prefix state is not known") }
        let now = options.now
        guard p.source != "static" else { return CheckResult(id: id, title: title, status: .ok, summary: "prefix \(p.prefix) from the config file (prefix_source = \"static\")") }
        guard let valid = p.validUntil else {
            return CheckResult(id: id, title: title, status: .ok, summary: "prefix \(p.prefix) set from outside without a lifetime (gatewayctl prefix set without --valid)")
        }
        let advice = p.source == "ra"
            ? "The prefix comes from the ISP's router advertisements on \(setup.uplink) (SLAAC). Are they still sent? `rdisc6 \(setup.uplink)` asks for one; gatewayd forwards, so the uplink needs `sysctl -w net.ipv6.conf.\(setup.uplink).accept_ra=2`. When they come again, gatewayd puts the prefix back in service by itself."
            : "A delegated prefix is renewed by the DHCPv6 client (dhcpcd with dist/dhcpcd-hook-sixgate) before its lifetimes end. Look at it: `journalctl -u dhcpcd`, `dhcpcd -U \(setup.uplink)` (the lease it holds); is the ISP's server reachable? When a reply comes again, gatewayd puts the prefix back in service by itself."
        if valid <= now {
            return CheckResult(id: id, title: title, status: .problem,
                               summary: "prefix \(p.prefix) expired \(now - valid) s ago: its valid lifetime ended without a renewal, so the ISP no longer routes it to this gateway",
                               evidence: ["valid until \(valid) (unix time), now \(now)"],
                               fix: p.source == "ra" ? ["sysctl -w net.ipv6.conf.\(setup.uplink).accept_ra=2", "rdisc6 \(setup.uplink)"] : ["systemctl restart dhcpcd"], advice: advice)
        }
        if let preferred = p.preferredUntil, preferred <= now {
            return CheckResult(id: id, title: title, status: .problem,
                               summary: "prefix \(p.prefix): preferred lifetime over \(now - preferred) s ago without a renewal; valid \(valid - now) s more",
                               evidence: ["preferred until \(preferred), valid until \(valid) (unix time), now \(now)"], advice: advice)
        }
        return CheckResult(id: id, title: title, status: .ok,
                           summary: "prefix \(p.prefix): valid \(valid - now) s more" + (p.preferredUntil.map { ", preferred \($0 - now) s more" } ?? ""))
    }

    /// Routes into the tunnel and proxy entries on the uplink of a prefix that is neither the
    /// current one nor one still valid: left over after a renumbering.
    func stalePrefix() -> CheckResult {
        let id = "prefix.stale", title = "nothing of earlier prefixes left"
        if let skip = needsDaemon(id, title) { return skip }
        guard let p = setup.prefix, let t = tunnel else { return CheckResult(id: id, title: title, status: .skipped, summary: "gatewayd's prefix state is not known") }
        let now = options.now
        let valid = [p.prefix] + p.retiring.filter { $0.validUntil > now }.map(\.prefix)
        func inUse(_ a: IPv6Address) -> Bool { valid.contains { $0.contains(a) } || setup.nat64Prefix?.contains(a) == true }
        var evidence: [String] = [], fix: [String] = []
        for r in (try? rk?.routes(ipv6: true, table: 254)) ?? [] where r.interfaceIndex == t.index && r.protocolNumber == setup.routeProtocol {
            guard case .v6(let d) = r.destination, d.length > 0, !inUse(d.network) else { continue }
            evidence.append("route \(d) dev \(t.name) proto \(setup.routeProtocol)")
            fix.append("ip -6 route del \(d) dev \(t.name)")
        }
        // Proxy entries are gatewayd's in kernel mode only (with the responder or off, others may keep some).
        if let u = uplink, setup.ndpProxy == "kernel" {
            for n in (try? rk?.neighbours(ipv6: true, proxy: true)) ?? [] where n.interfaceIndex == u.index {
                guard case .v6(let a) = n.address, !inUse(a) else { continue }
                evidence.append("proxy \(a) dev \(u.name)")
                fix.append("ip -6 neigh del proxy \(a) dev \(u.name)")
            }
        }
        let ended = p.retiring.filter { $0.validUntil <= now }.map(\.prefix)
        if evidence.isEmpty {
            let kept = p.retiring.filter { $0.validUntil > now }
            return CheckResult(id: id, title: title, status: .ok,
                               summary: kept.isEmpty ? "only \(p.prefix) is routed and proxied" : "\(p.prefix), and \(kept.map { "\($0.prefix) (deprecated, \($0.validUntil - now) s more)" }.joined(separator: ", "))")
        }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: "\(evidence.count) route(s) or proxy entr(ies) outside the client prefix \(p.prefix)\(ended.isEmpty ? "" : " (\(ended.map(\.description).joined(separator: ", ")) ended)") are still in the kernel",
                           evidence: evidence, fix: fix,
                           advice: "gatewayd removes an earlier prefix's routes and proxy entries when its valid lifetime ends; these are someone else's or left by a gatewayd that did not stop cleanly (`gatewayctl reload`, or a restart, removes gatewayd's own)")
    }

    /// After a renumbering: the clients that have not fetched their lease since (stock WireGuard
    /// clients, whose addresses sit in their own config, or tunnel-clients that cannot reach the gateway).
    func clientsOnStalePrefix() -> CheckResult {
        let id = "prefix.clients", title = "clients moved to the new prefix"
        guard let p = setup.prefix else { return CheckResult(id: id, title: title, status: .skipped, summary: "gatewayd is not running") }
        guard let changed = p.changedAt else { return CheckResult(id: id, title: title, status: .skipped, summary: "no prefix change since gatewayd started") }
        let behind = clients.filter { (p.leaseFetchedAt[$0.name] ?? 0) < changed }.map(\.name)
        if behind.isEmpty {
            return CheckResult(id: id, title: title, status: .ok, summary: "every client fetched its lease in \(p.prefix) since the change")
        }
        return CheckResult(id: id, title: title, status: .problem,
                           summary: "\(behind.count) client(s) still on the old prefix: \(behind.joined(separator: ", "))",
                           evidence: behind.map { c in "\(c): " + (clients.first { $0.name == c }?.prefixes.map(\.description).joined(separator: " ") ?? "") },
                           fix: behind.map { "\(p.showCommand) \($0)   # its new config; put it on the client" },
                           advice: "Stock WireGuard clients keep the addresses in their own config: give each its new config. tunnel-clients move by themselves when they reach the gateway.")
    }
}
