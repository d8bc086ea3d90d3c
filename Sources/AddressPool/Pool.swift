// Pools: what can be allocated (host addresses or delegated prefixes), what never is (reserved), and
// the arithmetic between a slot number and its address.
import PacketKit

/// What a pool hands out.
public enum PoolKind: Hashable, Sendable, CustomStringConvertible {
    /// Single IPv6 addresses (/128) inside the pool's prefix (a /64 or a larger block).
    case ipv6Hosts
    /// IPv6 prefixes of `length` (e.g. /64s out of a /48 or /56), for clients that are routers.
    case ipv6Prefixes(length: UInt8)
    /// Single IPv4 addresses (/32) inside the pool's prefix.
    case ipv4Hosts
    /// Exactly these IPv6 addresses (/128), all inside the pool's prefix: a provider that routes
    /// or assigns only a few single addresses. Slot `i` is the `i`th address in ascending order.
    case ipv6Addresses([IPv6Address])

    public var description: String {
        switch self {
        case .ipv6Addresses(let list): return "ipv6-addresses(\(list.count))"
        case .ipv6Hosts: return "ipv6-hosts"
        case .ipv6Prefixes(let l): return "ipv6-prefixes/\(l)"
        case .ipv4Hosts: return "ipv4-hosts"
        }
    }
}

/// A pool as the operator configures it.
///
/// Besides `reserved`, a pool never hands out what the RFCs reserve: in IPv6 host pools the
/// Subnet-Router anycast address of every /64 (interface identifier 0, RFC 4291 §2.6.1) and the
/// reserved subnet anycast identifiers fdff:ffff:ffff:ff80-ffff (RFC 5453); in IPv4 pools of /30 or
/// shorter the network and broadcast addresses.
public struct PoolConfiguration: Hashable, Sendable {
    /// A name unique among the pools (it keys the leases in the store).
    public var name: String
    public var prefix: IPPrefix
    public var kind: PoolKind
    /// Addresses or prefixes never allocated dynamically (the ISP router, the uplink, the gateway's
    /// own address, anything the operator lists). They must lie inside `prefix`.
    public var reserved: [IPPrefix]
    /// Seconds a released slot waits before another client may get it (its former client may take
    /// it back at any time).
    public var quietPeriod: Double

    public init(name: String, prefix: IPPrefix, kind: PoolKind, reserved: [IPPrefix] = [], quietPeriod: Double = 86_400) {
        self.name = name; self.prefix = prefix; self.kind = kind; self.reserved = reserved; self.quietPeriod = quietPeriod
    }
}

/// A pool's slot geometry: slot `i` is `base + i << shift`, `count` slots in all.
struct PoolGeometry: Sendable {
    let isIPv6: Bool
    let base: UInt128
    let prefixLength: UInt8
    let slotLength: UInt8
    let shift: UInt128
    /// The number of slots (at most 2^120, so arithmetic never overflows).
    let count: UInt128
    /// `.ipv6Addresses`: the slots' addresses, ascending (empty: the slots are arithmetic).
    let list: [UInt128]

    init(_ c: PoolConfiguration) throws(AddressPoolError) {
        func bad(_ r: String) -> AddressPoolError { .invalidConfiguration(pool: c.name, reason: r) }
        if case .ipv6Addresses(let addresses) = c.kind {
            guard case .v6(let p) = c.prefix else { throw bad("kind \(c.kind) does not fit prefix \(c.prefix)") }
            guard !addresses.isEmpty else { throw bad("the address list is empty") }
            if let outside = addresses.first(where: { !p.contains($0) }) { throw bad("\(outside) is outside \(p)") }
            list = Array(Set(addresses.map(\.rawValue))).sorted()
            isIPv6 = true; base = p.network.rawValue; prefixLength = p.length; slotLength = 128
            count = UInt128(list.count); shift = 0
            return
        }
        list = []
        switch (c.kind, c.prefix) {
        case (.ipv6Hosts, .v6(let p)):
            isIPv6 = true; base = p.network.rawValue; prefixLength = p.length; slotLength = 128
        case (.ipv6Prefixes(let l), .v6(let p)):
            guard l > p.length, l <= 128 else { throw bad("delegated length /\(l) must be longer than the pool's /\(p.length) and at most /128") }
            isIPv6 = true; base = p.network.rawValue; prefixLength = p.length; slotLength = l
        case (.ipv4Hosts, .v4(let p)):
            isIPv6 = false; base = UInt128(p.network.rawValue); prefixLength = p.length; slotLength = 32
        default:
            throw bad("kind \(c.kind) does not fit prefix \(c.prefix)")
        }
        let bits = slotLength - prefixLength
        guard bits <= 120 else { throw bad("\(c.prefix) is too large (more than 2^120 slots)") }
        count = UInt128(1) << UInt128(bits)
        shift = UInt128((isIPv6 ? 128 : 32) - slotLength)
    }

    /// The prefix of slot `offset`.
    func prefix(at offset: UInt128) -> IPPrefix {
        if !list.isEmpty { return .v6(IPv6Prefix(containing: IPv6Address(rawValue: list[Int(offset)]), length: 128)) }
        let raw = base + (offset << shift)
        if isIPv6 { return .v6(IPv6Prefix(containing: IPv6Address(rawValue: raw), length: slotLength)) }
        return .v4(IPv4Prefix(containing: IPv4Address(rawValue: UInt32(raw)), length: slotLength))
    }

    /// The slot holding `address` (any address inside a delegated prefix), or nil outside the pool.
    func offset(of address: IPAddress) -> UInt128? {
        let raw: UInt128
        switch address {
        case .v6(let a): guard isIPv6 else { return nil }; raw = a.rawValue
        case .v4(let a): guard !isIPv6 else { return nil }; raw = UInt128(a.rawValue)
        }
        if !list.isEmpty {
            let i = lowerBound(raw)
            return i < list.count && list[i] == raw ? UInt128(i) : nil
        }
        let width: UInt128 = isIPv6 ? 128 : 32
        let hostBits = width - UInt128(prefixLength)
        guard hostBits == 128 || raw >> hostBits == base >> hostBits else { return nil }
        return (raw - base) >> shift
    }

    /// The slot that is exactly `prefix` (a /128 or /32 for host pools, a delegated prefix), or nil.
    func offset(ofSlot prefix: IPPrefix) -> UInt128? {
        guard prefix.length == slotLength, let o = offset(of: prefix.network) else { return nil }
        return o
    }

    /// The slot range a reserved prefix covers (clipped to the pool), or nil if it lies outside.
    func range(of reserved: IPPrefix) -> ClosedRange<UInt128>? {
        if !list.isEmpty {
            // The listed addresses inside the reserved prefix are consecutive slots.
            guard case .v6(let r) = reserved else { return nil }
            let lo = lowerBound(r.network.rawValue), hi = lowerBound(r.network.rawValue | ~IPv6Prefix.mask(r.length))
            let end = hi < list.count && list[hi] == r.network.rawValue | ~IPv6Prefix.mask(r.length) ? hi : hi - 1
            return lo <= end && lo < list.count ? UInt128(lo)...UInt128(end) : nil
        }
        guard let first = offset(of: reserved.network) else { return nil }
        guard reserved.length >= prefixLength else { return nil }
        if reserved.length >= slotLength { return first...first }
        let span = UInt128(1) << UInt128(slotLength - reserved.length)
        return first...(first + span - 1)
    }

    /// What the RFCs keep out of every pool (see `PoolConfiguration`).
    func isRFCReserved(_ offset: UInt128) -> Bool {
        if !list.isEmpty { return false }   // listed one by one: what the operator was given
        if isIPv6 {
            guard slotLength == 128 else { return false }
            let iid = UInt64(truncatingIfNeeded: base + offset)
            return iid == 0 || (0xfdff_ffff_ffff_ff80...0xfdff_ffff_ffff_ffff).contains(iid)
        }
        return prefixLength <= 30 && (offset == 0 || offset == count - 1)
    }

    /// The first index of `list` whose address is not below `raw`.
    func lowerBound(_ raw: UInt128) -> Int {
        var lo = 0, hi = list.count
        while lo < hi { let mid = (lo + hi) / 2; if list[mid] < raw { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    /// A short text of the pool's size, e.g. "2^64" or "254".
    var sizeDescription: String {
        count > 1 << 20 ? "2^\(count.trailingZeroBitCount)" : String(count)
    }
}
