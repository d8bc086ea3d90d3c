import Testing
@testable import PacketKit

@Suite("Internet checksum (RFC 1071, RFC 1624)")
struct ChecksumTests {
    /// The reference: a plain RFC 1071 loop over big-endian 16-bit words.
    static func reference(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    @Test func rfc1071Example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2; the checksum is its complement.
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        let c = bytes.withUnsafeBytes { InternetChecksum.of($0) }
        #expect(c == ~UInt16(0xddf2))
    }

    @Test func matchesReferenceForEveryLengthAndAnySplit() {
        var rng = SplitMix64(seed: 1071)
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let whole = bytes.withUnsafeBytes { InternetChecksum.of($0) }
            #expect(whole == Self.reference(bytes), "length \(length)")
            // Any split into chunks, odd ones included, gives the same sum (RFC 1071 §2(A)).
            let cut = length == 0 ? 0 : Int.random(in: 0...length, using: &rng)
            let cut2 = cut == length ? cut : Int.random(in: cut...length, using: &rng)
            var c = InternetChecksum()
            bytes.withUnsafeBytes { b in
                c.add(UnsafeRawBufferPointer(rebasing: b[0..<cut]))
                c.add(UnsafeRawBufferPointer(rebasing: b[cut..<cut2]))
                c.add(UnsafeRawBufferPointer(rebasing: b[cut2..<length]))
            }
            #expect(c.value == whole, "length \(length) split \(cut)/\(cut2)")
        }
    }

    @Test func allOnesWorstCaseDoesNotOverflow() {
        let bytes = [UInt8](repeating: 0xff, count: 65_535)
        #expect(bytes.withUnsafeBytes { InternetChecksum.of($0) } == Self.reference(bytes))
    }

    @Test func incrementalUpdateMatchesRecomputation() {
        var rng = SplitMix64(seed: 1624)
        for _ in 0..<2000 {
            var bytes = (0..<40).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let before = Self.reference(bytes)
            // 16-bit field.
            let o16 = 2 * Int.random(in: 0..<20, using: &rng)
            let old16 = UInt16(bytes[o16]) << 8 | UInt16(bytes[o16 + 1])
            let new16 = UInt16.random(in: 0...UInt16.max, using: &rng)
            bytes[o16] = UInt8(new16 >> 8); bytes[o16 + 1] = UInt8(new16 & 0xff)
            let after16 = InternetChecksum.update(before, old: old16, new: new16)
            #expect(Self.equivalent(after16, Self.reference(bytes)))
            // 32-bit field (an IPv4 address).
            let o32 = 4 * Int.random(in: 0..<10, using: &rng)
            let old32 = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[o32 + $1]) }
            let new32 = UInt32.random(in: 0...UInt32.max, using: &rng)
            for k in 0..<4 { bytes[o32 + k] = UInt8(truncatingIfNeeded: new32 >> (24 - 8 * UInt32(k))) }
            let after32 = InternetChecksum.update(after16, old: old32, new: new32)
            #expect(Self.equivalent(after32, Self.reference(bytes)))
        }
    }

    /// 0x0000 and 0xffff are the same value in one's complement arithmetic.
    static func equivalent(_ a: UInt16, _ b: UInt16) -> Bool { a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0) }

    @Test func incrementalUpdateOfAnIPv6AddressInAPseudoHeader() throws {
        let s1 = try IPv6Address.parse("2001:db8::1"), s2 = try IPv6Address.parse("2001:db8:ffff::42")
        let d = try IPv6Address.parse("2001:db8::2")
        let payload: [UInt8] = [1, 2, 3, 4, 5, 6, 7]
        func full(_ s: IPv6Address) -> UInt16 {
            var c = InternetChecksum.pseudoHeader(source: s, destination: d, length: payload.count, nextHeader: .udp)
            payload.withUnsafeBytes { c.add($0) }
            return c.value
        }
        #expect(Self.equivalent(InternetChecksum.update(full(s1), old: s1, new: s2), full(s2)))
    }
}

/// A small deterministic generator so property tests replay exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
