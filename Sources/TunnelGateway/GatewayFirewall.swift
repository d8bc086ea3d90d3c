// The gateway's firewall toward its clients (`firewall = "on"`, the default): RouteKit's
// `FilterTable` (`table inet sixgate_<tunnel>`) made from the enrolled clients' leases and their
// records' `open` and `isolate`. Applied whole at start (a restart after kill -9 leaves no second
// copy), updated in one transaction per change (tracked connections and counters are kept),
// removed on stop, and put back when something else deletes it (the watcher, SIGHUP).
import AddressPool
import Foundation
import PacketKit
import RouteKit

extension Gateway {
    var filterTable: FilterTable { FilterTable(name: config.natTableName) }

    /// At start (lock held): the whole table, or, with `firewall = "off"`, none (a table left by an
    /// earlier run with the firewall on is removed) and a loud line in the log.
    func startFirewall() throws(GatewayError) {
        guard config.firewall else {
            if (try? filterTable.exists()) == true { try? filterTable.remove() }
            log("WARNING: firewall = \"off\": nothing of Sixgate's filters inbound traffic to clients; their addresses are reachable from everywhere unless your own firewall filters them")
            return
        }
        do { try applyFirewall() } catch { throw .setup("firewall", error) }
        let local = config.effectiveGatewayOpen
        log("firewall: new inbound connections to clients dropped except what they opened (table inet \(filterTable.name); isolate_clients \(config.isolateClients ? "on" : "off"), inbound echo \(config.inboundEcho ? "on" : "off")); clients reach this host only for \(local.isEmpty ? "replies, ICMP and echo" : "replies, ICMP, echo and " + local.map(\.description).joined(separator: " ")); no redirects into the tunnel")
    }

    func applyFirewall() throws(RouteKitError) {
        guard let policy = plan.firewall else { return }
        try filterTable.apply(policy)
        filterApplied = true
        filterHosts = Set(policy.hosts.map(\.name))
    }

    /// After a client change (lock held). A failure is logged: the table keeps its earlier state,
    /// in which a new client's addresses fall under the final drop (closed, not open).
    func updateFirewall() {
        guard filterApplied else { return }
        do { try updateFirewallOrThrow() } catch { log("firewall: not updated: \(error)") }
    }

    /// One client's hosts changed (`applyClient`): only its elements change in the table, in one
    /// transaction. Falls back to the whole update when that fails (a table changed by hand).
    func updateFirewall(old: ProtectedHost?, new: ProtectedHost?) {
        var batch = FirewallBatch()
        batch.add(old: old, new: new)
        updateFirewall(batch)
    }

    /// Several clients' changes in one nft transaction (a group's sync applies what the other
    /// gateways did since the last one together).
    func updateFirewall(_ batch: FirewallBatch) {
        guard filterApplied, !batch.isEmpty else { return }
        do {
            try filterTable.update(adding: batch.adding, removing: batch.removing, interface: config.interface)
            for h in batch.removing { filterHosts.remove(h.name) }
            for h in batch.adding { filterHosts.insert(h.name) }
        } catch {
            updateFirewall()
        }
    }

    func updateFirewallOrThrow() throws(RouteKitError) {
        guard filterApplied, let policy = plan.firewall else { return }
        let names = Set(policy.hosts.map(\.name))
        try filterTable.update(policy, removing: filterHosts.subtracting(names))
        filterHosts = names
    }

    /// The watcher's check (lock held): the table is put back if something deleted it.
    func restoreFirewall() {
        guard filterApplied, (try? filterTable.exists()) == false else { return }
        do {
            try applyFirewall()
            log("firewall: table inet \(filterTable.name) was gone (deleted or flushed by someone else): put back")
        } catch {
            log("firewall: table inet \(filterTable.name) is gone and cannot be put back: \(error); trying again in \(config.watchInterval) s")
        }
    }

    /// A client's part of the plan made again from its record (lock held; its firewall settings
    /// changed, nothing in the kernel did).
    func replacePart(_ name: String) {
        if let old = parts[name] { plan.remove(old) }
        let new = peersByName[name].map { clientPart($0) }
        parts[name] = new
        if let new { plan.add(new) }
    }

    func stopFirewall() {
        guard filterApplied else { return }
        try? filterTable.remove()
        filterApplied = false
        filterHosts = []
    }

    /// The table's counters (empty when the firewall is off or unreadable).
    func firewallCounters() -> [String: FilterCounter] {
        guard filterApplied else { return [:] }
        return (try? filterTable.counters()) ?? [:]
    }

    /// Changes a client's firewall settings: `open` adds openings, `close` removes them ("all"
    /// closes every one), `isolated` sets the exception to isolate_clients. Every value is checked
    /// before anything changes; the record is written, then the table updated (on failure the
    /// record is put back as it was).
    public func setFirewall(client name: String, open: [PortOpening] = [], close: [PortOpening] = [], isolated: Bool? = nil) throws(GatewayError) -> ClientStatus {
        lock.lock(); defer { lock.unlock() }
        let old = try registry.read(name)
        var record = old
        if close.contains(.all) {
            record.open = []
        } else {
            for c in close {
                guard record.open.contains(c) || record.open.contains(where: { $0.transport == c.transport && $0.ports.contains(c.ports.lowerBound) && $0.ports.contains(c.ports.upperBound) }) else {
                    throw .firewall(FilterSpecError(value: c.description, reason: "not open for \(name) (open: \(old.open.isEmpty ? "nothing" : old.open.map(\.description).joined(separator: ", ")))"))
                }
                record.open = Self.subtract(c, from: record.open)
            }
        }
        record.open = PortOpening.normalized(record.open + open)
        if let isolated { record.isolated = isolated }
        try registry.write(record)
        if peersByName[name] != nil {
            peersByName[name] = record
            replacePart(name)
            do { try updateFirewallOrThrow() } catch {
                try? registry.write(old)
                peersByName[name] = old
                replacePart(name)
                throw .setup(SetupFailure("firewall for \(name)", "\(error) (nothing changed)", underlying: error))
            }
        }
        log("client \(name): open \(record.open.isEmpty ? "nothing" : record.open.map(\.description).joined(separator: " ")), \(record.isolated ? "isolated" : "not isolated")")
        var s = status(record, leases(of: name), peers: peerTable())
        s.inboundDropped = firewallCounters()[ProtectedHost(name: name, prefixes: []).counterName]?.packets
        return s
    }

    /// `openings` less `c` (a range inside one opening splits it).
    static func subtract(_ c: PortOpening, from openings: [PortOpening]) -> [PortOpening] {
        var out: [PortOpening] = []
        for o in openings {
            guard o.transport == c.transport, o.ports.overlaps(c.ports) else { out.append(o); continue }
            if o.ports.lowerBound < c.ports.lowerBound, let t = o.transport { out.append(PortOpening(t, ports: o.ports.lowerBound...(c.ports.lowerBound - 1))) }
            if o.ports.upperBound > c.ports.upperBound, let t = o.transport { out.append(PortOpening(t, ports: (c.ports.upperBound + 1)...o.ports.upperBound)) }
        }
        return out
    }
}

/// Firewall changes of several clients, applied together.
struct FirewallBatch {
    var adding: [ProtectedHost] = []
    var removing: [ProtectedHost] = []
    var isEmpty: Bool { adding.isEmpty && removing.isEmpty }
    mutating func add(old: ProtectedHost?, new: ProtectedHost?) {
        guard old != new else { return }
        if let old { removing.append(old) }
        if let new { adding.append(new) }
    }
}
