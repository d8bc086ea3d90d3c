import PacketKit
import Testing

/// RFC 6296's arithmetic: the worked example of its Appendix B, both directions, the /64 case
/// (the adjustment in the interface identifier) and checksum neutrality.
struct NPTv6Tests {
    func a(_ s: String) -> IPv6Address { IPv6Address(s)! }

    @Test func theRFCsExampleMapsBothWays() throws {
        let m = try #require(NPTv6Mapping(inside: IPv6Prefix("fd01:203:405::/48")!, outside: IPv6Prefix("2001:db8:1::/48")!))
        #expect(m.outbound(a("fd01:203:405:1::1234")) == a("2001:db8:1:d550::1234"))
        #expect(m.inbound(a("2001:db8:1:d550::1234")) == a("fd01:203:405:1::1234"))
        #expect(m.outbound(a("fd01:203:406::1")) == nil, "not inside")
    }

    @Test func aSixtyFourPutsTheAdjustmentInTheInterfaceIdentifierAndKeepsTheSum() throws {
        let m = try #require(NPTv6Mapping(inside: IPv6Prefix("fd00:6296::/64")!, outside: IPv6Prefix("2001:db8:1::/64")!))
        func sum(_ x: IPv6Address) -> UInt32 {
            var s: UInt32 = 0
            for i in 0..<8 { s += UInt32(UInt16(truncatingIfNeeded: x.rawValue >> UInt128(112 - 16 * i))) }
            while s > 0xFFFF { s = (s & 0xFFFF) + (s >> 16) }
            return s
        }
        for inside in ["fd00:6296::4", "fd00:6296::ffff:1", "fd00:6296::1:2:3:4", "fd00:6296:0:0:ffff::9"] {
            let out = try #require(m.outbound(a(inside)))
            #expect(IPv6Prefix("2001:db8:1::/64")!.contains(out))
            #expect(sum(out) % 0xFFFF == sum(a(inside)) % 0xFFFF, "checksum neutral: \(inside) -> \(out)")
            #expect(m.inbound(out) == a(inside), "\(inside) -> \(out) and back")
            // The prefix's words stay the outside prefix's: the adjustment is in the identifier.
            #expect(out.rawValue >> 64 == a("2001:db8:1::").rawValue >> 64)
        }
        // An identifier of all 0xFFFF words has nowhere to take the adjustment.
        #expect(m.outbound(a("fd00:6296::ffff:ffff:ffff:ffff")) == nil)
        // Lengths must match and be /64 or shorter.
        #expect(NPTv6Mapping(inside: IPv6Prefix("fd00::/56")!, outside: IPv6Prefix("2001:db8::/64")!) == nil)
        #expect(NPTv6Mapping(inside: IPv6Prefix("fd00::/80")!, outside: IPv6Prefix("2001:db8::/80")!) == nil)
    }
}
