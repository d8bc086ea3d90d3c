// The Internet checksum (RFC 1071), pseudo-headers (RFC 768, RFC 793, RFC 8200 §8.1) and
// incremental update (RFC 1624).

/// A running one's-complement sum over 16-bit words.
///
/// Bytes are summed as native-endian 64-bit words with end-around carry (RFC 1071 §2(B): the sum
/// is byte-order independent) and swapped once at the end. Chunks may have odd lengths: a chunk
/// that starts at an odd position is swapped before it is added (RFC 1071 §2(A)), so
/// `add(a); add(b)` equals `add(a + b)` for any split.
public struct InternetChecksum: Sendable {
    @usableFromInline var sum: UInt64 = 0
    @usableFromInline var oddPosition = false

    @inlinable public init() {}

    /// Adds `bytes` to the sum.
    @inlinable public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var partial = InternetChecksum.partialSum(bytes)
        if oddPosition { partial = (partial & 0x00ff_00ff_00ff_00ff) << 8 | (partial >> 8) & 0x00ff_00ff_00ff_00ff }
        let (s, o) = sum.addingReportingOverflow(partial)
        sum = s &+ (o ? 1 : 0)
        if bytes.count & 1 == 1 { oddPosition.toggle() }
    }

    /// Adds one 16-bit field given as its numeric (network-order) value, at an even position.
    @inlinable public mutating func add(word: UInt16) {
        let (s, o) = sum.addingReportingOverflow(UInt64(word.bigEndian))
        sum = s &+ (o ? 1 : 0)
    }
    /// Adds a 32-bit field given as its numeric value, at an even position.
    @inlinable public mutating func add(word32: UInt32) {
        let (s, o) = sum.addingReportingOverflow(UInt64(word32.bigEndian))
        sum = s &+ (o ? 1 : 0)
    }
    /// Adds an IPv6 address.
    @inlinable public mutating func add(_ address: IPv6Address) {
        let be = address.rawValue.bigEndian
        var (s, o) = sum.addingReportingOverflow(UInt64(truncatingIfNeeded: be))
        s = s &+ (o ? 1 : 0)
        (s, o) = s.addingReportingOverflow(UInt64(truncatingIfNeeded: be >> 64))
        sum = s &+ (o ? 1 : 0)
    }
    /// Adds an IPv4 address.
    @inlinable public mutating func add(_ address: IPv4Address) { add(word32: address.rawValue) }

    /// The checksum field value: the complement of the folded sum, as a number to store big-endian.
    @inlinable public var value: UInt16 { ~InternetChecksum.fold(sum) }
    /// The folded sum itself (0xffff when a packet with its checksum field verifies).
    @inlinable public var foldedSum: UInt16 { InternetChecksum.fold(sum) }
    /// Whether data that included its own checksum field verifies (RFC 1071 §1: sum is all ones).
    @inlinable public var verifies: Bool { foldedSum == 0xffff }

    /// Folds a native-order 64-bit sum to 16 bits and returns it as a network-order number.
    @inlinable static func fold(_ s: UInt64) -> UInt16 {
        var x = (s & 0xffff_ffff) &+ (s >> 32)
        x = (x & 0xffff_ffff) &+ (x >> 32)
        x = (x & 0xffff) &+ (x >> 16)
        x = (x & 0xffff) &+ (x >> 16)
        return UInt16(bigEndian: UInt16(truncatingIfNeeded: x))
    }

    /// Sum of `bytes` as native words with deferred carries (not folded).
    ///
    /// Each 64-bit load is split into its two 32-bit halves added into 64-bit accumulators, so no
    /// carry is lost for inputs up to 2^34 bytes and the loop has no carry chain: LLVM vectorises it.
    @inlinable static func partialSum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = bytes.baseAddress else { return 0 }
        let n = bytes.count
        let words = n &>> 3
        var lo: UInt64 = 0, hi: UInt64 = 0
        var i = 0
        while i < words {
            let w = base.loadUnaligned(fromByteOffset: i &<< 3, as: UInt64.self)
            lo &+= w & 0xffff_ffff
            hi &+= w &>> 32
            i &+= 1
        }
        var o = words &<< 3
        if n &- o >= 4 {
            lo &+= UInt64(base.loadUnaligned(fromByteOffset: o, as: UInt32.self))
            o &+= 4
        }
        if n &- o >= 2 {
            hi &+= UInt64(base.loadUnaligned(fromByteOffset: o, as: UInt16.self))
            o &+= 2
        }
        if o < n {
            // The odd byte is the first byte of a zero-padded word: its memory image as a native word.
            lo &+= UInt64(UInt16(bigEndian: UInt16(base.load(fromByteOffset: o, as: UInt8.self)) &<< 8))
        }
        return lo &+ hi
    }

    /// The checksum of `bytes` alone.
    @inlinable public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.add(bytes)
        return c.value
    }

    /// Starts a sum with the IPv6 pseudo-header (RFC 8200 §8.1): source, destination,
    /// upper-layer length, next header.
    @inlinable public static func pseudoHeader(source: IPv6Address, destination: IPv6Address, length: Int, nextHeader: IPProtocol) -> InternetChecksum {
        var c = InternetChecksum()
        c.add(source)
        c.add(destination)
        c.add(word32: UInt32(truncatingIfNeeded: length))
        c.add(word: UInt16(nextHeader.rawValue))
        return c
    }

    /// Starts a sum with the IPv4 pseudo-header (RFC 768, RFC 793 §3.1): source, destination,
    /// zero, protocol, length.
    @inlinable public static func pseudoHeader(source: IPv4Address, destination: IPv4Address, length: Int, protocol proto: IPProtocol) -> InternetChecksum {
        var c = InternetChecksum()
        c.add(source)
        c.add(destination)
        c.add(word: UInt16(proto.rawValue))
        c.add(word: UInt16(truncatingIfNeeded: length))
        return c
    }

    // MARK: RFC 1624 incremental update

    /// The new checksum after one 16-bit field changed from `old` to `new`:
    /// HC' = ~(~HC + ~m + m') (RFC 1624 eqn. 3, which never yields -0 wrongly).
    @inlinable public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        var s = UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new)
        s = (s & 0xffff) &+ (s >> 16)
        s = (s & 0xffff) &+ (s >> 16)
        return ~UInt16(truncatingIfNeeded: s)
    }
    /// The new checksum after a 32-bit field changed (e.g. an IPv4 address rewritten by NAT).
    @inlinable public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        var s = UInt64(~checksum)
        s &+= UInt64(~UInt16(truncatingIfNeeded: old >> 16)) &+ UInt64(~UInt16(truncatingIfNeeded: old))
        s &+= UInt64(new >> 16) &+ UInt64(new & 0xffff)
        while s >> 16 != 0 { s = (s & 0xffff) &+ (s >> 16) }
        return ~UInt16(truncatingIfNeeded: s)
    }
    /// The new checksum after an IPv6 address in the covered data (or pseudo-header) changed.
    @inlinable public static func update(_ checksum: UInt16, old: IPv6Address, new: IPv6Address) -> UInt16 {
        var s = UInt64(~checksum)
        for i in 0..<8 {
            s &+= UInt64(~old.group(i)) &+ UInt64(new.group(i))
        }
        while s >> 16 != 0 { s = (s & 0xffff) &+ (s >> 16) }
        return ~UInt16(truncatingIfNeeded: s)
    }

    // MARK: Checksum offload

    /// Completes a checksum that checksum offload left partial (Linux CHECKSUM_PARTIAL, a virtio
    /// header's NEEDS_CSUM): the 16-bit field at `start + offset` holds the pseudo-header sum, and
    /// the checksum is the complement of the sum of everything from `start` to the end, that field
    /// included. A result of 0 is written as 0xffff, as the kernel does (UDP reserves 0 for none).
    /// Returns false, changing nothing, when the field does not lie inside `packet`.
    @discardableResult
    public static func completePartial(_ packet: UnsafeMutableRawBufferPointer, start: Int, offset: Int) -> Bool {
        guard start >= 0, offset >= 0, start + offset + 2 <= packet.count else { return false }
        var c = InternetChecksum()
        c.add(UnsafeRawBufferPointer(rebasing: packet[start...]))
        let v = c.value
        packet.put16(v == 0 ? 0xffff : v, at: start + offset)
        return true
    }
}
