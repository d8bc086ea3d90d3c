// Leases of a group of gateways in PostgreSQL next to one gateway's SQLite file (issue 25), same
// run, rows interleaved, 5 rounds, medians:
// - enrolment: one client's leases in two pools (an IPv6 /128 and an IPv4 /32), one durable
//   transaction each, as `gatewayctl clients add` does; on SQLite (synchronous=FULL, WAL), on
//   PostgreSQL (synchronous_commit on) with one gateway, and with two gateways enrolling at once;
// - lease lookup: one client's leases read from the store by its name (an index lookup), and the
//   anchor: the same from the allocator's memory, which is where gatewayd answers from.
// `GroupBenchmarks stores CONNINFO DIR [N]` (Benchmarks/group-store.sh starts the server), and
// `GroupBenchmarks preload CONNINFO N`: N clients with leases in the database, for the RSS rows.
import AddressPool
import Foundation
import GRDB
import PacketKit
import SixgatePostgres
import TunnelGateway

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}
func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

let pools = [PoolConfiguration(name: "v6", prefix: IPPrefix("2001:db8:1::/64")!, kind: .ipv6Hosts),
             PoolConfiguration(name: "v4", prefix: IPPrefix("100.64.0.0/10")!, kind: .ipv4Hosts)]
let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else { print("usage: GroupBenchmarks stores CONNINFO DIR [N] | preload CONNINFO N"); exit(2) }

if arguments[0] == "preload" {
    // N clients as `gatewayctl clients add` leaves them, written in bulk.
    let n = Int(arguments[2]) ?? 10_000
    let db = try PostgresConnection(arguments[1])
    try PostgresSchema.migrate(db)
    var config = GatewayConfiguration()
    config.ipv6Prefix = IPv6Prefix("2001:db8:1000::/64")!
    config.ipv4Pool = IPv4Prefix("100.64.0.0/10")!
    let allocator = try AddressAllocator(pools: GatewayPlanner.pools(config), store: PostgresLeaseStore(connection: db))
    let names = (0..<n).map { "client-\($0)" }
    for pool in GatewayPlanner.poolNames(config) { _ = try allocator.allocateMany(clients: names, in: pool) }
    // Distinct public keys: 32 bytes from the index.
    try db.query("""
        INSERT INTO clients (name, public_key)
        SELECT 'client-' || i, encode(sha256(i::text::bytea), 'base64') FROM generate_series(0, $1::integer - 1) i
        """, [String(n)])
    print("preloaded \(n) clients")
    exit(0)
}

let conninfo = arguments[1], directory = arguments[2]
let perRound = arguments.count > 3 ? Int(arguments[3]) ?? 500 : 500
let sqlite = try SQLiteLeaseStore(path: directory + "/leases.db")
let postgres = try PostgresLeaseStore(conninfo)
let postgresB = try PostgresLeaseStore(conninfo)
let memory = try AddressAllocator(pools: pools, store: MemoryLeaseStore())
let onSQLite = try AddressAllocator(pools: pools, store: sqlite)
let onPostgres = try AddressAllocator(pools: pools, store: postgres)
let onPostgresB = try AddressAllocator(pools: pools, store: postgresB)
let grdb = try DatabaseQueue(path: directory + "/leases.db")
let lookupDB = try PostgresConnection(conninfo)

var enrolSQLite: [Double] = [], enrolPG: [Double] = [], enrolGroup: [Double] = [], enrolMemory: [Double] = []
var lookAnchor: [Double] = [], lookSQLite: [Double] = [], lookPG: [Double] = []
var sink = 0
for round in 0..<5 {
    let range = (round * perRound)..<((round + 1) * perRound)
    let m = range.map { "m-\($0)" }, s = range.map { "s-\($0)" }, p = range.map { "p-\($0)" }, a = range.map { "a-\($0)" }, b = range.map { "b-\($0)" }
    enrolMemory.append(try seconds { for c in m { sink &+= try memory.allocate(client: c, inPools: ["v6", "v4"]).count } })
    enrolSQLite.append(try seconds { for c in s { sink &+= try onSQLite.allocate(client: c, inPools: ["v6", "v4"]).count } })
    enrolPG.append(try seconds { for c in p { sink &+= try onPostgres.allocate(client: c, inPools: ["v6", "v4"]).count } })
    // Two gateways at once: perRound clients each, on two threads.
    enrolGroup.append(seconds {
        let group = DispatchGroup()
        for (allocator, list) in [(onPostgres, a), (onPostgresB, b)] {
            DispatchQueue.global().async(group: group) { for c in list { _ = try? allocator.allocate(client: c, inPools: ["v6", "v4"]) } }
        }
        group.wait()
    } / 2)
    // The statistics autovacuum would have by now (the planner then uses the client index).
    if round == 0 { try lookupDB.query("ANALYZE leases") }
    let probe = (0..<perRound).map { s[($0 * 7) % s.count] }, probeP = (0..<perRound).map { p[($0 * 7) % p.count] }
    lookAnchor.append(seconds { for c in probe { sink &+= onSQLite.leases(of: c).count } })
    lookSQLite.append(try seconds {
        try grdb.read { db in
            for c in probe { sink &+= try Row.fetchAll(db, sql: "SELECT pool, prefix FROM leases WHERE client = ? AND released_at IS NULL", arguments: [c]).count }
        }
    })
    lookPG.append(try seconds { for c in probeP { sink &+= try lookupDB.query("SELECT pool, prefix::text FROM leases WHERE client = $1 AND released_at IS NULL", [c]).count } })
}
let n = Double(perRound)
let em = median(enrolMemory), es = median(enrolSQLite), ep = median(enrolPG), eg = median(enrolGroup)
print(String(format: "enrolment (2 pools, 1 transaction)   anchor in memory %8.0f/s   SQLite %6.0f/s (%.0fx the anchor's time)   PostgreSQL %6.0f/s (%.0fx)   two gateways on PostgreSQL at once %6.0f/s together (%.0fx)",
             n / em, n / es, es / em, n / ep, ep / em, 2 * n / (eg * 2), eg / em))
let la = median(lookAnchor), ls = median(lookSQLite), lp = median(lookPG)
print(String(format: "lease lookup by client               anchor in memory %8.0f/s   SQLite %6.0f/s (%.0fx)   PostgreSQL %6.0f/s (%.0fx)",
             n / la, n / ls, ls / la, n / lp, lp / la))
print("conflicts met and retried by the two gateways: \(onPostgres.conflicts + onPostgresB.conflicts)")
if sink == 42 { print("") }
