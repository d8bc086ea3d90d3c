// Reconciliation for daemons: make the kernel hold exactly the desired set of Sixgate's routes,
// touching nothing that another program installed (routes are owned by protocol number).
import PacketKit

/// What a reconciliation changed.
public struct ReconcileResult: Sendable, Equatable {
    public var added: [Route] = []
    public var replaced: [Route] = []
    public var removed: [Route] = []
    public var unchanged = 0
}

extension RouteSocket {
    /// Brings the routes of `protocolNumber` in `table` of one family to exactly `desired`:
    /// missing ones are added, different ones replaced, extra ones removed. Routes of any other
    /// protocol are left alone, so a daemon restarted after a crash converges instead of failing
    /// on "File exists", and never deletes an operator's route.
    public func reconcileRoutes(_ desired: [Route], ipv6: Bool, table: UInt32 = 254,
                                protocolNumber: UInt8 = RouteSocket.sixgateProtocol) throws(RouteKitError) -> ReconcileResult {
        for r in desired where r.protocolNumber != protocolNumber || r.table != table || (Self.family(r.destination) == 10) != ipv6 {
            throw RouteKitError(.invalidArgument, operation: "reconcile", object: r.description,
                                detail: "every desired route must be of protocol \(protocolNumber), table \(table) and the \(ipv6 ? "IPv6" : "IPv4") family")
        }
        let current = try routes(ipv6: ipv6, table: table).filter { $0.protocolNumber == protocolNumber }
        var result = ReconcileResult()
        var byKey = [String: Route]()
        for r in current { byKey[r.key] = r }
        let wanted = Set(desired.map(\.key))
        for r in current where !wanted.contains(r.key) {
            try removeRoute(r)
            result.removed.append(r)
        }
        for r in desired {
            if let have = byKey[r.key] {
                if have.satisfies(r) {
                    result.unchanged += 1
                } else {
                    try replaceRoute(r)
                    result.replaced.append(r)
                }
            } else {
                try addRoute(r)
                result.added.append(r)
            }
        }
        return result
    }
}
