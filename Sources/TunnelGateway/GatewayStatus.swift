// What `gatewayctl status` shows of a running gateway: its clients with their leases and peers,
// and every counter (device, firewall, translator, lease service).
import AddressPool
import Foundation
import RouteKit
import SixgatePostgres
import Translator
import TunnelCore

extension Gateway {
    /// The device's peers by key, read once per status call.
    func peerTable() -> [Bytes32: PeerStatus] {
        Dictionary((device?.peerStatuses() ?? []).map { ($0.configuration.publicKey, $0) }, uniquingKeysWith: { a, _ in a })
    }

    func status(_ c: ClientRecord, _ leases: [Lease], peers: [Bytes32: PeerStatus]) -> ClientStatus {
        Self.clientStatus(c, leases: leases, peer: Bytes32(base64: c.publicKey).flatMap { peers[$0] })
    }

    /// A client as status shows it, from its leases and its CLAT's (`leases(of:)`, or the store's
    /// records) and, when running, its peer. Shared by the live and the offline status.
    static func clientStatus(_ c: ClientRecord, leases: [Lease], peer: PeerStatus?) -> ClientStatus {
        let own = leases.filter { $0.client == c.name }, clat = leases.filter { $0.client == clatKey(c.name) }
        return ClientStatus(name: c.name, publicKey: c.publicKey, addresses: own.filter { $0.pool != nat64Pool }.map(\.prefix.description),
                            nat64Address: own.first { $0.pool == nat64Pool }?.prefix.description,
                            clatAddress: clat.first { $0.pool == v6Pool }?.prefix.description,
                            clatNAT64Address: clat.first { $0.pool == nat64Pool }?.prefix.description,
                            endpoint: peer?.configuration.endpoint?.description, lastHandshake: peer?.lastHandshake.seconds ?? 0,
                            receivedBytes: peer?.receivedBytes ?? 0, sentBytes: peer?.sentBytes ?? 0,
                            open: c.open.map(\.description), isolated: c.isolated)
    }

    public func status() throws(GatewayError) -> GatewayStatus {
        lock.lock(); defer { lock.unlock() }
        let peers = peerTable()
        let drops = firewallCounters()
        let npt = config.nptPrefix == nil ? nil : planner
        let sessions = (registry as? PostgresClientStore).flatMap { try? $0.sessions() } ?? [:]
        // A group's clients as this gateway holds them (what it serves, also while the database is away).
        let records = registry is PostgresClientStore ? peersByName.values.sorted { $0.name < $1.name } : try registry.all()
        let clients = records.map { c in
            var s = status(c, leases(of: c.name), peers: peers)
            s.inboundDropped = drops[ProtectedHost(name: c.name, prefixes: []).counterName]?.packets
            s.leaseFetchedAt = leaseFetchedAt[c.name]
            if let held = sessions[c.name] { s.gateway = held.gateway; s.gatewayHandshake = held.at }
            if let p = npt {
                s.outsideAddresses = allocator.leases(of: c.name).flatMap { l -> [String] in
                    guard l.pool == Self.v6Pool, case .v6(let x) = l.prefix, x.length == 128 else { return [] }
                    return p.outsideAddresses(x.network).map(\.description)
                }
            }
            return s
        }
        var counters: [String: UInt64] = [:]
        if let other = drops[FilterTable.otherCounter] { counters["firewallDroppedOther"] = other.packets }
        if let input = drops[FilterTable.inputCounter] { counters["firewallDroppedToGateway"] = input.packets }
        if let redirects = drops[FilterTable.redirectCounter] { counters["firewallDroppedRedirects"] = redirects.packets }
        if filterApplied { counters["firewallDroppedClients"] = drops.filter { $0.key.hasPrefix("in_") }.values.reduce(0) { $0 + $1.packets } }
        if let s = device?.statistics {
            for child in Mirror(reflecting: s).children { if let l = child.label, let v = child.value as? UInt64 { counters[l] = v } }
        }
        if let t = translator?.statistics {
            counters["nat64Translated4to6"] = t.translation.translated4to6
            counters["nat64Translated6to4"] = t.translation.translated6to4
            counters["nat64SuperPackets"] = t.translation.superPackets
            counters["nat64ErrorsSent"] = t.translation.errorsSent
            counters["nat64WriteErrors"] = t.writeErrors
            for r in TranslationDrop.allCases { counters["nat64Dropped-\(r)"] = t.translation.dropped[r] }
        }
        counters["leaseRequests"] = leaseStats.requests
        counters["leaseReplies"] = leaseStats.replies
        counters["leaseRefusals"] = leaseStats.refusals
        counters["leaseDropped"] = leaseStats.dropped
        counters["leaseNotices"] = leaseStats.notices
        var s = GatewayStatus(interface: config.interface, publicKey: publicKey.base64, listenPort: device?.listenPort ?? config.listenPort,
                              endpoint: config.endpoint, clients: clients, counters: counters, startedAt: startedAt.map { Int64($0.timeIntervalSince1970) })
        s.prefix = config.ipv6Prefix.description
        s.prefixSource = config.prefixSource.rawValue
        s.prefixPreferredUntil = prefixState.preferredUntil
        s.prefixValidUntil = prefixState.validUntil
        s.retiringPrefixes = prefixState.retiring.isEmpty ? nil : prefixState.retiring
        s.prefixChangedAt = prefixChangedAt
        return s
    }
}
