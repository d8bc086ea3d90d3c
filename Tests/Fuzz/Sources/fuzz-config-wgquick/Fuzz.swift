// wg-quick files as tunnel-client reads them ([Interface]/[Peer]): never traps; an error names
// the file and a line inside it.
import FuzzSupport
import TunnelClient

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    // The [Interface] header makes ClientConfiguration.parse take the wg-quick path.
    let text = "[Interface]\n" + input.text
    let lines = text.utf8.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
    do { _ = try ClientConfiguration.parse(text, path: "/fuzz/wg0.conf") } catch {
        requireInsideFile(text, path: "/fuzz/wg0.conf", file: error.file, line: error.line)
    }
    return 0
}
