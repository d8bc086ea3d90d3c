import Foundation
import PacketKit
import SixgateConfig
import SixgateTestSupport
import Testing
import TunnelClient
import TunnelCore
import RouteKit

struct ClientConfigurationTests {
    let key = "CIJx29+eG5dL7tON0xo8a1/qEowfiuzQERthkk/3yHs="
    let peer = "gw83nm0gZnLZDhWWkc3vkx2MYjjpoOwu891hkDqPTyE="

    func error(_ text: String, path: String = "/etc/sixgate/tunnel-client.toml") -> String {
        do { _ = try ClientConfiguration.parse(text, path: path); return "" } catch { return error.description }
    }

    @Test func theGatewayPrintedConfigGivesLeasesAndDefaults() throws {
        let c = try ClientConfiguration.parse("""
            interface = "sixgate0"
            private_key = "\(key)"
            [gateway]
            public_key = "\(peer)"
            endpoint = "198.51.100.129:51820"
            keepalive = 25
            [routes]
            ipv6 = "default"
            ipv4 = "none"
            """, path: "/x.toml")
        #expect(c.addresses == .lease)
        #expect(c.ipv6Routes == .all && c.ipv4Routes == RouteSelection.none)
        #expect(!c.replaceDefaultRoute && c.router == nil && c.mtu == nil)
        #expect(c.gatewayPublicKey.base64 == peer && c.keepalive == 25)
    }

    @Test func everyKeyIsRead() throws {
        let c = try ClientConfiguration.parse("""
            interface = "tun-home"
            private_key = "\(key)"
            listen_port = 51999
            mtu = 1380
            [gateway]
            public_key = "\(peer)"
            preshared_key = "\(key)"
            endpoint = "gw.example.net:51820"
            keepalive = 0
            allowed_ips = ["::/0"]
            [routes]
            ipv6 = ["2001:db8:ffff::/48"]
            ipv4 = ["203.0.113.0/24", "198.51.100.0/24"]
            replace_default_route = true
            [static]
            addresses = ["2001:db8:1::9/128", "192.0.2.9/24"]
            dns = ["2001:db8::53"]
            [router]
            interface = "lan0"
            dns = ["2001:db8::53"]
            interval = 30
            [hooks]
            up = "/etc/sixgate/up"
            down = "/etc/sixgate/down"
            lease-changed = "/etc/sixgate/changed"
            """, path: "/x.toml")
        #expect(c.interface == "tun-home" && c.listenPort == 51999 && c.mtu == 1380)
        #expect(c.endpoint == "gw.example.net:51820" && c.keepalive == 0 && c.allowedIPs == [IPPrefix("::/0")!])
        #expect(c.ipv6Routes == .prefixes([IPPrefix("2001:db8:ffff::/48")!]))
        #expect(c.ipv4Routes == .prefixes([IPPrefix("203.0.113.0/24")!, IPPrefix("198.51.100.0/24")!]))
        #expect(c.replaceDefaultRoute)
        #expect(c.addresses == .fixed(addresses: [AddressAssignment(IPAddress("2001:db8:1::9")!, prefixLength: 128),
                                                  AddressAssignment(IPAddress("192.0.2.9")!, prefixLength: 24)], dns: [IPAddress("2001:db8::53")!]))
        #expect(c.router?.interface == "lan0" && c.router?.interval == 30 && c.router?.dnsServers == [IPv6Address("2001:db8::53")!])
        #expect(c.hooks.count == 3)
    }

    @Test func errorsNameTheFileTheLineAndTheKey() {
        let head = "private_key = \"\(key)\"\n[gateway]\npublic_key = \"\(peer)\"\nendpoint = \"198.51.100.1:51820\"\n"
        #expect(error(head + "[routes]\nipv6 = [\"10.0.0.0/8\"]\n").hasPrefix("/etc/sixgate/tunnel-client.toml:6: routes.ipv6:"))
        #expect(error(head + "[routes]\nreplace_default = true\n").contains(":6: routes.replace_default: unknown key"))
        #expect(error(head + "[router]\ninterval = 30\n").contains(":6: router.interval: set without router.interface"))
        #expect(error(head + "[router]\ninterface = \"lan0\"\ninterval = 2\n").contains(":7: router.interval:"))
        #expect(error("[gateway]\npublic_key = \"\(peer)\"\n").contains(":1: private_key: missing"))
        #expect(error("private_key = \"nope\"\n").contains(":1: private_key: not a WireGuard private key"))
        #expect(error(head.replacingOccurrences(of: "198.51.100.1:51820", with: "2001:db8::1:51820")).contains(":4: gateway.endpoint:"))
        #expect(error(head + "[hooks]\nup = \"up.sh\"\n").contains(":6: hooks.up: must be an absolute path"))
        // "/" alone once trapped (index out of range; found by fuzz-config-wgquick).
        #expect(error(head + "[static]\naddresses = [\"/\", \"/64\"]\n").contains(":6: static.addresses: \"/\" is not address/length"))
        #expect(error("[Interface]\nAddress = /\n").contains(":2: Address: \"/\" is not address/length"))
    }

    @Test func theCLATTableIsReadWithItsDefaultsAndChecked() throws {
        let head = "interface = \"sg-home\"\nprivate_key = \"\(key)\"\n[gateway]\npublic_key = \"\(peer)\"\nendpoint = \"198.51.100.1:51820\"\n"
        #expect(try ClientConfiguration(toml: head, path: "/x.toml").clat == nil, "off unless enabled")
        let d = try ClientConfiguration(toml: head + "[clat]\nenabled = true\n", path: "/x.toml").clat
        #expect(d?.interface == "sg-home-clat" && d?.ipv4.description == "192.0.0.2" && d?.ipv6 == nil && d?.prefix == nil,
                "RFC 7335's address; the CLAT address and the prefix come from the lease")
        #expect(CLATSettings.defaultInterface(for: "a-long-name-15c") == "a-long-nam-clat")
        let c = try ClientConfiguration(toml: head + "[clat]\nenabled = true\ninterface = \"clat9\"\nipv4 = \"192.0.0.4\"\nipv6 = \"2001:db8:1::5\"\nprefix = \"2001:db8:64::/96\"\n", path: "/x.toml").clat
        #expect(c?.interface == "clat9" && c?.ipv4.description == "192.0.0.4" && c?.ipv6?.description == "2001:db8:1::5" && c?.prefix?.description == "2001:db8:64::/96")
        #expect(error(head + "[clat]\nprefix = \"64:ff9b::/96\"\n").contains(":7: clat.prefix: set, but clat.enabled is not true"))
        #expect(error(head + "[clat]\nenabled = true\nprefix = \"64:ff9b::/80\"\n").contains(":8: clat.prefix: /80: RFC 6052 allows"))
        #expect(error(head + "[clat]\nenabled = true\nipv4 = \"192.0.0.1\"\n").contains(":8: clat.ipv4: 192.0.0.1 is the translator's own"))
        #expect(error(head + "[clat]\nenabled = true\ninterface = \"sg-home\"\n").contains(":8: clat.interface:"))
        #expect(error(head + "[clat]\nenabled = true\nipv6 = \"192.0.0.9\"\n").contains(":8: clat.ipv6: \"192.0.0.9\" is not an IPv6 address"))
        #expect(error(head + "[static]\naddresses = [\"2001:db8:1::9/128\"]\n[clat]\nenabled = true\n").contains(":9: clat.enabled: with [static] addresses"))
    }

    @Test func wgQuickFilesAreReadAsWgQuickReadsThem() throws {
        let c = try ClientConfiguration.parse("""
            [Interface]
            # the wg-quick(8) example, with documentation addresses
            Address = 192.0.2.2/24, 2001:db8:7::2/64
            DNS = 192.0.2.53
            PrivateKey = \(key)
            MTU = 1400
            PostUp = echo up %i

            [Peer]
            PublicKey = \(peer)
            Endpoint = [2001:db8:ffff::1]:51820
            AllowedIPs = 0.0.0.0/0, 2001:db8:ffff::/48
            PersistentKeepalive = 25
            """, path: "/etc/wireguard/wg-home.conf")
        #expect(c.interface == "wg-home")
        #expect(c.addresses == .fixed(addresses: [AddressAssignment(IPAddress("192.0.2.2")!, prefixLength: 24),
                                                  AddressAssignment(IPAddress("2001:db8:7::2")!, prefixLength: 64)], dns: [IPAddress("192.0.2.53")!]))
        #expect(c.ipv4Routes == .all, "a /0 takes the default route")
        #expect(c.ipv6Routes == .prefixes([IPPrefix("2001:db8:ffff::/48")!]))
        #expect(c.replaceDefaultRoute, "as wg-quick does")
        #expect(c.mtu == 1400 && c.keepalive == 25 && c.shellHooks["postup"] == ["echo up %i"])
    }

    @Test func wgQuickErrorsNameTheLine() {
        let path = "/etc/wireguard/wg0.conf"
        #expect(error("[Interface]\nPrivateKey = \(key)\nFwMark = 51820\n", path: path).contains("wg0.conf:3: FwMark: not supported"))
        #expect(error("[Interface]\nPrivateKey = \(key)\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = \(peer)\nEndpoint = 198.51.100.1:51820\n[Peer]\n", path: path)
            .contains("wg0.conf:7: more than one [Peer]"))
        #expect(error("[Interface]\nPrivateKey = \(key)\nAddress = 192.0.2.2/24\n[Peer]\nPublicKey = \(peer)\n", path: path).contains("Endpoint: missing"))
        #expect(error("[Interface]\nPrivateKey = \(key)\nAddress = 192.0.2.300/24\n", path: path).contains("wg0.conf:3: Address:"))
        #expect(error("[Interface]\nPrivateKey = \(key)\nPrivateKey = \(key)\n", path: path).contains("wg0.conf:3: PrivateKey: given twice"))
    }
}

/// Router mode's LAN filter keys.
struct RouterFirewallConfigurationTests {
    let head = "private_key = \"CIJx29+eG5dL7tON0xo8a1/qEowfiuzQERthkk/3yHs=\"\n[gateway]\npublic_key = \"gw83nm0gZnLZDhWWkc3vkx2MYjjpoOwu891hkDqPTyE=\"\nendpoint = \"198.51.100.1:51820\"\n"

    @Test func onByDefaultWithOpenings() throws {
        let c = try ClientConfiguration.parse(head + "[router]\ninterface = \"lan0\"\nopen = [\"tcp/22\", \"udp/60000-61000\"]\n", path: "/x.toml")
        #expect(c.router?.firewall == true && c.router?.inboundEcho == true)
        #expect(c.router?.open.map(\.description) == ["tcp/22", "udp/60000-61000"])
        #expect(try ClientConfiguration.parse(head + "[router]\ninterface = \"lan0\"\nfirewall = \"off\"\n", path: "/x.toml").router?.firewall == false)
    }

    @Test func badValuesNameTheLineAndKey() {
        for (text, expected) in [("[router]\ninterface = \"lan0\"\nopen = [\"tcp/99999\"]\n", "/x.toml:7: router.open: \"tcp/99999\": port 99999 is outside 1-65535"),
                                 ("[router]\ninterface = \"lan0\"\nfirewall = \"off\"\nopen = [\"tcp/22\"]\n", "router.open: set, but router.firewall is \"off\""),
                                 ("[router]\nopen = [\"tcp/22\"]\n", "router.open: set without router.interface")] {
            do { _ = try ClientConfiguration.parse(head + text, path: "/x.toml"); Issue.record("accepted: \(text)") } catch {
                #expect(error.description.contains(expected), "\(error)")
            }
        }
    }
}

/// The lease vetting without a kernel: every field against its RFC range and the config.
struct LeaseVettingTests {
    func config(_ extra: String = "") throws -> ClientConfiguration {
        try ClientConfiguration.parse("private_key = \"CIJx29+eG5dL7tON0xo8a1/qEowfiuzQERthkk/3yHs=\"\n[gateway]\npublic_key = \"gw83nm0gZnLZDhWWkc3vkx2MYjjpoOwu891hkDqPTyE=\"\nendpoint = \"198.51.100.1:51820\"\n[routes]\nipv6 = \"default\"\nipv4 = \"default\"\n" + extra, path: "/x.toml")
    }
    let host = HostFacts(connected: [IPPrefix("192.168.1.0/24")!, IPPrefix("2001:db8:c1::/64")!], endpoint: IPAddress("198.51.100.1")!,
                         defaultHeldElsewhere: [true], routed: [IPPrefix("10.0.0.0/8")!])

    @Test func aSaneLeasePassesWhole() throws {
        var l = LeaseMessage(kind: .reply, transaction: 1)
        l.ipv6 = AddressAssignment(.v6(IPv6Address("2001:db8:1::4")!), prefixLength: 128)
        l.ipv4 = AddressAssignment(.v4(IPv4Address("192.0.2.2")!), prefixLength: 32)
        l.routes = [IPPrefix("::/0")!, IPPrefix("0.0.0.0/0")!, IPPrefix("2001:db8:100::/48")!]
        l.mtu = 1420; l.dnsServers = [IPAddress("2001:db8:ffff::53")!]; l.nat64Prefix = IPv6Prefix("64:ff9b::/96"); l.lifetime = 3600
        let v = try config().vet(l, host: host)
        #expect(v.refused.isEmpty && v.lease == l)
    }

    @Test func eachHostileFieldIsLeftOutWithItsReason() throws {
        var l = LeaseMessage(kind: .reply, transaction: 1)
        l.ipv6 = AddressAssignment(.v6(IPv6Address("ff02::1")!), prefixLength: 128)
        l.ipv4 = AddressAssignment(.v4(IPv4Address("203.0.113.5")!), prefixLength: 1)
        l.routes = ["::/1", "8000::/1", "198.51.100.0/24", "192.168.0.0/16", "10.0.0.0/8", "2001:db8:c1::/48"].map { IPPrefix($0)! }
        l.mtu = 576; l.dnsServers = ["ff02::1", "0.0.0.0", "255.255.255.255", "127.0.0.1", "fe80::1"].map { IPAddress($0)! }
        l.nat64Prefix = IPv6Prefix("64:ff9b::/33"); l.lifetime = 0; l.clatAddress = IPv6Address("::1")
        let v = try config().vet(l, host: host)
        #expect(v.lease.ipv6 == nil && v.lease.ipv4 == AddressAssignment(.v4(IPv4Address("203.0.113.5")!), prefixLength: 32))
        #expect(v.lease.routes.isEmpty, "\(v.lease.routes)")
        #expect(v.lease.mtu == nil && v.lease.dnsServers.isEmpty && v.lease.nat64Prefix == nil && v.lease.lifetime == nil && v.lease.clatAddress == nil)
        #expect(v.refused.count == 17, "\(v.refused)")
        #expect(v.refused.contains("route 192.168.0.0/16: overlaps 192.168.1.0/24, a network on this host's own interfaces"))
        #expect(v.refused.contains("route 10.0.0.0/8: this host routes it through another interface already (left as it is)"))
    }

    @Test func defaultWidePrefixesFollowReplaceDefaultRouteAndAcceptRoutesLimitsTheRest() throws {
        var l = LeaseMessage(kind: .reply, transaction: 1)
        l.routes = ["::/1", "8000::/1", "2001:db8:100::/48", "2001:db8:200::/48"].map { IPPrefix($0)! }
        #expect(try config("replace_default_route = true\n").vet(l, host: host).lease.routes.count == 4)
        #expect(try config().vet(l, host: HostFacts()).lease.routes.count == 4, "no default elsewhere: nothing to bypass")
        let limited = try config("accept_routes = [\"2001:db8:100::/40\"]\n").vet(l, host: host)
        #expect(limited.lease.routes == [IPPrefix("2001:db8:100::/48")!], "\(limited.refused)")
    }

    @Test func networkTextIsEscapedForLogs() {
        #expect(escapedForLog("ok\nconfigured: x\u{1b}[31m\u{2028}\\") == "ok\\x0aconfigured: x\\x1b[31m\\u{2028}\\\\")
        #expect(escapedForLog(String(repeating: "a", count: 300)).count == 201)
    }
}

@Test func everyTunnelClientKeyIsInTheExample() throws {
    let text = try String(contentsOfFile: repositoryDirectory + "/docs/tunnel-client.toml.example", encoding: .utf8)
    #expect(keysMissing(from: text, ClientConfiguration.knownKeys) == [])
}
