// RouteKit batch benchmark: install and remove N IPv6 /128 routes and N proxy entries in a named
// network namespace, and print the rates. Run by Benchmarks/routekit-vs-ip-batch.sh, which times
// `ip -batch` doing the same in the same run.
// Usage: RouteKitBenchmarks NAMESPACE INTERFACE ROUTES [PROXIES]
import PacketKit
import RouteKit

#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

let args = CommandLine.arguments
guard args.count >= 4, let count = Int(args[3]) else {
    print("usage: RouteKitBenchmarks NAMESPACE INTERFACE ROUTES [PROXIES]")
    exit(64)
}
let proxyCount = args.count > 4 ? Int(args[4]) ?? count : count
do {
    let rk = try RouteSocket(namespace: .named(args[1]))
    let idx = try rk.interfaceIndex(args[2])
    let routes = (0..<count).map { i in
        Route(destination: .v6(IPv6Prefix(containing: IPv6Address(rawValue: (0x2001_0db8_00aa as UInt128) << 80 | UInt128(i + 1)), length: 128)),
              interfaceIndex: idx)
    }
    let proxies = (0..<proxyCount).map { i in (address: IPv6Address(rawValue: (0x2001_0db8_00bb as UInt128) << 80 | UInt128(i + 1)), interfaceIndex: idx) }
    func timed(_ label: String, _ n: Int, _ body: () throws -> BatchResult) throws {
        let t0 = now()
        let r = try body()
        let t = now() - t0
        guard r.failures.isEmpty else { print("\(label): \(r.failures.count) failures, first: \(r.failures[0].error)"); exit(1) }
        print("RouteKit \(label): \(n) in \(Int(t * 1000)) ms = \(Int(Double(n) / t)) /s")
    }
    try timed("route add", count) { try rk.applyRoutes(routes, .add) }
    try timed("route del", count) { try rk.applyRoutes(routes, .remove) }
    try timed("proxy add", proxyCount) { try rk.applyProxyNeighbours(proxies, .add) }
    try timed("proxy del", proxyCount) { try rk.applyProxyNeighbours(proxies, .remove) }
} catch {
    print("RouteKitBenchmarks: \(error)")
    exit(1)
}
