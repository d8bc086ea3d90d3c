// Cryptokey routing (paper §2): every allowed-IP prefix belongs to one peer; an outgoing packet goes
// to the peer owning the longest prefix that holds its destination, and an incoming packet is
// accepted only if its source's longest match is the peer it came from.
import PacketKit

/// A longest-prefix-match table from IPv4/IPv6 prefixes to a peer value. One hash table per prefix
/// length present, searched longest first: a lookup costs one hash probe per distinct length (one,
/// for a gateway whose clients all have /128s), and allocates nothing.
public struct AllowedIPs<Value> {
    private var v4: [UInt8: [UInt32: Value]] = [:]
    private var v6: [UInt8: [UInt128: Value]] = [:]
    private var v4Lengths: [UInt8] = []
    private var v6Lengths: [UInt8] = []

    public init() {}

    /// Number of prefixes held.
    public var count: Int { v4.values.reduce(0) { $0 + $1.count } + v6.values.reduce(0) { $0 + $1.count } }

    @inline(__always) static func mask4(_ a: UInt32, _ len: UInt8) -> UInt32 { len == 0 ? 0 : a & (UInt32.max << (32 - UInt32(len))) }
    @inline(__always) static func mask6(_ a: UInt128, _ len: UInt8) -> UInt128 { len == 0 ? 0 : a & (UInt128.max << (128 - UInt128(len))) }

    /// Inserts or replaces the owner of `prefix` (host bits are ignored, as `wg` does); returns the
    /// previous owner of exactly this prefix.
    @discardableResult
    public mutating func insert(_ prefix: IPPrefix, _ value: Value) -> Value? {
        switch prefix {
        case .v4(let p):
            let len = p.length
            if v4[len] == nil { v4[len] = [:]; v4Lengths = v4.keys.sorted(by: >) }
            return v4[len]!.updateValue(value, forKey: Self.mask4(p.network.rawValue, len))
        case .v6(let p):
            let len = p.length
            if v6[len] == nil { v6[len] = [:]; v6Lengths = v6.keys.sorted(by: >) }
            return v6[len]!.updateValue(value, forKey: Self.mask6(p.network.rawValue, len))
        }
    }

    /// The owner of exactly `prefix` (not a longest match).
    public func owner(of prefix: IPPrefix) -> Value? {
        switch prefix {
        case .v4(let p): return v4[p.length]?[Self.mask4(p.network.rawValue, p.length)]
        case .v6(let p): return v6[p.length]?[Self.mask6(p.network.rawValue, p.length)]
        }
    }

    /// Removes `prefix`; returns its old owner.
    @discardableResult
    public mutating func remove(_ prefix: IPPrefix) -> Value? {
        switch prefix {
        case .v4(let p):
            let old = v4[p.length]?.removeValue(forKey: Self.mask4(p.network.rawValue, p.length))
            if v4[p.length]?.isEmpty == true { v4[p.length] = nil; v4Lengths = v4.keys.sorted(by: >) }
            return old
        case .v6(let p):
            let old = v6[p.length]?.removeValue(forKey: Self.mask6(p.network.rawValue, p.length))
            if v6[p.length]?.isEmpty == true { v6[p.length] = nil; v6Lengths = v6.keys.sorted(by: >) }
            return old
        }
    }

    /// Removes every prefix whose owner satisfies `predicate`.
    public mutating func removeAll(where predicate: (Value) -> Bool) {
        for k in v4.keys { v4[k] = v4[k]!.filter { !predicate($0.value) }; if v4[k]!.isEmpty { v4[k] = nil } }
        for k in v6.keys { v6[k] = v6[k]!.filter { !predicate($0.value) }; if v6[k]!.isEmpty { v6[k] = nil } }
        v4Lengths = v4.keys.sorted(by: >); v6Lengths = v6.keys.sorted(by: >)
    }

    /// The owner of the longest prefix holding this IPv4 address.
    @inline(__always)
    public func lookup(v4 address: UInt32) -> Value? {
        for len in v4Lengths { if let v = v4[len]?[Self.mask4(address, len)] { return v } }
        return nil
    }

    /// The owner of the longest prefix holding this IPv6 address.
    @inline(__always)
    public func lookup(v6 address: UInt128) -> Value? {
        for len in v6Lengths { if let v = v6[len]?[Self.mask6(address, len)] { return v } }
        return nil
    }

    public func lookup(_ address: IPAddress) -> Value? {
        switch address {
        case .v4(let a): return lookup(v4: a.rawValue)
        case .v6(let a): return lookup(v6: a.rawValue)
        }
    }

    /// Every prefix with its owner, IPv4 first, longest first.
    public var entries: [(IPPrefix, Value)] {
        var out: [(IPPrefix, Value)] = []
        for len in v4Lengths { for (a, v) in v4[len]! { out.append((.v4(IPv4Prefix(containing: IPv4Address(rawValue: a), length: len)), v)) } }
        for len in v6Lengths { for (a, v) in v6[len]! { out.append((.v6(IPv6Prefix(containing: IPv6Address(rawValue: a), length: len)), v)) } }
        return out
    }
}
