import Testing
@testable import PacketKit

@Suite("RFC 4291 / RFC 5952 addresses")
struct AddressTests {
    @Test("parses every RFC 4291 §2.2 text form", arguments: [
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:DB8:0:0:8:800:200C:417A", "2001:db8::8:800:200c:417a"),
        ("FF01::101", "ff01::101"),
        ("::1", "::1"),
        ("::", "::"),
        ("1::", "1::"),
        ("0:0:0:0:0:0:13.1.68.3", "::d01:4403"),
        ("::13.1.68.3", "::d01:4403"),
        ("0:0:0:0:0:FFFF:129.144.52.38", "::ffff:129.144.52.38"),
        ("::FFFF:129.144.52.38", "::ffff:129.144.52.38"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // RFC 5952 §4.2.3: first longest run
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // §4.2.2: one zero group is not compressed
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  // §4.2.3: the longer run wins
        ("2001:db8::0:1", "2001:db8::1"),
        ("fe80::ff:fe00:a01", "fe80::ff:fe00:a01"),
    ])
    func parsesAndPrintsCanonically(input: String, canonical: String) throws {
        let a = try IPv6Address.parse(input)
        #expect(a.description == canonical)
        #expect(try IPv6Address.parse(canonical) == a)
    }

    @Test("rejects malformed text", arguments: [
        "", ":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7", "::1:", ":1::",
        "1:2:3:4:5:6:7:8::", "::ffff:1.2.3", "::ffff:1.2.3.256", "::ffff:01.2.3.4", "1.2.3.4", "::1.2.3.4:5",
        "2001:db8::/64", " 2001:db8::1",
    ])
    func rejectsMalformed(input: String) {
        #expect(throws: AddressParseError.self) { try IPv6Address.parse(input) }
    }

    @Test func zoneIdentifiersAreExplicit() throws {
        #expect(throws: AddressParseError.self) { try IPv6Address.parse("fe80::1%eth0") }
        let (a, zone) = try IPv6Address.parseScoped("fe80::1%eth0")
        #expect(a == IPv6Address(0xfe80, 0, 0, 0, 0, 0, 0, 1))
        #expect(zone == "eth0")
        #expect(try IPv6Address.parseScoped("2001:db8::1").zone == nil)
    }

    @Test func ipv4ParsingIsStrict() throws {
        #expect(try IPv4Address.parse("192.0.2.1") == IPv4Address(192, 0, 2, 1))
        #expect(IPv4Address(203, 0, 113, 255).description == "203.0.113.255")
        for bad in ["192.0.2", "192.0.2.1.5", "256.0.0.1", "010.0.0.1", "1..2.3", "a.b.c.d", "", "1.2.3.4 "] {
            #expect(throws: AddressParseError.self, "\(bad)") { try IPv4Address.parse(bad) }
        }
    }

    // RFC 4291 Appendix A; 02:00:00:00:0a:01 -> fe80::ff:fe00:a01 is in the design's checklist.
    @Test("modified EUI-64 (RFC 4291 App. A)", arguments: [
        ("02:00:00:00:0a:01", "fe80::ff:fe00:a01"),
        ("00:00:5e:00:53:01", "fe80::200:5eff:fe00:5301"),
        ("52:54:00:12:34:56", "fe80::5054:ff:fe12:3456"),
        ("ff:ff:ff:ff:ff:ff", "fe80::fdff:ffff:feff:ffff"),
        ("00:00:00:00:00:00", "fe80::200:ff:fe00:0"),
    ])
    func eui64(mac: String, linkLocal: String) throws {
        #expect(IPv6Address.linkLocal(mac: try MACAddress.parse(mac)).description == linkLocal)
    }

    @Test func slaacAddressNeedsA64() throws {
        let mac = try MACAddress.parse("02:00:00:00:0a:01")
        #expect(try IPv6Address(prefix: IPv6Prefix.parse("2001:db8:1:2::/64"), mac: mac).description == "2001:db8:1:2:0:ff:fe00:a01")
        #expect(throws: AddressParseError.self) { try IPv6Address(prefix: IPv6Prefix.parse("2001:db8::/56"), mac: mac) }
    }

    @Test func solicitedNodeMulticast() throws {
        let a = try IPv6Address.parse("2001:db8::1:4cd:ef01")
        #expect(a.solicitedNodeMulticast.description == "ff02::1:ffcd:ef01")
        #expect(a.solicitedNodeMulticast.isSolicitedNodeMulticast)
        #expect(!IPv6Address.allNodes.isSolicitedNodeMulticast)
        #expect(MACAddress(multicast: a.solicitedNodeMulticast).description == "33:33:ff:cd:ef:01")
    }

    // RFC 6052 §2.4, the RFC's own table (192.0.2.33 in each prefix length).
    @Test("RFC 6052 §2.4 example table", arguments: [
        ("2001:db8::/32", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100::"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
    ])
    func rfc6052(prefix: String, embedded: String) throws {
        let p = try IPv6Prefix.parse(prefix)
        let v4 = try IPv4Address.parse("192.0.2.33")
        let a = try IPv6Address(embedding: v4, in: p)
        #expect(a == (try IPv6Address.parse(embedded)))
        #expect(try a.embeddedIPv4(prefixLength: p.length) == v4)
        // A receiver ignores a non-zero u octet and suffix (RFC 6052 §2.2; tayga #10).
        if p.length < 96 {
            let noisy = IPv6Address(rawValue: a.rawValue | (0xff as UInt128) << 56 | 0x1)
            #expect(try noisy.embeddedIPv4(prefixLength: p.length) == v4)
        }
    }

    @Test func rfc6052RejectsOtherLengthsAndNonZeroU() throws {
        let v4 = IPv4Address(192, 0, 2, 33)
        #expect(throws: AddressParseError.self) { try IPv6Address(embedding: v4, in: IPv6Prefix.parse("2001:db8::/33")) }
        #expect(throws: AddressParseError.self) { try IPv6Address(embedding: v4, in: IPv6Prefix.parse("2001:db8:0:0:ff00::/72")) }
        #expect(throws: AddressParseError.self) { try IPv6Address(embedding: v4, in: IPv6Prefix.parse("2001:db8:0:0:100::/64")) }
        #expect(try IPv6Address(embedding: v4, in: IPv6Prefix.parse("64:ff9b::/96")).description == "64:ff9b::c000:221")
        #expect(!v4.isGloballyRoutable)  // documentation range: not for 64:ff9b::/96
        #expect(!IPv4Address(100, 64, 0, 1).isGloballyRoutable)
    }

    @Test func classification() throws {
        #expect(try IPv6Address.parse("fe80::1").isLinkLocal)
        #expect(try IPv6Address.parse("febf::1").isLinkLocal)
        #expect(try !IPv6Address.parse("fec0::1").isLinkLocal)
        #expect(try IPv6Address.parse("fd00::1").isUniqueLocal)
        #expect(try IPv6Address.parse("ff02::1").multicastScope == 2)
        #expect(try IPv6Address.parse("2001:db8::1").isDocumentation)
        #expect(IPv4Address(100, 127, 255, 255).isSharedAddressSpace)
        #expect(!IPv4Address(100, 128, 0, 0).isSharedAddressSpace)
        #expect(IPv4Address(172, 31, 0, 1).isPrivate)
        #expect(!IPv4Address(172, 32, 0, 1).isPrivate)
    }

    @Test func macParsing() throws {
        #expect(try MACAddress.parse("02-00-00-00-0A-01").description == "02:00:00:00:0a:01")
        #expect(throws: AddressParseError.self) { try MACAddress.parse("02:00:00:00:0a") }
        #expect(throws: AddressParseError.self) { try MACAddress.parse("02:00:00:00:0a:100") }
    }
}

@Suite("Prefixes")
struct PrefixTests {
    @Test func containsAndOverlaps() throws {
        let p = try IPv6Prefix.parse("2001:db8::/64")
        #expect(p.contains(try IPv6Address.parse("2001:db8::ffff:1")))
        #expect(!p.contains(try IPv6Address.parse("2001:db8:0:1::1")))
        #expect(try IPv6Prefix.parse("2001:db8::/32").contains(p))
        #expect(!p.contains(try IPv6Prefix.parse("2001:db8::/32")))
        #expect(p.overlaps(try IPv6Prefix.parse("2001:db8::/48")))
        #expect(!p.overlaps(try IPv6Prefix.parse("2001:db8:0:1::/64")))
        #expect(try IPv6Prefix.parse("::/0").contains(p))
    }

    @Test func hostBitsAreAnErrorThatSuggestsTheFix() {
        do {
            _ = try IPv6Prefix.parse("2001:db8::1/64")
            Issue.record("accepted host bits")
        } catch {
            #expect(error.description.contains("2001:db8::/64"))
        }
        #expect(throws: AddressParseError.self) { try IPv6Prefix.parse("2001:db8::/129") }
        #expect(throws: AddressParseError.self) { try IPv6Prefix.parse("2001:db8::/") }
        #expect(throws: AddressParseError.self) { try IPv4Prefix.parse("192.0.2.1/24") }
        #expect(throws: AddressParseError.self) { try IPv4Prefix.parse("192.0.2.0/33") }
    }

    @Test func subnettingAndNthAddress() throws {
        let p = try IPv6Prefix.parse("2001:db8:100::/56")
        #expect(p.subnetCount(length: 64) == 256)
        #expect(try p.subnet(3, length: 64).description == "2001:db8:100:3::/64")
        #expect(try p.subnet(255, length: 64).description == "2001:db8:100:ff::/64")
        #expect(throws: AddressParseError.self) { try p.subnet(256, length: 64) }
        #expect(throws: AddressParseError.self) { try p.subnet(0, length: 48) }
        let host = try IPv6Prefix.parse("2001:db8::/64")
        #expect(host.address(at: 4)?.description == "2001:db8::4")
        #expect(host.last.description == "2001:db8::ffff:ffff:ffff:ffff")
        #expect(host.address(at: UInt128(UInt64.max) + 1) == nil)
        #expect(try IPv6Prefix.parse("::/0").subnetCount(length: 128) == nil)

        let v4 = try IPv4Prefix.parse("198.51.100.0/24")
        #expect(v4.count == 256)
        #expect(v4.last.description == "198.51.100.255")
        #expect(v4.address(at: 1)?.description == "198.51.100.1")
        #expect(v4.address(at: 256) == nil)
        #expect(try v4.subnet(2, length: 26).description == "198.51.100.128/26")
        #expect(v4.contains(IPv4Address(198, 51, 100, 7)))
        #expect(try v4.overlaps(IPv4Prefix.parse("198.51.0.0/16")))
        #expect(try IPv4Prefix.parse("0.0.0.0/0").contains(v4))
    }

    @Test func containingMasksHostBits() throws {
        let p = IPv6Prefix(containing: try IPv6Address.parse("2001:db8::abcd"), length: 112)
        #expect(p.description == "2001:db8::/112")
        #expect(IPv4Prefix(containing: IPv4Address(203, 0, 113, 77), length: 25).description == "203.0.113.0/25")
    }
}
