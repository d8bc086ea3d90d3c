// Prints the forward filter's ruleset (RouteKit's FilterTable, as gatewayd applies it) for N
// clients, for Benchmarks/firewall-cost.sh: FilterRuleset TABLE INTERFACE N.
import PacketKit
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
guard args.count == 4, let n = Int(args[3]), n >= 0, n < 65_000 else {
    print("usage: FilterRuleset TABLE INTERFACE CLIENTS (0-64999)")
    exit(2)
}
// Clients 2001:db8:1::4 and up (the benchmark's receiver is ::4), each with two openings, as
// a gateway with that many enrolled clients would hold them.
var hosts: [ProtectedHost] = []
for i in 0..<n {
    let address = IPv6Address(rawValue: IPv6Address("2001:db8:1::")!.rawValue | UInt128(4 + i))
    hosts.append(ProtectedHost(name: "c\(i)", prefixes: [.v6(IPv6Prefix(containing: address, length: 128))],
                               openings: [PortOpening(.tcp, ports: 22...22), PortOpening(.udp, ports: 51413...51420)]))
}
var policy = ForwardPolicy(interface: args[2], hosts: hosts)
policy.localOpenings = []
policy.dropRedirects = true
do {
    print(try FilterTable(name: args[1]).ruleset(policy), terminator: "")
} catch {
    print("FilterRuleset: \(error)")
    exit(1)
}
