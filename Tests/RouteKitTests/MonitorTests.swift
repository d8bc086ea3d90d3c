import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import RouteKit

@Suite("Change monitor", .enabled(if: isRoot, "needs root for network namespaces"))
struct MonitorTests {
    /// Collects events until `match` holds for one of them, or `seconds` pass.
    static func waitFor(_ monitor: RouteMonitor, seconds: Double, _ match: @escaping @Sendable (RouteEvent) -> Bool) async -> RouteEvent? {
        await withTaskGroup(of: RouteEvent?.self) { group in
            group.addTask {
                for await e in monitor.events where match(e) { return e }
                return nil
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            monitor.stop()
            return first
        }
    }

    @Test func addressAddedByIpInAnotherProcessIsAnEvent() async throws {
        let pair = try NamespacePair(tag: "mon")
        defer { pair.destroy() }
        let monitor = try RouteMonitor(namespace: .named(pair.left))
        let target = try IPAddress.parse("2001:db8:6::42")
        try pair.exec(pair.left, ["ip", "-6", "addr", "add", "2001:db8:6::42/64", "dev", pair.leftInterface, "nodad"])
        let event = await Self.waitFor(monitor, seconds: 5) {
            if case .addressAdded(let a) = $0 { return a.address == target } else { return false }
        }
        guard case .addressAdded(let a) = event else { Issue.record("no address event within 5 s"); return }
        #expect(a.prefixLength == 64)
    }

    @Test func routeAndLinkChangesAreEvents() async throws {
        let pair = try NamespacePair(tag: "mon2")
        defer { pair.destroy() }
        let monitor = try RouteMonitor(namespace: .named(pair.left))
        let routes = try RouteMonitor(namespace: .named(pair.left))
        let prefix = try IPPrefix.parse("2001:db8:88::/64")
        try pair.exec(pair.left, ["ip", "-6", "route", "add", "2001:db8:88::/64", "dev", pair.leftInterface])
        try pair.exec(pair.left, ["ip", "link", "set", pair.leftInterface, "mtu", "1400"])
        let r = await Self.waitFor(routes, seconds: 5) { if case .routeAdded(let r) = $0 { return r.destination == prefix } else { return false } }
        #expect(r != nil, "no route event within 5 s")
        let l = await Self.waitFor(monitor, seconds: 5) { if case .linkAdded(let l) = $0 { return l.mtu == 1400 } else { return false } }
        #expect(l != nil, "no link event within 5 s")
    }
}
