import Foundation
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
@testable import SixgateIO
#if canImport(Glibc)
import Glibc
#endif

/// The kernel as the independent implementation: a super-packet goes into an offload TUN device in
/// one namespace, is forwarded to a veth without checksum or segmentation offload (so the kernel's
/// own software segmentation cuts it, skb_gso_segment), and the segments are captured by tcpdump in
/// the other namespace. Our `SuperPacket` must cut the same super-packet into the same bytes, and a
/// super-packet our `TCPCoalescer` rebuilt from those segments must come out of the kernel the same.
@Suite(.serialized, .enabled(if: isRoot && which("tcpdump") != nil && which("ethtool") != nil, "needs root, tcpdump and ethtool"))
struct OffloadKernelDifferentialTests {
    typealias F = OffloadFixtures

    @Test(arguments: [true, false])
    func theKernelCutsSuperPacketsAsWeDoAndTakesOursWhole(v4: Bool) throws {
        let pair = try NamespacePair(tag: "kso")
        defer { pair.destroy() }
        let tunName = "sgko\(pair.leftInterface.dropFirst(3))"
        let tun = try TunDevice(name: tunName, namespace: .named(pair.left), offload: true)
        for command in [["ip", "addr", "add", "203.0.113.1/24", "dev", tunName], ["ip", "link", "set", tunName, "up"],
                        ["sysctl", "-qw", "net.ipv4.ip_forward=1"], ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
                        ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"], ["sysctl", "-qw", "net.ipv4.conf.\(tunName).rp_filter=0"],
                        ["ip", "route", "add", "198.51.100.2/32", "via", "192.0.2.2"],
                        ["ip", "-6", "route", "add", "2001:db8::2/128", "via", "2001:db8:5::2"],
                        // No offload on the way out: the kernel segments in software and sums every checksum.
                        ["ethtool", "-K", pair.leftInterface, "tx", "off", "tso", "off", "gso", "off"]] {
            try pair.exec(pair.left, command)
        }
        let capture = NSTemporaryDirectory() + "sixgate-kso-\(uniqueSuffix()).pcap"
        defer { unlink(capture) }
        let dump = try BackgroundProcess(["ip", "netns", "exec", pair.right, "tcpdump", "-i", pair.rightInterface, "-Q", "in", "-U",
                                          "--immediate-mode", "-n", "-s", "0", "-w", capture, "tcp"], captureOutput: true)
        defer { dump.stop() }
        #expect(eventually(timeout: 10) { dump.output.contains("listening on") }, "\(dump.output)")

        // The super-packet as the kernel hands one to a TUN reader: 3 full segments and a short one.
        let ip = v4 ? 20 : 40
        let original = F.tcp(v4: v4, seq: 0x7fff_fff0, payload: F.random(3 * 1380 + 500), flags: 0x18, id: 0x4242, partial: true)
        let header = F.header(type: v4 ? .tcp4 : .tcp6, v4: v4, headerLength: ip + 32, segmentSize: 1380)
        let ours = try F.segments(header, original).get()
        #expect(ours.count == 4)

        // 1. The kernel's cut of the original.
        var raw = [UInt8](repeating: 0, count: VirtioNetHeader.size) + original
        raw.withUnsafeMutableBytes { header.write(to: $0) }
        #expect(raw.withUnsafeBytes { tun.write($0) })
        // 2. The kernel's cut of what our coalescer made of our segments.
        let coalescer = TCPCoalescer()
        let buffers = ours.map { s -> UnsafeMutableRawBufferPointer in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: s.count, alignment: 16)
            b.copyMemory(from: UnsafeRawBufferPointer(start: s, count: s.count)); return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        var writes = 0
        for b in buffers { coalescer.add(b) { v, n in writes += 1; _ = tun.write(vectors: v, count: n) } }
        coalescer.flush { v, n in writes += 1; #expect(tun.write(vectors: v, count: n), "the kernel takes the super-packet") }
        #expect(writes == 1 && coalescer.superPackets == 1)

        func captured() -> [[UInt8]] {
            guard let reader = try? PcapReader(path: capture), let records = try? reader.records() else { return [] }
            return records.map { Array($0.data.dropFirst(14)) }   // Ethernet
        }
        #expect(eventually(timeout: 10) { captured().count >= 8 }, "captured \(captured().count) of 8 segments")
        dump.stop()
        let got = captured()
        // What forwarding changes: TTL (hop limit) one less, and the IPv4 header checksum with it.
        let expected = ours.map { s -> [UInt8] in
            var e = s
            if v4 {
                e[8] -= 1; e[10] = 0; e[11] = 0
                let c = F.sum(Array(e[0..<20])).value
                e[10] = UInt8(c >> 8); e[11] = UInt8(c & 0xff)
            } else {
                e[7] -= 1
            }
            return e
        }
        #expect(got.count == 8)
        guard got.count == 8 else { return }
        for i in 0..<4 {
            #expect(got[i] == expected[i], "segment \(i) of the original: the kernel's and ours differ")
            #expect(got[4 + i] == expected[i], "segment \(i) of the coalesced super-packet differs")
            #expect(F.checksumsVerify(got[4 + i]))
        }
    }
}
