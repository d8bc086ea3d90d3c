import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Fault injection: the lease store's disk fills up under a running gatewayd (its state directory
/// on a small tmpfs, then a file taking the rest). Enrolling a client fails with an error that says
/// why; the clients already there keep their tunnel; once space is back, enrolling works again
/// without a restart, and nothing half-made is left behind by the failed attempt.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct DiskFullTests {
    @Test func aFullDiskRefusesNewClientsAndKeepsServingTheOldOnes() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "sg-diskfull", bed.stateDirectory], check: true)
        defer { _ = try? run(["umount", "-l", bed.stateDirectory]) }
        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway()
        let alice = try bed.gatewayctl(["clients", "add", "alice"]).stdout
        try bed.startClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        #expect(eventually(timeout: 20) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1", count: 1)) == 1 })

        // Fill the disk: dd stops with ENOSPC.
        let filler = bed.stateDirectory + "/filler"
        _ = try run(["dd", "if=/dev/zero", "of=\(filler)", "bs=64k"], check: false)
        let refused = try bed.gatewayctl(["clients", "add", "bob"], check: false)
        #expect(!refused.succeeded, "enrolling on a full disk fails: \(refused.stdout)")
        let said = refused.stdout + refused.stderr
        #expect(said.lowercased().contains("full") || said.contains("No space left"), "the error says why: \(said)")
        #expect(said.contains("client bob") && said.contains("leases.db"), "and names the client and the store: \(said)")
        #expect(bed.gateway?.process.isRunning == true, "\(bed.gateway?.output ?? "")")
        #expect(try bed.ping(from: bed.cl, "2001:db8:ffff::1") == 3, "the existing client keeps its tunnel")

        // Space back: the same name enrols, with no restart, and gets one set of addresses.
        try FileManager.default.removeItem(atPath: filler)
        let bob = try bed.gatewayctl(["clients", "add", "bob"], check: false)
        #expect(bob.succeeded, "\(bob.stdout) \(bob.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(try bed.gatewayctl(["status", "--json"]).stdout.utf8)) as? [String: Any]
        let names = (json?["clients"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["alice", "bob"], "\(String(describing: names))")
        let leases = try bed.gatewayctl(["leases", "--json"]).stdout
        #expect(leases.components(separatedBy: "\"bob\"").count - 1 == 2, "bob holds one IPv6 and one IPv4 lease: \(leases)")
    }
}
