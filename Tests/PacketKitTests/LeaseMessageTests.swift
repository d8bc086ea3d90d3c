import PacketKit
import Testing

/// The lease exchange's wire format (docs/lease-protocol.md): exact bytes, round trips, and every
/// kind of malformed input refused without a trap.
struct LeaseMessageTests {
    func sample() -> LeaseMessage {
        var m = LeaseMessage(kind: .reply, transaction: 0x0102_0304)
        m.ipv6 = AddressAssignment(.v6(IPv6Address("2001:db8:1::4")!), prefixLength: 128)
        m.ipv4 = AddressAssignment(.v4(IPv4Address("192.0.2.2")!), prefixLength: 32)
        m.routes = [IPPrefix("::/0")!, IPPrefix("0.0.0.0/0")!]
        m.gatewayAddresses = [IPAddress("2001:db8:1::3")!, IPAddress("192.0.2.1")!]
        m.mtu = 1420
        m.dnsServers = [IPAddress("2001:db8:ffff::53")!]
        m.nat64Prefix = IPv6Prefix("64:ff9b::/96")!
        m.lifetime = 3600
        m.clatAddress = IPv6Address("2001:db8:1::5")!
        return m
    }

    @Test func aRequestIsEightBytes() throws {
        let bytes = try LeaseMessage(kind: .request, transaction: 0xdead_beef).encode()
        #expect(bytes == [0x53, 0x47, 1, 1, 0xde, 0xad, 0xbe, 0xef])
    }

    @Test func fieldsAreTypeLengthValue() throws {
        var m = LeaseMessage(kind: .reply, transaction: 7)
        m.ipv4 = AddressAssignment(.v4(IPv4Address("192.0.2.2")!), prefixLength: 24)
        m.mtu = 1280
        #expect(try m.encode() == [0x53, 0x47, 1, 2, 0, 0, 0, 7, 2, 5, 192, 0, 2, 2, 24, 4, 2, 0x05, 0x00])
    }

    @Test func aReplyRoundTrips() throws {
        let m = sample()
        let bytes = try m.encode()
        #expect(bytes.count < 200)
        #expect(try LeaseMessage(parsing: bytes) == m)
        var refusal = LeaseMessage(kind: .refusal, transaction: 9)
        refusal.message = "this key is not enrolled on the gateway"
        #expect(try LeaseMessage(parsing: try refusal.encode()) == refusal)
    }

    @Test func theCLATAddressIsAHostAddressField() throws {
        var m = LeaseMessage(kind: .reply, transaction: 7)
        m.clatAddress = IPv6Address("2001:db8:1::5")!
        let bytes = try m.encode()
        #expect(bytes == [0x53, 0x47, 1, 2, 0, 0, 0, 7, 10, 17, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 128])
        #expect(try LeaseMessage(parsing: bytes) == m)
        // Anything but a /128 IPv6 address is malformed.
        var short = bytes; short[bytes.count - 1] = 64
        #expect(throws: PacketError.self) { try LeaseMessage(parsing: short) }
        let v4: [UInt8] = Array(bytes.prefix(8)) + [10, 5, 192, 0, 2, 1, 32]
        #expect(throws: PacketError.self) { try LeaseMessage(parsing: v4) }
    }

    @Test func anEarlierLeaseIsADeprecatedFieldWithItsValidLifetime() throws {
        var m = LeaseMessage(kind: .reply, transaction: 7)
        m.deprecated = [DeprecatedAssignment(IPv6Address("2001:db8:1::5")!, prefixLength: 128, validLifetime: 7200)]
        let bytes = try m.encode()
        #expect(bytes == [0x53, 0x47, 1, 2, 0, 0, 0, 7, 11, 21, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 128, 0, 0, 0x1c, 0x20])
        #expect(try LeaseMessage(parsing: bytes) == m)
        // Several are allowed (one per earlier prefix); a wrong length or a length above 128 is malformed.
        m.deprecated.append(DeprecatedAssignment(IPv6Address("2001:db8:7::")!, prefixLength: 56, validLifetime: 1))
        #expect(try LeaseMessage(parsing: try m.encode()) == m)
        var long = bytes; long[26] = 129
        #expect(throws: PacketError.self) { try LeaseMessage(parsing: long) }
        let short: [UInt8] = Array(bytes.prefix(8)) + [11, 17] + Array(bytes[10..<27])
        #expect(throws: PacketError.self) { try LeaseMessage(parsing: short) }
    }

    @Test func unknownFieldsAreSkipped() throws {
        var bytes = try sample().encode()
        bytes += [200, 3, 1, 2, 3]   // a later version's field
        #expect(try LeaseMessage(parsing: bytes) == sample())
    }

    @Test func malformedMessagesAreRefused() throws {
        let good = try sample().encode()
        var cases: [[UInt8]] = [
            [], Array(good.prefix(7)),                 // shorter than the header
            [0x53, 0x48] + good.dropFirst(2),          // magic
            [0x53, 0x47, 2] + good.dropFirst(3),       // version
            [0x53, 0x47, 1, 9] + good.dropFirst(4),    // kind
            good + [1],                                // a field header cut short
            good + [4, 3, 0, 0],                       // a field running past the end
            good + [4, 1, 0],                          // MTU of the wrong size
            good + [1, 17] + [UInt8](repeating: 0, count: 17),   // IPv6 given twice
            Array(good.prefix(8)) + [1, 5, 192, 0, 2, 1, 32],    // IPv4 bytes in the IPv6 field
            Array(good.prefix(8)) + [2, 5, 192, 0, 2, 1, 33],    // prefix length past 32
            Array(good.prefix(8)) + [5, 7, 1, 2, 3, 4, 5, 6, 7], // an address of 7 bytes
            [UInt8](repeating: 0x53, count: 2000),     // oversized
        ]
        // Every truncation of a good message is either a shorter valid message or refused; never a trap.
        for n in 8..<good.count { cases.append(Array(good.prefix(n))) }
        var refused = 0
        for c in cases {
            if (try? LeaseMessage(parsing: c)) == nil { refused += 1 }
        }
        #expect(refused >= 13)
        for c in cases.prefix(13) { #expect((try? LeaseMessage(parsing: c)) == nil, "\(c.prefix(12))") }
    }

    @Test func theClientLinkLocalAddressComesFromItsKey() {
        let key: [UInt8] = Array(1...32)
        let a = key.withUnsafeBytes { LeaseMessage.clientLinkLocal(publicKey: $0) }
        #expect(a.description == "fe80::102:304:506:708")
        #expect(LeaseMessage.gatewayLinkLocal.description == "fe80::1")
    }
}
