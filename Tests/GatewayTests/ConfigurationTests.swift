import AddressPool
import Foundation
import SixgateConfig
import PacketKit
import SixgateTestSupport
import Testing
import TunnelCore
import RouteKit
@testable import TunnelGateway

struct ConfigurationTests {
    func parse(_ text: String) throws(ConfigError) -> GatewayConfiguration { try GatewayConfiguration(text: text, path: "/etc/sixgate/gatewayd.toml") }

    func error(_ text: String) -> ConfigError? {
        do { _ = try parse(text); return nil } catch { return error }
    }

    @Test func anEmptyFileGivesTheHowtoDefaults() throws {
        let c = try parse("# nothing set\n")
        #expect(c.interface == "sixgate0" && c.listenPort == 51820 && c.mtu == 1420)
        #expect(c.effectiveISPRouter.description == "2001:db8::1")
        #expect(c.effectiveUplinkAddress.description == "2001:db8::2")
        #expect(c.effectiveGatewayAddress.description == "2001:db8::3")
        #expect(c.effectiveIPv4Gateway?.description == "100.64.0.1")
        #expect(c.ndpProxy == .kernel && c.nat44)
    }

    @Test func everyKeyIsRead() throws {
        let c = try parse("""
            state_directory = "/srv/sixgate"
            interface = "gw6"
            listen_port = 4500
            tunnel_queues = 4
            tunnel_queue_target = 2
            tunnel_queue_interval = 40
            mtu = 1380
            endpoint = "[2001:db8::9]:4500"
            client_keepalive = 0
            [uplink]
            interface = "enp1s0"
            [ipv6]
            prefix = "2001:db8:100::/48"
            allocation = "prefixes"
            delegated_length = 56
            gateway_address = "2001:db8:100::1"
            ndp_proxy = "off"
            reserved = ["2001:db8:100:ff00::/56"]
            [ipv4]
            pool = "198.51.100.0/24"
            gateway_address = "198.51.100.254"
            nat44 = false
            [hooks]
            up = "/etc/sixgate/up.sh"
            """)
        #expect(c.stateDirectory == "/srv/sixgate" && c.interface == "gw6" && c.listenPort == 4500 && c.mtu == 1380 && c.tunnelQueues == 4)
        #expect(c.tunnelQueueManagement == CoDel(target: 2_000_000, interval: 40_000_000))
        #expect(c.endpoint == "[2001:db8::9]:4500" && c.clientKeepalive == 0 && c.uplink == "enp1s0")
        #expect(c.allocation == .prefixes && c.delegatedLength == 56 && c.ndpProxy == .off)
        #expect(c.reservedIPv6 == [IPv6Prefix("2001:db8:100:ff00::/56")!])
        #expect(c.ipv4Pool == IPv4Prefix("198.51.100.0/24") && c.effectiveIPv4Gateway?.description == "198.51.100.254" && !c.nat44)
        #expect(c.hooks == ["up": "/etc/sixgate/up.sh"])
    }

    @Test func errorsNameTheFileTheLineAndTheKey() {
        #expect(error("\n\n[ipv6]\nprefix = \"2001:db8::/129\"\n")?.description == "/etc/sixgate/gatewayd.toml:4: ipv6.prefix: \"2001:db8::/129\" is not an IPv6 prefix such as 2001:db8:1::/64")
        #expect(error("mtu = 900\n")?.description == "/etc/sixgate/gatewayd.toml:1: mtu: 900 is out of range 1280-65535")
        #expect(error("tunnel_queues = 0\n")?.description == "/etc/sixgate/gatewayd.toml:1: tunnel_queues: 0 is out of range 1-16")
        #expect(error("tunnel_queue_target = 20\ntunnel_queue_interval = 10\n")?.description
                == "/etc/sixgate/gatewayd.toml:2: tunnel_queue_interval: the interval (10 ms) must exceed the target (20 ms); tunnel_queue_target = 0 turns queue management off")
        #expect((try? parse("tunnel_queue_target = 0\n"))?.tunnelQueueManagement == nil, "0 turns it off")
        #expect((try? parse(""))?.tunnelQueueManagement == CoDel(), "on by default with RFC 8289's 5 ms and 100 ms")
        #expect(error("listen_port = \"51820\"\n")?.description == "/etc/sixgate/gatewayd.toml:1: listen_port: expected a whole number")
        #expect(error("[ipv6]\nndp_proxi = \"kernel\"\n")?.description == "/etc/sixgate/gatewayd.toml:2: ipv6.ndp_proxi: unknown key; did you mean ipv6.ndp_proxy?")
        #expect(error("[ipv4]\npool = \"192.0.2.0/24\"\ngateway_address = \"198.51.100.1\"\n")?.description == "/etc/sixgate/gatewayd.toml:3: ipv4.gateway_address: 198.51.100.1 is outside ipv4.pool 192.0.2.0/24")
        #expect(error("mtu = 1400\nmtu = 1400\n")?.description == "/etc/sixgate/gatewayd.toml:2: mtu: set twice (first on line 1)")
        #expect(error("endpoint = \"198.51.100.1\"\n")?.key == "endpoint")
        #expect(error("interface = this-is-not-quoted\n")?.line == 1)
        #expect(error("[uplink\n")?.description == "/etc/sixgate/gatewayd.toml:1: a table header looks like [name]")
        #expect(error("[ipv6]\nndp_proxy = \"bogus\"\n")?.description == "/etc/sixgate/gatewayd.toml:2: ipv6.ndp_proxy: \"bogus\" is not kernel, responder or off")
        #expect((try? parse("[ipv6]\nndp_proxy = \"responder\"\n"))?.ndpProxy == .responder)
        #expect(error("[ipv6]\nprefix = \"2001:db8::/64\"\nisp_router = \"2001:db8:1::1\"\n")?.description.contains("ipv6.isp_router: 2001:db8:1::1 is outside") == true)
    }

    /// A group (issue 25): its keys, read and refused with the file, line and key.
    @Test func groupSettingsAreReadAndChecked() throws {
        let g = try parse("[group]\ndatabase = \"host=/run/postgresql dbname=sixgate\"\nname = \"gw-a\"\nannounce_table = 7474\nanycast = [\"198.51.100.200\"]\n")
        #expect(g.groupDatabase == "host=/run/postgresql dbname=sixgate" && g.groupName == "gw-a" && g.announceTable == 7474 && g.anycast == [IPAddress("198.51.100.200")!])
        #expect(error("[group]\ndatabase = \"x\"\nannounce_table = 254\n")?.description == "/etc/sixgate/gatewayd.toml:3: group.announce_table: 254 is the kernel's default, main or local table: choose a table of its own (such as 7474) for BIRD to learn from")
        #expect(error("[group]\ndatabase = \"x\"\nanycast = [\"198.51.100.200\"]\n")?.key == "group.anycast")
        #expect(error("[group]\nname = \"gw-a\"\n")?.description == "/etc/sixgate/gatewayd.toml:2: group.name: set, but group.database is not")
        #expect(error("[group]\ndatabase = \"x\"\nname = \"gw a\"\n")?.key == "group.name")
        #expect(error("[group]\ndatabase = \" \"\n")?.key == "group.database")
    }

    @Test func prefixSourcesAreNamedAsOperatorsSayThem() throws {
        #expect(try parse("[ipv6]\nprefix_source = \"dhcpv6-pd\"\n").prefixSource.isSetFromOutside)
        #expect(try parse("[ipv6]\nprefix_source = \"external\"\n").prefixSource.isSetFromOutside)
        #expect(try !parse("[ipv6]\nprefix_source = \"ra\"\n").prefixSource.isSetFromOutside)
        #expect(error("[ipv6]\nprefix_source = \"dhcp\"\n")?.description.contains("ipv6.prefix_source: \"dhcp\" is not static, external, dhcpv6-pd or ra") == true,
                "\(error("[ipv6]\nprefix_source = \"dhcp\"\n")?.description ?? "")")
    }

    /// Small allocations (issue 24): a /124 beside the ISP's link, and a list of single addresses.
    @Test func smallAllocationsAreReadAndChecked() throws {
        // A /124 with the ISP router and the uplink on the link's /64 outside it.
        let block = try parse("[ipv6]\nprefix = \"2001:db8:1::10/124\"\nisp_router = \"2001:db8:1::1\"\nuplink_address = \"2001:db8:1::2\"\n")
        let blockPool = try AddressAllocator(pools: GatewayPlanner.pools(block), store: MemoryLeaseStore())
        #expect(try blockPool.allocate(client: "a", in: GatewayPlanner.v6Pool).prefix == IPPrefix("2001:db8:1::10/128")!)
        #expect(try blockPool.allocate(client: "b", in: GatewayPlanner.v6Pool).prefix == IPPrefix("2001:db8:1::11/128")!)
        #expect(try blockPool.allocate(client: "c", in: GatewayPlanner.v6Pool).prefix == IPPrefix("2001:db8:1::12/128")!)
        #expect(try blockPool.allocate(client: "d", in: GatewayPlanner.v6Pool).prefix == IPPrefix("2001:db8:1::14/128")!, "::13 is the gateway's")
        #expect(error("[ipv6]\nprefix = \"2001:db8:1::10/126\"\n")?.description.contains("a /126 leaves no room for clients; for a few single addresses, list them in ipv6.addresses") == true)
        // A list: exactly those, the first the gateway's own.
        let list = try parse("[ipv6]\nprefix = \"2001:db8:1::/64\"\naddresses = [\"2001:db8:1::a\", \"2001:db8:1::b\", \"2001:db8:1::c\"]\n")
        #expect(list.effectiveGatewayAddress == IPv6Address("2001:db8:1::a")!)
        let pool = try AddressAllocator(pools: GatewayPlanner.pools(list), store: MemoryLeaseStore())
        #expect(try pool.allocate(client: "a", in: GatewayPlanner.v6Pool).prefix == IPPrefix("2001:db8:1::b/128")!)
        #expect(try pool.allocate(client: "b", in: GatewayPlanner.v6Pool).prefix == IPPrefix("2001:db8:1::c/128")!)
        #expect(throws: AddressPoolError.self) { try pool.allocate(client: "c", in: GatewayPlanner.v6Pool) }
        for (text, why) in [
            ("npt_prefix = \"fd00::/48\"", "ipv6.npt_prefix: /48: NPTv6 maps prefixes of the same length, at most /64"),
            ("npt_prefix = \"2001:db8:1::/64\"", "ipv6.npt_prefix: 2001:db8:1::/64 overlaps ipv6.prefix"),
            ("npt_prefix = \"fd00::/64\"\nallocation = \"prefixes\"\ndelegated_length = 80", "ipv6.npt_prefix: needs allocation = \"hosts\""),
            ("addresses = [\"2001:db8:2::a\", \"2001:db8:1::b\"]", "ipv6.addresses: 2001:db8:2::a is outside ipv6.prefix 2001:db8:1::/64"),
            ("addresses = [\"2001:db8:1::a\"]", "ipv6.addresses: no address left for clients beside the gateway's own 2001:db8:1::a"),
            ("addresses = [\"2001:db8:1::2\", \"2001:db8:1::b\"]", "ipv6.addresses: 2001:db8:1::2 is the uplink's address"),
            ("addresses = [\"2001:db8:1::a\", \"2001:db8:1::b\"]\nprefix_source = \"external\"", "does not follow a prefix_source of \"external\""),
            ("addresses = [\"nope\"]", "ipv6.addresses: \"nope\" is not an IPv6 address"),
        ] {
            let e = error("[ipv6]\nprefix = \"2001:db8:1::/64\"\n" + text + "\n")
            #expect(e?.description.contains(why) == true, "\(text): \(e?.description ?? "accepted")")
        }
    }

    @Test func theNAT64TableIsReadWithItsDefaultsAndChecked() throws {
        #expect(try parse("").nat64 == nil, "off unless enabled")
        let d = try parse("[nat64]\nenabled = true\n").nat64
        #expect(d?.prefix.description == "64:ff9b::/96" && d?.pool.description == "100.64.1.0/24" && d?.interface == "sixgate0-nat64")
        #expect(d?.translatorAddress.description == "100.64.1.1")
        let c = try parse("[nat64]\nenabled = true\nprefix = \"2001:db8:64::/96\"\npool = \"203.0.113.64/26\"\ninterface = \"xlat0\"\n").nat64
        #expect(c == NAT64Settings(prefix: IPv6Prefix("2001:db8:64::/96")!, pool: IPv4Prefix("203.0.113.64/26")!, interface: "xlat0"))
        #expect(error("[nat64]\nenabled = true\nprefix = \"2001:db8:64::/80\"\n")?.description
                == "/etc/sixgate/gatewayd.toml:3: nat64.prefix: /80: RFC 6052 allows /32, /40, /48, /56, /64 or /96")
        #expect(error("[nat64]\nprefix = \"64:ff9b::/96\"\n")?.description == "/etc/sixgate/gatewayd.toml:2: nat64.prefix: set, but nat64.enabled is not true")
        #expect(error("[nat64]\nenabled = true\npool = \"100.64.0.0/23\"\n")?.description == "/etc/sixgate/gatewayd.toml:3: nat64.pool: 100.64.0.0/23 overlaps ipv4.pool 100.64.0.0/24")
        #expect(error("[nat64]\nenabled = true\npool = \"100.64.1.0/31\"\n")?.key == "nat64.pool")
        // RFC 7915 §4.4/§5.4 and §4.5's knobs.
        #expect(d?.errorsPerSecond == 100 && d?.amendZeroUDPChecksum == true)
        let k = try parse("[nat64]\nenabled = true\nicmp_errors_per_second = 0\namend_zero_udp_checksum = false\n").nat64
        #expect(k?.errorsPerSecond == 0 && k?.amendZeroUDPChecksum == false)
        #expect(error("[nat64]\nenabled = true\nicmp_errors_per_second = -1\n")?.key == "nat64.icmp_errors_per_second")
        let lowest = try parse("[nat64]\nenabled = true\nlowest_ipv6_mtu = 1300\n").nat64?.lowestIPv6MTU
        #expect(d?.lowestIPv6MTU == nil && lowest == 1300)
        #expect(error("[nat64]\nenabled = true\nlowest_ipv6_mtu = 1500\n")?.description == "/etc/sixgate/gatewayd.toml:3: nat64.lowest_ipv6_mtu: 1500 is more than the tunnel's mtu (1420), the IPv6 path's own")
        #expect(error("[nat64]\nicmp_errors_per_second = 5\n")?.description == "/etc/sixgate/gatewayd.toml:2: nat64.icmp_errors_per_second: set, but nat64.enabled is not true")
        #expect(error("[nat64]\nenabled = true\nprefix = \"2001:db8::/32\"\n")?.key == "nat64.prefix", "overlaps ipv6.prefix")
        #expect(error("[ipv6]\nallocation = \"prefixes\"\nprefix = \"2001:db8::/48\"\n[nat64]\nenabled = true\n")?.key == "nat64.enabled")
        #expect(error("[nat64]\nenabled = true\ninterface = \"sixgate0\"\n")?.key == "nat64.interface")
        #expect(d?.clat == false, "the CLAT's second address per client only when asked for")
        #expect(try parse("").watchInterval == 2 && parse("watch_interval = 0\n").watchInterval == 0)
        #expect(error("watch_interval = -1\n")?.key == "watch_interval")
        // Thousands of '[' once overflowed the stack (fuzz-config-toml): now an error on its line.
        let deep = error("state_directory = \"/x\"\ndns = " + String(repeating: "[", count: 5000) + "\n")
        #expect(deep?.line == 2 && deep?.description.contains("arrays nested deeper than 16") == true, "\(String(describing: deep))")
        #expect(try parse("[nat64]\nenabled = true\nclat = true\n").nat64?.clat == true)
        #expect(error("[nat64]\nclat = true\n")?.description == "/etc/sixgate/gatewayd.toml:2: nat64.clat: set, but nat64.enabled is not true")
    }

    @Test func commentsAndQuotesAreHandled() throws {
        let c = try parse("state_directory = \"/srv/a#1\"   # a comment with \"quotes\"\n[hooks]\nup = '/opt/hooks/up # not a comment'\n")
        #expect(c.stateDirectory == "/srv/a#1")
        #expect(c.hooks["up"] == "/opt/hooks/up # not a comment")
    }
}

/// gatewayctl without a running gatewayd works on the state directory's files.
@Suite(.enabled(if: isRoot, "needs root (netlink socket, state directory)"))
struct OfflineAdminTests {
    @Test func clientsAreEnrolledAndListedWithoutADaemon() throws {
        let dir = "/tmp/sg-gwoff-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = GatewayConfiguration()
        config.stateDirectory = dir
        config.ipv6Prefix = IPv6Prefix("2001:db8:7::/64")!
        config.ipv4Pool = IPv4Prefix("192.0.2.0/24")!
        config.endpoint = "192.0.2.200:51820"
        let key = X25519.publicKey(X25519.generatePrivateKey()).base64
        let (client, live) = try GatewayAdmin.addClient(config, name: "laptop", publicKey: key)
        #expect(!live)
        #expect(client.addresses == ["2001:db8:7::4/128", "192.0.2.2/32"])
        #expect(throws: GatewayError.clientExists("laptop")) { try GatewayAdmin.addClient(config, name: "laptop", publicKey: key) }
        #expect(throws: GatewayError.self) { try GatewayAdmin.addClient(config, name: "phone", publicKey: key) }
        #expect(throws: GatewayError.invalidClientName("../etc")) { try GatewayAdmin.addClient(config, name: "../etc", publicKey: key) }
        let (status, _) = try GatewayAdmin.status(config)
        #expect(status.clients.map(\.name) == ["laptop"])
        let text = GatewayAdmin.clientConfiguration(config, client: client, gatewayPublicKey: status.publicKey, privateKey: "PRIV")
        #expect(text.contains("Address = 2001:db8:7::4/128, 192.0.2.2/32\n") && text.contains("AllowedIPs = ::/0, 0.0.0.0/0\n"))
        #expect(text.contains("Endpoint = 192.0.2.200:51820\n") && text.contains("PublicKey = \(status.publicKey)\n"))
        // The key file is private, and the same key comes back.
        var st = stat()
        #expect(stat(config.privateKeyPath, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try GatewayAdmin.status(config).0.publicKey == status.publicKey)
        #expect(try GatewayAdmin.removeClient(config, name: "laptop") == false)
        #expect(try GatewayAdmin.leases(config).map { "\($0.prefix) \($0.isActive)" } == ["192.0.2.2/32 false", "2001:db8:7::4/128 false"])
    }
}

/// The firewall keys of gatewayd.toml and of a client's record.
struct FirewallConfigurationTests {
    func parse(_ text: String) throws(ConfigError) -> GatewayConfiguration { try GatewayConfiguration(text: text, path: "/etc/sixgate/gatewayd.toml") }

    @Test func onByDefaultWithIsolationAndEcho() throws {
        let c = try parse("")
        #expect(c.firewall && c.isolateClients && c.inboundEcho)
        let d = try parse("firewall = \"on\"\nisolate_clients = false\ninbound_echo = false\n")
        #expect(d.firewall && !d.isolateClients && !d.inboundEcho)
        #expect(try !parse("firewall = \"off\"\n").firewall)
    }

    @Test func badValuesNameTheLineAndKey() {
        for (text, expected) in [("firewall = \"maybe\"\n", "gatewayd.toml:1: firewall: \"maybe\" is not \"on\" or \"off\""),
                                 ("firewall = true\n", "gatewayd.toml:1: firewall: expected a string"),
                                 ("firewall = \"off\"\n\ninbound_echo = true\n", "gatewayd.toml:3: inbound_echo: set, but firewall is \"off\"")] {
            do { _ = try parse(text); Issue.record("accepted: \(text)") } catch {
                #expect(error.description.contains(expected), "\(error)")
            }
        }
    }

    @Test func aClientRecordCarriesItsOpeningsAndRefusesBadOnes() throws {
        let dir = NSTemporaryDirectory() + "sg-reg-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = ClientRegistry(directory: dir)
        let key = "gw83nm0gZnLZDhWWkc3vkx2MYjjpoOwu891hkDqPTyE="
        try registry.write(ClientRecord(name: "alice", publicKey: key, open: [try PortOpening(parsing: "udp/10-20"), try PortOpening(parsing: "tcp/22"), try PortOpening(parsing: "udp/15-25")], isolated: false))
        let back = try registry.read("alice")
        #expect(back.open.map(\.description) == ["tcp/22", "udp/10-25"] && !back.isolated)
        // A record written before the firewall existed reads as closed and isolated.
        try "public_key = \"\(key)\"\n".write(toFile: dir + "/bob", atomically: true, encoding: .utf8)
        #expect(try registry.read("bob") == ClientRecord(name: "bob", publicKey: key))
        try "public_key = \"\(key)\"\nopen = [\"tcp/22\", \"tcp/0\"]\n".write(toFile: dir + "/carol", atomically: true, encoding: .utf8)
        do { _ = try registry.read("carol"); Issue.record("tcp/0 accepted") } catch {
            #expect(error.description.contains("\(dir)/carol:2: open: \"tcp/0\": port 0 is outside 1-65535"), "\(error)")
        }
    }

    @Test func closingPartOfARangeSplitsIt() throws {
        let open = [try PortOpening(parsing: "udp/10-20"), try PortOpening(parsing: "tcp/22")]
        #expect(Gateway.subtract(try PortOpening(parsing: "udp/15"), from: open).map(\.description) == ["udp/10-14", "udp/16-20", "tcp/22"])
        #expect(Gateway.subtract(try PortOpening(parsing: "udp/10-20"), from: open).map(\.description) == ["tcp/22"])
    }
}

/// Issue 28: docs/gatewayd.toml.example claims to list every key; every key the reader accepts is there.
@Test func everyGatewaydKeyIsInTheExample() throws {
    let text = try String(contentsOfFile: repositoryDirectory + "/docs/gatewayd.toml.example", encoding: .utf8)
    #expect(keysMissing(from: text, GatewayConfiguration.knownKeys) == [])
    // And the example itself reads (with its commented keys as they are).
    #expect(throws: Never.self) { try GatewayConfiguration(text: text, path: "gatewayd.toml.example") }
}

@Test func theMTUWarningNamesTheNumbers() {
    var c = GatewayConfiguration()
    c.mtu = 1500; c.uplink = "eth0"
    #expect(c.mtuWarning(uplinkMTU: 1500)?.contains("mtu = 1500 does not fit eth0's MTU 1500: each tunnel packet needs 1580 bytes") == true)
    #expect(c.mtuWarning(uplinkMTU: 1500)?.hasSuffix("set mtu = 1420") == true)
    c.endpoint = "198.51.100.1:51820"
    #expect(c.mtuWarning(uplinkMTU: 1500)?.hasSuffix("set mtu = 1440") == true)
    c.mtu = 1420
    #expect(c.mtuWarning(uplinkMTU: 1500) == nil)
    #expect(c.mtuWarning(uplinkMTU: 1300)?.contains("raise its MTU to 1340") == true)
}

/// Issue 27: a setup error keeps what failed underneath (here AddressPool's, for a lease store that
/// is not a database) and says on what, in the message the CLI prints.
@Test func aSetupErrorKeepsTheErrorUnderneath() throws {
    let dir = NSTemporaryDirectory() + "sg-setup-\(uniqueSuffix())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = GatewayConfiguration()
    config.stateDirectory = dir
    try Data("this is not an SQLite database, it is text".utf8).write(to: URL(fileURLWithPath: config.leaseStorePath))
    do {
        _ = try GatewayAdmin.leases(config)
        Issue.record("a text file read as a lease store")
    } catch {
        guard case .setup(let failure) = error else { Issue.record("not a setup error: \(error)"); return }
        #expect(failure.underlying is AddressPoolError, "\(String(describing: failure.underlying))")
        #expect(error.description.contains(config.leaseStorePath), "\(error)")
    }
    #expect(GatewayError.setup(SetupFailure("netlink", "x")) == GatewayError.setup(SetupFailure("netlink", "x")))
    #expect(GatewayError.setup(SetupFailure("netlink", "x")).description == "netlink: x")
}
