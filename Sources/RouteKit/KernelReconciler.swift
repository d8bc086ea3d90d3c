// The one reconciler (issue 27): a daemon says which kernel objects it wants (a `KernelState`,
// made by a pure planner) and the reconciler makes the kernel hold them. gatewayd uses it at start
// (`converge`), on every client change (`update`), in its watcher (`restore`) and at stop
// (`removeAll`); tunnel-client for each lease; ndp-proxy's kernel mode for its proxy entries.
//
// Ownership rules: a route is ours when its protocol is Sixgate's; a proxy entry when it sits on
// an interface and inside the prefixes the caller names in `KernelOwnership`; an address only
// when this reconciler wanted it. Nothing else is ever removed.
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// A proxy neighbour entry (`ip -6 neigh add proxy ADDR dev IF`).
public struct ProxyEntry: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv6Address
    public var interfaceIndex: Int32
    public init(_ address: IPv6Address, interfaceIndex: Int32) {
        self.address = address
        self.interfaceIndex = interfaceIndex
    }
    public var description: String { "proxy \(address) dev #\(interfaceIndex)" }
}

/// One object the reconciler handles.
public enum KernelObject: Hashable, Sendable, CustomStringConvertible {
    case address(InterfaceAddress)
    case route(Route)
    case proxyEntry(ProxyEntry)
    case sysctl(SysctlKey, Int)

    public var description: String {
        switch self {
        case .address(let a): return "address \(a) dev #\(a.interfaceIndex)"
        case .route(let r): return "route \(r)"
        case .proxyEntry(let p): return p.description
        case .sysctl(let k, let v): return "\(k) = \(v)"
        }
    }
}

/// The kernel objects a daemon wants. Pure data: planners make it, `KernelReconciler` applies it.
public struct KernelState: Hashable, Sendable {
    public var addresses: Set<InterfaceAddress> = []
    public var routes: Set<Route> = []
    public var proxyEntries: Set<ProxyEntry> = []
    /// Values to hold (forwarding, proxy_ndp). Never set back when no longer wanted: a sysctl may
    /// serve others on the host.
    public var sysctls: [SysctlKey: Int] = [:]

    public init(addresses: Set<InterfaceAddress> = [], routes: Set<Route> = [], proxyEntries: Set<ProxyEntry> = [], sysctls: [SysctlKey: Int] = [:]) {
        self.addresses = addresses
        self.routes = routes
        self.proxyEntries = proxyEntries
        self.sysctls = sysctls
    }

    /// Adds `other`'s objects.
    public mutating func formUnion(_ other: KernelState) {
        addresses.formUnion(other.addresses)
        routes.formUnion(other.routes)
        proxyEntries.formUnion(other.proxyEntries)
        sysctls.merge(other.sysctls) { _, new in new }
    }

    /// Takes `other`'s objects out.
    public mutating func subtract(_ other: KernelState) {
        addresses.subtract(other.addresses)
        routes.subtract(other.routes)
        proxyEntries.subtract(other.proxyEntries)
        for k in other.sysctls.keys { sysctls[k] = nil }
    }

    /// Every object as one set (what `update` diffs).
    public var objects: Set<KernelObject> {
        var out = Set<KernelObject>()
        for a in addresses { out.insert(.address(a)) }
        for r in routes { out.insert(.route(r)) }
        for p in proxyEntries { out.insert(.proxyEntry(p)) }
        for (k, v) in sysctls { out.insert(.sysctl(k, v)) }
        return out
    }
}

/// What, beyond the objects it asked for, a full `converge` may remove: stale objects of an
/// earlier run (a crash, a configuration change).
public struct KernelOwnership: Sendable {
    /// Families (true: IPv6) whose routes of `protocolNumber` in the main table are all ours.
    public var routeFamilies: Set<Bool>
    public var protocolNumber: UInt8
    /// Proxy entries on these interfaces inside these prefixes are ours.
    public var proxyInterfaces: Set<Int32>
    public var proxyPrefixes: [IPv6Prefix]

    public init(routeFamilies: Set<Bool> = [], protocolNumber: UInt8 = RouteSocket.sixgateProtocol,
                proxyInterfaces: Set<Int32> = [], proxyPrefixes: [IPv6Prefix] = []) {
        self.routeFamilies = routeFamilies
        self.protocolNumber = protocolNumber
        self.proxyInterfaces = proxyInterfaces
        self.proxyPrefixes = proxyPrefixes
    }
}

/// Why one object could not be put in place or taken away.
public struct ReconcileFailure: Error, Sendable, CustomStringConvertible {
    public enum Action: String, Sendable { case add, remove, set, read }
    public var action: Action
    public var object: KernelObject
    public var underlying: any Error & Sendable
    public var description: String { "\(action.rawValue) \(object): \(underlying)" }
}

/// What one reconciliation changed, and what it could not.
public struct ReconcileReport: Sendable, CustomStringConvertible {
    public var added: [KernelObject] = []
    public var removed: [KernelObject] = []
    public var failures: [ReconcileFailure] = []
    public init() {}
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && failures.isEmpty }
    public var addedRoutes: [Route] { added.compactMap { if case .route(let r) = $0 { r } else { nil } } }
    public var removedRoutes: [Route] { removed.compactMap { if case .route(let r) = $0 { r } else { nil } } }
    public var addedProxyEntries: [ProxyEntry] { added.compactMap { if case .proxyEntry(let p) = $0 { p } else { nil } } }
    public var removedProxyEntries: [ProxyEntry] { removed.compactMap { if case .proxyEntry(let p) = $0 { p } else { nil } } }
    public var setSysctls: [SysctlKey] { added.compactMap { if case .sysctl(let k, _) = $0 { k } else { nil } } }
    /// "2 added, 1 removed" for a log line.
    public var description: String {
        "\(added.count) added, \(removed.count) removed" + (failures.isEmpty ? "" : ", \(failures.count) failed (\(failures.prefix(2).map(\.description).joined(separator: "; "))\(failures.count > 2 ? "; ..." : ""))")
    }
}

/// Makes the kernel hold a `KernelState`. Not thread-safe: its owner serializes calls.
public final class KernelReconciler: @unchecked Sendable {
    public let rk: RouteSocket
    public var namespace: NetworkNamespace { rk.namespace }
    /// The state last asked for. `restore` holds the kernel to it; what failed to go in stays in it.
    public private(set) var desired = KernelState()
    /// Objects of `desired` that could not be put in place (retried by the next `update` and `restore`).
    public private(set) var pending: Set<KernelObject> = []

    public init(_ rk: RouteSocket) { self.rk = rk }

    /// Full reconciliation against what the kernel holds: every wanted object in place, and every
    /// object `owning` calls ours that is not wanted removed. Stops at the first failure and throws it
    /// (a daemon's start cannot go on half set up); `desired` is then still the new state, so a
    /// later `restore` completes it.
    @discardableResult
    public func converge(to state: KernelState, owning: KernelOwnership = KernelOwnership()) throws(ReconcileFailure) -> ReconcileReport {
        var report = ReconcileReport()
        desired = state
        pending = state.objects
        // Sysctls first: forwarding before the routes that need it.
        for (k, v) in state.sysctls.sorted(by: { $0.key.name < $1.key.name }) { try set(k, v, &report, always: false) }
        // Routes of owned families: Sixgate's protocol routes brought to exactly the wanted ones.
        for v6 in owning.routeFamilies.sorted(by: { !$0 && $1 }) {
            let wanted = state.routes.filter { ($0.destination.isIPv6) == v6 && $0.protocolNumber == owning.protocolNumber && $0.table == 254 }
            do {
                let r = try rk.reconcileRoutes(Self.ordered(wanted), ipv6: v6, protocolNumber: owning.protocolNumber)
                report.added += (r.added + r.replaced).map { .route($0) }
                report.removed += r.removed.map { .route($0) }
                for w in wanted { pending.remove(.route(w)) }
            } catch {
                throw ReconcileFailure(action: .add, object: .route(wanted.first ?? Route(destination: v6 ? .v6(IPv6Prefix("::/0")!) : .v4(IPv4Prefix("0.0.0.0/0")!))), underlying: error)
            }
        }
        // Proxy entries on owned interfaces inside owned prefixes that are not wanted.
        if !owning.proxyInterfaces.isEmpty {
            let present: [ProxyEntry]
            do { present = try proxyEntries() } catch { throw ReconcileFailure(action: .read, object: .proxyEntry(ProxyEntry(IPv6Address(rawValue: 0), interfaceIndex: 0)), underlying: error) }
            for p in present.sorted(by: { $0.address.rawValue < $1.address.rawValue })
            where owning.proxyInterfaces.contains(p.interfaceIndex) && !state.proxyEntries.contains(p) && owning.proxyPrefixes.contains(where: { $0.contains(p.address) }) {
                do { try rk.removeProxyNeighbour(p.address, interfaceIndex: p.interfaceIndex) } catch { throw ReconcileFailure(action: .remove, object: .proxyEntry(p), underlying: error) }
                report.removed.append(.proxyEntry(p))
            }
            let have = Set(present)
            for p in state.proxyEntries where have.contains(p) { pending.remove(.proxyEntry(p)) }
        }
        // Addresses and routes of other families that are there already are not touched again.
        if !state.addresses.isEmpty, let have = try? rk.addresses() {
            for a in state.addresses where have.contains(where: { $0.interfaceIndex == a.interfaceIndex && $0.address == a.address && $0.prefixLength == a.prefixLength }) {
                pending.remove(.address(a))
            }
        }
        for v6 in Set(state.routes.map(\.destination.isIPv6)).subtracting(owning.routeFamilies) {
            let present = (try? rk.routes(ipv6: v6, table: 254)) ?? []
            for r in state.routes where r.destination.isIPv6 == v6 && present.contains(where: { $0.satisfies(r) }) { pending.remove(.route(r)) }
        }
        try addPending(&report, throwing: true)
        return report
    }

    /// An incremental change: what was wanted before and is not now is removed, what is new (and
    /// what failed earlier) is put in place. Failures are reported, not thrown, and stay pending.
    /// Removals go first, least specific routes first; additions most specific first, so no moment
    /// has a broad route catching what a narrower one should.
    @discardableResult
    public func update(to state: KernelState) -> ReconcileReport {
        apply(adding: state, removing: desired)
    }

    /// An incremental change of known size (one client's objects): `removing` leaves the wanted
    /// state and the kernel, `adding` joins them. Work proportional to the two, not to the whole
    /// state. Failures are reported and stay pending, as with `update`.
    @discardableResult
    public func apply(adding: KernelState, removing: KernelState) -> ReconcileReport {
        var report = ReconcileReport()
        var gone = removing
        gone.subtract(adding)
        desired.subtract(gone)
        let goneObjects = gone.objects
        pending.subtract(goneObjects)
        for r in Self.ordered(gone.routes).reversed() { remove(.route(r), &report) { () throws(RouteKitError) in try rk.removeRoute(r) } }
        for p in gone.proxyEntries { remove(.proxyEntry(p), &report) { () throws(RouteKitError) in try rk.removeProxyNeighbour(p.address, interfaceIndex: p.interfaceIndex) } }
        // An address that stays with other attributes (deprecated now) is changed in place by
        // `ensureAddress`, not removed and added again.
        for a in gone.addresses where !adding.addresses.contains(where: { $0.isSameAddress(as: a) }) {
            remove(.address(a), &report) { () throws(RouteKitError) in try rk.removeAddress(a) }
        }
        var fresh = adding
        fresh.subtract(desired)
        desired.formUnion(adding)
        pending.formUnion(fresh.objects)
        try? addPending(&report, throwing: false)
        return report
    }

    /// The watcher's check: every wanted object that is missing from the kernel (someone's `ip route
    /// flush`, a link that went down, a sysctl reset) is put back. Nothing is removed.
    @discardableResult
    public func restore() -> ReconcileReport {
        var report = ReconcileReport()
        for (k, v) in desired.sysctls.sorted(by: { $0.key.name < $1.key.name }) where (try? Sysctl.read(k, in: namespace)) != v {
            pending.insert(.sysctl(k, v))
        }
        if !desired.routes.isEmpty {
            var present: [Route] = []
            for (v6, table) in Set(desired.routes.map { Pair(v6: $0.destination.isIPv6, table: $0.table) }).map({ ($0.v6, $0.table) }) {
                present += (try? rk.routes(ipv6: v6, table: table)) ?? []
            }
            // Indexed by the kernel's key: one pass, not one scan of the table per wanted route
            // (at 50,000 routes the scans held gatewayd's lock for seconds every watch interval).
            let byKey = Dictionary(grouping: present, by: \.key)
            for r in desired.routes where !(byKey[r.key]?.contains(where: { $0.satisfies(r) }) ?? false) { pending.insert(.route(r)) }
        }
        if !desired.proxyEntries.isEmpty, let have = try? Set(proxyEntries()) {
            for p in desired.proxyEntries where !have.contains(p) { pending.insert(.proxyEntry(p)) }
        }
        if !desired.addresses.isEmpty, let have = try? rk.addresses() {
            for a in desired.addresses where !have.contains(where: { $0.interfaceIndex == a.interfaceIndex && $0.address == a.address && $0.prefixLength == a.prefixLength }) {
                pending.insert(.address(a))
            }
        }
        try? addPending(&report, throwing: false)
        return report
    }

    /// Says that a wanted object is no longer in the kernel (its owner took it out, e.g. for a
    /// route lookup without it): the next `update` or `restore` puts it back.
    public func noteMissing(_ o: KernelObject) {
        if desired.objects.contains(o) { pending.insert(o) }
    }

    /// Takes away every wanted route, proxy entry and address (sysctls stay); errors ignored.
    public func removeAll() {
        var report = ReconcileReport()
        for r in Self.ordered(Array(desired.routes)).reversed() { remove(.route(r), &report) { () throws(RouteKitError) in try rk.removeRoute(r) } }
        for p in desired.proxyEntries { remove(.proxyEntry(p), &report) { () throws(RouteKitError) in try rk.removeProxyNeighbour(p.address, interfaceIndex: p.interfaceIndex) } }
        for a in desired.addresses { remove(.address(a), &report) { () throws(RouteKitError) in try rk.removeAddress(a) } }
        desired = KernelState()
        pending = []
    }

    // MARK: Internals

    /// Most specific first, then by text (a stable order for logs and tests).
    static func ordered<S: Sequence>(_ routes: S) -> [Route] where S.Element == Route {
        routes.sorted { a, b in
            a.destination.length != b.destination.length ? a.destination.length > b.destination.length : a.description < b.description
        }
    }

    func proxyEntries() throws(RouteKitError) -> [ProxyEntry] {
        try rk.neighbours(ipv6: true, proxy: true).compactMap { n in
            guard case .v6(let a) = n.address else { return nil }
            return ProxyEntry(a, interfaceIndex: n.interfaceIndex)
        }
    }

    /// Puts the pending objects in place: sysctls, addresses, routes (most specific first), proxy entries.
    func addPending(_ report: inout ReconcileReport, throwing: Bool) throws(ReconcileFailure) {
        let todo = pending
        for case .sysctl(let k, let v) in todo.sorted(by: { $0.description < $1.description }) { try set(k, v, &report, always: true, throwing: throwing) }
        for case .address(let a) in todo.sorted(by: { $0.description < $1.description }) {
            try add(.address(a), &report, throwing: throwing) { () throws(RouteKitError) in try rk.ensureAddress(a) }
        }
        for r in Self.ordered(todo.compactMap { if case .route(let r) = $0 { r } else { nil } }) {
            try add(.route(r), &report, throwing: throwing) { () throws(RouteKitError) in try rk.ensureRoute(r) }
        }
        for case .proxyEntry(let p) in todo.sorted(by: { $0.description < $1.description }) {
            try add(.proxyEntry(p), &report, throwing: throwing) { () throws(RouteKitError) in try rk.ensureProxyNeighbour(p.address, interfaceIndex: p.interfaceIndex) }
        }
    }

    func add(_ o: KernelObject, _ report: inout ReconcileReport, throwing: Bool, _ body: () throws(RouteKitError) -> Void) throws(ReconcileFailure) {
        do {
            try body()
            pending.remove(o)
            report.added.append(o)
        } catch {
            let f = ReconcileFailure(action: .add, object: o, underlying: error)
            if throwing { throw f }
            report.failures.append(f)
        }
    }

    func remove(_ o: KernelObject, _ report: inout ReconcileReport, _ body: () throws(RouteKitError) -> Void) {
        do {
            try body()
            report.removed.append(o)
        } catch where error.code == .notFound || error.code == .noSuchInterface {
            // Gone already, or with its interface.
        } catch {
            report.failures.append(ReconcileFailure(action: .remove, object: o, underlying: error))
        }
    }

    /// Sets a sysctl when it differs (`always`: the caller knows it does).
    func set(_ k: SysctlKey, _ v: Int, _ report: inout ReconcileReport, always: Bool, throwing: Bool = true) throws(ReconcileFailure) {
        do {
            if !always, (try? Sysctl.read(k, in: namespace)) == v { pending.remove(.sysctl(k, v)); return }
            try Sysctl.write(k, v, in: namespace)
            pending.remove(.sysctl(k, v))
            report.added.append(.sysctl(k, v))
        } catch {
            let f = ReconcileFailure(action: .set, object: .sysctl(k, v), underlying: error)
            if throwing { throw f }
            report.failures.append(f)
        }
    }
}

extension IPPrefix {
    var isIPv6: Bool { if case .v6 = self { true } else { false } }
}

/// A route family and table, as `restore` reads them.
private struct Pair: Hashable { let v6: Bool; let table: UInt32 }
