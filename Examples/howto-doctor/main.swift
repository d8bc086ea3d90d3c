// howto-doctor: the doctor's checks for a tunnel gateway built by hand from a howto (wg-quick or
// tinc for the tunnel, ndppd or npd6 for NDP), not by gatewayd. Diagnostics takes a DoctorSetup:
// here it comes from the command line instead of gatewayd's config.
//
// Usage (as root, in the gateway's network namespace):
//   howto-doctor TUNNEL UPLINK GATEWAY_ADDRESS [CLIENT_ADDRESS_OR_PREFIX ...]
//   howto-doctor wg0 eth0 2001:db8:1::3 2001:db8:1::4/128 2001:db8:1::5/128
import Diagnostics
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

let args = Array(CommandLine.arguments.dropFirst())
guard args.count >= 3, let gateway = IPv6Address(args[2]) else {
    print("usage: howto-doctor TUNNEL UPLINK GATEWAY_ADDRESS [CLIENT_ADDRESS_OR_PREFIX ...]")
    exit(64)
}
var clients: [DoctorClient] = []
for (i, text) in args.dropFirst(3).enumerated() {
    let full = text.contains("/") ? text : text + (text.contains(":") ? "/128" : "/32")
    guard let prefix = IPPrefix(full) else { print("howto-doctor: \(text) is not an address or prefix"); exit(64) }
    // Without gatewayd there is no handshake record (lastHandshake nil): that check skips them.
    clients.append(DoctorClient(name: "client\(i + 1)", prefixes: [prefix]))
}
var setup = DoctorSetup(tunnel: args[0], uplink: args[1], tunnelMTU: 1420, daemonRunning: true, gatewayAddress: gateway,
                        ndpProxy: "off", nat44: false, listenPort: 51820, clients: clients)
// The howto layout: the ISP router is ::1 of the gateway's /64.
setup.ispRouter = IPv6Address(rawValue: IPv6Prefix(containing: gateway, length: 64).network.rawValue | 1)
setup.startCommand = "wg-quick up \(args[0])"
let report = Doctor.run(setup, options: DoctorOptions(captureSeconds: 3))
print(report.render(), terminator: "")
exit(report.problems == 0 ? 0 : 1)
