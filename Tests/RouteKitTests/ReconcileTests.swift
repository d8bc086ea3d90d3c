import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import RouteKit

@Suite("Reconcile", .enabled(if: isRoot, "needs root for network namespaces"))
struct ReconcileTests {
    @Test func convergesOnTheDesiredSetAndTouchesOnlyItsOwnRoutes() throws {
        let pair = try NamespacePair(tag: "recon")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)
        let keep = Route(destination: try IPPrefix.parse("2001:db8:a::/64"), interfaceIndex: idx)
        let change = Route(destination: try IPPrefix.parse("2001:db8:b::/64"), interfaceIndex: idx)
        let stale = Route(destination: try IPPrefix.parse("2001:db8:c::/64"), interfaceIndex: idx)
        let new = Route(destination: try IPPrefix.parse("2001:db8:d::/64"), gateway: try IPAddress.parse("2001:db8:5::2"))
        // What a crashed daemon left behind, plus an operator's own route (proto static).
        for r in [keep, change, stale] { try rk.addRoute(r) }
        try pair.exec(pair.left, ["ip", "-6", "route", "add", "2001:db8:e::/64", "dev", pair.leftInterface, "proto", "static"])
        var changed = change
        changed.nextHops = [NextHop(gateway: try IPAddress.parse("2001:db8:5::2"))]

        let result = try rk.reconcileRoutes([keep, changed, new], ipv6: true)
        #expect(result.unchanged == 1)
        #expect(result.replaced.map(\.destination) == [changed.destination])
        #expect(result.added.map(\.destination) == [new.destination])
        #expect(result.removed.map(\.destination) == [stale.destination])

        let ip = try pair.exec(pair.left, ["ip", "-6", "route"]).stdout
        #expect(ip.contains("2001:db8:a::/64 dev \(pair.leftInterface) proto 74"))
        #expect(ip.contains("2001:db8:b::/64 via 2001:db8:5::2"))
        #expect(ip.contains("2001:db8:d::/64 via 2001:db8:5::2"))
        #expect(!ip.contains("2001:db8:c::/64"))
        #expect(ip.contains("2001:db8:e::/64 dev \(pair.leftInterface) proto static"))

        // A second pass changes nothing (idempotent).
        let again = try rk.reconcileRoutes([keep, changed, new], ipv6: true)
        #expect(again == ReconcileResult(unchanged: 3))
        // An empty desired set removes only Sixgate's routes.
        #expect(try rk.reconcileRoutes([], ipv6: true).removed.count == 3)
        #expect(try pair.exec(pair.left, ["ip", "-6", "route", "show", "proto", "static"]).stdout.contains("2001:db8:e::/64"))
    }
}

/// The one reconciler every daemon uses, judged by `ip -j` (not by RouteKit's own reads).
@Suite("Kernel reconciler", .enabled(if: isRoot, "needs root for network namespaces"))
struct KernelReconcilerTests {
    func json(_ pair: NamespacePair, _ args: [String]) throws -> [[String: Any]] {
        let out = try pair.exec(pair.left, ["ip", "-j"] + args).stdout
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []
    }
    func proxies(_ pair: NamespacePair) throws -> Set<String> {
        Set(try json(pair, ["-6", "neigh", "show", "proxy"]).compactMap { $0["dst"] as? String })
    }
    func routes(_ pair: NamespacePair) throws -> Set<String> {
        Set(try json(pair, ["-6", "route", "show", "proto", "74"]).compactMap { $0["dst"] as? String })
    }

    @Test func convergeUpdateRestoreAndRemoveAll() throws {
        let pair = try NamespacePair(tag: "krec")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)
        let r = KernelReconciler(rk)
        func route(_ p: String) throws -> Route { Route(destination: try IPPrefix.parse(p), interfaceIndex: idx) }
        func proxy(_ a: String) -> ProxyEntry { ProxyEntry(IPv6Address(a)!, interfaceIndex: idx) }
        let owned = KernelOwnership(routeFamilies: [true], proxyInterfaces: [idx], proxyPrefixes: [IPv6Prefix("2001:db8:1::/64")!])
        // Left by an earlier run: a route of ours and a proxy entry inside the owned prefix; and
        // someone else's proxy entry outside it.
        try rk.addRoute(try route("2001:db8:9::/64"))
        try pair.exec(pair.left, ["ip", "-6", "neigh", "add", "proxy", "2001:db8:1::99", "dev", pair.leftInterface])
        try pair.exec(pair.left, ["ip", "-6", "neigh", "add", "proxy", "2001:db8:2::1", "dev", pair.leftInterface])
        let forwarding = try SysctlKey.ipv6Forwarding(.all)
        try pair.exec(pair.left, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"])

        var want = KernelState(addresses: [InterfaceAddress(interfaceIndex: idx, address: .v6(IPv6Address("2001:db8:1::3")!), prefixLength: 128, flags: InterfaceAddress.noDAD)],
                               routes: [try route("2001:db8:1::4/128"), try route("2001:db8:1::5/128")],
                               proxyEntries: [proxy("2001:db8:1::4"), proxy("2001:db8:1::5")], sysctls: [forwarding: 1])
        let first = try r.converge(to: want, owning: owned)
        #expect(first.removedRoutes.map(\.destination.description) == ["2001:db8:9::/64"])
        #expect(first.removedProxyEntries == [proxy("2001:db8:1::99")])
        #expect(try routes(pair) == ["2001:db8:1::4", "2001:db8:1::5"])
        #expect(try proxies(pair) == ["2001:db8:1::4", "2001:db8:1::5", "2001:db8:2::1"], "the entry outside the owned prefix stays")
        #expect(try pair.exec(pair.left, ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout.hasPrefix("1"))
        #expect(try pair.exec(pair.left, ["ip", "-6", "addr", "show", "dev", pair.leftInterface]).stdout.contains("2001:db8:1::3/128"))
        #expect(try r.converge(to: want, owning: owned).isEmpty, "a second pass changes nothing")

        // An incremental change touches only the difference.
        want.routes.remove(try route("2001:db8:1::5/128"))
        want.proxyEntries.remove(proxy("2001:db8:1::5"))
        want.routes.insert(try route("2001:db8:1::6/128"))
        let change = r.update(to: want)
        #expect(change.failures.isEmpty)
        #expect(Set(change.added) == [.route(try route("2001:db8:1::6/128"))])
        #expect(Set(change.removed) == [.route(try route("2001:db8:1::5/128")), .proxyEntry(proxy("2001:db8:1::5"))])
        #expect(try routes(pair) == ["2001:db8:1::4", "2001:db8:1::6"])

        // Someone flushes the routes and the proxy entries and turns forwarding off: restore puts back ours.
        try pair.exec(pair.left, ["ip", "-6", "route", "flush", "proto", "74"])
        try pair.exec(pair.left, ["ip", "-6", "neigh", "del", "proxy", "2001:db8:1::4", "dev", pair.leftInterface])
        try pair.exec(pair.left, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"])
        let back = r.restore()
        #expect(back.addedRoutes.count == 2 && back.addedProxyEntries == [proxy("2001:db8:1::4")] && back.setSysctls == [forwarding])
        #expect(try routes(pair) == ["2001:db8:1::4", "2001:db8:1::6"])
        #expect(try proxies(pair) == ["2001:db8:1::4", "2001:db8:2::1"], "restore adds; it never removes")
        #expect(r.restore().isEmpty)

        // A route the kernel refuses (its gateway unreachable) stays pending and is reported.
        want.routes.insert(Route(destination: try IPPrefix.parse("2001:db8:7::/64"), gateway: try IPAddress.parse("2001:db8:ffff::1")))
        let refused = r.update(to: want)
        #expect(refused.failures.count == 1 && refused.failures[0].action == .add)
        #expect(refused.failures[0].description.contains("2001:db8:7::/64"), "\(refused.failures[0])")
        #expect(r.pending.count == 1)

        r.removeAll()
        #expect(try routes(pair).isEmpty)
        #expect(try proxies(pair) == ["2001:db8:2::1"])
        #expect(!(try pair.exec(pair.left, ["ip", "-6", "addr", "show", "dev", pair.leftInterface]).stdout.contains("2001:db8:1::3/128")))
    }
}
