import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Following a delegated prefix with real peers (issue 24): Kea's DHCPv6 server in the ISP's
/// namespace delegates a /56 out of its pool; dhcpcd on the gateway's uplink asks for it and runs
/// dist/dhcpcd-hook-sixgate, which hands it to gatewayd (`prefix_source = "dhcpv6-pd"`). The ISP
/// then renumbers (Kea's pool changes, the next renew brings a new /56): gatewayd follows without
/// a restart, a tunnel-client behind it keeps its /64's index and reaches the internet host again.
/// The test plays the ISP router's one other part: routing each delegated prefix to the gateway.
/// A daemon in a process group of its own, started with posix_spawn (not Foundation's Process:
/// dhcpcd's privilege-separated helpers would keep Foundation's exit monitor open forever), its
/// output in a file; stopped by signalling the whole group, by PID.
final class ProcessGroup {
    let pid: pid_t
    let outputPath: String
    init(_ argv: [String]) throws {
        outputPath = NSTemporaryDirectory() + "sixgate-pg-\(uniqueSuffix()).log"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, argv[0], &actions, &attributes, &cArgs, environ)
        guard rc == 0 else { throw TransferError("posix_spawnp \(argv[0]): \(String(cString: strerror(rc)))") }
        pid = child
    }
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    /// SIGTERM to the group, SIGKILL after 3 s, then the leader reaped.
    func stop() {
        kill(-pid, SIGTERM)
        for _ in 0..<30 where kill(-pid, 0) == 0 { usleep(100_000) }
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        unlink(outputPath)
    }
}

@Suite("DHCPv6-PD", .enabled(if: isRoot && which("kea-dhcp6") != nil && which("dhcpcd") != nil, "needs root, kea-dhcp6 and dhcpcd"))
struct PrefixDelegationTests {
    func keaConfig(_ bed: GatewayTestbed, pool: String, lifetimes: (preferred: Int, valid: Int) = (30, 60)) -> String {
        """
        {"Dhcp6": {
          "interfaces-config": {"interfaces": ["\(bed.ispSide)"]},
          "lease-database": {"type": "memfile", "persist": true, "name": "\(bed.stateDirectory)/kea-leases6.csv", "lfc-interval": 0},
          "server-id": {"type": "LL", "persist": false},
          "preferred-lifetime": \(lifetimes.preferred), "valid-lifetime": \(lifetimes.valid), "renew-timer": 3, "rebind-timer": 5,
          "subnet6": [{"id": 1, "subnet": "2001:db8:1::/64", "interface": "\(bed.ispSide)",
                       "pd-pools": [{"prefix": "\(pool)", "prefix-len": 48, "delegated-len": 56}]}],
          "loggers": [{"name": "kea-dhcp6", "output_options": [{"output": "\(bed.stateDirectory)/kea.log"}], "severity": "INFO"}]
        }}
        """
    }

    /// The ISP (Kea in the ISP's namespace, delegating /56s out of `pool`) and the gateway's
    /// dhcpcd with Sixgate's hook; gatewayd started once the first prefix is delegated.
    final class Setup {
        let bed: GatewayTestbed
        var kea: BackgroundProcess?
        var dhcpcd: ProcessGroup?
        let prefixFile: String
        let hookEnvironment: String
        init(_ test: PrefixDelegationTests, pool: String, lifetimes: (preferred: Int, valid: Int) = (30, 60), ipv6: String = """
                prefix = "2001:db8:ff00::/56"          # until the first delegation
                prefix_source = "dhcpv6-pd"
                allocation = "prefixes"
                delegated_length = 64
                """) throws {
            bed = try GatewayTestbed()
            prefixFile = bed.stateDirectory + "/prefix"
            hookEnvironment = bed.stateDirectory + "/hook-env.log"
            do {
                try startKea(test, pool: pool, lifetimes: lifetimes)
                // gatewayd: routed prefixes (a /64 per client out of whatever /56 is delegated), no NDP proxy.
                try bed.writeConfig(ndpProxy: "off", ipv6: ipv6)
                // dhcpcd on the uplink, with Sixgate's hook as its script (dhcpcd gives scripts a clean
                // environment: the wrapper says where gatewayctl and the config are, and keeps what
                // dhcpcd passed, for the failure messages).
                let hook = bed.stateDirectory + "/dhcpcd-hook.sh"
                try writeExecutable("""
                    #!/bin/sh
                    echo "$reason $(env | grep '^new_dhcp6_ia_pd' | sort | tr '\\n' ' ')" >> "\(hookEnvironment)"
                    SIXGATE_GATEWAYCTL="\(builtProductsDirectory)/gatewayctl"
                    SIXGATE_CONFIG="\(bed.configPath)"
                    . "\(repositoryDirectory)/dist/dhcpcd-hook-sixgate"
                    """, to: hook)
                let dhcpcdConf = bed.stateDirectory + "/dhcpcd.conf"
                try "ipv6only\nnoipv6rs\nallowinterfaces \(bed.uplink)\nscript \(hook)\ninterface \(bed.uplink)\n  ia_pd 1\n"
                    .write(toFile: dhcpcdConf, atomically: true, encoding: .utf8)
                dhcpcd = try ProcessGroup(["ip", "netns", "exec", bed.gw, "dhcpcd", "-B", "-f", dhcpcdConf, "-6", bed.uplink])
            } catch {
                destroy()
                throw error
            }
        }
        func startKea(_ test: PrefixDelegationTests, pool: String, lifetimes: (preferred: Int, valid: Int) = (30, 60)) throws {
            let path = bed.stateDirectory + "/kea.json"
            try test.keaConfig(bed, pool: pool, lifetimes: lifetimes).write(toFile: path, atomically: true, encoding: .utf8)
            let env = ["KEA_PIDFILE_DIR": bed.stateDirectory, "KEA_LOCKFILE_DIR": bed.stateDirectory]
            kea = try BackgroundProcess(["ip", "netns", "exec", bed.isp, "kea-dhcp6", "-c", path], environment: env, captureOutput: true)
        }
        func stopKea() { kea?.stop(); kea = nil }
        /// The prefix gatewayd holds or will start with (STATE/prefix's first line).
        var delegated: String {
            ((try? String(contentsOfFile: prefixFile, encoding: .utf8)) ?? "").split(separator: "\n").first.map(String.init) ?? ""
        }
        var hookCalls: String { (try? String(contentsOfFile: hookEnvironment, encoding: .utf8)) ?? "" }
        var diagnostics: String { "hook calls:\n\(hookCalls)\ndhcpcd:\n\(dhcpcd?.output ?? "")\ngatewayd:\n\(bed.gateway?.output ?? "")" }
        func destroy() {
            dhcpcd?.stop()
            stopKea()
            bed.destroy()
        }
    }

    @Test func gatewaydFollowsTheDelegatedPrefixThroughARenumbering() throws {
        let setup = try Setup(self, pool: "2001:db8:100::")
        defer { setup.destroy() }
        let bed = setup.bed
        // gatewayd is not running yet: the hook's prefix waits for its start.
        #expect(eventually(timeout: 30) { setup.delegated == "2001:db8:100::/56" }, "\(setup.diagnostics)")
        try bed.exec(bed.isp, ["ip", "-6", "route", "replace", "2001:db8:100::/56", "via", "2001:db8:1::2", "dev", bed.ispSide])
        try bed.startGateway()

        // carol: tunnel-client in host mode, on the second carrier.
        let (carol, tun) = try bed.startTunnelClientOnSecondCarrier("carol")
        func carolAddresses() -> [String] {
            let text = (try? bed.exec(bed.cl2, ["ip", "-6", "addr", "show", "dev", tun, "scope", "global"], check: false).stdout) ?? ""
            return text.split(separator: " ").filter { $0.hasPrefix("2001:db8:") }.map(String.init)
        }
        #expect(eventually(timeout: 20) { carolAddresses().first?.hasPrefix("2001:db8:100:") == true }, "\(carol.output)")
        #expect(carolAddresses().count == 1, "nothing kept of the config file's stand-in prefix: \(carolAddresses())")
        let before = try #require(carolAddresses().first)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "carol through the first delegation")
        // dave: tunnel-client in router mode on the first carrier, a SLAAC host (the kernel's own) on its LAN.
        let lan = "sg-gl-\(bed.id)", lanHost = "sgl\(bed.id)", lanRouter = "sgm\(bed.id)", daveTun = "sgj\(bed.id)"
        try bed.addNamespace(lan, linkedTo: bed.cl, lanHost, lanRouter)
        var daveConfig = try bed.gatewayctl(["clients", "add", "dave", "--format", "tunnel-client"]).stdout
        daveConfig = daveConfig.replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"\(daveTun)\"") + "\n[router]\ninterface = \"\(lanRouter)\"\ninterval = 4\n"
        let dave = try bed.startTunnelClient(in: bed.cl, config: daveConfig, name: "dave")
        func slaac(_ prefix: String) -> [String: Any]? {
            let j = (try? bed.exec(lan, ["ip", "-j", "-6", "addr", "show", "dev", lanHost], check: false).stdout) ?? "[]"
            let links = (try? JSONSerialization.jsonObject(with: Data(j.utf8))) as? [[String: Any]] ?? []
            return (links.first?["addr_info"] as? [[String: Any]])?.first { ($0["local"] as? String)?.hasPrefix(prefix) == true && $0["prefixlen"] as? Int == 64 }
        }
        #expect(eventually(timeout: 30) { slaac("2001:db8:100:") != nil }, "\(dave.output)")
        #expect(eventually(timeout: 30) { (try? bed.ping(from: lan, "2001:db8:ffff::1", count: 1)) == 1 }, "dave's LAN through the first delegation: \(dave.output)")
        let lanBefore = try #require(slaac("2001:db8:100:")?["local"] as? String)

        // The hook handed on the lease's lifetimes.
        #expect(setup.hookCalls.contains("_vltime=60"), "\(setup.diagnostics)")
        #expect((try? String(contentsOfFile: setup.prefixFile, encoding: .utf8))?.contains("valid-until ") == true)

        // The ISP renumbers: Kea's pool moves, its leases are gone; dhcpcd's next renew brings a new /56.
        setup.stopKea()
        try? FileManager.default.removeItem(atPath: bed.stateDirectory + "/kea-leases6.csv")
        try setup.startKea(self, pool: "2001:db8:200::")
        #expect(eventually(timeout: 30) { setup.delegated == "2001:db8:200::/56" }, "\(setup.diagnostics)")
        #expect(eventually(timeout: 10) { bed.gateway?.output.contains("prefix change: 2001:db8:100::/56 -> 2001:db8:200::/56") == true }, "\(setup.diagnostics)")
        try bed.exec(bed.isp, ["ip", "-6", "route", "replace", "2001:db8:200::/56", "via", "2001:db8:1::2", "dev", bed.ispSide])
        // carol: told inside the tunnel, same /64 index.
        let expected = before.replacingOccurrences(of: "2001:db8:100:", with: "2001:db8:200:")
        #expect(eventually(timeout: 15) { carolAddresses().contains(expected) }, "\(before) -> \(carolAddresses()): \(carol.output)")
        #expect(eventually(timeout: 30) {
            (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", source: String(expected.split(separator: "/")[0]), count: 1)) == 1
        }, "carol through the new delegation: \(setup.diagnostics)")
        #expect(try bed.gatewayctl(["leases"]).stdout.contains("2001:db8:200:"))
        // dave's LAN: the new /64 at the same index advertised at once, the old one deprecated
        // (preferred lifetime 0: withdrawn by the ISP, or kept for its valid lifetime), and the
        // SLAAC host reaches the internet from its new address.
        let lanIndexWord = lanBefore.split(separator: ":")[3]
        #expect(eventually(timeout: 20) { (slaac("2001:db8:200:\(lanIndexWord):")?["local"] as? String) != nil }, "\(dave.output)")
        #expect(eventually(timeout: 20) { slaac("2001:db8:100:").map { $0["preferred_life_time"] as? Int == 0 } ?? true }, "\(slaac("2001:db8:100:") ?? [:])")
        let lanAfter = try #require(slaac("2001:db8:200:")?["local"] as? String)
        // Kea withdraws the old /56 (lifetime 0 in its reply, RFC 8415 §18.3.4): dave says so and advertises it with lifetimes 0.
        if setup.hookCalls.contains("prefix2_vltime=0") {
            #expect(dave.output.contains("router mode: 2001:db8:100:\(lanIndexWord)::/64 withdrawn by the gateway"), "\(dave.output)")
        }
        #expect(eventually(timeout: 20) { (try? bed.exec(lan, ["ip", "-6", "route", "get", "2001:db8:ffff::1"]).stdout.contains("src \(lanAfter)")) == true })
        #expect(eventually(timeout: 30) { (try? bed.ping(from: lan, "2001:db8:ffff::1", source: lanAfter, count: 1)) == 1 }, "dave's LAN through the new delegation: \(dave.output)")
        // The old /56: withdrawn by the server (lifetime 0) or kept until its valid lifetime (60 s)
        // ends; either way gone from the gateway and from carol within it.
        #expect(eventually(timeout: 75) {
            let routes = (try? bed.exec(bed.gw, ["ip", "-6", "route", "show", "proto", "74"]).stdout) ?? "2001:db8:100:"
            return routes.contains("2001:db8:200:") && !routes.contains("2001:db8:100:")
        }, "\(setup.diagnostics)")
        try bed.exec(bed.isp, ["ip", "-6", "route", "del", "2001:db8:100::/56"])
        #expect(eventually(timeout: 10) { carolAddresses() == [expected] }, "\(carolAddresses()): \(carol.output)")
    }

    /// The ISP's server goes away: renewals fail, gatewayd says when the prefix's preferred and
    /// valid lifetimes end and keeps it configured; the server comes back and the next reply puts
    /// the prefix back in service. Short lifetimes (12 s preferred, 20 s valid) keep it quick.
    @Test func theServerGoingAwayIsSaidAndRecoveredFrom() throws {
        let setup = try Setup(self, pool: "2001:db8:100::", lifetimes: (12, 20))
        defer { setup.destroy() }
        let bed = setup.bed
        #expect(eventually(timeout: 30) { setup.delegated == "2001:db8:100::/56" }, "\(setup.diagnostics)")
        try bed.startGateway()
        // gatewayctl status: the prefix and when its lifetimes end, renewed every few seconds.
        func status() -> [String: Any] {
            let text = (try? bed.gatewayctl(["status", "--json"]).stdout) ?? "{}"
            return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        }
        let first = status()
        #expect(first["prefix"] as? String == "2001:db8:100::/56", "\(first)")
        let firstValid = try #require(first["prefixValidUntil"] as? Int, "\(first)")
        #expect(eventually(timeout: 15) { (status()["prefixValidUntil"] as? Int ?? 0) > firstValid }, "renewals reach gatewayd: \(setup.diagnostics)")

        setup.stopKea()
        #expect(eventually(timeout: 30) { bed.gateway?.output.contains("prefix 2001:db8:100::/56: preferred lifetime over without a renewal") == true }, "\(setup.diagnostics)")
        #expect(eventually(timeout: 30) { bed.gateway?.output.contains("prefix 2001:db8:100::/56: valid lifetime ended without a renewal") == true }, "\(setup.diagnostics)")
        let doctor = try bed.gatewayctl(["doctor", "--capture-seconds", "0"], check: false)
        #expect(doctor.stdout.contains("prefix 2001:db8:100::/56") && doctor.stdout.contains("expired"), "\(doctor.stdout)")
        // Kept configured meanwhile: the clients' routes and the prefix are still there.
        #expect(setup.delegated == "2001:db8:100::/56")

        // The server is back (its lease file kept): dhcpcd's next solicit or rebind gets the prefix again.
        try setup.startKea(self, pool: "2001:db8:100::", lifetimes: (12, 20))
        #expect(eventually(timeout: 120) { bed.gateway?.output.contains("lifetimes renewed after it expired") == true }, "\(setup.diagnostics)")
        let after = try bed.gatewayctl(["doctor", "--capture-seconds", "0"], check: false)
        #expect(!after.stdout.contains("expired"), "\(after.stdout)")
    }

    /// NPTv6 with a real delegation: the gateway's stock WireGuard client has an address of a
    /// stable inside /56, translated to whatever /56 Kea delegates. The ISP renumbers; within one
    /// renew the client reaches the internet host again, from its twin in the new /56, with its
    /// config (and wireguard-go) untouched.
    @Test func aStockClientBehindNPTv6FollowsADelegation() throws {
        let setup = try Setup(self, pool: "2001:db8:100::", ipv6: """
            prefix = "2001:db8:ff00::/56"          # until the first delegation
            prefix_source = "dhcpv6-pd"
            npt_prefix = "fd00:6296::/56"
            """)
        defer { setup.destroy() }
        let bed = setup.bed
        #expect(eventually(timeout: 30) { setup.delegated == "2001:db8:100::/56" }, "\(setup.diagnostics)")
        try bed.exec(bed.isp, ["ip", "-6", "route", "replace", "2001:db8:100::/56", "via", "2001:db8:1::2", "dev", bed.ispSide])
        try bed.startGateway()
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        #expect(alice.contains("Address = fd00:6296::"), "\(alice)")
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice through the first delegation: \(setup.diagnostics)")
        #expect(try bed.gatewayctl(["status"]).stdout.contains("(NPTv6: 2001:db8:100:"))

        setup.stopKea()
        try? FileManager.default.removeItem(atPath: bed.stateDirectory + "/kea-leases6.csv")
        try setup.startKea(self, pool: "2001:db8:200::")
        #expect(eventually(timeout: 30) { setup.delegated == "2001:db8:200::/56" }, "\(setup.diagnostics)")
        #expect(eventually(timeout: 10) { bed.gateway?.output.contains("NPTv6 now maps fd00:6296::/56 to 2001:db8:200::/56") == true }, "\(setup.diagnostics)")
        try bed.exec(bed.isp, ["ip", "-6", "route", "del", "2001:db8:100::/56"])
        try bed.exec(bed.isp, ["ip", "-6", "route", "replace", "2001:db8:200::/56", "via", "2001:db8:1::2", "dev", bed.ispSide])
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "alice through the new delegation: \(setup.diagnostics)")
        #expect(try bed.gatewayctl(["status"]).stdout.contains("(NPTv6: 2001:db8:200:"))
        let shown = try bed.gatewayctl(["clients", "show", "alice"]).stdout
        let address = alice.split(separator: "\n").first { $0.hasPrefix("Address = ") }.map(String.init) ?? "?"
        #expect(shown.contains(address), "the same config: \(shown)")
    }
}
