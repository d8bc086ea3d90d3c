import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import RouteKit

/// Every RouteKit call checked against what iproute2 (`ip -j`) reports, and the reverse, in
/// namespaces each test makes and removes.
@Suite(.enabled(if: isRoot, "needs root for network namespaces"))
struct RouteKitNamespaceTests {
    /// Runs `ip -j ARGS` in `ns` and decodes the JSON array.
    static func ipJSON(_ pair: NamespacePair, _ ns: String, _ args: [String]) throws -> [[String: Any]] {
        let r = try pair.exec(ns, ["ip", "-j"] + args)
        let text = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return [] }
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] ?? []
    }

    @Test func linksMatchIpLinkAndChangesAreSeenByIp() throws {
        let pair = try NamespacePair(tag: "link")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let link = try rk.link(named: pair.leftInterface)
        let ip = try Self.ipJSON(pair, pair.left, ["link", "show", "dev", pair.leftInterface])[0]
        #expect(Int(link.index) == ip["ifindex"] as? Int)
        #expect(Int(link.mtu) == ip["mtu"] as? Int)
        #expect(link.mac?.description == ip["address"] as? String)
        #expect(link.kind == "veth")
        #expect(link.isUp)
        #expect(try rk.links().contains { $0.name == "lo" })

        try rk.setMTU(pair.leftInterface, 1420)
        #expect(try Self.ipJSON(pair, pair.left, ["link", "show", "dev", pair.leftInterface])[0]["mtu"] as? Int == 1420)
        try rk.setLink(pair.leftInterface, up: false)
        let flags = try Self.ipJSON(pair, pair.left, ["link", "show", "dev", pair.leftInterface])[0]["flags"] as? [String] ?? []
        #expect(!flags.contains("UP"))
        #expect(try !rk.link(named: pair.leftInterface).isUp)

        // A veth pair made by RouteKit is seen by ip; deleting it removes both ends.
        try rk.addVethPair("sgva\(pair.right.suffix(4))", peer: "sgvb\(pair.right.suffix(4))")
        #expect(try Self.ipJSON(pair, pair.left, ["link", "show", "dev", "sgva\(pair.right.suffix(4))"]).count == 1)
        try rk.deleteLink("sgva\(pair.right.suffix(4))")
        #expect(try pair.exec(pair.left, ["ip", "link", "show", "dev", "sgvb\(pair.right.suffix(4))"], check: false).status != 0)
    }

    @Test func unknownInterfaceIsATypedErrorNamingIt() throws {
        let pair = try NamespacePair(tag: "nodev")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        #expect(throws: RouteKitError.self) { try rk.setMTU("sgnosuchif", 1400) }
        do { try rk.setMTU("sgnosuchif", 1400) } catch {
            #expect(error.code == .noSuchInterface)
            #expect(error.description.contains("sgnosuchif"))
        }
        do { _ = try rk.interfaceIndex("sgnosuchif") } catch { #expect(error.code == .noSuchInterface) }
        let missing = Route(destination: try IPPrefix.parse("2001:db8:99::/64"), interfaceIndex: 9999)
        expectFailure(.noSuchInterface, mentioning: "2001:db8:99::/64") { try rk.addRoute(missing) }
        #expect(throws: RouteKitError.self) { try RouteSocket(namespace: .named("sg-no-such-namespace")) }
    }

    @Test func addressesRoundTripWithIpAddr() throws {
        let pair = try NamespacePair(tag: "addr")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)
        let a6 = InterfaceAddress(interfaceIndex: idx, address: try IPAddress.parse("2001:db8:6::3"), prefixLength: 64, flags: InterfaceAddress.noDAD)
        try rk.addAddress(a6)
        let ip6 = try Self.ipJSON(pair, pair.left, ["-6", "addr", "show", "dev", pair.leftInterface])[0]["addr_info"] as? [[String: Any]] ?? []
        #expect(ip6.contains { $0["local"] as? String == "2001:db8:6::3" && $0["prefixlen"] as? Int == 64 })
        // Adding it again is EEXIST, typed; ensure accepts it; remove is idempotent.
        do { try rk.addAddress(a6); Issue.record("duplicate address accepted") } catch { #expect(error.code == .exists) }
        try rk.ensureAddress(a6)
        // ensure with another prefix length replaces it.
        var a6b = a6
        a6b.prefixLength = 80
        try rk.ensureAddress(a6b)
        #expect(try rk.addresses(interface: pair.leftInterface).filter { $0.address == a6.address }.map(\.prefixLength) == [80])
        try rk.removeAddress(a6b)
        try rk.removeAddress(a6b)
        let after = try Self.ipJSON(pair, pair.left, ["-6", "addr", "show", "dev", pair.leftInterface])[0]["addr_info"] as? [[String: Any]] ?? []
        #expect(!after.contains { $0["local"] as? String == "2001:db8:6::3" })

        // The reverse: an address made with ip is read back.
        try pair.exec(pair.left, ["ip", "addr", "add", "198.51.100.7/25", "dev", pair.leftInterface])
        let seen = try rk.addresses(interface: pair.leftInterface)
        #expect(seen.contains { $0.address == .v4(IPv4Address(198, 51, 100, 7)) && $0.prefixLength == 25 })
        let pairAddress = try IPv6Address.parse("2001:db8:5::1")
        #expect(seen.contains { $0.address == .v6(pairAddress) && $0.prefixLength == 64 })

        let tooLong = InterfaceAddress(interfaceIndex: idx, address: try IPAddress.parse("2001:db8:6::4"), prefixLength: 129)
        expectFailure(.invalidArgument, mentioning: "2001:db8:6::4/129") { try rk.addAddress(tooLong) }
    }

    /// A renumbered prefix's address: deprecated in place (preferred lifetime 0, `ip` agrees), so
    /// connections on it are not cut, and made preferred again; the reconciler changes it without
    /// removing it.
    @Test func anAddressIsDeprecatedInPlace() throws {
        let pair = try NamespacePair(tag: "depr")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)
        let a = InterfaceAddress(interfaceIndex: idx, address: try IPAddress.parse("2001:db8:6::9"), prefixLength: 128, flags: InterfaceAddress.noDAD)
        func seen() throws -> [String: Any]? {
            let info = try Self.ipJSON(pair, pair.left, ["-6", "addr", "show", "dev", pair.leftInterface])[0]["addr_info"] as? [[String: Any]] ?? []
            return info.first { $0["local"] as? String == "2001:db8:6::9" }
        }
        let reconciler = KernelReconciler(rk)
        reconciler.update(to: KernelState(addresses: [a]))
        #expect(try seen()?["deprecated"] == nil)
        var old = a
        old.deprecated = true
        let report = reconciler.update(to: KernelState(addresses: [old]))
        #expect(report.failures.isEmpty && report.removed.isEmpty, "\(report)")
        let d = try #require(try seen(), "the address stays")
        #expect(d["deprecated"] as? Bool == true && d["preferred_life_time"] as? Int == 0, "\(d)")
        #expect(try rk.addresses(interface: pair.leftInterface).first { $0.address == a.address }?.deprecated == true)
        reconciler.update(to: KernelState(addresses: [a]))
        let back = try #require(try seen())
        #expect(back["deprecated"] == nil && back["preferred_life_time"] as? Int == 4_294_967_295, "\(back)")
        reconciler.update(to: KernelState())
        #expect(try seen() == nil)
    }

    @Test func routesRoundTripWithIpRoute() throws {
        let pair = try NamespacePair(tag: "route")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)

        // ip -6 route add 2001:db8:100::/64 dev IF (Sixgate's protocol number)
        let onLink = Route(destination: try IPPrefix.parse("2001:db8:100::/64"), interfaceIndex: idx, metric: 10)
        try rk.addRoute(onLink)
        // ip -6 route add default via 2001:db8:5::2
        let viaGateway = Route(destination: try IPPrefix.parse("::/0"), gateway: try IPAddress.parse("2001:db8:5::2"), metric: 20)
        try rk.addRoute(viaGateway)
        // ip route add 203.0.113.0/24 via 192.0.2.2 ; ip route add 10.0.0.0/24 dev IF (a private pool, never reached)
        try rk.addRoute(Route(destination: try IPPrefix.parse("203.0.113.0/24"), gateway: try IPAddress.parse("192.0.2.2")))
        try rk.addRoute(Route(destination: try IPPrefix.parse("10.0.0.0/24"), interfaceIndex: idx))
        // Source-specific: ip -6 route add 2001:db8:200::/64 from 2001:db8:7::/64 dev IF
        try rk.addRoute(Route(destination: try IPPrefix.parse("2001:db8:200::/64"), interfaceIndex: idx, sourcePrefix: try IPPrefix.parse("2001:db8:7::/64")))

        let ip6 = try Self.ipJSON(pair, pair.left, ["-6", "route", "show", "proto", "74"])
        #expect(ip6.contains { $0["dst"] as? String == "2001:db8:100::/64" && $0["dev"] as? String == pair.leftInterface && $0["metric"] as? Int == 10 })
        #expect(ip6.contains { $0["dst"] as? String == "default" && $0["gateway"] as? String == "2001:db8:5::2" })
        #expect(ip6.contains { $0["dst"] as? String == "2001:db8:200::/64" && $0["from"] as? String == "2001:db8:7::/64" })
        let ip4 = try Self.ipJSON(pair, pair.left, ["-4", "route", "show", "proto", "74"])
        #expect(ip4.contains { $0["dst"] as? String == "203.0.113.0/24" && $0["gateway"] as? String == "192.0.2.2" })
        #expect(ip4.contains { $0["dst"] as? String == "10.0.0.0/24" && $0["scope"] as? String == "link" })

        // EEXIST is typed; ensure accepts the equal route and replaces a different one.
        do { try rk.addRoute(onLink); Issue.record("duplicate route accepted") } catch { #expect(error.code == .exists) }
        try rk.ensureRoute(onLink)
        let moved = Route(destination: try IPPrefix.parse("2001:db8:100::/64"), gateway: try IPAddress.parse("2001:db8:5::2"), metric: 10)
        try rk.ensureRoute(moved)
        let now = try rk.routes(ipv6: true).filter { $0.destination == moved.destination }
        #expect(now.count == 1 && now[0].gateway == moved.gateway)

        // Remove is idempotent and leaves nothing behind.
        for r in [moved, viaGateway] { try rk.removeRoute(r); try rk.removeRoute(r) }
        #expect(try Self.ipJSON(pair, pair.left, ["-6", "route", "show", "proto", "74"]).count == 1)  // the source-specific one

        // The reverse: a route made with ip is read back with its fields.
        try pair.exec(pair.left, ["ip", "-6", "route", "add", "2001:db8:300::/48", "dev", pair.leftInterface, "metric", "7", "table", "100"])
        let read = try rk.routes(ipv6: true, table: 100)
        #expect(read.count == 1)
        let expected = try IPPrefix.parse("2001:db8:300::/48")
        #expect(read.first?.destination == expected)
        #expect(read.first?.metric == 7 && read.first?.interfaceIndex == idx && read.first?.protocolNumber == 3)
    }

    /// libnl's route cache merges fe80::/64 routes that differ only by interface (libnl issue 224);
    /// RouteKit parses every message and must see as many routes as `ip` does.
    @Test func dumpSeesRoutesThatDifferOnlyByInterface() throws {
        let pair = try NamespacePair(tag: "dump")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let a = "sgda\(pair.right.suffix(4))", b = "sgdb\(pair.right.suffix(4))"
        try rk.addVethPair(a, peer: b)
        try rk.setLink(a, up: true)
        try rk.setLink(b, up: true)
        // Wait (bounded) until the kernel has the link-local routes of the new links.
        var ipCount = 0
        for _ in 0..<50 {
            ipCount = try Self.ipJSON(pair, pair.left, ["-6", "route", "show", "table", "all"]).count
            if try Self.ipJSON(pair, pair.left, ["-6", "route", "show", "fe80::/64"]).count >= 3 { break }
            usleep(100_000)
        }
        let linkLocal = try IPPrefix.parse("fe80::/64")
        let fe80 = try rk.routes(ipv6: true).filter { $0.destination == linkLocal && $0.table == 254 }
        #expect(fe80.count == 3, "fe80::/64 on three links: \(fe80)")
        #expect(try rk.routes(ipv6: true).count == ipCount)
    }

    @Test func lookupAgreesWithIpRouteGet() throws {
        let pair = try NamespacePair(tag: "get")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        try pair.exec(pair.left, ["ip", "-6", "route", "add", "default", "via", "2001:db8:5::2"])
        for target in ["2001:db8:ffff::1", "2001:db8:5::2", "192.0.2.2"] {
            let r = try rk.lookupRoute(to: try IPAddress.parse(target))
            let ip = try Self.ipJSON(pair, pair.left, ["route", "get", target])[0]
            #expect(r.interfaceIndex == (try rk.interfaceIndex(ip["dev"] as? String ?? "")), "\(target)")
            #expect(r.gateway?.description == ip["gateway"] as? String, "\(target)")
            #expect(r.preferredSource?.description == ip["prefsrc"] as? String, "\(target)")
        }
        let nowhere = try IPAddress.parse("203.0.113.9")
        expectFailure(.unreachable, mentioning: "203.0.113.9") { _ = try rk.lookupRoute(to: nowhere) }
    }

    @Test func proxyNeighboursRoundTripWithIpNeigh() throws {
        let pair = try NamespacePair(tag: "proxy")
        defer { pair.destroy() }
        let rk = try RouteSocket(namespace: .named(pair.left))
        let idx = try rk.interfaceIndex(pair.leftInterface)
        let target = try IPv6Address.parse("2001:db8:5::99")
        try rk.addProxyNeighbour(target, interfaceIndex: idx)
        let ip = try Self.ipJSON(pair, pair.left, ["-6", "neigh", "show", "proxy"])
        #expect(ip.contains { $0["dst"] as? String == "2001:db8:5::99" && $0["dev"] as? String == pair.leftInterface })
        do { try rk.addProxyNeighbour(target, interfaceIndex: idx); Issue.record("duplicate proxy accepted") } catch { #expect(error.code == .exists) }
        try rk.ensureProxyNeighbour(target, interfaceIndex: idx)
        try pair.exec(pair.left, ["ip", "-6", "neigh", "add", "proxy", "2001:db8:5::98", "dev", pair.leftInterface])
        let mine = try rk.neighbours(proxy: true)
        let other = try IPv6Address.parse("2001:db8:5::98")
        #expect(Set(mine.map(\.address)) == [.v6(target), .v6(other)])
        #expect(mine.allSatisfy { $0.isProxy && $0.interfaceIndex == idx })
        try rk.removeProxyNeighbour(target, interfaceIndex: idx)
        try rk.removeProxyNeighbour(target, interfaceIndex: idx)
        #expect(try Self.ipJSON(pair, pair.left, ["-6", "neigh", "show", "proxy"]).count == 1)

        // Sysctls in the namespace: proxy_ndp on, seen by sysctl there.
        try Sysctl.write(try .proxyNDP(.interface(pair.leftInterface)), 1, in: .named(pair.left))
        let r = try pair.exec(pair.left, ["sysctl", "-n", "net.ipv6.conf.\(pair.leftInterface).proxy_ndp"])
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        #expect(try Sysctl.read(try .proxyNDP(.interface(pair.leftInterface)), in: .named(pair.left)) == 1)
        // ...and the host's value is untouched.
        #expect(throws: SysctlError.self) { try Sysctl.read(try .proxyNDP(.interface(pair.leftInterface))) }
    }
}

/// Expects `body` to fail with a RouteKitError of `code` whose text names `text`.
func expectFailure(_ code: RouteKitError.Code, mentioning text: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                   _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a \(code) failure, but the call succeeded", sourceLocation: sourceLocation)
    } catch let e as RouteKitError {
        #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
        if let text { #expect(e.description.contains(text), "\(e)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

/// EPERM: a caller without CAP_NET_ADMIN gets a typed error naming the object, with a hint, and
/// the kernel is left unchanged.
@Suite struct RouteKitPermissionTests {
    @Test(.enabled(if: isRoot)) func writesWithoutCapNetAdminArePermissionDenied() throws {
        let pair = try NamespacePair(tag: "eperm")
        defer { pair.destroy() }
        let ns = pair.left, interface = pair.leftInterface
        let outcome: [String] = try withoutCapability(capNetAdmin) {
            var seen: [String] = []
            do {
                // Entering a namespace needs CAP_SYS_ADMIN, which this thread keeps.
                let rk = try RouteSocket(namespace: .named(ns))
                // Reading is allowed without CAP_NET_ADMIN.
                let index = try rk.interfaceIndex(interface)
                seen.append("read ok")
                let route = Route(destination: try IPPrefix.parse("2001:db8:e::/64"), interfaceIndex: index)
                let address = InterfaceAddress(interfaceIndex: index, address: try IPAddress.parse("2001:db8:5::e"), prefixLength: 64)
                let attempts: [() throws -> Void] = [
                    { try rk.addRoute(route) },
                    { try rk.addAddress(address) },
                    { try rk.setMTU(interface, 1300) },
                ]
                for attempt in attempts {
                    do { try attempt(); seen.append("accepted") } catch let error as RouteKitError {
                        seen.append("\(error.code == .permissionDenied)|\(error.description)")
                    } catch { seen.append("other error: \(error)") }
                }
            } catch { seen.append("setup failed: \(error)") }
            return seen
        }
        #expect(outcome.count == 4 && outcome[0] == "read ok", "\(outcome)")
        for line in outcome.dropFirst() {
            #expect(line.hasPrefix("true|"), "\(line)")
            #expect(line.contains("CAP_NET_ADMIN"), "\(line)")
        }
        #expect(outcome.dropFirst().first?.contains("2001:db8:e::/64") == true, "\(outcome)")
        #expect(outcome.last?.contains(interface) == true, "\(outcome)")
        // Nothing was half-applied.
        let routes = try pair.exec(ns, ["ip", "-6", "route", "show", "2001:db8:e::/64"]).stdout
        #expect(routes.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        let addrs = try pair.exec(ns, ["ip", "-6", "addr", "show", "dev", interface]).stdout
        #expect(!addrs.contains("2001:db8:5::e"))
        #expect(try pair.exec(ns, ["cat", "/sys/class/net/\(interface)/mtu"]).stdout.hasPrefix("1500"))
    }
}
