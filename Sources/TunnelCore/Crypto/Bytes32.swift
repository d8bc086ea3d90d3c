// 32 bytes held inline (no heap): keys, hashes and chaining keys of the WireGuard protocol.
import Foundation

/// Thirty-two bytes stored inline, for keys, hashes and chaining keys. Compared in constant time.
public struct Bytes32: Sendable, Hashable, CustomStringConvertible {
    public var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    public static let zero = Bytes32()

    public init() {}

    /// Copies exactly 32 bytes; returns nil for any other length.
    public init?<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard bytes.count == 32 else { return nil }
        withUnsafeMutableBytes { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
    }

    /// Copies 32 bytes from `pointer`.
    public init(copying pointer: UnsafeRawPointer) {
        withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: 32)) }
    }

    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage, body)
    }

    @inlinable public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeMutableBytes(of: &storage, body)
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// True when every byte is zero (an unset key, or a rejected X25519 result).
    public var isZero: Bool { storage.0 | storage.1 | storage.2 | storage.3 == 0 }

    /// Constant-time comparison (no early exit on the first differing word).
    public static func == (a: Bytes32, b: Bytes32) -> Bool {
        ((a.storage.0 ^ b.storage.0) | (a.storage.1 ^ b.storage.1) | (a.storage.2 ^ b.storage.2) | (a.storage.3 ^ b.storage.3)) == 0
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0); hasher.combine(storage.1); hasher.combine(storage.2); hasher.combine(storage.3)
    }

    /// Lower-case hex.
    public var hex: String { bytes.hexString }

    /// Parses 64 hex digits.
    public init?(hex: String) {
        guard let b = [UInt8](hexString: hex) else { return nil }
        self.init(b)
    }

    /// Standard base64 (44 characters), as `wg` prints keys.
    public var base64: String { Data(bytes).base64EncodedString() }

    /// Parses a base64 key as `wg` and wg-quick write them (44 characters with one '=').
    public init?(base64: String) {
        guard base64.utf8.count == 44, let d = Data(base64Encoded: base64) else { return nil }
        self.init(d)
    }

    public var description: String { base64 }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

extension Array where Element == UInt8 {
    /// Parses hex digits (even length, no separators).
    public init?(hexString: String) {
        let u = Array(hexString.utf8)
        guard u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out = [UInt8](); out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = nibble(u[i]), let l = nibble(u[i + 1]) else { return nil }
            out.append(h << 4 | l); i += 2
        }
        self = out
    }

    public var hexString: String { map { String($0, radix: 16).leftPadded(2) }.joined() }
}
