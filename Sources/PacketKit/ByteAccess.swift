// Big-endian field access on raw buffers. Views check lengths once at construction; after that
// these accessors read in place without further checks in release builds. Public so that modules
// rewriting headers in place (Translator) use the same accessors.

extension UnsafeRawBufferPointer {
    @inlinable @inline(__always) public func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inlinable @inline(__always) public func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inlinable @inline(__always) public func be128(_ offset: Int) -> UInt128 {
        UInt128(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt128.self))
    }
    /// Bytes `from..<to`. Callers have checked `0 <= from <= to <= count` (views validate first),
    /// so no range is built or checked here.
    @inlinable @inline(__always) public func slice(_ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: baseAddress.map { $0 + from }, count: to &- from)
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always) public func put8(_ value: UInt8, at offset: Int) { self[offset] = value }
    @inlinable @inline(__always) public func put16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inlinable @inline(__always) public func put32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
    @inlinable @inline(__always) public func put128(_ value: UInt128, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt128.self)
    }
    @inlinable @inline(__always) public func zero(_ from: Int, _ to: Int) {
        if to > from { UnsafeMutableRawBufferPointer(rebasing: self[from..<to]).initializeMemory(as: UInt8.self, repeating: 0) }
    }
    @inlinable @inline(__always) public func copy(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        if bytes.count > 0 { UnsafeMutableRawBufferPointer(rebasing: self[offset..<(offset + bytes.count)]).copyMemory(from: bytes) }
    }
    @inlinable @inline(__always) public func slice(_ from: Int, _ to: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[from..<to])
    }
}
