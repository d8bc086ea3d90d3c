// Kernel mode: instead of answering solicitations itself, keep the kernel's proxy neighbour
// entries (`ip -6 neigh add proxy ADDR dev IF`) equal to a list, or to the active leases of an
// AddressPool store, and turn proxy_ndp on; the kernel then answers. Entries inside the rule's
// prefixes that are not wanted are removed; entries outside them are never touched. The leases
// are read through AddressPool's `LeaseStore` (SQLite by default, whatever a caller opens
// otherwise), again only when its `changeStamp` moved.
import AddressPool
import PacketKit
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

public final class KernelProxy: @unchecked Sendable {
    public let rule: ProxyRule
    /// The interface's index at the last sync (it changes when the interface is made again).
    public private(set) var interfaceIndex: Int32
    let rk: RouteSocket
    let reconciler: KernelReconciler
    let namespace: NetworkNamespace
    /// The entries this object put in place (removed by `removeAll`).
    public private(set) var installed: Set<IPv6Address> = []
    /// Opens the rule's `leaseStore` (read-only): SQLite unless the caller says otherwise.
    public typealias StoreOpener = @Sendable (String) throws(AddressPoolError) -> any LeaseStore
    public static let sqliteStore: StoreOpener = { path throws(AddressPoolError) in try SQLiteLeaseStore(path: path, readOnly: true) }
    let openStore: StoreOpener
    var store: (any LeaseStore)?
    var storeStamp: LeaseChangeStamp?
    var storeLoaded = false
    var storeAddresses: Set<IPv6Address> = []

    public init(rule: ProxyRule, namespace: NetworkNamespace = .current, openStore: @escaping StoreOpener = KernelProxy.sqliteStore) throws(NDPProxyError) {
        self.rule = rule
        self.namespace = namespace
        self.openStore = openStore
        do {
            rk = try RouteSocket(namespace: namespace)
            interfaceIndex = try rk.interfaceIndex(rule.interface)
            reconciler = KernelReconciler(rk)
        } catch {
            throw NDPProxyError(.interface(rule.interface), error)
        }
    }

    /// The addresses that should have entries now: the list (white list semantics) plus the
    /// store's active host leases, inside the rule's prefixes. The store is read again only when
    /// its `changeStamp` moved.
    public func desired() throws(NDPProxyError) -> Set<IPv6Address> {
        var out = rule.addresses.filter { a in rule.prefixes.contains { $0.contains(a) } }
        if let path = rule.leaseStore {
            // Opened on the first sync that finds it (gatewayd may create it after we start).
            if store == nil {
                guard access(path, F_OK) == 0 else { throw NDPProxyError(.leaseStore(path), "no such file", errno: ENOENT) }
                do { store = try openStore(path) } catch { throw NDPProxyError(.leaseStore(path), error) }
            }
            if let store {
                let stamp = store.changeStamp
                if !storeLoaded || stamp == nil || stamp != storeStamp {
                    do {
                        var fresh: Set<IPv6Address> = []
                        for r in try store.loadAll() where r.isActive {
                            guard case .v6(let p) = r.prefix, p.length == 128, rule.prefixes.contains(where: { $0.contains(p.network) }) else { continue }
                            fresh.insert(p.network)
                        }
                        storeAddresses = fresh
                        storeStamp = stamp
                        storeLoaded = true
                    } catch {
                        throw NDPProxyError(.leaseStore(store.location), error)
                    }
                }
            }
            out.formUnion(storeAddresses)
        }
        return out
    }

    /// Makes the kernel's proxy entries on the interface match `desired()`; turns proxy_ndp on.
    @discardableResult
    public func sync() throws(NDPProxyError) -> (added: Int, removed: Int) {
        let want = try desired()
        do {
            // The interface deleted and made again under the same name: a new index, no entries.
            let index = try rk.interfaceIndex(rule.interface)
            if index != interfaceIndex { interfaceIndex = index; installed = [] }
            let state = KernelState(proxyEntries: Set(want.map { ProxyEntry($0, interfaceIndex: index) }),
                                    sysctls: [try .proxyNDP(.interface(rule.interface)): 1])
            let report = try reconciler.converge(to: state, owning: KernelOwnership(proxyInterfaces: [index], proxyPrefixes: rule.prefixes))
            installed = want
            return (report.addedProxyEntries.count, report.removedProxyEntries.count)
        } catch {
            throw NDPProxyError(.proxyEntries(interface: rule.interface), error)
        }
    }

    /// Removes the entries it keeps (on stop), leaving others alone.
    public func removeAll() {
        reconciler.removeAll()
        installed = []
    }
}
