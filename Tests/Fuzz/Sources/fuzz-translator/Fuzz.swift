// The translator (RFC 7915) on arbitrary packets, both entry points: whole packets and TCP
// super-packets with a segment size, under two configurations (the Well-Known Prefix with an
// explicit mapping, as a CLAT; a /40 network-specific prefix with small MTUs, to reach the
// fragmentation and too-big paths); mode bit 3 picks one of two more (pool6 with two explicitly
// mapped hosts and RFC 6791 pools, for hairpinning and unmappable routers; and EAM alone, without
// pool6, by bit 4). Everything it emits must be a well-formed IP packet of the
// other family (or an ICMP error back), within the scratch buffer. Mode bit 2 fixes up the IPv4
// header checksum, so mutations get past it.
import FuzzSupport
import PacketKit
import Translator

nonisolated(unsafe) let translators: [Translator] = [
    try! Translator(TranslatorConfiguration(prefix: IPv6Prefix("64:ff9b::/96")!,
                                            explicitMappings: [ExplicitMapping(ipv4: IPv4Address("192.0.0.2")!, ipv6: IPv6Address("2001:db8:1::5")!)],
                                            ipv6MTU: 1420, ipv4MTU: 1400, ipv4Address: IPv4Address("192.0.0.1")!, ipv6Address: IPv6Address("2001:db8:1::5")!)),
    try! Translator(TranslatorConfiguration(prefix: IPv6Prefix("2001:db8:6400::/40")!,
                                            explicitMappings: [ExplicitMapping(ipv4: IPv4Address("198.51.100.7")!, ipv6: IPv6Address("2001:db8:1::7")!)],
                                            ipv6MTU: 1280, ipv4MTU: 576, lowestIPv6MTU: 1280, ipv4Address: IPv4Address("198.51.100.1")!)),
    try! Translator(TranslatorConfiguration(prefix: IPv6Prefix("64:ff9b::/96")!,
                                            explicitMappings: [ExplicitMapping(ipv4: IPv4Address("192.0.0.2")!, ipv6: IPv6Address("2001:db8:1::5")!),
                                                               ExplicitMapping(ipv4: IPv4Address("198.51.100.1")!, ipv6: IPv6Address("2001:db8:1::6")!)],
                                            ipv4Address: IPv4Address("192.0.0.1")!, ipv6Address: IPv6Address("2001:db8:1::1")!,
                                            rfc6791Pool: IPv4Prefix("203.0.113.0/29")!, rfc6791Pool6: IPv6Prefix("2001:db8:6791::/64")!)),
    try! Translator(TranslatorConfiguration(prefix: nil,
                                            explicitMappings: [ExplicitMapping(ipv4: IPv4Address("192.0.0.2")!, ipv6: IPv6Address("2001:db8:1::5")!),
                                                               ExplicitMapping(ipv4: IPv4Address("198.51.100.1")!, ipv6: IPv6Address("64:ff9b::c633:6401")!)],
                                            ipv4Address: IPv4Address("192.0.0.1")!, ipv6Address: IPv6Address("2001:db8:1::1")!)),
]
nonisolated(unsafe) let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Translator.scratchSize, alignment: 16)

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let mode = input.u8()
    let segment = Int(input.u16())
    var packet = input.rest()
    if mode & 4 != 0 { fixIPv4HeaderChecksum(&packet) }
    let translator = translators[mode & 8 == 0 ? Int(mode & 1) : 2 + Int(mode >> 4 & 1)]
    packet.withUnsafeBytes { p in
        if mode & 2 == 0 {
            translator.translate(p, scratch: scratch) { out in check(out) }
        } else {
            translator.translate(segmented: p, segmentSize: segment, scratch: scratch) { out, _ in check(out) }
        }
    }
    return 0
}

func check(_ out: UnsafeRawBufferPointer) {
    require(out.count > 0 && out.count <= 65_575, "emitted \(out.count) bytes")
    if let base = out.baseAddress, let s = scratch.baseAddress {
        require(base >= UnsafeRawPointer(s) && base + out.count <= UnsafeRawPointer(s) + scratch.count, "emitted bytes outside the scratch buffer")
    }
    switch out.first.map({ $0 >> 4 }) {
    case 4:
        let p: IPv4Packet
        do { p = try IPv4Packet(out) } catch {
            require(false, "emitted an IPv4 packet that does not parse (\(error)): \(out.prefix(64).map { String($0, radix: 16) })"); return
        }
        require(p.isHeaderChecksumValid, "emitted an IPv4 header with a bad checksum")
    case 6:
        do { _ = try IPv6Packet(out) } catch {
            require(false, "emitted an IPv6 packet that does not parse (\(error)): \(out.prefix(64).map { String($0, radix: 16) })")
        }
    default:
        require(false, "emitted something that is not IP")
    }
}
