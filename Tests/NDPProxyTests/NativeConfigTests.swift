import AddressPool
import Foundation
import NDPProxy
import PacketKit
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// ndp-proxy's own TOML format and kernel mode.
struct NativeConfigTests {
    func error(_ text: String) -> String {
        do { _ = try NDPProxyConfig.parse(text, path: "/etc/sixgate/ndp-proxy.toml"); return "" } catch { return error.description }
    }

    @Test func everyKeyIsRead() throws {
        let rules = try NDPProxyConfig.parse("""
            # two interfaces, one answered here, one by the kernel
            [uplink]
            interface = "eth0"
            prefixes = ["2001:db8:1::/64"]
            auto = ["2001:db8:2::/64"]
            route_ttl = 60
            list = "deny"
            addresses = ["2001:db8:1::1", "2001:db8:1::2"]
            ignore_local = false
            router = false
            link_option = true

            [clients]
            interface = "eth1"
            mode = "kernel"
            prefixes = ["2001:db8:3::/64"]
            list = "allow"
            addresses = ["2001:db8:3::10"]
            lease_store = "/var/lib/sixgate/leases.db"
            """, path: "/x/ndp-proxy.conf")
        #expect(rules.count == 2)
        let a = rules[0], b = rules[1]
        #expect(a.interface == "eth0" && a.mode == .answer && a.prefixes == [IPv6Prefix("2001:db8:1::/64")!])
        #expect(a.autoPrefixes == [IPv6Prefix("2001:db8:2::/64")!] && a.routeTTL == 60)
        #expect(a.listType == .black && a.addresses.count == 2 && !a.ignoreLocal && !a.routerFlag && a.linkOption)
        #expect(b.interface == "eth1" && b.mode == .kernel && b.listType == .white && b.leaseStore == "/var/lib/sixgate/leases.db")
    }

    @Test func errorsNameTheFileTheLineAndTheKey() {
        #expect(error("[uplink]\nprefixes = [\"2001:db8:1::/64\"]\n") == "/etc/sixgate/ndp-proxy.toml:1: uplink.interface: missing (the interface whose solicitations are answered)")
        #expect(error("[uplink]\ninterface = \"eth0\"\nprefixes = [\"2001:db8:1::/64\"]\nmode = \"proxy\"\n").contains(":4: uplink.mode:"))
        #expect(error("[uplink]\ninterface = \"eth0\"\nprefixes = [\"2001:db8:1::/64\"]\nmode = \"kernel\"\n").contains(":4: uplink.mode: kernel mode needs addresses or lease_store"))
        #expect(error("[uplink]\ninterface = \"eth0\"\nprefixes = [\"2001:db8:1::/64\"]\nlease_store = \"/x.db\"\n").contains(":4: uplink.lease_store: only for mode"))
        #expect(error("[uplink]\ninterface = \"eth0\"\nprefix = [\"2001:db8:1::/64\"]\n").contains(":3: uplink.prefix: unknown key; did you mean uplink.prefixes?"))
        #expect(error("[uplink]\ninterface = \"eth0\"\nprefixes = [\"2001:db8:1::/129\"]\n").contains(":3: uplink.prefixes:"))
        #expect(error("[uplink]\ninterface = \"eth0\"\n").contains(":1: uplink.prefixes: no prefixes"))
    }
}

@Suite(.enabled(if: isRoot && which("ping") != nil, "needs root"))
struct KernelModeTests {
    func proxyEntries(_ bed: ProxyTestbed) throws -> [String] {
        try bed.exec(bed.proxy, ["ip", "-6", "neigh", "show", "proxy"]).stdout.split(separator: "\n").map { String($0.split(separator: " ")[0]) }.sorted()
    }

    @Test func entriesFollowTheLeaseStoreAndGoOnStop() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        // An AddressPool store as gatewayd keeps it, with the host's address leased.
        let store = bed.directory + "/leases.db"
        let pool = PoolConfiguration(name: "ipv6", prefix: IPPrefix("2001:db8:5::/64")!, kind: .ipv6Hosts)
        let allocator = try AddressAllocator(pools: [pool], store: try SQLiteLeaseStore(path: store))
        _ = try allocator.assignStatic(client: "host", prefix: IPPrefix("2001:db8:5::100/128")!, in: "ipv6")
        // Entries of someone else's: a stale one inside the prefix (removed), one outside (kept).
        let uplink = "snb\(bed.id)"
        try bed.exec(bed.proxy, ["ip", "-6", "neigh", "add", "proxy", "2001:db8:5::99", "dev", uplink])
        try bed.exec(bed.proxy, ["ip", "-6", "neigh", "add", "proxy", "2001:db8:7::1", "dev", uplink])
        #expect(try bed.exec(bed.isp, ["ping", "-c", "1", "-W", "2", "2001:db8:5::100"], check: false).status != 0, "nothing answers yet")

        let path = bed.directory + "/ndp-proxy.toml"
        try """
            [uplink]
            interface = "\(uplink)"
            mode = "kernel"
            prefixes = ["2001:db8:5::/64"]
            lease_store = "\(store)"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let p = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", path, "--sync-interval", "1"], captureOutput: true)
        defer { p.stop() }
        #expect(eventually(timeout: 10) { p.output.contains("kernel proxy entries on \(uplink): 1") }, "\(p.output)")
        #expect(try proxyEntries(bed) == ["2001:db8:5::100", "2001:db8:7::1"])
        #expect(try bed.exec(bed.proxy, ["sysctl", "-n", "net.ipv6.conf.\(uplink).proxy_ndp"]).stdout.hasPrefix("1"))
        #expect(eventually(timeout: 10) { (try? bed.exec(bed.isp, ["ping", "-c", "1", "-W", "2", "2001:db8:5::100"], check: false).status) == 0 },
                "the kernel answers for the leased address")

        // A new lease appears, a released one goes, within a sync interval or two.
        _ = try allocator.assignStatic(client: "other", prefix: IPPrefix("2001:db8:5::101/128")!, in: "ipv6")
        #expect(eventually(timeout: 10) { (try? proxyEntries(bed)) == ["2001:db8:5::100", "2001:db8:5::101", "2001:db8:7::1"] })
        _ = try allocator.release(client: "other")
        #expect(eventually(timeout: 10) { (try? proxyEntries(bed)) == ["2001:db8:5::100", "2001:db8:7::1"] })

        // SIGTERM removes what it keeps; the entry outside its prefix stays.
        p.stop(grace: 5)
        #expect(p.output.contains("stopped"))
        #expect(try proxyEntries(bed) == ["2001:db8:7::1"])
    }

    @Test func theNativeFormatAnswersLikeNpd6() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let path = bed.directory + "/ndp-proxy.toml"
        try "[uplink]\ninterface = \"snb\(bed.id)\"\nprefixes = [\"2001:db8:5::/64\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try bed.exec(bed.isp, ["ping", "-c", "1", "-W", "2", "2001:db8:5::100"], check: false).status != 0)
        let p = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", path], captureOutput: true)
        defer { p.stop() }
        #expect(eventually(timeout: 10) { p.output.contains("answering on snb\(bed.id)") }, "\(p.output)")
        #expect(eventually(timeout: 10) { (try? bed.exec(bed.isp, ["ping", "-c", "1", "-W", "2", "2001:db8:5::100"], check: false).status) == 0 }, "\(p.output)")
    }
}

/// `iface` rules: answer only for targets a host on the inner interface answers for.
@Suite(.enabled(if: isRoot && which("ping") != nil, "needs root"))
struct IfaceRuleTests {
    @Test func onlyTargetsTheInnerLinkAnswersForAreAnswered() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let rules = try NDPPDConfig.parse("proxy snb\(bed.id) {\n  ttl 30000\n  timeout 500\n  rule 2001:db8:5::/64 {\n    iface snc\(bed.id)\n  }\n}\n", path: "/x/ndppd.conf")
        #expect(rules.first?.innerInterface == "snc\(bed.id)" && rules.first?.ifacePrefixes == [IPv6Prefix("2001:db8:5::/64")!])
        #expect(rules.first?.solicitTimeout == 0.5 && rules.first?.cacheTTL == 30)
        // The host behind the proxy answers solicitations for its address on the inner link.
        let path = bed.directory + "/ndppd.conf"
        try "proxy snb\(bed.id) {\n  rule 2001:db8:5::/64 {\n    iface snc\(bed.id)\n  }\n}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let p = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", path], captureOutput: true)
        defer { p.stop() }
        #expect(eventually(timeout: 10) { p.output.contains("answering on snb\(bed.id)") }, "\(p.output)")
        #expect(eventually(timeout: 10) { (try? bed.exec(bed.isp, ["ping", "-c", "1", "-W", "2", "2001:db8:5::100"], check: false).status) == 0 }, "\(p.output)")
        // Nobody has ::200 on the inner link: no answer, counted.
        #expect(try bed.exec(bed.isp, ["ping", "-c", "2", "-W", "2", "2001:db8:5::200"], check: false).status != 0)
        kill(p.pid, SIGUSR1)
        #expect(eventually(timeout: 5) { p.output.contains("inner-answers 1") }, "\(p.output)")
        let line = p.output.split(separator: "\n").last { $0.contains("inner-silent") } ?? ""
        #expect(!line.contains("inner-silent 0 "), "\(line)")
        #expect(!line.contains("inner-solicitations 0 "), "\(line)")
    }
}

@Test func everyNativeRuleKeyIsInTheExample() throws {
    let text = try String(contentsOfFile: repositoryDirectory + "/docs/ndp-proxy.toml.example", encoding: .utf8)
    #expect(keysMissing(from: text, NDPProxyTOML.ruleKeys) == [])
}
