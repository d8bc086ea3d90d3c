// The sliding anti-replay window of WireGuard (paper §5.4.6), in the ring-of-words form of RFC 6479:
// 2048 bits, of which 2048 - 64 are a guaranteed window behind the highest counter seen.

/// Accepts each transport counter at most once, and none too far behind the newest.
/// Storage is allocated once with the keypair; `accept` allocates nothing.
public struct ReplayWindow: ~Copyable {
    static let words = 32
    static let bits = UInt64(words * 64)
    /// Counters this far behind the newest are rejected.
    public static let windowSize = bits - 64

    private var newest: UInt64 = 0
    private let bitmap: UnsafeMutablePointer<UInt64>

    public init() {
        bitmap = .allocate(capacity: Self.words)
        bitmap.initialize(repeating: 0, count: Self.words)
    }

    deinit { bitmap.deallocate() }

    /// True (and records it) if `counter` is new and inside the window; false for a replay, a
    /// counter too old, or one at or past the reject-after-messages limit.
    public mutating func accept(_ counter: UInt64) -> Bool {
        guard counter < WireGuard.rejectAfterMessages else { return false }
        let block = counter >> 6
        if counter > newest {
            let current = newest >> 6
            let advance = min(block - current, UInt64(Self.words))
            var i: UInt64 = 1
            while i <= advance { bitmap[Int((current + i) & UInt64(Self.words - 1))] = 0; i += 1 }
            newest = counter
        } else if newest - counter > Self.windowSize {
            return false
        }
        let index = Int(block & UInt64(Self.words - 1))
        let bit: UInt64 = 1 << (counter & 63)
        if bitmap[index] & bit != 0 { return false }
        bitmap[index] |= bit
        return true
    }
}
