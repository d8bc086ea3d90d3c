// nat64: a stateless NAT64 (SIIT) on a TUN device with the Translator module, as tayga runs.
// Usage (as root): nat64 TUN PREFIX [IPv4=IPv6 ...]
//   nat64 nat64 64:ff9b::/96 192.0.2.10=2001:db8:1::10
// then route the prefix and the IPv4 side into the device:
//   ip link set nat64 up; ip -6 route add 64:ff9b::/96 dev nat64; ip route add 192.0.2.10/32 dev nat64
// Ctrl-C prints the counters and exits.
import PacketKit
import Translator
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
guard args.count >= 3, let prefix = IPv6Prefix(args[2]) else {
    print("usage: nat64 TUN PREFIX [IPv4=IPv6 ...]   e.g. nat64 nat64 64:ff9b::/96 192.0.2.10=2001:db8:1::10")
    exit(64)
}
var mappings: [ExplicitMapping] = []
for pair in args.dropFirst(3) {
    let sides = pair.split(separator: "=").map(String.init)
    guard sides.count == 2, let v4 = IPv4Address(sides[0]), let v6 = IPv6Address(sides[1]) else {
        print("nat64: \"\(pair)\" is not IPv4=IPv6")
        exit(64)
    }
    mappings.append(ExplicitMapping(ipv4: v4, ipv6: v6))
}
let device: TranslatorDevice
do {
    device = try TranslatorDevice(name: args[1], configuration: TranslatorConfiguration(prefix: prefix, explicitMappings: mappings))
} catch {
    print("nat64: \(error)")
    exit(1)
}
// Blocked before the device's thread starts, so sigwait below receives them.
var signals = sigset_t()
sigemptyset(&signals)
sigaddset(&signals, SIGINT)
sigaddset(&signals, SIGTERM)
pthread_sigmask(SIG_BLOCK, &signals, nil)
device.start()
print("nat64: translating on \(device.tun.name) with \(prefix)\(mappings.isEmpty ? "" : ", " + mappings.map(\.description).joined(separator: ", "))")
var received: Int32 = 0
sigwait(&signals, &received)
device.stop()
print("nat64: \(device.statistics.translation)")
