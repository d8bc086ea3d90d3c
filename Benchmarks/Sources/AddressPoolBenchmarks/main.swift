// AddressPool at scale: fill a store with N clients (bulk, in transactions of BATCH), time single
// durable allocations, then open the store as gatewayd does at start and report the time, the
// memory per lease and lookup rates. The anchor, measured in the same run: a bare scan of the same
// rows through SQLite (what any reader must pay), so "open" is quoted as a ratio of it.
// Usage: AddressPoolBenchmarks [CLIENTS=1000000] [BATCH=10000] [DIR=/tmp]
import AddressPool
import CHeapUsage
import Foundation
import GRDB
import PacketKit

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Bytes the allocator holds (glibc's in-use heap).
func heapInUse() -> Int { Int(sixgate_heap_in_use()) }

/// A 44-character base64 "public key" for client `i`, as real client identities look.
func key(_ i: Int) -> String {
    var bytes = [UInt8](repeating: 0, count: 32)
    var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
    for j in 0..<32 { x ^= x >> 29; x &*= 0xBF58_476D_1CE4_E5B9; bytes[j] = UInt8(truncatingIfNeeded: x >> 24) }
    return Data(bytes).base64EncodedString()
}

let args = CommandLine.arguments
let count = args.count > 1 ? Int(args[1]) ?? 1_000_000 : 1_000_000
let batch = args.count > 2 ? Int(args[2]) ?? 10_000 : 10_000
let dir = (args.count > 3 ? args[3] : NSTemporaryDirectory()) + "/sixgate-pool-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }
let path = dir + "/leases.db"
let pool = PoolConfiguration(name: "v6", prefix: IPPrefix("2001:db8:1::/64")!, kind: .ipv6Hosts,
                             reserved: [IPPrefix("2001:db8:1::1/128")!, IPPrefix("2001:db8:1::2/128")!, IPPrefix("2001:db8:1::3/128")!])
let clients = (0..<count).map(key)

print("AddressPool, \(count) clients in one /64 pool, store \(path)")
do {
    // Fill: bulk enrolment, one transaction (one fsync) per batch.
    let store = try SQLiteLeaseStore(path: path)
    let allocator = try AddressAllocator(pools: [pool], store: store)
    var t0 = now()
    var i = 0
    while i < count {
        _ = try allocator.allocateMany(clients: Array(clients[i..<min(count, i + batch)]), in: "v6")
        i += batch
    }
    var t = now() - t0
    print(String(format: "allocate (bulk, %d per transaction): %d in %.2f s = %.0f /s", batch, count, t, Double(count) / t))

    // Single allocations, each durable (fsync) before it returns: the cost of one enrolment.
    let singles = min(2000, max(100, count / 100))
    t0 = now()
    for j in 0..<singles { _ = try allocator.allocate(client: "single-\(j)", in: "v6") }
    t = now() - t0
    print(String(format: "allocate (one durable commit each): %d in %.2f s = %.0f /s, %.2f ms each", singles, t, Double(singles) / t, t / Double(singles) * 1000))
}

do {
    // The anchor: a bare scan of every row through SQLite, reading the six columns.
    let db = try DatabaseQueue(path: path, configuration: { var c = Configuration(); c.readonly = true; return c }())
    var t0 = now()
    var bytes = 0
    try db.read { db in
        let rows = try Row.fetchCursor(db, sql: "SELECT pool, prefix, client, static, allocated_at, released_at FROM leases")
        while let row = try rows.next() {
            let a: String = row[1], b: String = row[2]
            bytes &+= a.utf8.count &+ b.utf8.count &+ (row[3] as Int) &+ Int((row[4] as Double))
        }
    }
    let scan = now() - t0
    print(String(format: "anchor: bare SQLite scan of every row: %.3f s (checksum %d)", scan, bytes & 0xff))

    if getenv("PROFILE_LOAD") != nil {
        for _ in 0..<5 { _ = try AddressAllocator(pools: [pool], store: try SQLiteLeaseStore(path: path, readOnly: true)) }
        exit(0)
    }
    // The store's part alone: rows into LeaseRecords.
    t0 = now()
    let records = try SQLiteLeaseStore(path: path, readOnly: true).loadAll()
    let loadOnly = now() - t0
    print(String(format: "  of which SQLiteLeaseStore.loadAll (rows to %d records): %.3f s", records.count, loadOnly))

    // Open as gatewayd does: the store, then every lease into memory.
    let before = heapInUse()
    t0 = now()
    let allocator = try AddressAllocator(pools: [pool], store: try SQLiteLeaseStore(path: path, readOnly: true))
    let open = now() - t0
    let held = heapInUse() - before
    let total = allocator.clientCount
    print(String(format: "open store with %d leases: %.3f s (%.2fx the bare scan), heap %.1f MiB = %.0f bytes per lease",
                 total, open, open / scan, Double(held) / 1_048_576, Double(held) / Double(total)))

    // Lookups: address -> client, client -> leases.
    let probes = 1_000_000
    var rng = SystemRandomNumberGenerator()
    let addresses = (0..<1000).map { _ in IPAddress.v6(IPv6Address(rawValue: (0x2001_0db8_0001 as UInt128) << 80 | UInt128(4 + Int.random(in: 0..<count, using: &rng)))) }
    t0 = now()
    var found = 0
    var t = 0.0
    for k in 0..<probes { if allocator.lease(containing: addresses[k % 1000]) != nil { found += 1 } }
    t = now() - t0
    print(String(format: "lookup address -> client: %.0f /s (%d of %d found)", Double(probes) / t, found, probes))
    t0 = now()
    found = 0
    for k in 0..<probes { found += allocator.leases(of: clients[(k &* 7919) % count]).count }
    t = now() - t0
    print(String(format: "lookup client -> leases: %.0f /s (%d found)", Double(probes) / t, found))
    guard found == probes else { print("lookup failed"); exit(1) }
}
