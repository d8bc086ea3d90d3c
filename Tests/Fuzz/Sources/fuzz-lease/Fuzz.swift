// The lease exchange's message (docs/lease-protocol.md), which both gatewayd and tunnel-client
// read from the tunnel: never traps, and whatever parses encodes and parses back to itself.
import FuzzSupport
import PacketKit

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    guard let m = try? LeaseMessage(parsing: input.bytes) else { return 0 }
    // A parsed message may hold more repeated fields than one encoding fits; then encode refuses.
    guard let bytes = try? m.encode() else { return 0 }
    guard let again = try? LeaseMessage(parsing: bytes) else { require(false, "encode wrote a message parse refuses"); return 0 }
    // The message text is cut to 200 bytes of UTF-8 on encode: compare the rest.
    var a = m, b = again
    a.message = nil; b.message = nil
    require(a == b, "a message changed through encode and parse: \(m) vs \(again)")
    return 0
}
