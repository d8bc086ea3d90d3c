// client-lease: the TunnelClient module embedded in a program of your own. Reads a tunnel-client
// config (TOML or wg-quick), connects, waits for the gateway's lease, prints what was installed,
// and restores everything when it exits.
//
//     swift run client-lease /etc/sixgate/tunnel-client.toml 30
//
// (root, or CAP_NET_ADMIN: it creates a TUN device and installs addresses and routes.)
import Foundation
import TunnelClient

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: client-lease CONFIG [SECONDS]\n".utf8))
    exit(64)
}
let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 30 : 30
do {
    let config = try ClientConfiguration.load(arguments[1])
    let client = try SixgateClient(config: config)
    client.log = { print("client-lease: \($0)") }
    try client.start()
    defer { client.stop() }
    guard client.waitUntilConfigured(timeout: seconds) else {
        print("client-lease: no lease within \(Int(seconds)) s (is the gateway reachable, and this key enrolled?)")
        exit(1)
    }
    let state = client.currentState
    print("addresses: \(state.addresses.joined(separator: " "))")
    print("routes: \(state.routes.joined(separator: " "))")
    print("dns: \(state.dnsServers.joined(separator: " "))")
} catch {
    FileHandle.standardError.write(Data("client-lease: \(error)\n".utf8))
    exit(1)
}
