// Issue 22: the classes of RFC 7915 cases the translator got wrong, each pinned to the sentence it
// comes from. Inputs are built here byte by byte; tshark, a decoder no one here wrote, reads every
// input and output and must call each checksum good and each RFC 4884 length what the RFC says.
import Foundation
import PacketKit
import SixgateTestSupport
import Testing
@testable import Translator

// MARK: Building ICMP errors with RFC 4884 extensions

/// An RFC 4884 extension structure: header (version 2, checksum) and one MPLS Label Stack object
/// (RFC 4950, class 1, c-type 1) of `labels` entries; opaque to the translator.
func extensionStructure(labels: Int = 3) -> [UInt8] {
    let length = 4 + 4 * labels
    var object: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff), 1, 1]
    for i in 0..<labels { object += [0x00, 0x01, UInt8(truncatingIfNeeded: 0x10 + i), i == labels - 1 ? 0x01 : 0x00] }
    var s: [UInt8] = [0x20, 0, 0, 0] + object
    let c = s.withUnsafeBytes { InternetChecksum.of($0) }
    s[2] = UInt8(c >> 8); s[3] = UInt8(c & 0xff)
    return s
}

/// The original datagram field as RFC 4884 §4.1 wants it with extensions: zero-padded to `unit`
/// bytes and to at least 128.
func padded(_ original: [UInt8], unit: Int) -> [UInt8] {
    original + Array(repeating: 0, count: max(128, (original.count + unit - 1) / unit * unit) - original.count)
}

/// An ICMPv4 error whose original datagram is `original` (padded when `extensions` is given), the
/// length attribute in octet 5 (or `length` when given), then `extensions`.
func icmp4Error(_ src: IPv4Address, _ dst: IPv4Address, type: UInt8, code: UInt8, rest: [UInt8] = [0, 0, 0, 0], original: [UInt8],
                extensions: [UInt8]? = nil, length: UInt8? = nil, ttl: UInt8 = 64) throws -> [UInt8] {
    let body = extensions.map { padded(original, unit: 4) + $0 } ?? original
    var m: [UInt8] = [type, code, 0, 0] + rest + body
    if let e = extensions { m[5] = length ?? UInt8((body.count - e.count) / 4) } else if let length { m[5] = length }
    let c = m.withUnsafeBytes { InternetChecksum.of($0) }
    m[2] = UInt8(c >> 8); m[3] = UInt8(c & 0xff)
    return try v4(src, dst, ttl: ttl, .other(.icmp, m))
}

/// An ICMPv6 error likewise (length in octet 4, 64-bit words).
func icmp6Error(_ src: IPv6Address, _ dst: IPv6Address, type: UInt8, code: UInt8, original: [UInt8], extensions: [UInt8]? = nil,
                length: UInt8? = nil, ext: [IPv6ExtensionHeaderRepr] = []) throws -> [UInt8] {
    let body = extensions.map { padded(original, unit: 8) + $0 } ?? original
    var m: [UInt8] = [type, code, 0, 0, 0, 0, 0, 0] + body
    if let e = extensions { m[4] = length ?? UInt8((body.count - e.count) / 8) } else if let length { m[4] = length }
    var c = InternetChecksum.pseudoHeader(source: src, destination: dst, length: m.count, nextHeader: .icmpv6)
    m.withUnsafeBytes { c.add($0) }
    m[2] = UInt8(c.value >> 8); m[3] = UInt8(c.value & 0xff)
    return try v6(src, dst, ext: ext, .other(.icmpv6, m))
}

// MARK: tshark, the judge

/// tshark's reading of `packets` (raw IP): for each packet the `fields` asked for, as tshark prints
/// them (several occurrences joined by ","). Checksums of IPv4, UDP and TCP are checked too.
func tshark(_ packets: [[UInt8]], _ fields: [String], readICMPv4Extensions: Bool = true) throws -> [[String]] {
    var writer = PcapWriter(linkType: .raw)
    for p in packets { p.withUnsafeBytes { writer.append($0) } }
    let file = NSTemporaryDirectory() + "sg-conformance-\(uniqueSuffix()).pcap"
    try Data(writer.bytes).write(to: URL(fileURLWithPath: file))
    defer { try? FileManager.default.removeItem(atPath: file) }
    if let keep = ProcessInfo.processInfo.environment["SG_KEEP_PCAP"] { try? FileManager.default.copyItem(atPath: file, toPath: keep + "-\(uniqueSuffix()).pcap") }
    // favor_icmp_mpls: tshark 4.0 reads an ICMPv4 (not ICMPv6) extension structure only with it, and
    // then as starting at byte 128 whatever the length attribute says, so an inner packet longer
    // than 128 bytes is cut there: checksums are checked without it.
    let r = try run(["tshark", "-r", file, "-n", "-o", "icmp.favor_icmp_mpls:\(readICMPv4Extensions ? "TRUE" : "FALSE")", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                     "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"] + fields.flatMap { ["-e", $0] }, check: true)
    return r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
}

/// The checksums tshark found bad in these packets (IPv4 header, ICMP, ICMPv6, UDP, TCP, the ICMP
/// extension structure's, inner packets' too); each packet must have at least one it called good.
func checksumsGood(_ packets: [[UInt8]]) throws -> [String] {
    let fields = ["ip.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status", "udp.checksum.status", "tcp.checksum.status", "icmp.ext.checksum.status"]
    var bad: [String] = []
    for (i, row) in try tshark(packets, fields, readICMPv4Extensions: false).enumerated() {
        if !row.contains(where: { $0.split(separator: ",").contains("1") }) { bad.append("packet \(i): no checksum tshark could call good: \(row)") }
        for (f, value) in zip(fields, row) where !value.isEmpty {
            // tshark's checksum states: 0 bad, 1 good, 2 unverified (a packet cut short inside an
            // ICMP error), 3 not present (UDP over IPv4 with 0), 4 illegal.
            if value.split(separator: ",").contains(where: { $0 == "0" || $0 == "4" }) { bad.append("packet \(i): \(f) = \(value)") }
        }
    }
    return bad
}

let p92 = (0..<92).map { UInt8(truncatingIfNeeded: $0 &* 37) }
let tshark0 = which("tshark") != nil

@Suite(.enabled(if: tshark0, "needs tshark (scripts/setup.sh installs it)"))
struct RFC4884ExtensionTests {
    /// RFC 7915 §4.2 ("ICMP Error Payload"): "the ICMPv6 Extension length attribute MUST be adjusted
    /// accordingly (e.g., longer due to the translation from IPv4 to IPv6)"; the extension is kept
    /// as an opaque string. The inner packet of Jool's graybox case ia2 (20 + 20 + 92 bytes).
    @Test func fromIPv4TheLengthGrowsAndTheExtensionIsKept() throws {
        let t = try Translator(testConfiguration())
        let original = try v4(client4, server4, ttl: 63, .tcp(tcp, payload: p92))
        let ext = extensionStructure()
        let error = try icmp4Error(router4, client4, type: 3, code: 3, original: original, extensions: ext)
        #expect(original.count == 132 && error[20 + 5] == 33)
        let (r, out) = run(t, error)
        #expect(r == .translated(packets: 1))
        let o = try #require(out.first)
        let inner6 = try v6(client6, server6, hop: 63, .tcp(tcp, payload: p92))
        #expect(inner6.count == 152)
        #expect(Array(o[40..<48]) == [1, 4, o[42], o[43], 19, 0, 0, 0], "Destination Unreachable, port; length 152 / 8 = 19")
        #expect(Array(o[48..<200]) == inner6)
        #expect(Array(o[200...]) == ext)
        #expect(o.count == 40 + 8 + 152 + ext.count)
        // tshark: the input and the output each have their original datagram and their extension.
        let rows = try tshark([error, o], ["icmp.length", "icmpv6.length", "icmp.ext.version", "icmp.ext.class", "icmp.ext.ctype"])
        #expect(rows[0] == ["33", "", "2", "1", "1"], "\(rows[0])")
        #expect(rows[1] == ["", "19", "2", "1", "1"], "\(rows[1])")
        #expect(try checksumsGood([error, o]) == [])
    }

    /// RFC 7915 §5.2: "the ICMPv6 Extension length attribute MUST be adjusted accordingly (e.g.,
    /// shorter due to the translation from IPv6 to IPv4)". Jool's case ia1 the other way.
    @Test func fromIPv6TheLengthShrinksAndTheExtensionIsKept() throws {
        let t = try Translator(testConfiguration())
        let original = try v6(server6, client6, hop: 63, .tcp(tcp, payload: p92))
        let ext = extensionStructure()
        let error = try icmp6Error(router6, server6, type: 1, code: 4, original: original, extensions: ext)
        let (r, out) = run(t, error)
        #expect(r == .translated(packets: 1))
        let o = try #require(out.first)
        let inner4 = try v4(server4, client4, ttl: 63, .tcp(tcp, payload: p92))
        #expect(o[20] == 3 && o[21] == 3 && o[25] == 33, "port unreachable, length 132 / 4 = 33")
        // After IPv4 (20) and ICMP (8): the inner header (its Identification 0, RFC 7915 §5.1), the
        // rest of the packet byte for byte, the extension.
        #expect(o.count == 28 + 132 + ext.count)
        #expect(Array(o[28 + 20..<160]) == Array(inner4[20...]))
        #expect(Array(o[160...]) == ext)
        let rows = try tshark([error, o], ["icmpv6.length", "icmp.length", "icmp.ext.version"])
        #expect(rows[0] == ["19", "", "2"] && rows[1] == ["", "33", "2"], "\(rows)")
        #expect(try checksumsGood([error, o]) == [])
    }

    /// RFC 4884 §4.1: with extensions the original datagram "MUST be zero padded" to 128 bytes when
    /// shorter; its length is then counted in the other family's unit.
    @Test func aShortInnerPacketIsPaddedTo128InTheNewUnit() throws {
        let t = try Translator(testConfiguration())
        let original = try v4(client4, server4, ttl: 63, .udp(udp, payload: payload))   // 20 + 8 + 43 = 71
        let ext = extensionStructure(labels: 1)
        let error = try icmp4Error(router4, client4, type: 11, code: 0, original: original, extensions: ext)
        #expect(error[20 + 5] == 32)
        let o = try #require(run(t, error).1.first)
        let inner6 = try v6(client6, server6, hop: 63, .udp(udp, payload: payload))   // 91
        #expect(o[40] == 3 && o[44] == 16, "Time Exceeded; 128 / 8")
        #expect(Array(o[48..<48 + 91]) == inner6 && o[48 + 91..<48 + 128].allSatisfy { $0 == 0 })
        #expect(Array(o[(48 + 128)...]) == ext)
        // Back the other way: 91 bytes of IPv6 padded to 128, to 71 of IPv4 padded to 128 (32 words).
        let error6 = try icmp6Error(router6, server6, type: 3, code: 0, original: try v6(server6, client6, hop: 63, .udp(udp, payload: payload)), extensions: ext)
        let o4 = try #require(run(t, error6).1.first)
        #expect(o4[20] == 11 && o4[25] == 32 && o4.count == 20 + 8 + 128 + ext.count)
        #expect(try tshark([o, o4], ["icmpv6.length", "icmp.length"]) == [["16", ""], ["", "32"]])
        #expect(try checksumsGood([error, o, error6, o4]) == [])
    }

    /// RFC 7915 §4.2: "If the ICMPv4 Extension exceeds the maximum size of an ICMPv6 message on the
    /// outgoing interface, the ICMPv4 extension SHOULD be simply truncated." Cut, its own checksum
    /// would be wrong: it is dropped whole with the length set to 0 (RFC 4884 §5.1: a message with
    /// length 0 carries no extension), and the inner packet is what its Total Length says.
    @Test func anExtensionThatCannotFitIsDroppedWhole() throws {
        let t = try Translator(testConfiguration())
        let original = try v4(client4, server4, ttl: 63, .udp(udp, payload: payload))
        let big = extensionStructure(labels: 280)   // 4 + 4 + 1120 bytes: 128 + 1128 > 1280 - 48
        let error = try icmp4Error(router4, client4, type: 3, code: 1, original: original, extensions: big)
        let o = try #require(run(t, error).1.first)
        #expect(o[44] == 0)
        #expect(Array(o[48...]) == (try v6(client6, server6, hop: 63, .udp(udp, payload: payload))), "the inner packet alone, no padding")
        #expect(try checksumsGood([o]) == [])
    }

    /// ICMPv6 Packet Too Big and Parameter Problem have no length attribute (RFC 4884 §4.1 names
    /// Destination Unreachable and Time Exceeded only): an ICMPv4 "fragmentation needed" or
    /// parameter problem with extensions loses them in translation, not the inner packet.
    @Test func typesWithoutALengthAttributeLoseTheExtension() throws {
        let t = try Translator(testConfiguration())
        let original = try v4(client4, server4, ttl: 63, df: true, .tcp(tcp, payload: p92))
        let error = try icmp4Error(router4, client4, type: 3, code: 4, rest: [0, 0, 0x05, 0x78], original: original, extensions: extensionStructure())
        let o = try #require(run(t, error).1.first)
        #expect(o[40] == 2)
        #expect(Array(o[48...]) == (try v6(client6, server6, hop: 63, .tcp(tcp, payload: p92))))
        #expect(try checksumsGood([o]) == [])
    }

    /// RFC 4884 §5: a length attribute that does not fit the message means no extension; the
    /// message is read as before RFC 4884 (everything after the header is the original datagram).
    @Test func aLengthPastTheEndIsReadAsNoExtension() throws {
        let t = try Translator(testConfiguration())
        let original = try v4(client4, server4, ttl: 63, .udp(udp, payload: payload))
        let error = try icmp4Error(router4, client4, type: 3, code: 3, original: original, length: 200)
        let o = try #require(run(t, error).1.first)
        #expect(o[44] == 0 && Array(o[48...]) == (try v6(client6, server6, hop: 63, .udp(udp, payload: payload))))
    }
}

@Suite struct FragmentAndIdentificationTests {
    /// RFC 7915 §5.1.1: with a Fragment header, "Identification: Copied from the low-order 16 bits"
    /// and DF cleared; an ICMPv6 echo in an atomic fragment is no exception.
    @Test func theICMPPathCopiesTheFragmentIdentification() throws {
        let t = try Translator(testConfiguration())
        let echo = try v6(client6, server6, ext: [.fragment(offset: 0, moreFragments: false, identification: 0x1234_abcd)],
                          .icmpv6(.echoRequest(identifier: 7, sequence: 1, data: payload)))
        let o = try #require(run(t, echo).1.first)
        #expect(o[4] == 0xab && o[5] == 0xcd, "Identification 0xabcd")
        #expect(o[6] & 0x40 == 0, "DF clear")
        #expect(o == (try v4(client4, server4, ttl: 63, id: 0xabcd, .icmpv4(.echoRequest(identifier: 7, sequence: 1), data: payload))))
        // The same for an ICMPv6 error in an atomic fragment (its outer header).
        let inner = try v6(server6, client6, hop: 63, .udp(udp, payload: payload))
        let error = try icmp6Error(router6, server6, type: 1, code: 4, original: inner, ext: [.fragment(offset: 0, moreFragments: false, identification: 0x5555_0102)])
        let e = try #require(run(t, error).1.first)
        #expect(e[4] == 0x01 && e[5] == 0x02 && e[6] & 0x40 == 0)
    }

    /// RFC 7915 §5.1.1: "If the Next Header field of the Fragment Header is an extension header
    /// (except ESP, but including the Authentication Header (AH)), then the packet SHOULD be dropped
    /// and logged." §5.4: the sender gets Destination Unreachable code 1.
    @Test func anExtensionHeaderAfterTheFragmentHeaderIsDroppedWithAnError() throws {
        let t = try Translator(testConfiguration())
        let cases: [[IPv6ExtensionHeaderRepr]] = [
            [.fragment(offset: 0, moreFragments: true, identification: 9), .destinationOptions(options: [1, 4, 0, 0, 0, 0])],
            [.fragment(offset: 0, moreFragments: true, identification: 9), .routing(type: 4, segmentsLeft: 0, data: Array(repeating: 0, count: 20))],
            [.hopByHop(options: [1, 4, 0, 0, 0, 0]), .fragment(offset: 0, moreFragments: true, identification: 9), .hopByHop(options: [1, 4, 0, 0, 0, 0])],
            [.fragment(offset: 0, moreFragments: true, identification: 9), .hopByHop(options: [1, 4, 0, 0, 0, 0])],
        ]
        for ext in cases {
            let packet = try v6(client6, server6, ext: ext, .udp(udp, payload: payload))
            let (r, out) = run(t, packet)
            #expect(r == .dropped(.extensionHeaderAfterFragment, errorSent: true), "\(ext)")
            #expect(out == [try v6(own6, client6, .icmpv6(.destinationUnreachable(code: 1, invokingPacket: packet)))], "\(ext)")
        }
        // Before the Fragment header they are skipped, as RFC 7915 §5.1 says ("not translated").
        let before = try v6(client6, server6, ext: [.destinationOptions(options: [1, 4, 0, 0, 0, 0]), .fragment(offset: 0, moreFragments: true, identification: 9)],
                            .udp(udp, payload: payload))
        let (r, out) = run(t, before)
        #expect(r == .translated(packets: 1) && out.first?[9] == 17 && out.first.map { $0[6] & 0x20 != 0 } == true, "UDP, MF set")
        #expect(t.statistics.dropped[.extensionHeaderAfterFragment] == UInt64(cases.count))
    }

    /// RFC 7915 §4.4/§5.4: a discarded packet gets an error unless it is an ICMP error itself; and
    /// RFC 4443 §2.4(e): never about an ICMPv6 error.
    @Test func noErrorIsSentAboutAnError() throws {
        var c = testConfiguration(); c.computeZeroUDPChecksum = false
        let t = try Translator(c)
        var inner = try v4(client4, IPv4Address("203.0.113.9")!, .udp(udp, payload: payload))
        inner[26] = 0; inner[27] = 0
        // An ICMPv4 error about an address it cannot map inside: dropped, nothing sent.
        let error = try icmp4Error(router4, IPv4Address("10.0.0.1")!, type: 3, code: 1, original: inner)
        var wkp = testConfiguration(); wkp.prefix = TranslatorConfiguration.wellKnownPrefix
        #expect(run(try Translator(wkp), error) == (.dropped(.unmappable, errorSent: false), []))
        #expect(t.statistics.errorsSent == 0)
    }
}

@Suite struct RFC6791PoolTests {
    let unmappedRouter6 = IPv6Address("2001:db8:feed::1")!

    /// RFC 6791 §4: an ICMPv6 error from an IPv6 router that has no IPv4 address (here: outside
    /// pool6 and the EAM table) gets a source from the configured pool, "randomly" chosen; the
    /// network and broadcast addresses of the pool are not used.
    @Test func errorsFromUnmappableRoutersGetAPoolSource() throws {
        var c = testConfiguration(); c.rfc6791Pool = IPv4Prefix("198.51.100.128/29")!
        let t = try Translator(c)
        let inner = try v6(server6, client6, hop: 63, .udp(udp, payload: payload))
        let error = try icmp6Error(unmappedRouter6, server6, type: 3, code: 0, original: inner)
        var sources = Set<IPv4Address>()
        for _ in 0..<200 {
            let o = try #require(run(t, error).1.first)
            #expect(o[20] == 11 && o[21] == 0 && o[16..<20].elementsEqual([203, 0, 113, 5]))
            sources.insert(IPv4Address(rawValue: UInt32(o[12]) << 24 | UInt32(o[13]) << 16 | UInt32(o[14]) << 8 | UInt32(o[15])))
        }
        let hosts = Set((129...134).map { IPv4Address("198.51.100.\($0)")! })
        #expect(sources.isSubset(of: hosts) && sources.count >= 4, "\(sources)")
        // Without a pool: the translator's own address; without either: dropped as before.
        let own = try #require(run(try Translator(testConfiguration()), error).1.first)
        #expect(own[12..<16].elementsEqual([198, 51, 100, 1]))
        var none = testConfiguration(); none.ipv4Address = nil
        #expect(run(try Translator(none), error).0 == .dropped(.unmappable, errorSent: false))
        // Only errors: an echo from the same router is not translated.
        let echo = try v6(unmappedRouter6, server6, .icmpv6(.echoRequest(identifier: 1, sequence: 1, data: payload)))
        #expect(run(t, echo).0 == .dropped(.unmappable, errorSent: true))
    }

    /// The other way, for EAM-only translators whose IPv4 routers have no IPv6 mapping.
    @Test func errorsFromUnmappableIPv4RoutersGetAnIPv6PoolSource() throws {
        let c = TranslatorConfiguration(prefix: nil, explicitMappings: [ExplicitMapping(ipv4: client4, ipv6: client6),
                                                                        ExplicitMapping(ipv4: server4, ipv6: server6)],
                                        ipv4Address: own4, ipv6Address: own6, rfc6791Pool6: IPv6Prefix("2001:db8:6791::/64")!)
        let t = try Translator(c)
        let inner = try v4(client4, server4, ttl: 63, .udp(udp, payload: payload))
        let error = try icmp4Error(router4, client4, type: 11, code: 0, original: inner)
        let o = try #require(run(t, error).1.first)
        let source = IPv6Address(rawValue: o.withUnsafeBytes { $0.be128(8) })
        #expect(IPv6Prefix("2001:db8:6791::/64")!.contains(source) && source != IPv6Prefix("2001:db8:6791::/64")!.network)
        #expect(Array(o[48...]) == (try v6(client6, server6, hop: 63, .udp(udp, payload: payload))))
        #expect(try checksumsGood([o]) == [] || !tshark0)
    }
}

@Suite struct ExplicitMappingOnlyTests {
    /// RFC 7757 §3: a translator with the EAM table alone ("pool6" is optional): mapped hosts are
    /// translated both ways, anything else is not.
    @Test func anEAMOnlyTranslatorWorksBothWays() throws {
        let c = TranslatorConfiguration(prefix: nil, explicitMappings: [ExplicitMapping(ipv4: client4, ipv6: client6),
                                                                        ExplicitMapping(ipv4: server4, ipv6: server6)],
                                        ipv4Address: own4, ipv6Address: own6)
        let t = try Translator(c)
        #expect(run(t, try v6(client6, server6, .udp(udp, payload: payload))).1 == [try v4(client4, server4, ttl: 63, id: 1, .udp(udp, payload: payload))])
        #expect(run(t, try v4(server4, client4, .udp(udp, payload: payload))).1 == [try v6(server6, client6, hop: 63, .udp(udp, payload: payload))])
        #expect(run(t, try v6(client6, IPv6Address("2001:db8:64::cb00:7106")!, .udp(udp, payload: payload))).0 == .dropped(.unmappable, errorSent: true))
        #expect(throws: TranslatorConfigurationError.self) { try Translator(TranslatorConfiguration(prefix: nil)) }
    }

    /// RFC 7757 §4 (hairpinning): from one EAM'd host to the pool6 address of another EAM'd host's
    /// IPv4 address, the packet is translated to IPv4 and back: source the pool6 form of the
    /// sender's IPv4 address, destination the receiver's IPv6 address, one hop-limit decrement.
    @Test func hairpinningLoopsOnceThroughBothDirections() throws {
        let a6 = IPv6Address("2001:db8:3::8")!, a4 = IPv4Address("192.0.2.8")!
        let b6 = IPv6Address("2001:db8:3::9")!, b4 = IPv4Address("192.0.2.9")!
        let pool6 = IPv6Prefix("2001:db8:64::/96")!
        let t = try Translator(TranslatorConfiguration(prefix: pool6, explicitMappings: [ExplicitMapping(ipv4: a4, ipv6: a6), ExplicitMapping(ipv4: b4, ipv6: b6)],
                                                       ipv4Address: own4, ipv6Address: own6))
        let toB = try v6(a6, try IPv6Address(embedding: b4, in: pool6), hop: 64, .udp(udp, payload: payload))
        let (r, out) = run(t, toB)
        #expect(r == .translated(packets: 1))
        #expect(out == [try v6(try IPv6Address(embedding: a4, in: pool6), b6, hop: 63, .udp(udp, payload: payload))])
        #expect(t.statistics.hairpinned == 1 && t.statistics.translated6to4 == 0 && t.statistics.translated4to6 == 0)
        // TCP too, and an echo; with hop limit 1 the first half answers Time Exceeded.
        #expect(run(t, try v6(a6, try IPv6Address(embedding: b4, in: pool6), .tcp(tcp, payload: payload))).1
            == [try v6(try IPv6Address(embedding: a4, in: pool6), b6, hop: 63, .tcp(tcp, payload: payload))])
        let expiring = try v6(a6, try IPv6Address(embedding: b4, in: pool6), hop: 1, .udp(udp, payload: payload))
        #expect(run(t, expiring).1 == [try v6(own6, a6, .icmpv6(.timeExceeded(code: 0, invokingPacket: expiring)))])
        if tshark0 { #expect(try checksumsGood(out) == []) }
    }
}
