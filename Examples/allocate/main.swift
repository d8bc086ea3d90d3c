// allocate: allocate addresses from one pool into an SQLite lease store and print each lease once
// it is durable. Shows AddressPool's API; the crash-safety test kills it mid-loop.
//
// Usage: allocate STORE PREFIX [--kind hosts|prefixes/LEN] [--reserve PREFIX]... CLIENT...
//        allocate STORE PREFIX --loop N [--start S] [--release-every K]   (clients client-S ... client-(S+N-1))
//   e.g. allocate /tmp/leases.db 2001:db8:1::/64 --reserve 2001:db8:1::1/128 laptop phone
// Prints "CLIENT PREFIX" per lease (and "released CLIENT PREFIX" per release), flushed at once.
import AddressPool
import PacketKit
#if canImport(Glibc)
import Glibc
#endif

var args = Array(CommandLine.arguments.dropFirst())
func usage() -> Never {
    print("usage: allocate STORE PREFIX [--kind hosts|prefixes/LEN] [--reserve PREFIX]... (CLIENT... | --loop N [--start S] [--release-every K])")
    exit(64)
}
guard args.count >= 2, let prefix = IPPrefix(args[1]) else { usage() }
let storePath = args[0]
args.removeFirst(2)

var kind: PoolKind = { if case .v4 = prefix { return .ipv4Hosts }; return .ipv6Hosts }()
var reserved: [IPPrefix] = []
var clients: [String] = []
var loop = 0, start = 0, releaseEvery = 0
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--kind":
        guard let v = args.first else { usage() }; args.removeFirst()
        if v.hasPrefix("prefixes/"), let l = UInt8(v.dropFirst(9)) { kind = .ipv6Prefixes(length: l) } else if v != "hosts" { usage() }
    case "--reserve":
        guard let v = args.first, let p = IPPrefix(v) else { usage() }; args.removeFirst(); reserved.append(p)
    case "--loop":
        guard let v = args.first, let n = Int(v) else { usage() }; args.removeFirst(); loop = n
    case "--start":
        guard let v = args.first, let n = Int(v), n >= 0 else { usage() }; args.removeFirst(); start = n
    case "--release-every":
        guard let v = args.first, let n = Int(v), n > 0 else { usage() }; args.removeFirst(); releaseEvery = n
    default:
        clients.append(a)
    }
}
if loop > 0 { clients = (start..<start + loop).map { "client-\($0)" } }

do {
    let store = try SQLiteLeaseStore(path: storePath)
    let allocator = try AddressAllocator(pools: [PoolConfiguration(name: "pool", prefix: prefix, kind: kind, reserved: reserved)], store: store)
    for (i, client) in clients.enumerated() {
        let lease = try allocator.allocate(client: client, in: "pool")
        print("\(lease.client) \(lease.prefix)")
        fflush(nil)
        if releaseEvery > 0, i % releaseEvery == releaseEvery - 1 {
            for r in try allocator.release(client: clients[i / 2]) { print("released \(r.client) \(r.prefix)") }
            fflush(nil)
        }
    }
} catch {
    print("allocate: \(error)")
    exit(1)
}
