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
