// The TOML subset every Sixgate daemon reads (SixgateConfig.ConfigFile), and the three configs
// built on it: gatewayd.toml, tunnel-client.toml and ndp-proxy's TOML. Never traps; an error
// names the file and a line inside it.
import FuzzSupport
import NDPProxy
import SixgateConfig
import TunnelClient
import TunnelGateway

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    let text = input.text
    do { _ = try ConfigFile(text: text, path: "/fuzz/x.toml") } catch { requireInsideFile(text, path: "/fuzz/x.toml", file: error.file, line: error.line, "ConfigFile") }
    do { _ = try GatewayConfiguration(text: text, path: "/fuzz/gatewayd.toml") } catch { requireInsideFile(text, path: "/fuzz/gatewayd.toml", file: error.file, line: error.line, "gatewayd") }
    do { _ = try ClientConfiguration(toml: text, path: "/fuzz/tunnel-client.toml") } catch { requireInsideFile(text, path: "/fuzz/tunnel-client.toml", file: error.file, line: error.line, "tunnel-client") }
    do { _ = try NDPProxyTOML.parse(text, path: "/fuzz/ndp-proxy.toml") } catch { requireInsideFile(text, path: "/fuzz/ndp-proxy.toml", file: error.file, line: error.line, "ndp-proxy") }
    return 0
}
