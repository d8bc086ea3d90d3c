// ndppd.conf as ndp-proxy reads it (nested proxy/rule blocks): never traps; errors name the file and a line inside it.
import FuzzSupport
import NDPProxy

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    let text = input.text
    do { _ = try NDPPDConfig.parse(text, path: "/fuzz/ndppd.conf") } catch {
        requireInsideFile(text, path: "/fuzz/ndppd.conf", file: error.file, line: error.line)
    }
    return 0
}
