import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// gatewayd after setup: only CAP_NET_ADMIN and CAP_NET_RAW left (effective, permitted and the
/// bounding set, so hooks and nft get no more), its files and sockets closed to other users, and
/// everything it does later (a client enrolled live, a reload, stop's clean-up) still works.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct PrivilegeTests {
    func capabilities(_ pid: Int32) -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("Cap") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            out[parts[0]] = parts[1]
        }
        return out
    }

    func mode(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : nil
    }

    @Test func gatewaydKeepsOnlyNetworkCapabilitiesAndPrivateFiles() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway()
        guard let pid = bed.gateway?.pid else { Issue.record("no gatewayd"); return }
        #expect(eventually(timeout: 5) { capabilities(pid)["CapEff"] == "0000000000003000" }, "\(capabilities(pid))")
        let caps = capabilities(pid)
        #expect(caps["CapPrm"] == "0000000000003000" && caps["CapBnd"] == "0000000000003000" && caps["CapInh"] == "0000000000000000", "\(caps)")

        // Files and sockets: nobody but root. (The testbed made the state directory 0755 itself.)
        #expect(bed.gateway?.output.contains("state directory \(bed.stateDirectory) was mode 755: made 0700") == true, "\(bed.gateway?.output ?? "")")
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        for (path, want) in [(bed.stateDirectory, 0o700 as mode_t), (bed.stateDirectory + "/private.key", 0o600), (bed.stateDirectory + "/control.sock", 0o600),
                             (bed.stateDirectory + "/clients", 0o700), ("/var/run/wireguard/\(bed.tun).sock", 0o600)] {
            #expect(mode(path) == want || (path.hasSuffix(".sock") && mode(path).map { $0 & 0o077 == 0 } == true), "\(path): \(String(mode(path) ?? 0, radix: 8))")
        }
        for f in (try? FileManager.default.contentsOfDirectory(atPath: bed.stateDirectory + "/clients")) ?? [] {
            #expect(mode(bed.stateDirectory + "/clients/" + f) == 0o600, "clients/\(f)")
        }
        for f in ["leases.db", "leases.db-wal", "leases.db-shm"] {
            if let m = mode(bed.stateDirectory + "/" + f) { #expect(m & 0o077 == 0, "\(f): \(String(m, radix: 8))") }
        }

        // What it does after the drop: a live enrolment (routes, proxy entry), traffic, a reload, stop.
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "\(bed.gateway?.output ?? "")")
        #expect(try bed.ping(from: bed.cl, "203.0.113.1") == 3)
        kill(pid, SIGHUP)
        #expect(eventually(timeout: 5) { bed.gateway?.output.contains("reload:") == true })
        bed.stopGateway()
        #expect(try bed.exec(bed.gw, ["nft", "list", "tables"]).stdout.contains("sixgate") == false, "stop removed the NAT table through nft")
        #expect(try bed.exec(bed.gw, ["ip", "-6", "neigh", "show", "proxy"]).stdout.isEmpty)
    }

    func status(_ pid: Int32) -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { out[parts[0]] = parts[1] }
        }
        return out
    }

    /// Issue 30: with --user the daemons are not uid 0 after setup, have NO_NEW_PRIVS, only
    /// CAP_NET_ADMIN and CAP_NET_RAW (ambient too, for nft and hooks), and still do their job.
    @Test(.enabled(if: getpwnam("nobody") != nil && which("ndisc6") != nil, "needs the nobody account and ndisc6"))
    func theDaemonsRunAsAnUnprivilegedUserAndStillDoTheirJob() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let nobody = getpwnam("nobody")!.pointee.pw_uid
        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway(["--user", "nobody"])
        guard let pid = bed.gateway?.pid else { Issue.record("no gatewayd"); return }
        #expect(eventually(timeout: 10) { bed.gateway!.output.contains("no new privileges") }, "\(bed.gateway!.output)")
        #expect(status(pid)["Uid"]?.split(separator: "\t").allSatisfy { UInt32($0) == nobody } == true, "\(status(pid))")
        let s = status(pid)
        #expect(s["NoNewPrivs"] == "1" && s["CapEff"] == "0000000000003000" && s["CapPrm"] == "0000000000003000"
                && s["CapAmb"] == "0000000000003000" && s["CapBnd"] == "0000000000003000", "\(s)")
        #expect(bed.gateway!.output.contains("running as nobody (uid \(nobody)) with CAP_NET_ADMIN and CAP_NET_RAW, no new privileges"), "\(bed.gateway!.output)")
        // Every thread, not only the main one (credentials are per thread in Linux): the user, and
        // either the two capabilities with NO_NEW_PRIVS (every thread of ours) or none at all
        // (libdispatch's workers, which block the signal the drop reaches threads with).
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        #expect(tasks.count > 3, "the control, packet and watcher threads ran before the drop")
        for t in tasks {
            let ts = status(Int32(t)!)
            let ours = ts["CapEff"] == "0000000000003000" && ts["CapPrm"] == "0000000000003000" && ts["NoNewPrivs"] == "1"
            let none = ts["CapEff"] == "0000000000000000" && ts["CapPrm"] == "0000000000000000"
            #expect(ts["Uid"]?.split(separator: "\t").allSatisfy { UInt32($0) == nobody } == true && (ours || none)
                    && (none || ts["CapBnd"] == "0000000000003000"), "thread \(t) \(ts["Name"] ?? ""): \(ts)")
        }

        // Its job, unprivileged: a live enrolment (routes and proxy entries over netlink, the
        // firewall's sets through nft), traffic, status (nft counters), a reload, stop's clean-up.
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "\(bed.gateway?.output ?? "")")
        #expect(try bed.exec(bed.gw, ["nft", "list", "table", "inet", "sixgate_\(bed.tun)"]).stdout.contains("2001:db8:1::4 : \"in_alice\""))
        #expect(try !tcpConnects(from: bed.isp, to: bed.cl, address: "2001:db8:1::4", port: 18023))
        let js = try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any]
        #expect(((js?["clients"] as? [[String: Any]])?.first?["inboundDropped"] as? Int ?? 0) >= 1, "nft run by the unprivileged daemon reads the counters")
        kill(pid, SIGHUP)
        #expect(eventually(timeout: 5) { bed.gateway?.output.contains("reload:") == true })
        bed.stopGateway()
        #expect(try !bed.exec(bed.gw, ["nft", "list", "tables"]).stdout.contains("sixgate"), "stop removed its tables through nft")
        #expect(try bed.exec(bed.gw, ["ip", "-6", "route", "show", "proto", "74"]).stdout.isEmpty)
        // Enrolled offline by root, a client's file still belongs to the daemon's user.
        _ = try bed.gatewayctl(["clients", "add", "dave"])
        var st = stat()
        #expect(stat(bed.stateDirectory + "/clients/dave", &st) == 0 && st.st_uid == nobody && st.st_mode & 0o777 == 0o600, "file uid \(st.st_uid) mode \(String(st.st_mode, radix: 8))")

        // ndp-proxy, unprivileged, answers the ISP's solicitations for alice (routed by a gatewayd
        // that proxies nothing itself).
        try bed.writeConfig(ndpProxy: "off")
        try bed.startGateway(["--user", "nobody"])
        let conf = bed.stateDirectory + "/npd6.conf"
        try "prefix=2001:db8:1::\ninterface=\(bed.uplink)\nlisttype=white\naddrlist=2001:db8:1::4\naddrlist=2001:db8:1::5\naddrlist=2001:db8:1::6\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let proxy = try bed.background(in: bed.gw, ["\(builtProductsDirectory)/ndp-proxy", "--config", conf, "--user", "nobody"])
        #expect(eventually(timeout: 10) { proxy.output.contains("running as nobody") }, "\(proxy.output)")
        #expect(status(proxy.pid)["NoNewPrivs"] == "1")
        try bed.exec(bed.isp, ["ip", "-6", "neigh", "flush", "dev", bed.ispSide])
        #expect(eventually(timeout: 30) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 }, "the ISP finds alice through it: \(proxy.output)")

        // tunnel-client, unprivileged, against that gatewayd: its lease, its status, its exit.
        let carol = try bed.gatewayctl(["clients", "add", "carol", "--format", "tunnel-client"]).stdout
            .replacingOccurrences(of: "interface = \"sixgate0\"", with: "interface = \"sgk\(bed.id)\"")
        let client = try bed.startTunnelClient(in: bed.cl2, config: carol.replacingOccurrences(of: "198.51.100.129:51820", with: "203.0.113.129:51820"),
                                               name: "carol", extraArguments: ["--user", "nobody"])
        #expect(eventually(timeout: 30) { client.output.contains("configured:") }, "\(client.output) \(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(client.pid)/task")) ?? []).map { t in let x = status(Int32(t)!); return "\(t) \(x["Name"] ?? "") \(x["Uid"] ?? "") eff \(x["CapEff"] ?? "") prm \(x["CapPrm"] ?? "") nnp \(x["NoNewPrivs"] ?? "") blk \(x["SigBlk"] ?? "")" })")
        #expect(eventually(timeout: 10) { client.output.contains("no new privileges") }, "\(client.output)")
        #expect(status(client.pid)["Uid"]?.hasPrefix("\(nobody)") == true && status(client.pid)["NoNewPrivs"] == "1", "\(status(client.pid))")
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl2, "2001:db8:ffff::1", count: 1)) == 1 }, "\(client.output)")
        #expect(eventually(timeout: 5) { (try? bed.tunnelClientStatus("carol"))?["addresses"] != nil })
        client.stop(grace: 10)
        #expect(client.output.contains("stopped:"), "\(client.output)")
        #expect(try bed.exec(bed.cl2, ["ip", "link", "show", "sgk\(bed.id)"], check: false).status != 0, "its interface is gone")
        proxy.stop()
    }
}
