// An IPv6-only client reaches an IPv4-only host through the translator on a TUN device (NAT64 in
// front of an SIIT pool, the PLAT), and an IPv4 literal works through a CLAT on the client: 464XLAT
// end to end, with ping and a TCP transfer by iperf3, in namespaces this test makes.
import Foundation
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
@testable import Translator

/// client (2001:db8:1::10/64, CLAT TUN with 192.0.2.10 <-> 2001:db8:2::464) -- xlat (PLAT TUN:
/// 2001:db8:64::/96, EAM 2001:db8:1::10 <-> 192.0.2.10, 2001:db8:2::464 <-> 192.0.2.20) --
/// server (203.0.113.5/24, IPv4 only).
/// The veths leaving the translator namespace send without checksum or segmentation offload and
/// the client's and server's ends receive without checksum offload, so the kernel completes and
/// segments what the translators write in software and the end hosts verify every TCP checksum:
/// a wrong partial checksum from a translated super-packet shows as a failed transfer and in
/// TcpInCsumErrors, instead of riding through veth unchecked.
final class XlatTestbed: @unchecked Sendable {
    let id = uniqueSuffix()
    let client: String, xlat: String, server: String
    var devices: [TranslatorDevice] = []
    private var destroyed = false

    init(offload: Bool = true) throws {
        client = "sg-xc-\(id)"; xlat = "sg-xx-\(id)"; server = "sg-xs-\(id)"
        do {
            for ns in [client, xlat, server] {
                try run(["ip", "netns", "add", ns], check: true)
                try exec(ns, "ip link set lo up")
                try exec(ns, "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0")
            }
            try run(["ip", "link", "add", "xca\(id)", "netns", client, "type", "veth", "peer", "name", "xcb\(id)", "netns", xlat], check: true)
            try run(["ip", "link", "add", "xsa\(id)", "netns", server, "type", "veth", "peer", "name", "xsb\(id)", "netns", xlat], check: true)
            // The IPv4 host knows nothing of IPv6.
            try exec(server, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
            try exec(server, "ip link set xsa\(id) up")
            try exec(server, "ip addr add 203.0.113.5/24 dev xsa\(id)")
            try exec(server, "ip route add 192.0.2.0/24 via 203.0.113.1")
            try exec(xlat, "ip link set xcb\(id) up")
            try exec(xlat, "ip link set xsb\(id) up")
            try exec(xlat, "ip -6 addr add 2001:db8:1::1/64 dev xcb\(id) nodad")
            try exec(xlat, "ip addr add 203.0.113.1/24 dev xsb\(id)")
            try exec(xlat, "ip -6 route add 2001:db8:2::/64 via 2001:db8:1::10")
            try exec(xlat, "sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1")
            // The client has no IPv4 connectivity of its own: only the CLAT.
            try exec(client, "ip link set xca\(id) up")
            try exec(client, "ip -6 addr add 2001:db8:1::10/64 dev xca\(id) nodad")
            try exec(client, "ip -6 route add default via 2001:db8:1::1")
            try exec(client, "sysctl -qw net.ipv6.conf.all.forwarding=1")
            try exec(xlat, "ethtool -K xcb\(id) tx off tso off gso off")
            try exec(xlat, "ethtool -K xsb\(id) tx off tso off gso off")
            try exec(client, "ethtool -K xca\(id) rx off gro off")
            try exec(server, "ethtool -K xsa\(id) rx off gro off")

            let plat = try TranslatorDevice(name: "plat\(id)", namespace: .named(xlat), configuration: TranslatorConfiguration(
                prefix: IPv6Prefix("2001:db8:64::/96")!,
                explicitMappings: [ExplicitMapping(ipv4: IPv4Address("192.0.2.10")!, ipv6: IPv6Address("2001:db8:1::10")!),
                                   ExplicitMapping(ipv4: IPv4Address("192.0.2.20")!, ipv6: IPv6Address("2001:db8:2::464")!)],
                ipv4Address: IPv4Address("203.0.113.1")!, ipv6Address: IPv6Address("2001:db8:1::1")!), offload: offload)
            devices.append(plat)
            try exec(xlat, "ip link set plat\(id) up")
            try exec(xlat, "ip -6 route add 2001:db8:64::/96 dev plat\(id)")
            try exec(xlat, "ip route add 192.0.2.0/24 dev plat\(id)")

            let clat = try TranslatorDevice(name: "clat\(id)", namespace: .named(client), configuration: TranslatorConfiguration(
                prefix: IPv6Prefix("2001:db8:64::/96")!,
                explicitMappings: [ExplicitMapping(ipv4: IPv4Address("192.0.2.10")!, ipv6: IPv6Address("2001:db8:2::464")!)],
                ipv6MTU: 1500, ipv4MTU: 1480), offload: offload)
            devices.append(clat)
            try exec(client, "ip link set clat\(id) up")
            try exec(client, "ip addr add 192.0.2.10/32 dev clat\(id)")
            try exec(client, "ip route add default dev clat\(id) src 192.0.2.10 mtu 1480")
            try exec(client, "ip -6 route add 2001:db8:2::464/128 dev clat\(id)")
            for d in devices { d.start() }
        } catch {
            destroy()
            throw error
        }
    }

    @discardableResult
    func exec(_ ns: String, _ command: String, timeout: Double = 30, check: Bool = true) throws -> ProcessResult {
        try run(["ip", "netns", "exec", ns] + command.split(separator: " ").map(String.init), timeout: timeout, check: check)
    }

    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        for d in devices { d.stop() }
        devices = []
        for ns in [client, xlat, server] { _ = try? run(["ip", "netns", "del", ns]) }
    }

    deinit { destroy() }
}

@Suite(.serialized, .enabled(if: isRoot && which("iperf3") != nil && which("ethtool") != nil, "needs root, iperf3 and ethtool"))
struct TranslatorNamespaceTests {
    /// With TUN offloads (the default): TCP crosses both translators as super-packets.
    @Test func anIPv6OnlyClientReachesAnIPv4OnlyHostAndAnIPv4LiteralWorksThroughTheCLAT() throws {
        let bed = try XlatTestbed()
        defer { bed.destroy() }
        #expect(bed.devices.allSatisfy { $0.tun.offload }, "this kernel has TUN offloads")
        try expectNAT64And464XLAT(bed)
        let plat = bed.devices[0].statistics.translation, clat = bed.devices[1].statistics.translation
        #expect(plat.superPackets > 0 && clat.superPackets > 0, "TCP went through as super-packets: \(plat) / \(clat)")
    }

    /// Without offloads (as tayga runs, and as on kernels without them): one packet per read.
    @Test func theSamePathsWorkPacketByPacket() throws {
        let bed = try XlatTestbed(offload: false)
        defer { bed.destroy() }
        #expect(bed.devices.allSatisfy { !$0.tun.offload })
        try expectNAT64And464XLAT(bed)
        #expect(bed.devices[0].statistics.translation.superPackets == 0)
    }

    func expectNAT64And464XLAT(_ bed: XlatTestbed, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // NAT64: the IPv4 host at its IPv6 name; it sees the client as its SIIT pool address.
        try expectReachable(bed, "2001:db8:64::cb00:7105", family: "-6", seenAs: "192.0.2.10", sourceLocation: sourceLocation)
        // 464XLAT: an IPv4 literal from the IPv6-only client, through its CLAT and the PLAT, where the
        // CLAT's IPv6 address becomes 192.0.2.20.
        try expectReachable(bed, "203.0.113.5", family: "-4", seenAs: "192.0.2.20", sourceLocation: sourceLocation)

        let plat = bed.devices[0].statistics, clat = bed.devices[1].statistics
        #expect(plat.translation.translated6to4 > 100 && plat.translation.translated4to6 > 100, "\(plat.translation)", sourceLocation: sourceLocation)
        #expect(clat.translation.translated4to6 > 100 && clat.translation.translated6to4 > 100, "\(clat.translation)", sourceLocation: sourceLocation)
        #expect(plat.writeErrors == 0 && clat.writeErrors == 0, sourceLocation: sourceLocation)
        // The end hosts checked every checksum in software and found none wrong.
        for ns in [bed.client, bed.server] {
            let snmp = try bed.exec(ns, "cat /proc/net/snmp").stdout
            #expect(tcpChecksumErrors(snmp) == 0, "\(ns): TCP checksum errors\n\(snmp)", sourceLocation: sourceLocation)
        }
    }
}

/// Ping (3 of 3 answered) and one second of iperf3 TCP from the client to `target`: most of what was
/// sent arrived (a byte-count test ends before the last window drains, and iperf3 then reports less
/// received than sent), and the IPv4 server saw the client as `seenAs`.
func expectReachable(_ bed: XlatTestbed, _ target: String, family: String, seenAs: String,
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
    let ping = try bed.exec(bed.client, "ping \(family) -c 3 -i 0.2 -W 2 \(target)", check: false)
    #expect(ping.stdout.contains("3 received"), "\(ping.stdout)\(ping.stderr)", sourceLocation: sourceLocation)
    let server = try BackgroundProcess(["ip", "netns", "exec", bed.server, "iperf3", "-s", "-1", "-B", "203.0.113.5"], captureOutput: true)
    defer { server.stop() }
    _ = eventually(timeout: 5) { server.output.contains("listening") }
    let tcp = try bed.exec(bed.client, "iperf3 \(family) -c \(target) -t 1 -J", timeout: 60, check: false)
    #expect(tcp.succeeded && transferred(tcp.stdout), "\(tcp.stdout.suffix(600))\(tcp.stderr)", sourceLocation: sourceLocation)
    #expect(server.output.contains(seenAs), "the IPv4 host saw the client as \(seenAs): \(server.output)", sourceLocation: sourceLocation)
}

/// Whether iperf3 -J reports more than 1 MB received and at least 90% of what was sent.
func transferred(_ json: String) -> Bool {
    guard let o = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], let end = o["end"] as? [String: Any],
          let received = ((end["sum_received"] as? [String: Any])?["bytes"] as? NSNumber)?.doubleValue,
          let sent = ((end["sum_sent"] as? [String: Any])?["bytes"] as? NSNumber)?.doubleValue else { return false }
    return received > 1e6 && received >= 0.9 * sent
}

/// InCsumErrors of the Tcp line in /proc/net/snmp (-1 if absent).
func tcpChecksumErrors(_ snmp: String) -> Int {
    let lines = snmp.split(separator: "\n").filter { $0.hasPrefix("Tcp:") }.map { $0.split(separator: " ") }
    guard lines.count == 2, let i = lines[0].firstIndex(of: "InCsumErrors"), i < lines[1].count else { return -1 }
    return Int(lines[1][i]) ?? -1
}
