import Testing
@testable import PacketKit

/// The allocation-free advertisement builder against the value-type builder (whose output tcpdump
/// decodes in GoldenTcpdumpTests): the same bytes, and a frame PacketKit's own views accept.
@Suite("NDPFrame")
struct NDPFrameTests {
    static let mac = try! MACAddress.parse("02:00:00:00:0a:01"), peer = try! MACAddress.parse("02:00:00:00:0b:02")
    static let target = IPv6Address("2001:db8:1::4")!, ll = IPv6Address("fe80::ff:fe00:a01")!, asker = IPv6Address("fe80::1")!

    @Test func writesWhatPacketReprWrites() throws {
        for (withOption, flags) in [(true, NeighborAdvertisementFlags.solicited), (false, [.router, .solicited]), (true, [])] {
            try check(withOption: withOption, flags: flags)
        }
    }

    func check(withOption: Bool, flags: NeighborAdvertisementFlags) throws {
        let repr = try PacketRepr.ipv6(source: Self.ll, destination: Self.asker, hopLimit: 255,
                                       .icmpv6(.neighborAdvertisement(flags: flags, target: Self.target,
                                                                      options: withOption ? [.targetLinkLayerAddress(Self.mac)] : []))).emit()
        let expected = Self.peer.bytes + Self.mac.bytes + [0x86, 0xdd] + repr
        var out = [UInt8](repeating: 0xee, count: 120)
        let n = try out.withUnsafeMutableBytes {
            try NDPFrame.ethernetNeighborAdvertisement(into: $0, destinationMAC: Self.peer, sourceMAC: Self.mac, source: Self.ll,
                                                       destination: Self.asker, flags: flags, target: Self.target,
                                                       targetLinkLayer: withOption ? Self.mac : nil)
        }
        #expect(n == NDPFrame.neighborAdvertisementLength(targetLinkLayer: withOption))
        #expect(Array(out[..<n]) == expected)
        try out.withUnsafeBytes { raw in
            let frame = UnsafeRawBufferPointer(rebasing: raw[..<n])
            let ip = try IPv6Packet(try EthernetFrame(frame).payload)
            let na = try NeighborAdvertisement(try ICMPv6Message(ip.upperLayer))
            #expect(na.message.isChecksumValid(source: Self.ll, destination: Self.asker))
            #expect(na.target == Self.target && na.flags == flags)
        }
    }

    @Test func refusesAShortBuffer() {
        var out = [UInt8](repeating: 0, count: 85)
        #expect(throws: PacketError.self) {
            try out.withUnsafeMutableBytes {
                try NDPFrame.ethernetNeighborAdvertisement(into: $0, destinationMAC: Self.peer, sourceMAC: Self.mac, source: Self.ll,
                                                           destination: Self.asker, flags: [], target: Self.target, targetLinkLayer: Self.mac)
            }
        }
    }
}
