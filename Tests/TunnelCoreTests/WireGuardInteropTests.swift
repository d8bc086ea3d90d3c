import Foundation
import SixgateTestSupport
import PacketKit
import Testing
@testable import TunnelCore

/// Sixgate's userspace WireGuard against wireguard-go and `wg` (Debian packages), in namespaces
/// the tests make and remove.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil, "needs root, wireguard-go and wg"))
struct WireGuardInteropTests {
    /// Each side initiates once: the first packet decides who sends the initiation.
    @Test(arguments: [(WireGuardImplementation.sixgate, WireGuardImplementation.wireguardGo), (.wireguardGo, .sixgate)])
    func pingAndTCPInBothFamiliesWhenLeftInitiates(left: WireGuardImplementation, right: WireGuardImplementation) throws {
        let bed = try WireGuardTestbed(tag: "wgi", left: left, right: right)
        defer { bed.destroy() }
        // The left side sends first, so it initiates.
        #expect(try bed.ping(from: bed.left, "2001:db8:77::2") == 3)
        #expect(try bed.ping(from: bed.right, "198.51.100.1") == 3)
        #expect(try bed.ping(from: bed.right, "2001:db8:77::1") == 3)

        // A TCP transfer whose bytes are checked, each family, each direction.
        var rng = SystemRandomNumberGenerator()
        let payload = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(try tcpTransfer(from: bed.left, to: bed.right, address: "2001:db8:77::2", port: 7001, bytes: payload) == payload)
        #expect(try tcpTransfer(from: bed.right, to: bed.left, address: "198.51.100.1", port: 7002, bytes: payload) == payload)

        // wg reads both devices through their UAPI sockets: peer, endpoint, allowed IPs, a handshake, bytes.
        for (ns, name, peer, endpoint) in [(bed.left, bed.leftName, bed.rightPublic, "192.0.2.2:51821"), (bed.right, bed.rightName, bed.leftPublic, "192.0.2.1:51820")] {
            let d = try bed.dump(ns: ns, name: name)
            #expect(d.count == 8, "\(d)")
            guard d.count == 8 else { continue }
            #expect(d[0] == peer)
            #expect(d[2] == endpoint)
            #expect(d[3].contains("2001:db8:77::") && d[3].contains("198.51.100."))
            #expect((Int(d[4]) ?? 0) > 1_700_000_000, "latest handshake \(d[4])")
            #expect((Int(d[5]) ?? 0) > 1 << 20 && (Int(d[6]) ?? 0) > 1 << 20, "transfer \(d[5]) \(d[6])")
        }
        let show = try bed.pair.exec(bed.left, ["wg", "show", bed.leftName]).stdout
        #expect(show.contains("latest handshake") && show.contains("listening port: 51820"))
    }

    /// With rekey-after-time shortened to 2 s, the Sixgate initiator starts new handshakes while
    /// traffic flows, wireguard-go accepts them, and no ping is lost to the key change.
    @Test func rekeyHappensWithoutLoss() throws {
        let bed = try WireGuardTestbed(tag: "wgk", left: .sixgate, right: .wireguardGo,
                                       leftArguments: ["--rekey-after-time", "2", "--reject-after-time", "6"])
        defer { bed.destroy() }
        let capture = NSTemporaryDirectory() + "sixgate-rekey-\(uniqueSuffix()).pcap"
        defer { unlink(capture) }
        let dump = try BackgroundProcess(["ip", "netns", "exec", bed.right, "tcpdump", "-i", bed.pair.rightInterface, "-U", "-n", "-w", capture, "udp"])
        defer { dump.stop() }
        usleep(500_000)
        let received = try bed.ping(from: bed.left, "2001:db8:77::2", count: 40, interval: "0.2")
        dump.stop()
        #expect(received >= 39, "lost \(40 - received) of 40 pings across rekeys")
        // Initiations are UDP payloads starting 01 00 00 00 from the Sixgate side.
        let initiations = try run(["tcpdump", "-r", capture, "-n", "src host 192.0.2.1 and udp[8:4] = 0x01000000"], check: true)
            .stdout.split(separator: "\n").count
        #expect(initiations >= 3, "expected a handshake at start and rekeys every 2 s, saw \(initiations)")
        let stats = bed.stopDaemons()[0]
        #expect(stats.contains("handshakesCompleted"), "\(stats)")
    }

    /// Roaming (paper §2.1): the client's outer address changes mid-stream; the other side learns
    /// the new endpoint from the next authenticated packet and traffic continues. The roaming client
    /// is Sixgate; the side that must follow is wireguard-go, then Sixgate. (wireguard-go 0.0.20220316
    /// cannot be the roamer here: it keeps its "sticky" deleted source address and sends nothing.)
    @Test(arguments: [WireGuardImplementation.wireguardGo, .sixgate])
    func trafficFollowsARoamingClient(follower: WireGuardImplementation) throws {
        let bed = try WireGuardTestbed(tag: "wgr", left: follower, right: .sixgate)
        defer { bed.destroy() }
        #expect(try bed.ping(from: bed.right, "2001:db8:77::1") == 3)
        let pinger = try BackgroundProcess(["ip", "netns", "exec", bed.right, "ping", "-c", "40", "-i", "0.1", "-W", "1", "2001:db8:77::1"], captureOutput: true)
        usleep(1_000_000)
        try bed.pair.exec(bed.right, ["ip", "addr", "del", "192.0.2.2/24", "dev", bed.pair.rightInterface])
        try bed.pair.exec(bed.right, ["ip", "addr", "add", "192.0.2.22/24", "dev", bed.pair.rightInterface])
        #expect(eventually(timeout: 15) { !pinger.process.isRunning })
        pinger.stop()
        let summary = pinger.output.split(separator: "\n").first { $0.contains("received") } ?? ""
        let received = Int(summary.split(separator: ",").first { $0.contains("received") }?.split(separator: " ").first ?? "") ?? 0
        #expect(received >= 30, "\(summary)")
        // The non-roaming side now sends to the new address.
        let d = try bed.dump(ns: bed.left, name: bed.leftName)
        #expect(d.count == 8 && d[2].hasPrefix("192.0.2.22:"), "\(d)")
        #expect(try bed.ping(from: bed.left, "198.51.100.2") == 3)
    }

    /// Sticky source (the anycast endpoint of a group of gateways): Sixgate answers from the address
    /// a peer sent to, not from the address its route lookup would pick, so wireguard-go keeps the
    /// endpoint it was given (it roams to whatever source an authenticated reply comes from).
    @Test(arguments: ["192.0.2.99", "2001:db8:5::99"])
    func repliesLeaveFromTheAddressThePeerSentTo(address: String) throws {
        let bed = try WireGuardTestbed(tag: "wgs", left: .wireguardGo, right: .sixgate)
        defer { bed.destroy() }
        let v6 = address.contains(":")
        try bed.pair.exec(bed.right, ["ip", "addr", "add", address + (v6 ? "/128" : "/32"), "dev", "lo"])
        if v6 {
            try bed.pair.exec(bed.left, ["ip", "-6", "route", "add", address, "via", "2001:db8:5::2"])
        } else {
            try bed.pair.exec(bed.left, ["ip", "route", "add", address, "via", "192.0.2.2"])
        }
        let endpoint = v6 ? "[\(address)]:\(WireGuardTestbed.rightPort)" : "\(address):\(WireGuardTestbed.rightPort)"
        try bed.pair.exec(bed.left, ["wg", "set", bed.leftName, "peer", bed.rightPublic, "endpoint", endpoint])
        #expect(try bed.ping(from: bed.left, "2001:db8:77::2") == 3)
        #expect(try bed.ping(from: bed.right, "198.51.100.1") == 3, "and traffic Sixgate starts leaves from it too")
        let d = try bed.dump(ns: bed.left, name: bed.leftName)
        #expect(d.count == 8 && d[2] == endpoint, "wireguard-go's endpoint for Sixgate: \(d)")
    }

    /// Seal and open helpers (`--seal-threads 2`, `--open-threads 2`): one flow's packets are sealed
    /// (opened) on three threads and still leave (reach the TUN device) in order. wireguard-go at the
    /// other end: a TCP transfer intact, and 3,000 numbered UDP datagrams sent in bursts of 64 arrive
    /// in increasing order (losses allowed, reordering not). Sixgate sends in one case, receives in
    /// the other.
    @Test(arguments: ["--seal-threads", "--open-threads"])
    func helpersKeepOneFlowInOrder(option: String) throws {
        let sixgateSends = option == "--seal-threads"
        let bed = try WireGuardTestbed(tag: sixgateSends ? "wgs" : "wgr", left: sixgateSends ? .sixgate : .wireguardGo, right: sixgateSends ? .wireguardGo : .sixgate,
                                       leftArguments: sixgateSends ? [option, "2", "--stats-on-exit"] : [],
                                       rightArguments: sixgateSends ? [] : [option, "2", "--stats-on-exit"])
        defer { bed.destroy() }
        #expect(try bed.ping(from: bed.left, "198.51.100.2") == 3)
        var rng = SystemRandomNumberGenerator()
        let payload = (0..<(4 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(try tcpTransfer(from: bed.left, to: bed.right, address: "198.51.100.2", port: 7021, bytes: payload) == payload)
        let receiver = try UDPSocket(port: 0, namespace: .named(bed.right))
        let sender = try UDPSocket(port: 0, namespace: .named(bed.left))
        let to = Endpoint(address: try IPAddress.parse("198.51.100.2"), port: receiver.port)
        let batch = DatagramBatch(capacity: 64, bufferSize: 1400)
        var sent = 0
        while sent < 3000 {
            for _ in 0..<64 {
                batch.buffer(batch.count).storeBytes(of: UInt32(sent).bigEndian, as: UInt32.self)
                batch.append(length: 1200, to: to)
                sent += 1
            }
            _ = sender.send(batch)
            usleep(2_000)   // bursts of 64 (batches the helpers share), paced for the receiver's buffers
        }
        let rx = DatagramBatch(capacity: 64, bufferSize: 2048)
        var got: [UInt32] = [], idle = 0
        while idle < 20, got.count < 3000 {
            let n = receiver.receive(rx)
            if n == 0 { idle += 1; usleep(20_000); continue }
            idle = 0
            for i in 0..<n { got.append(UInt32(bigEndian: rx.buffer(i).loadUnaligned(as: UInt32.self))) }
        }
        #expect(got.count > 1500, "most datagrams arrive: \(got.count)")
        #expect(zip(got, got.dropFirst()).allSatisfy { $0 < $1 }, "and in order")
        let out = bed.stopDaemons()
        let log = sixgateSends ? out[0] : out[1]
        #expect(log.contains(sixgateSends ? "2 seal helpers per queue" : "2 open helpers per queue"), "\(log)")
        #expect(log.contains("droppedAuthentication: 0"), "\(log)")
    }

    /// Offloads on at one end (TUN segmentation offload, TCP coalescing, UDP GSO/GRO) and off at the
    /// other (`--no-offload`), over an IPv4 and an IPv6 underlay: the wire is the same, so the bytes
    /// of every transfer arrive intact in both directions and families, and the counters show the
    /// offload side really cut and coalesced super-packets.
    @Test(arguments: [false, true])
    func offloadsOnAtOneEndAndOffAtTheOther(v6Underlay: Bool) throws {
        let bed = try WireGuardTestbed(tag: "wgo", left: .sixgate, right: .sixgate, rightArguments: ["--no-offload"])
        defer { bed.destroy() }
        if v6Underlay {
            try bed.pair.exec(bed.left, ["wg", "set", bed.leftName, "peer", bed.rightPublic, "endpoint", "[2001:db8:5::2]:\(WireGuardTestbed.rightPort)"])
            try bed.pair.exec(bed.right, ["wg", "set", bed.rightName, "peer", bed.leftPublic, "endpoint", "[2001:db8:5::1]:\(WireGuardTestbed.leftPort)"])
        }
        #expect(try bed.ping(from: bed.left, "2001:db8:77::2") == 3)
        var rng = SystemRandomNumberGenerator()
        let payload = (0..<(4 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(try tcpTransfer(from: bed.left, to: bed.right, address: "2001:db8:77::2", port: 7011, bytes: payload) == payload)
        #expect(try tcpTransfer(from: bed.left, to: bed.right, address: "198.51.100.2", port: 7012, bytes: payload) == payload)
        #expect(try tcpTransfer(from: bed.right, to: bed.left, address: "2001:db8:77::1", port: 7013, bytes: payload) == payload)
        #expect(try tcpTransfer(from: bed.right, to: bed.left, address: "198.51.100.1", port: 7014, bytes: payload) == payload)
        let d = try bed.dump(ns: bed.right, name: bed.rightName)
        #expect(d.count == 8 && d[2] == (v6Underlay ? "[2001:db8:5::1]:51820" : "192.0.2.1:51820"), "\(d)")
        let out = bed.stopDaemons()
        func counter(_ text: String, _ name: String) -> Int {
            guard let r = text.range(of: name + ": ") else { return -1 }
            return Int(text[r.upperBound...].prefix { $0.isNumber }) ?? -1
        }
        #expect(out[0].contains("offloads: TUN TSO") && out[0].contains("UDP GSO"), "\(out[0])")
        #expect(out[0].contains("queue management: FQ-CoDel to peers, CoDel from peers"), "\(out[0])")
        #expect(counter(out[0], "superPacketsRead") > 0, "the offload side cut super-packets: \(out[0])")
        #expect(counter(out[0], "superPacketsWritten") > 0, "and coalesced received segments: \(out[0])")
        #expect(counter(out[0], "droppedBadOffload") == 0)
        #expect(out[1].contains("offloads: none; queue management: CoDel from peers"), "\(out[1])")
        #expect(counter(out[1], "superPacketsRead") == 0 && counter(out[1], "droppedAuthentication") == 0, "\(out[1])")
    }

    /// Two reader pairs (`--queues 2`: a multi-queue TUN device, two UDP sockets sharing the port)
    /// against wireguard-go: the threads exist, `wg set listen-port` moves both sockets, and
    /// transfers in both directions and families arrive intact.
    @Test func twoQueuesCarryTrafficAndMoveTogether() throws {
        let bed = try WireGuardTestbed(tag: "wgq", left: .sixgate, right: .wireguardGo, leftArguments: ["--queues", "2"])
        defer { bed.destroy() }
        let pid = try run(["pgrep", "-f", "sixgate-wg -f \(bed.leftName) "], check: true).stdout.split(separator: "\n").first.map(String.init) ?? ""
        let threads = try run(["sh", "-c", "cat /proc/\(pid)/task/*/comm"], check: true).stdout
        for name in ["sg-tun0", "sg-tun1", "sg-udp0", "sg-udp1"] { #expect(threads.contains(name), "\(threads)") }
        // Both sockets are on the port wg set (the testbed moved it from a random one to 51820).
        let sockets = try bed.pair.exec(bed.left, ["ss", "-uanp"]).stdout.split(separator: "\n").filter { $0.contains(":51820") }
        #expect(sockets.count == 2, "\(sockets)")
        #expect(try bed.ping(from: bed.left, "2001:db8:77::2") == 3)
        var rng = SystemRandomNumberGenerator()
        let payload = (0..<(2 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(try tcpTransfer(from: bed.left, to: bed.right, address: "2001:db8:77::2", port: 7021, bytes: payload) == payload)
        #expect(try tcpTransfer(from: bed.right, to: bed.left, address: "198.51.100.1", port: 7022, bytes: payload) == payload)
        #expect(try tcpTransfer(from: bed.right, to: bed.left, address: "2001:db8:77::1", port: 7023, bytes: payload) == payload)
        let out = bed.stopDaemons()[0]
        #expect(out.contains("2 queues"), "\(out)")
    }
}
