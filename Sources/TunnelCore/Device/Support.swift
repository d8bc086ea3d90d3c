#if canImport(Glibc)
import Glibc
#endif

@inline(__always) func loadLE32(_ p: UnsafeRawPointer, _ o: Int) -> UInt32 { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
@inline(__always) func loadLE64(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
