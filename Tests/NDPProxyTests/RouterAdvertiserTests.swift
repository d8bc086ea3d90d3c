import NDPProxy
import PacketKit
import Testing

/// RFC 4861 §6.1.1 validation of Router Solicitations and the advertisement's contents (the
/// on-the-wire behaviour is checked with radvdump in GatewayTests' router-mode test).
struct RouterAdvertiserTests {
    func rs(options: [NDPOptionRepr] = [], code: UInt8 = 0) throws -> [UInt8] {
        let m = ICMPv6Repr.routerSolicitation(options: options)
        var out = [UInt8](repeating: 0, count: m.length)
        _ = try out.withUnsafeMutableBytes { b throws(PacketError) in try m.emit(into: b, source: .init(rawValue: 0), destination: .init(rawValue: 0)) }
        out[1] = code
        return out
    }

    @Test func solicitationsAreValidatedAsRFC4861Says() throws {
        let host = IPv6Address("fe80::2")!, unspecified = IPv6Address(rawValue: 0)
        let sll = NDPOptionRepr.sourceLinkLayerAddress(MACAddress("02:00:00:00:00:02")!)
        func valid(_ b: [UInt8], _ from: IPv6Address, _ hops: Int32 = 255) -> Bool {
            b.withUnsafeBytes { RouterAdvertiser.isValidSolicitation($0, from: from, hopLimit: hops) }
        }
        #expect(valid(try rs(), host))
        #expect(valid(try rs(options: [sll]), host))
        #expect(valid(try rs(), unspecified), "from :: without a link-layer option is fine")
        #expect(!valid(try rs(options: [sll]), unspecified), "a link-layer option from :: is not")
        #expect(!valid(try rs(), host, 64), "hop limit must be 255")
        #expect(!valid(try rs(code: 1), host), "code must be 0")
        #expect(!valid(Array(try rs().prefix(6)), host), "at least 8 bytes")
        var zeroLength = try rs(options: [sll]); zeroLength[9] = 0
        #expect(!valid(zeroLength, host), "an option of length 0")
    }
}
