// Several gateways as one (issue 25), with real engines started by the tests: a PostgreSQL server
// (initdb in a temporary folder), two gatewayd processes in namespaces of their own, stock
// wireguard-go as the client, `wg` reading each gateway's peers through its UAPI socket.
import Foundation
import SixgateTestSupport
import XCTest

final class GroupTests: XCTestCase {
    /// A client enrolled on gateway A is a peer of gateway B with the same addresses; its handshake
    /// with A shows on B's status; removed on B, it is gone from A. With the database away, A keeps
    /// its clients and its status, an enrolment fails naming the database, and once the server is
    /// back A enrols again by itself and B hears of it.
    func testTwoGatewaysShareClientsAndLeases() throws {
        try XCTSkipUnless(isRoot, "namespace tests need root")
        let bed = try GroupTestbed()
        defer { bed.destroy() }
        try bed.writeConfig("a")
        try bed.writeConfig("b")
        try bed.startGateway("a")
        try bed.startGateway("b")
        XCTAssertTrue(bed.log("b").contains("gateway gw-b of the group on sixgate on \(bed.database.directory):5432"), bed.log("b"))

        let alice = try bed.gatewayctl("a", ["clients", "add", "alice"]).stdout
        XCTAssertTrue(alice.contains("Endpoint = 198.51.100.200:51820"), alice)
        guard let address = alice.split(separator: "\n").first(where: { $0.hasPrefix("Address = ") }) else { return XCTFail(alice) }
        // The prefix is routed: ::1 is no ISP router's here, and the first client's.
        XCTAssertEqual(address, "Address = 2001:db8:1000::1/128, 192.0.2.2/32")
        // B: the same peer, allowed IPs and route, seen by `wg` and `ip` (not by our own status).
        let publicKey = try bed.clients(on: "a")["alice"]?["publicKey"] as? String ?? "?"
        XCTAssertTrue(eventually(timeout: 10) {
            (try? bed.exec(bed.gwb, ["wg", "show", bed.tun + "b", "allowed-ips"]).stdout)?.contains("\(publicKey)\t2001:db8:1000::1/128 192.0.2.2/32") ?? false
        }, "B did not take alice as a peer: \((try? bed.exec(bed.gwb, ["wg", "show", bed.tun + "b", "allowed-ips"]).stdout) ?? "")\n\(bed.log("b"))")
        XCTAssertTrue(try bed.exec(bed.gwb, ["ip", "-6", "route", "show", "2001:db8:1000::1/128"]).stdout.contains("dev \(bed.tun)b proto 74"))
        XCTAssertEqual(try bed.clients(on: "b")["alice"]?["addresses"] as? [String], ["2001:db8:1000::1/128", "192.0.2.2/32"])

        // Alice connects to A (through the upstream router, to A's own address): B's status says so.
        try bed.exec(bed.up, ["ip", "route", "add", GroupTestbed.anycast + "/32", "via", bed.sites["a"]!.v4])
        try bed.exec(bed.up, ["ip", "-6", "route", "add", "2001:db8:1000::/64", "via", bed.sites["a"]!.v6])
        try bed.startStockClient(in: bed.cl, name: "sgw\(bed.id)", config: alice)
        XCTAssertTrue(eventually(timeout: 20) { (try? bed.ping(from: bed.cl, "2001:db8:ffff::1")) == 1 }, bed.log("a"))
        XCTAssertTrue(eventually(timeout: 10) { (try? bed.clients(on: "b")["alice"]?["gateway"] as? String) == "gw-a" })
        XCTAssertTrue(try bed.gatewayctl("b", ["status"]).stdout.contains("on gw-a ("))

        // Removed on B: A drops the peer.
        try bed.gatewayctl("b", ["clients", "remove", "alice"])
        XCTAssertTrue(eventually(timeout: 10) { (try? bed.exec(bed.gwa, ["wg", "show", bed.tun + "a", "peers"]).stdout)?.isEmpty ?? false }, bed.log("a"))
        XCTAssertTrue(bed.log("a").contains("group: 0 client(s) enrolled and 1 removed on other gateways"), bed.log("a").split(separator: "\n").filter { $0.contains("group") }.joined(separator: "\n"))

        // The database goes away.
        _ = try bed.gatewayctl("a", ["clients", "add", "carol"])
        XCTAssertTrue(eventually(timeout: 10) { (try? bed.clients(on: "b")["carol"]) != nil })
        bed.database.pause()
        let refused = try bed.gatewayctl("a", ["clients", "add", "bob"], check: false)
        XCTAssertFalse(refused.succeeded)
        XCTAssertTrue(refused.stderr.contains("sixgate on \(bed.database.directory):5432"), refused.stderr)
        XCTAssertTrue(eventually(timeout: 10) { bed.log("a").contains("group: lost the database") }, bed.log("a"))
        XCTAssertNotNil(try bed.clients(on: "a")["carol"], "status works from what the gateway holds")
        XCTAssertTrue(try bed.exec(bed.gwa, ["wg", "show", bed.tun + "a", "peers"]).stdout.contains(try bed.clients(on: "a")["carol"]?["publicKey"] as? String ?? "?"))
        try bed.database.start()
        XCTAssertTrue(eventually(timeout: 30) { bed.log("a").contains("is back") }, bed.log("a"))
        let bob = try bed.gatewayctl("a", ["clients", "add", "bob"])
        XCTAssertTrue(bob.stdout.contains("Address = 2001:db8:1000::"), bob.stderr)
        XCTAssertTrue(eventually(timeout: 10) { (try? bed.clients(on: "b")["bob"]) != nil }, bed.log("b"))
        XCTAssertTrue(bed.gateways["a"]?.process.isRunning == true && bed.gateways["b"]?.process.isRunning == true)
    }
}
