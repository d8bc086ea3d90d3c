// The kernel's proxy neighbour entries (`ip -6 neigh add proxy ADDR dev IF`) brought in line with a
// set: the one reconciliation gatewayd's start, its watcher and ndp-proxy's kernel mode all use
// (issue 27: it existed three times).
import PacketKit
import RouteKit

public enum ProxyEntries {
    /// Makes the proxy entries on `interfaceIndex` hold `want`: adds the missing ones and, with
    /// `removingOthers`, removes the others for which `inside` is true (entries outside it, someone
    /// else's, are never touched). Returns what it added and removed, for the log.
    @discardableResult
    public static func reconcile(_ want: Set<IPv6Address>, on interfaceIndex: Int32, inside: (IPv6Address) -> Bool,
                                 removingOthers: Bool = true, with rk: RouteSocket) throws(RouteKitError) -> (added: [IPv6Address], removed: [IPv6Address]) {
        let existing = Set(try rk.neighbours(ipv6: true, proxy: true).compactMap { n -> IPv6Address? in
            guard n.interfaceIndex == interfaceIndex, case .v6(let a) = n.address else { return nil }
            return a
        })
        var added: [IPv6Address] = [], removed: [IPv6Address] = []
        if removingOthers {
            for a in existing.sorted(by: { $0.rawValue < $1.rawValue }) where !want.contains(a) && inside(a) {
                try rk.removeProxyNeighbour(a, interfaceIndex: interfaceIndex)
                removed.append(a)
            }
        }
        for a in want.sorted(by: { $0.rawValue < $1.rawValue }) where !existing.contains(a) {
            try rk.ensureProxyNeighbour(a, interfaceIndex: interfaceIndex)
            added.append(a)
        }
        return (added, removed)
    }
}
