import CPacketSocket
import Foundation
@testable import NDPProxy
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// isp (2001:db8:5::1/64 and 2001:db8:9::1/64 on-link) -- proxy (2001:db8:5::2/64, forwarding;
/// runs ndp-proxy) -- host (2001:db8:5::100/128 behind the proxy, reached over 2001:db8:6::/64).
final class ProxyTestbed: @unchecked Sendable {
    let id = uniqueSuffix()
    let isp: String, proxy: String, host: String
    let ispLink: String, uplink: String
    let directory: String
    private var destroyed = false

    init() throws {
        isp = "sg-ni-\(id)"; proxy = "sg-np-\(id)"; host = "sg-nh-\(id)"
        ispLink = "sna\(id)"; uplink = "snb\(id)"
        directory = "/tmp/sg-ndp-\(id)"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for ns in [isp, proxy, host] {
                try run(["ip", "netns", "add", ns], check: true)
                try exec(ns, ["ip", "link", "set", "lo", "up"])
                try exec(ns, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"])
            }
            try run(["ip", "link", "add", ispLink, "netns", isp, "type", "veth", "peer", "name", uplink, "netns", proxy], check: true)
            try run(["ip", "link", "add", "snc\(id)", "netns", proxy, "type", "veth", "peer", "name", "snd\(id)", "netns", host], check: true)
            for (ns, dev) in [(isp, ispLink), (proxy, uplink), (proxy, "snc\(id)"), (host, "snd\(id)")] { try exec(ns, ["ip", "link", "set", dev, "up"]) }
            try exec(isp, ["ip", "-6", "addr", "add", "2001:db8:5::1/64", "dev", ispLink, "nodad"])
            try exec(isp, ["ip", "-6", "addr", "add", "2001:db8:9::1/64", "dev", ispLink, "nodad"])
            try exec(proxy, ["ip", "-6", "addr", "add", "2001:db8:5::2/64", "dev", uplink, "nodad"])
            try exec(proxy, ["ip", "-6", "addr", "add", "2001:db8:6::1/64", "dev", "snc\(id)", "nodad"])
            try exec(proxy, ["ip", "-6", "route", "add", "2001:db8:5::100/128", "via", "2001:db8:6::2"])
            try exec(proxy, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            try exec(host, ["ip", "-6", "addr", "add", "2001:db8:6::2/64", "dev", "snd\(id)", "nodad"])
            try exec(host, ["ip", "-6", "addr", "add", "2001:db8:5::100/128", "dev", "snd\(id)", "nodad"])
            try exec(host, ["ip", "-6", "route", "add", "default", "via", "2001:db8:6::1"])
        } catch {
            destroy()
            throw error
        }
    }

    @discardableResult
    func exec(_ ns: String, _ argv: [String], timeout: Double = 30, check: Bool = true) throws -> ProcessResult {
        try run(["ip", "netns", "exec", ns] + argv, timeout: timeout, check: check)
    }

    func startProxy(config: String) throws -> BackgroundProcess {
        let path = directory + "/npd6.conf"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let p = try BackgroundProcess(["ip", "netns", "exec", proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", path], captureOutput: true)
        guard eventually(timeout: 10, { p.output.contains("answering on") }) else { p.stop(); throw TransferError("ndp-proxy did not start: \(p.output)") }
        return p
    }

    /// ndp-proxy on the npd6 sample config for the uplink, and the ISP's interface index for injecting.
    func startSampleProxy() throws -> (BackgroundProcess, Int32) {
        let proxy = try startProxy(config: npd6Basic.replacingOccurrences(of: "UPLINK", with: uplink))
        do { return (proxy, try RouteSocket(namespace: .named(isp)).interfaceIndex(ispLink)) } catch { proxy.stop(); throw error }
    }

    /// Captures on the ISP's link while `body` runs; returns tcpdump's decode of the capture.
    func capture(_ body: () throws -> Void) throws -> [String] {
        let file = directory + "/\(uniqueSuffix()).pcap"
        let dump = try BackgroundProcess(["ip", "netns", "exec", isp, "tcpdump", "-i", ispLink, "-U", "-w", file, "icmp6"], captureOutput: true)
        _ = eventually(timeout: 5) { dump.output.contains("listening on") }
        try body()
        usleep(300_000)
        dump.stop()
        return try run(["tcpdump", "-nn", "-v", "-r", file]).stdout.split(separator: "\n").map(String.init)
    }

    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        for ns in [isp, proxy, host] { _ = try? run(["ip", "netns", "del", ns]) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { destroy() }
}

let npd6Basic = """
    // npd6 config, as npd6.conf.sample writes it
    prefix=2001:0db8:0005:0000:
    interface = UPLINK
    ralogging = off
    listtype = none
    listlogging = off
    collectTargets = 100
    linkOption = false
    ignoreLocal = true
    routerNA = true
    maxHops = 255
    pollErrorLimit = 20
    """

@Suite(.enabled(if: isRoot && which("tcpdump") != nil && which("ndisc6") != nil, "needs root, tcpdump and ndisc6"))
struct ResponderNamespaceTests {
    @Test func aPingFromTheISPReachesTheHostBehindTheProxyOnlyWithNdpProxyRunning() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let without = try bed.exec(bed.isp, ["ping", "-c", "2", "-W", "1", "2001:db8:5::100"], check: false)
        #expect(!without.succeeded, "nobody answers the ISP's solicitation yet")
        let proxy = try bed.startProxy(config: npd6Basic.replacingOccurrences(of: "UPLINK", with: bed.uplink))
        defer { proxy.stop() }
        try bed.exec(bed.isp, ["ip", "-6", "neigh", "flush", "dev", bed.ispLink])
        let with = try bed.exec(bed.isp, ["ping", "-c", "3", "-i", "0.3", "-W", "2", "2001:db8:5::100"], check: false)
        #expect(with.succeeded, "\(with.stdout)")
    }

    @Test func answersInsideThePrefixOnlyWithTheRFCFlagsAndHandlesDAD() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let proxy = try bed.startProxy(config: npd6Basic.replacingOccurrences(of: "UPLINK", with: bed.uplink))
        defer { proxy.stop() }
        let ispIndex = try RouteSocket(namespace: .named(bed.isp)).interfaceIndex(bed.ispLink)
        let lines = try bed.capture {
            // ndisc6 sends the solicitations (its own verdict is not used: it discards answers from a
            // link-local source for a global target).
            for target in ["2001:db8:5::200", "2001:db8:5::201", "2001:db8:9::5", "2001:db8:5::2"] {
                _ = try bed.exec(bed.isp, ["ndisc6", "-1", "-r", "1", "-w", "300", target, bed.ispLink], check: false)
            }
            // DAD: a solicitation from :: to the target's solicited-node group.
            try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:5::300", source: "::", sourceMAC: 0x0200_0000_0a01))
        }
        func advertisements(_ target: String) -> [String] { lines.filter { $0.contains("neighbor advertisement") && $0.contains("tgt is \(target),") } }
        let answer = advertisements("2001:db8:5::200")
        #expect(answer.count == 1, "\(lines)")
        #expect(answer.first?.contains("Flags [router, solicited]") == true, "Override clear for a proxy (RFC 4861 §7.2.8): \(answer)")
        #expect(advertisements("2001:db8:5::201").count == 1)
        #expect(advertisements("2001:db8:9::5").isEmpty, "outside the prefix")
        // The proxy host's own address: the kernel answers (once, with Override), ndp-proxy stays out.
        #expect(advertisements("2001:db8:5::2").count == 1 && advertisements("2001:db8:5::2").first?.contains("override") == true, "\(lines)")
        let dad = lines.filter { $0.contains("ff02::1:") && $0.contains("tgt is 2001:db8:5::300") }
        #expect(dad.count == 1 && dad.first?.contains("Flags [router]") == true, "DAD answer to all-nodes without Solicited: \(lines)")
        kill(proxy.pid, SIGUSR1)
        #expect(eventually(timeout: 5) { proxy.output.contains("outside-prefix 1") && proxy.output.contains("local 1") }, "\(proxy.output)")
    }

    @Test func malformedSolicitationsGetNoAnswerAndAreCounted() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let (proxy, ispIndex) = try bed.startSampleProxy()
        defer { proxy.stop() }
        let mac: UInt64 = 0x0200_0000_0a01
        let good = try solicitation(target: "2001:db8:5::250", source: "2001:db8:5::1", sourceMAC: mac)
        var bad: [(String, [UInt8])] = []
        bad.append(("hop limit 254", try solicitation(target: "2001:db8:5::251", source: "2001:db8:5::1", sourceMAC: mac, hopLimit: 254)))
        var checksum = try solicitation(target: "2001:db8:5::252", source: "2001:db8:5::1", sourceMAC: mac); checksum[14 + 40 + 2] ^= 0xff
        bad.append(("bad checksum", checksum))
        bad.append(("code 1", try solicitation(target: "2001:db8:5::253", source: "2001:db8:5::1", sourceMAC: mac, code: 1)))
        bad.append(("multicast target", try solicitation(target: "ff02::1", source: "2001:db8:5::1", sourceMAC: mac)))
        bad.append(("unspecified source with a link-layer option", try solicitation(target: "2001:db8:5::254", source: "::", sourceMAC: mac, forceSLLA: true)))
        bad.append(("multicast source", try solicitation(target: "2001:db8:5::255", source: "ff02::2", sourceMAC: mac)))
        let lines = try bed.capture {
            for (_, frame) in bad { try inject(ns: bed.isp, ifindex: ispIndex, frame: frame) }
            try inject(ns: bed.isp, ifindex: ispIndex, frame: good)
        }
        let advertisements = lines.filter { $0.contains("neighbor advertisement") }
        #expect(advertisements.count == 1 && advertisements.first?.contains("tgt is 2001:db8:5::250") == true, "\(lines)")
        kill(proxy.pid, SIGUSR1)
        #expect(eventually(timeout: 5) { proxy.output.contains("answered 1 invalid \(bad.count) ") }, "\(proxy.output)")
    }

    /// Solicitations arriving back to back are read and answered in batches (recvmmsg/sendmmsg,
    /// 64 at a time): a burst of 150 for distinct targets, a malformed one after every tenth, gets
    /// exactly one advertisement per valid target and the counters add up.
    @Test func aBurstLongerThanABatchIsAnsweredOncePerTarget() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let (proxy, ispIndex) = try bed.startSampleProxy()
        defer { proxy.stop() }
        let mac: UInt64 = 0x0200_0000_0a01
        var frames: [[UInt8]] = []
        for i in 0..<150 {
            frames.append(try solicitation(target: "2001:db8:5::1:\(String(i, radix: 16))", source: "2001:db8:5::1", sourceMAC: mac))
            if i % 10 == 9 { frames.append(try solicitation(target: "2001:db8:5::2:\(i)", source: "2001:db8:5::1", sourceMAC: mac, hopLimit: 64)) }
        }
        let lines = try bed.capture { try inject(ns: bed.isp, ifindex: ispIndex, frames: frames) }
        let targets = lines.compactMap { line -> String? in
            guard line.contains("neighbor advertisement"), let r = line.range(of: "tgt is ") else { return nil }
            return String(line[r.upperBound...].prefix { $0 != "," })
        }
        #expect(targets.count == 150, "\(targets.count) advertisements")
        #expect(Set(targets) == Set((0..<150).map { "2001:db8:5::1:\(String($0, radix: 16))" }))
        kill(proxy.pid, SIGUSR1)
        #expect(eventually(timeout: 5) { proxy.output.contains("received 165 answered 150 invalid 15 ") }, "\(proxy.output)")
    }
}

/// An Ethernet frame carrying a Neighbor Solicitation built with PacketKit, to the target's
/// solicited-node group (or as told), with the knobs a malformed one needs.
func solicitation(target: String, source: String, sourceMAC: UInt64, hopLimit: UInt8 = 255, code: UInt8 = 0, forceSLLA: Bool = false) throws -> [UInt8] {
    let t = IPv6Address(target)!, s = IPv6Address(source)!
    let destination = t.isMulticast ? IPv6Address("ff02::1")! : t.solicitedNodeMulticast
    let mac = MACAddress(rawValue: sourceMAC)
    let options: [NDPOptionRepr] = (s.isUnspecified && !forceSLLA) ? [] : [.sourceLinkLayerAddress(mac)]
    var ip = try PacketRepr.ipv6(source: s, destination: destination, hopLimit: hopLimit,
                                 .icmpv6(.neighborSolicitation(target: t, options: options))).emit()
    if code != 0 {
        // Set the code and fix the checksum by RFC 1624's incremental update (one 16-bit word changes).
        let old = UInt16(ip[40]) << 8 | UInt16(ip[41])
        ip[41] = code
        let new = UInt16(ip[40]) << 8 | UInt16(ip[41])
        var sum = UInt32(~(UInt16(ip[42]) << 8 | UInt16(ip[43]))) + UInt32(~old) + UInt32(new)
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        let c = ~UInt16(sum)
        ip[42] = UInt8(c >> 8); ip[43] = UInt8(c & 0xff)
    }
    let dmac: [UInt8] = [0x33, 0x33] + destination.bytes[12...]
    return dmac + mac.bytes + [0x86, 0xdd] + ip
}

/// Sends `frame` out of interface `ifindex` in namespace `ns` through a packet socket.
func inject(ns: String, ifindex: Int32, frame: [UInt8]) throws { try inject(ns: ns, ifindex: ifindex, frames: [frame]) }

/// Sends `frames` back to back out of interface `ifindex` in namespace `ns` through one packet socket.
func inject(ns: String, ifindex: Int32, frames: [[UInt8]]) throws {
    let fd = try NetworkNamespace.named(ns).perform { () throws(RouteKitError) -> Int32 in
        socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(0x86dd).bigEndian))
    }
    guard fd >= 0 else { throw TransferError("packet socket: errno \(errno)") }
    defer { close(fd) }
    for frame in frames {
        let n = frame.withUnsafeBytes { sixgate_packet_send(fd, ifindex, $0.baseAddress, $0.count) }
        guard n == frame.count else { throw TransferError("send: errno \(errno)") }
    }
    usleep(20_000)
}

extension ResponderNamespaceTests {
    /// Fault injection: the interface ndp-proxy answers on is deleted under it and made again (a
    /// veth replaced, a VLAN re-created). It says so, keeps running, and answers on the new
    /// interface without a restart.
    @Test func theInterfaceRemovedAndMadeAgainIsAnsweredOnWithoutARestart() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let proxy = try bed.startProxy(config: npd6Basic.replacingOccurrences(of: "UPLINK", with: bed.uplink))
        defer { proxy.stop() }
        #expect(try bed.exec(bed.isp, ["ping", "-c", "1", "-W", "2", "2001:db8:5::100"], check: false).succeeded)

        try bed.exec(bed.proxy, ["ip", "link", "del", bed.uplink])   // takes the ISP's end with it
        #expect(eventually(timeout: 10) { proxy.output.contains("\(bed.uplink) is gone") }, "it says what failed: \(proxy.output)")
        #expect(proxy.process.isRunning)
        try run(["ip", "link", "add", bed.ispLink, "netns", bed.isp, "type", "veth", "peer", "name", bed.uplink, "netns", bed.proxy], check: true)
        try bed.exec(bed.isp, ["ip", "link", "set", bed.ispLink, "up"])
        try bed.exec(bed.proxy, ["ip", "link", "set", bed.uplink, "up"])
        try bed.exec(bed.isp, ["ip", "-6", "addr", "add", "2001:db8:5::1/64", "dev", bed.ispLink, "nodad"])
        try bed.exec(bed.proxy, ["ip", "-6", "addr", "add", "2001:db8:5::2/64", "dev", bed.uplink, "nodad"])
        #expect(eventually(timeout: 15) { proxy.output.contains("\(bed.uplink) is back") }, "\(proxy.output)")
        #expect(eventually(timeout: 15) { (try? bed.exec(bed.isp, ["ping", "-c", "1", "-W", "1", "2001:db8:5::100"], check: false).succeeded) == true },
                "answers again on the new interface: \(proxy.output)")
    }
}
