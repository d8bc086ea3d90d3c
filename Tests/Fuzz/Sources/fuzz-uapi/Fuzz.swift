// The UAPI `set=1` parser (what `wg set` sends over the control socket), and applying what it
// accepts to a real device in a private network namespace; the device's peers are reset after
// every input. `get=1` afterwards must still answer, ending in errno=0.
import FuzzSupport
import PacketKit
import TunnelCore

let device: TunnelDevice = {
    enterPrivateNetworkNamespace()
    do { return try TunnelDevice(interfaceName: "fzuapi0") } catch { fatalError("\(error)") }
}()

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    let body = input.text
    let parsed = try? UAPISetRequest(parsing: body)
    let (errno, message) = device.uapiSet(body)
    require((errno == 0) == (message == nil), "errno \(errno) with message \(String(describing: message))")
    if parsed == nil { require(errno != 0, "the device accepted a body the parser refuses") }
    require(device.uapiGet().hasSuffix("errno=0\n\n"), "get=1 does not end with errno=0")
    _ = device.uapiSet("replace_peers=true\n")
    return 0
}
