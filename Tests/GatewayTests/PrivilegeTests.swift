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
}
