// The translator's RFC 4884 path (ICMP errors with extensions, issue 22): the input chooses the
// direction, the type and code, the length attribute, the packet inside and the extension bytes;
// the outer packet is built valid around them (mappable addresses, correct checksums) so every
// input reaches the extension code. Whatever comes out must be an ICMP error of the other family
// that a receiver can take apart: within 1280 (ICMPv6) or 576 (ICMPv4) bytes, its checksum right,
// and if its length attribute is non-zero, an original datagram of at least 128 bytes followed by
// exactly the extension structure that came in.
import FuzzSupport
import PacketKit
import Translator

let client4 = IPv4Address("192.0.0.2")!, client6 = IPv6Address("2001:db8:1::5")!
let router4 = IPv4Address("198.51.100.9")!, server4 = IPv4Address("198.51.100.1")!
let prefix = IPv6Prefix("2001:db8:64::/96")!
nonisolated(unsafe) let translator = try! Translator(TranslatorConfiguration(
    prefix: prefix, explicitMappings: [ExplicitMapping(ipv4: client4, ipv6: client6)],
    ipv6MTU: 1500, ipv4MTU: 1500, ipv4Address: IPv4Address("198.51.100.254")!, ipv6Address: IPv6Address("2001:db8:ffff::1")!))
nonisolated(unsafe) let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Translator.scratchSize, alignment: 16)
// Checked against each output: the extension structure given (empty: none was given).
nonisolated(unsafe) var given: [UInt8] = []

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let mode = input.u8()
    let from6 = mode & 1 == 1
    let typeChoice = input.u8()
    var length = input.u8()
    let innerLength = Int(input.u16() % 1600)
    var inner = input.take(innerLength)
    var ext = input.rest()
    // Mostly keep the extension header plausible (version 2) so the kept path runs.
    if mode & 2 == 0, !ext.isEmpty { ext[0] = 0x20 | (ext[0] & 0x0f) }
    // Mostly make the inner packet an IP header of the right family with mappable addresses.
    if mode & 4 == 0 { inner = plausibleInner(inner, v6: from6) }
    // Mostly make the length attribute say the inner packet's padded length.
    let unit = from6 ? 8 : 4
    let paddedInner = max(128, (inner.count + unit - 1) / unit * unit)
    if mode & 8 == 0 { length = UInt8(truncatingIfNeeded: paddedInner / unit) }
    let original = mode & 8 == 0 ? inner + Array(repeating: 0, count: paddedInner - inner.count) : inner
    // What RFC 4884 §5 makes of it: the bytes after the original datagram the length names, if they
    // fit and start with version 2; the translator must carry exactly these (or drop them).
    let body = original + ext
    let split = Int(length) * unit
    given = length != 0 && split + 4 <= body.count && body[split] >> 4 == 2 ? Array(body[split...]) : []
    let packet = from6 ? icmp6(typeChoice, length, original + ext) : icmp4(typeChoice, length, original + ext)
    packet.withUnsafeBytes { p in translator.translate(p, scratch: scratch) { out in check(out, from6: from6) } }
    return 0
}

func plausibleInner(_ bytes: [UInt8], v6: Bool) -> [UInt8] {
    var b = bytes
    if v6 {
        if b.count < 40 { b += Array(repeating: 0, count: 40 - b.count) }
        b[0] = 0x60 | (b[0] & 0x0f)
        withUnsafeBytes(of: (try! IPv6Address(embedding: server4, in: prefix)).rawValue.bigEndian) { for i in 0..<16 { b[8 + i] = $0[i] } }
        withUnsafeBytes(of: client6.rawValue.bigEndian) { for i in 0..<16 { b[24 + i] = $0[i] } }
    } else {
        if b.count < 20 { b += Array(repeating: 0, count: 20 - b.count) }
        b[0] = 0x45
        withUnsafeBytes(of: client4.rawValue.bigEndian) { for i in 0..<4 { b[12 + i] = $0[i] } }
        withUnsafeBytes(of: server4.rawValue.bigEndian) { for i in 0..<4 { b[16 + i] = $0[i] } }
    }
    return b
}

/// An ICMPv4 error from a router to the client (type 3, 11 or 12 with a code the map knows).
func icmp4(_ choice: UInt8, _ length: UInt8, _ body: [UInt8]) -> [UInt8] {
    let kinds: [(UInt8, UInt8)] = [(3, 0), (3, 1), (3, 3), (3, 4), (3, 13), (11, 0), (11, 1), (12, 0)]
    let (type, code) = kinds[Int(choice) % kinds.count]
    var m: [UInt8] = [type, code, 0, 0, type == 12 ? 9 : 0, length, type == 3 && code == 4 ? 0x05 : 0, type == 3 && code == 4 ? 0xdc : 0] + body
    let c = m.withUnsafeBytes { InternetChecksum.of($0) }
    m[2] = UInt8(c >> 8); m[3] = UInt8(c & 0xff)
    var ip: [UInt8] = [0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0] + bytes(router4) + bytes(client4)
    let total = 20 + m.count
    ip[2] = UInt8(truncatingIfNeeded: total >> 8); ip[3] = UInt8(truncatingIfNeeded: total)
    let h = ip.withUnsafeBytes { InternetChecksum.of($0) }
    ip[10] = UInt8(h >> 8); ip[11] = UInt8(h & 0xff)
    return ip + m
}

/// An ICMPv6 error from a router (inside pool6) to the server's pool6 address (types 1 to 4).
func icmp6(_ choice: UInt8, _ length: UInt8, _ body: [UInt8]) -> [UInt8] {
    let kinds: [(UInt8, UInt8)] = [(1, 0), (1, 1), (1, 3), (1, 4), (2, 0), (3, 0), (3, 1), (4, 0), (4, 1)]
    let (type, code) = kinds[Int(choice) % kinds.count]
    let src = try! IPv6Address(embedding: router4, in: prefix), dst = client6
    var m: [UInt8] = [type, code, 0, 0, 0, 0, 0, 0] + body
    if type == 1 || type == 3 { m[4] = length } else if type == 2 { m[6] = 0x05; m[7] = 0x00 } else { m[7] = 8 }
    var c = InternetChecksum.pseudoHeader(source: src, destination: dst, length: m.count, nextHeader: .icmpv6)
    m.withUnsafeBytes { c.add($0) }
    m[2] = UInt8(c.value >> 8); m[3] = UInt8(c.value & 0xff)
    var ip: [UInt8] = [0x60, 0, 0, 0, UInt8(truncatingIfNeeded: m.count >> 8), UInt8(truncatingIfNeeded: m.count), 58, 64]
    ip += withUnsafeBytes(of: src.rawValue.bigEndian, Array.init) + withUnsafeBytes(of: dst.rawValue.bigEndian, Array.init)
    return ip + m
}

func bytes(_ a: IPv4Address) -> [UInt8] { withUnsafeBytes(of: a.rawValue.bigEndian, Array.init) }

func check(_ out: UnsafeRawBufferPointer, from6: Bool) {
    if let base = out.baseAddress, let s = scratch.baseAddress {
        require(base >= UnsafeRawPointer(s) && base + out.count <= UnsafeRawPointer(s) + scratch.count, "emitted bytes outside the scratch buffer")
    }
    switch out.first.map({ $0 >> 4 }) {
    case 4:
        guard let p = try? IPv4Packet(out) else { require(false, "an IPv4 packet that does not parse"); return }
        require(p.isHeaderChecksumValid, "a bad IPv4 header checksum")
        guard p.protocolNumber == .icmp else { return }
        let m = p.payload
        require(m.count >= 8 && out.count <= 576 || !from6, "an ICMPv4 error of \(out.count) bytes (at most 576)")
        require(InternetChecksum.of(m) == 0, "a bad ICMPv4 checksum")
        if from6, m.count >= 8, (m[0] == 3 || m[0] == 11), m[5] != 0 { checkExtension(m, length: Int(m[5]) * 4) }
    case 6:
        guard let p = try? IPv6Packet(out) else { require(false, "an IPv6 packet that does not parse"); return }
        guard p.upperLayerProtocol == .icmpv6 else { return }
        let m = p.upperLayer
        require(out.count <= 1280 || from6, "an ICMPv6 error of \(out.count) bytes (at most 1280)")
        var c = p.pseudoHeader()
        c.add(m)
        require(c.value == 0 || c.value == 0xffff, "a bad ICMPv6 checksum")
        if !from6, m.count >= 8, (m[0] == 1 || m[0] == 3), m[4] != 0 { checkExtension(m, length: Int(m[4]) * 8) }
    default:
        require(false, "emitted something that is not IP")
    }
}

/// A non-zero length attribute: RFC 4884 §4.1's shape, and the extension carried unchanged.
func checkExtension(_ m: UnsafeRawBufferPointer, length: Int) {
    require(length >= 128, "an original datagram of \(length) bytes with extensions (at least 128)")
    require(8 + length <= m.count, "a length attribute past the end")
    guard 8 + length <= m.count else { return }
    require(!given.isEmpty && Array(m[(8 + length)...]) == given, "the extension structure changed in translation")
}
