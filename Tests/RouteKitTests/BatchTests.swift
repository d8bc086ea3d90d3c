import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import RouteKit

@Suite("Batch path", .enabled(if: isRoot, "needs root for network namespaces"))
struct BatchTests {
    static func hostRoutes(_ n: Int, interfaceIndex: Int32) -> [Route] {
        (0..<n).map { i in
            let a = IPv6Address(rawValue: (0x2001_0db8_00aa as UInt128) << 80 | UInt128(i + 1))
            return Route(destination: .v6(IPv6Prefix(containing: a, length: 128)), interfaceIndex: interfaceIndex)
        }
    }

    @Test func thousandsOfRoutesInOnePassMatchIp() throws {
        let pair = try NamespacePair(tag: "batch")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)
        var routes = Self.hostRoutes(5000, interfaceIndex: idx)
        // One bad item in the middle: its failure is reported with its index; the rest still land.
        routes[2500] = Route(destination: try IPPrefix.parse("2001:db8:bad::/64"), interfaceIndex: 9999)
        let added = try rk.applyRoutes(routes, .add)
        #expect(added.succeeded == 4999)
        #expect(added.failures.count == 1 && added.failures.first?.index == 2500)
        #expect(added.failures.first?.error.code == .noSuchInterface)
        #expect(added.failures.first?.error.description.contains("2001:db8:bad::/64") == true)
        let ipCount = try pair.exec(pair.left, ["bash", "-c", "ip -6 route show proto 74 | wc -l"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ipCount == "4999")

        // Adding again: every item exists.
        let again = try rk.applyRoutes(Array(routes[0..<100]), .add)
        #expect(again.succeeded == 0 && again.failures.count == 100 && again.failures.allSatisfy { $0.error.code == .exists })
        // Replace accepts them; remove takes them all away, and removing again is not an error.
        #expect(try rk.applyRoutes(Array(routes[0..<100]), .replace).failures.isEmpty)
        let removed = try rk.applyRoutes(routes, .remove)
        #expect(removed.failures.isEmpty)
        #expect(try rk.applyRoutes(routes, .remove).failures.isEmpty)
        #expect(try pair.exec(pair.left, ["ip", "-6", "route", "show", "proto", "74"]).stdout.isEmpty)
    }

    @Test func thousandsOfProxyEntriesInOnePassMatchIp() throws {
        let pair = try NamespacePair(tag: "pbatch")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)
        let entries = (0..<3000).map { i in (address: IPv6Address(rawValue: (0x2001_0db8_0005 as UInt128) << 96 | UInt128(0x1000 + i)), interfaceIndex: idx) }
        let r = try rk.applyProxyNeighbours(entries, .add)
        #expect(r.succeeded == 3000 && r.failures.isEmpty)
        let ipCount = try pair.exec(pair.left, ["bash", "-c", "ip -6 neigh show proxy | wc -l"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ipCount == "3000")
        #expect(try rk.neighbours(proxy: true).count == 3000)
        #expect(try rk.applyProxyNeighbours(entries, .remove).failures.isEmpty)
        #expect(try rk.neighbours(proxy: true).isEmpty)
    }
}
