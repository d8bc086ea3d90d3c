// ip6-route: print the IPv6 routing table like `ip -6 route`, through RouteKit.
// Usage: ip6-route [NAMESPACE]     (a namespace made with `ip netns add`)
import PacketKit
import RouteKit

#if canImport(Glibc)
import Glibc
#endif

let namespace: NetworkNamespace = CommandLine.arguments.count > 1 ? .named(CommandLine.arguments[1]) : .current
do {
    let rk = try RouteSocket(namespace: namespace)
    let names = Dictionary(uniqueKeysWithValues: try rk.links().map { ($0.index, $0.name) })
    let protocols: [UInt8: String] = [2: "kernel", 3: "boot", 4: "static", 9: "ra", RouteSocket.sixgateProtocol: "sixgate"]
    for r in try rk.routes(ipv6: true, table: 254) where r.type == 1 {
        var line = r.destination.length == 0 ? "default" : r.destination.description
        if let from = r.sourcePrefix { line += " from \(from)" }
        for hop in r.nextHops {
            if r.nextHops.count > 1 { line += " nexthop" }
            if let g = hop.gateway { line += " via \(g)" }
            if let i = hop.interfaceIndex { line += " dev \(names[i] ?? "#\(i)")" }
        }
        if r.protocolNumber != 3 { line += " proto \(protocols[r.protocolNumber] ?? String(r.protocolNumber))" }  // ip omits "boot"
        if let src = r.preferredSource { line += " src \(src)" }
        line += " metric \(r.metric)"
        print(line)
    }
} catch {
    print("ip6-route: \(error)")
    exit(1)
}
