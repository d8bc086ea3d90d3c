import Foundation
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
@testable import Diagnostics

@Suite("libpcap binding")
struct LibpcapTests {
    @Test func reportsTheLibraryVersion() {
        #expect(LivePcap.libraryVersion.hasPrefix("libpcap version 1."))
    }

    static let a = IPv6Address("2001:db8::4")!, b = IPv6Address("2001:db8:ffff::1")!, ll = IPv6Address("fe80::ff:fe00:a01")!

    /// Packets PacketKit builds: an echo request, a neighbour solicitation, a port unreachable.
    static func packets() throws -> [[UInt8]] {
        let invoking = try PacketRepr.ipv6(source: b, destination: a, .udp(UDPRepr(sourcePort: 53, destinationPort: 33434), payload: [1, 2, 3, 4])).emit()
        return [
            try PacketRepr.ipv6(source: a, destination: b, .icmpv6(.echoRequest(identifier: 7, sequence: 1, data: Array(0..<56)))).emit(),
            try PacketRepr.ipv6(source: ll, destination: a.solicitedNodeMulticast, hopLimit: 255,
                                .icmpv6(.neighborSolicitation(target: a, options: []))).emit(),
            try PacketRepr.ipv6(source: b, destination: a, .icmpv6(.destinationUnreachable(code: 4, invokingPacket: invoking))).emit(),
        ]
    }

    /// Written through libpcap's pcap_dump, read back by tcpdump (same count, same decode) and by
    /// libpcap's reader (with and without a BPF filter).
    @Test(.enabled(if: which("tcpdump") != nil, "needs tcpdump"))
    func writtenFilesAreReadByTcpdumpAndByTheReader() throws {
        let path = NSTemporaryDirectory() + "sg-diag-\(uniqueSuffix()).pcap"
        defer { unlink(path) }
        let file = try PcapDumpFile(path: path, linkType: .raw)
        for (i, p) in try Self.packets().enumerated() {
            p.withUnsafeBytes { file.write(CapturedPacket(seconds: 1_700_000_000 + i, microseconds: 250, originalLength: p.count, bytes: $0)) }
        }
        try file.close()
        #expect(file.packetCount == 3)

        let tcpdump = try run(["tcpdump", "-n", "-r", path], check: true).stdout.split(separator: "\n")
        #expect(tcpdump.count == 3)
        #expect(tcpdump[0].contains("2001:db8::4 > 2001:db8:ffff::1: ICMP6, echo request"))
        #expect(tcpdump[1].contains("neighbor solicitation, who has 2001:db8::4"))

        var lines: [String] = []
        let reader = try PcapFileCapture(path: path)
        #expect(reader.linkType == .raw)
        #expect(try reader.forEach { lines.append(PacketLine.format($0, linkType: reader.linkType)) } == 3)
        #expect(lines[0].hasSuffix("IP6 2001:db8::4 > 2001:db8:ffff::1: ICMP6, echo request, id 7, seq 1, length 64"), "\(lines[0])")
        #expect(lines[1].contains("ICMP6, neighbor solicitation, who has 2001:db8::4"))
        #expect(lines[2].contains("ICMP6, destination unreachable, port unreachable, for 2001:db8:ffff::1 > 2001:db8::4"), "\(lines[2])")
        #expect(lines[0].split(separator: " ")[0].hasSuffix(".000250"), "microseconds kept: \(lines[0])")

        let filtered = try PcapFileCapture(path: path, filter: "icmp6 and ip6[40] == 135")
        #expect(try filtered.forEach { _ in } == 1)
    }

    @Test func errorsNameTheFileTheFilterAndTheInterface() throws {
        #expect(throws: CaptureError.self) { try PcapFileCapture(path: "/nonexistent/x.pcap") }
        do { _ = try PcapFileCapture(path: "/nonexistent/x.pcap") } catch { #expect(error.object == "pcap file /nonexistent/x.pcap") }
        let path = NSTemporaryDirectory() + "sg-diag-\(uniqueSuffix()).pcap"
        defer { unlink(path) }
        try PcapDumpFile(path: path, linkType: .raw).close()
        do { _ = try PcapFileCapture(path: path, filter: "nonsense (((") ; Issue.record("a bad filter was accepted") } catch {
            #expect(error.object == "filter \"nonsense (((\"", "\(error)")
        }
        // A truncated file: the reader stops with an error that says how far it got.
        try Data([0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]).write(to: URL(fileURLWithPath: path))
        #expect(throws: CaptureError.self) { _ = try PcapFileCapture(path: path).forEach { _ in } }
        if isRoot {
            do { _ = try LiveCapture(interface: "nosuch\(uniqueSuffix().prefix(6))"); Issue.record("opened a missing interface") } catch {
                #expect(error.detail.hasPrefix("no such interface"), "\(error)")
            }
        }
    }

    /// A live capture on a namespace's loopback sees exactly the pings sent there, stops at its
    /// count, and writes them for tcpdump.
    @Test(.enabled(if: isRoot && which("tcpdump") != nil, "needs root and tcpdump"))
    func capturesLiveInANamespace() throws {
        let ns = "sg-dc-\(uniqueSuffix())"
        try run(["ip", "netns", "add", ns], check: true)
        defer { _ = try? run(["ip", "netns", "del", ns]) }
        try run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check: true)
        let result = try NetworkNamespace.named(ns).perform { () -> Result<LiveCapture, CaptureError> in
            Result { () throws(CaptureError) in try LiveCapture(interface: "lo", filter: "icmp6 and ip6[40] == 128") }
        }
        let capture = try result.get()
        #expect(capture.linkType == .ethernet)
        let pinger = try BackgroundProcess(["ip", "netns", "exec", ns, "ping", "-6", "-c", "8", "-i", "0.1", "::1"])
        defer { pinger.stop() }
        let path = NSTemporaryDirectory() + "sg-diag-\(uniqueSuffix()).pcap"
        defer { unlink(path) }
        let file = try PcapDumpFile(path: path, linkType: capture.linkType)
        var lines: [String] = []
        let n = try capture.run(count: 5, duration: 10) { p in
            file.write(p)
            lines.append(PacketLine.format(p, linkType: capture.linkType))
            return true
        }
        try file.close()
        #expect(n == 5 && lines.allSatisfy { $0.contains("IP6 ::1 > ::1: ICMP6, echo request") }, "\(lines)")
        #expect(try run(["tcpdump", "-n", "-r", path], check: true).stdout.split(separator: "\n").count == 5)
        #expect(capture.statistics?.droppedByKernel == 0)
        // stop() from another thread ends a capture with no deadline.
        let quiet = try NetworkNamespace.named(ns).perform { () -> Result<LiveCapture, CaptureError> in
            Result { () throws(CaptureError) in try LiveCapture(interface: "lo", filter: "udp port 9") }
        }.get()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { quiet.stop() }
        let started = Date()
        #expect(try quiet.run { _ in true } == 0)
        #expect(Date().timeIntervalSince(started) < 5)
    }
}
