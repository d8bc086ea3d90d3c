// The PostgreSQL lease store against a real server started by each test (Debian's postgresql,
// initdb in a temporary folder, a Unix socket there): the allocator on it, two allocators at the
// same moment, a schema from a newer release, a row edited by hand, the server going away and
// coming back, and the change feed with its notifications.
import AddressPool
import Foundation
import PacketKit
import SixgatePostgres
import SixgateSystem
import SixgateTestSupport
import Testing

@Suite(.enabled(if: isRoot && PostgresServer.binDirectory != nil, "a test PostgreSQL server (Debian's postgresql) runs as the postgres account, started by root"))
final class PostgresLeaseStoreTests {
    let server: PostgresServer

    init() throws { server = try PostgresServer() }

    deinit { server.stop() }

    static func pools() throws -> [PoolConfiguration] {
        [PoolConfiguration(name: "v6", prefix: try .parse("2001:db8:77::/64"), kind: .ipv6Hosts, reserved: [try .parse("2001:db8:77::1/128")]),
         PoolConfiguration(name: "v4", prefix: try .parse("10.77.0.0/20"), kind: .ipv4Hosts, reserved: [try .parse("10.77.0.1/32")])]
    }

    @Test func allocatorKeepsItsLeasesInPostgres() throws {
        let store = try PostgresLeaseStore(server.conninfo)
        let a = try AddressAllocator(pools: Self.pools(), store: store)
        let alice = try a.allocate(client: "alice", inPools: ["v6", "v4"])
        #expect(alice.map(\.prefix.description) == ["2001:db8:77::2/128", "10.77.0.2/32"])
        let bob = try a.allocate(client: "bob", inPools: ["v6", "v4"])
        #expect(bob.map(\.prefix.description) == ["2001:db8:77::3/128", "10.77.0.3/32"])
        _ = try a.release(client: "alice")
        _ = try a.assignStatic(client: "carol", prefix: try .parse("2001:db8:77::99/128"), in: "v6")

        // What an operator reads with psql, and what another allocator loads.
        #expect(try server.psql("SELECT prefix, client, static, released_at IS NOT NULL, position FROM leases WHERE pool = 'v6' ORDER BY position") == "2001:db8:77::2/128|alice|f|t|2\n2001:db8:77::3/128|bob|f|f|3\n2001:db8:77::99/128|carol|t|f|153")
        #expect(try server.psql("SELECT max(version) FROM sixgate_schema") == String(PostgresSchema.current))
        let b = try AddressAllocator(pools: Self.pools(), store: PostgresLeaseStore(server.conninfo))
        #expect(b.leases(of: "bob") == a.leases(of: "bob"))
        #expect(b.leases(of: "alice") == [])
        #expect(try b.allocate(client: "alice", inPools: ["v6"])[0].prefix.description == "2001:db8:77::2/128", "a released slot goes back to its client")
        #expect(try b.statistics(of: "v6").activeStatic == 1)
    }

    /// Two gateways enrol at the same moment: 1,000 clients each of their own and 200 that both
    /// enrol (the same client on both, as an operator's retry would), interleaved on two threads.
    /// No address may be given to two clients, every lease a gateway returned must be the one the
    /// database holds, and a client enrolled on both must have the same address on both.
    @Test func twoGatewaysEnrolAtTheSameMoment() throws {
        let perGateway = 1_000, shared = 200
        let allocators = try (0..<2).map { _ in try AddressAllocator(pools: Self.pools(), store: PostgresLeaseStore(server.conninfo)) }
        final class Results: @unchecked Sendable { var leases: [[String: [String]]] = [[:], [:]]; var errors: [String] = [] }
        let results = Results()
        let lock = SystemLock()
        let group = DispatchGroup()
        for g in 0..<2 {
            DispatchQueue.global().async(group: group) {
                var names = (0..<perGateway).map { "gw\(g)-client-\($0)" } + (0..<shared).map { "both-\($0)" }
                var rng = SystemRandomNumberGenerator()
                names.shuffle(using: &rng)
                for n in names {
                    do {
                        let l = try allocators[g].allocate(client: n, inPools: ["v6", "v4"])
                        lock.withLock { results.leases[g][n] = l.map(\.prefix.description) }
                    } catch {
                        lock.withLock { results.errors.append("\(n) on gateway \(g): \(error)") }
                    }
                }
            }
        }
        #expect(group.wait(timeout: .now() + 300) == .success)
        #expect(results.errors == [], "no enrolment lost")
        var owner: [String: String] = [:]
        for g in 0..<2 {
            #expect(results.leases[g].count == perGateway + shared)
            for (client, addresses) in results.leases[g] {
                for a in addresses {
                    if let other = owner[a], other != client { Issue.record("\(a) given to \(other) and to \(client)") }
                    owner[a] = client
                }
            }
        }
        for i in 0..<shared { #expect(results.leases[0]["both-\(i)"] == results.leases[1]["both-\(i)"]) }
        // The database holds exactly what the gateways returned.
        let rows = try server.psql("SELECT client, pool, prefix FROM leases WHERE released_at IS NULL").split(separator: "\n")
        #expect(rows.count == 2 * (2 * perGateway + shared))
        for row in rows {
            let f = row.split(separator: "|").map(String.init)
            #expect(owner[f[2]] == f[0], "row \(row)")
        }
        #expect(try server.psql("SELECT count(*) FROM (SELECT prefix FROM leases GROUP BY prefix HAVING count(*) > 1) d") == "0")
        let conflicts = allocators.map(\.conflicts)
        print("two gateways, \(2 * perGateway + shared) clients: conflicts met and retried \(conflicts)")
        #expect(conflicts.reduce(0, +) > 0, "the gateways did meet at the same slots (the test exercised the conflict path)")
        // Each gateway's memory, once it read the other's changes, agrees with the database.
        for a in allocators { try a.refresh() }
        for i in stride(from: 0, to: perGateway, by: 97) {
            #expect(allocators[0].leases(of: "gw1-client-\(i)").map(\.prefix.description) == results.leases[1]["gw1-client-\(i)"])
            #expect(allocators[1].leases(of: "gw0-client-\(i)").map(\.prefix.description) == results.leases[0]["gw0-client-\(i)"])
        }
    }

    @Test func schemaOfANewerReleaseIsRefusedUnchanged() throws {
        _ = try PostgresLeaseStore(server.conninfo)
        try server.psql("INSERT INTO sixgate_schema (version, program) VALUES (\(PostgresSchema.current + 1), 'sixgate 9.9')")
        let before = try server.psql("SELECT count(*) FROM sixgate_schema") + server.psql("SELECT count(*) FROM leases")
        do {
            _ = try PostgresLeaseStore(server.conninfo)
            Issue.record("a newer schema was opened")
        } catch {
            let text = "\(error)"
            #expect(text.contains("sixgate on \(server.directory):5432"), "\(text)")
            #expect(text.contains("version \(PostgresSchema.current + 1), newer than this program knows"), "\(text)")
        }
        #expect(throws: AddressPoolError.self) { try PostgresLeaseStore(server.conninfo, readOnly: true) }
        #expect(try server.psql("SELECT count(*) FROM sixgate_schema") + server.psql("SELECT count(*) FROM leases") == before)
    }

    /// A row changed by hand (psql) to an address outside its pool, or into a pool that does not
    /// exist: the database refuses it, naming the lease, the client and the pool, and nothing
    /// changes. A move inside the pool is the operator's to make: every gateway hears of it.
    @Test func rowEditedByHandOutsideItsPool() throws {
        let a = try AddressAllocator(pools: Self.pools(), store: PostgresLeaseStore(server.conninfo))
        _ = try a.allocate(client: "alice", inPools: ["v6"])
        let before = try server.psql("SELECT pool, prefix, client, xid FROM leases")
        if let thrown = #expect(throws: (any Error).self, performing: { try server.psql("UPDATE leases SET prefix = '2001:db8:ffff::9/128' WHERE client = 'alice'") }) {
            #expect("\(thrown)".contains("lease 2001:db8:ffff::9/128 of client alice: not a slot of pool v6 (2001:db8:77::/64, slots of /128)"), "\(thrown)")
        }
        #expect(throws: (any Error).self) { try server.psql("UPDATE leases SET prefix = '2001:db8:77::/64' WHERE client = 'alice'") }
        if let thrown = #expect(throws: (any Error).self, performing: { try server.psql("INSERT INTO leases (pool, prefix, client, allocated_at) VALUES ('v9', '2001:db8:77::5/128', 'mallory', 0)") }) {
            #expect("\(thrown)".contains("no pool named v9 (pools: v4, v6)"), "\(thrown)")
        }
        #expect(throws: (any Error).self) { try server.psql("UPDATE leases SET prefix = 'not-an-address' WHERE client = 'alice'") }
        #expect(try server.psql("SELECT pool, prefix, client, xid FROM leases") == before, "nothing changed")

        try server.psql("UPDATE leases SET prefix = '2001:db8:77::42/128' WHERE client = 'alice'")
        #expect(try a.refresh().map(\.prefix.description).sorted() == ["2001:db8:77::2/128", "2001:db8:77::42/128"], "the edit (the old slot gone, the new one) reaches the gateways through the change feed")
        #expect(a.leases(of: "alice").map(\.prefix.description) == ["2001:db8:77::42/128"])
        let b = try AddressAllocator(pools: Self.pools(), store: PostgresLeaseStore(server.conninfo))
        #expect(b.leases(of: "alice").map(\.prefix.description) == ["2001:db8:77::42/128"])
        #expect(try server.psql("SELECT position FROM leases WHERE client = 'alice'") == "66", "the position follows the address")
        #expect(try b.allocate(client: "bob", inPools: ["v6"])[0].prefix.description == "2001:db8:77::2/128")
    }

    /// The server goes away: leases already held are still answered from memory, an enrolment fails
    /// with the database named, and once the server is back the same allocator goes on by itself.
    @Test func databaseGoingAwayAndComingBack() throws {
        let a = try AddressAllocator(pools: Self.pools(), store: PostgresLeaseStore(server.conninfo))
        let alice = try a.allocate(client: "alice", inPools: ["v6", "v4"])
        server.pause()
        #expect(a.leases(of: "alice") == alice)
        #expect(try a.allocate(client: "alice", inPools: ["v6", "v4"]) == alice, "an existing client's leases need no database")
        if let thrown = #expect(throws: (any Error).self, performing: { try a.allocate(client: "bob", inPools: ["v6"]) }) {
            let text = "\(thrown)"
            #expect(text.contains("lease store sixgate on \(server.directory):5432"), "\(text)")
            #expect(text.contains("No such file or directory") || text.contains("connection"), "\(text)")
        }
        #expect(a.leases(of: "bob") == [], "nothing half-done in memory")
        try server.start()
        #expect(try a.allocate(client: "bob", inPools: ["v6"])[0].prefix.description == "2001:db8:77::3/128")
    }

    /// A conflict's retry reads the others' changes to find a free slot; the clients in them must
    /// still reach the owner's next `refresh()` (gatewayd applies each client's peer from what it
    /// returns: a change read only by the retry left a client without addresses on that gateway).
    @Test func changesReadByAConflictRetryStillReachTheOwner() throws {
        let a = try AddressAllocator(pools: Self.pools(), store: PostgresLeaseStore(server.conninfo))
        let b = try AddressAllocator(pools: Self.pools(), store: PostgresLeaseStore(server.conninfo))
        _ = try b.refresh()
        let x = try a.allocate(client: "x-\(uniqueSuffix())", inPools: ["v6"])
        // b has not read a's commit: its first choice is a's slot, the commit conflicts, the retry reads the change.
        let before = b.conflicts
        let y = try b.allocate(client: "y-\(uniqueSuffix())", inPools: ["v6"])
        #expect(b.conflicts == before + 1, "b met a's commit")
        #expect(y[0].prefix != x[0].prefix)
        let changed = try b.refresh()
        #expect(changed.contains { $0.client == x[0].client && $0.prefix == x[0].prefix }, "\(changed)")
        #expect(try b.refresh().allSatisfy { $0.client != x[0].client }, "handed over once")
    }

    @Test func changeFeedAndNotifications() throws {
        let storeA = try PostgresLeaseStore(server.conninfo), storeB = try PostgresLeaseStore(server.conninfo)
        let a = try AddressAllocator(pools: Self.pools(), store: storeA)
        let b = try AddressAllocator(pools: Self.pools(), store: storeB)
        final class Events: @unchecked Sendable { var list: [PostgresListener.Event] = []; let lock = SystemLock() }
        let events = Events()
        let pidB = storeB.backendPID
        let listener = try PostgresListener(server.conninfo, channels: [PostgresLeaseStore.channel], ignoring: { [pidB] }) { e in
            events.lock.withLock { events.list.append(e) }
        }
        defer { listener.stop() }
        _ = try b.allocate(client: "own", inPools: ["v6"])
        let alice = try a.allocate(client: "alice", inPools: ["v6", "v4"])
        #expect(eventually(timeout: 5) { events.lock.withLock { events.list.contains(.changed(channel: "sixgate_leases", payload: "")) } })
        #expect(events.lock.withLock { events.list.count } == 1, "B's own commit is not called back: \(events.list)")
        let changed = try b.refresh()
        #expect(Set(changed.map(\.client)) == ["alice"])
        #expect(b.leases(of: "alice") == alice)
        #expect(try b.refresh() == [], "read once")
        _ = try a.release(client: "alice")
        #expect(try b.refresh().map(\.client) == ["alice", "alice"])
        #expect(b.leases(of: "alice") == [])
        let onB = try b.allocate(client: "alice", inPools: ["v6", "v4"]), onA = try a.allocate(client: "alice", inPools: ["v6", "v4"])
        #expect(onB == onA, "the same slots back on either")

        // A renumbering moves rows (deletes and inserts): the other side follows.
        var moved = try Self.pools()[0]
        moved.prefix = try .parse("2001:db8:78::/64"); moved.reserved = [try .parse("2001:db8:78::1/128")]
        try a.renumber(to: moved)
        let afterMove = try b.refresh()
        #expect(afterMove.contains { $0.client == "alice" })
        // b still has the old pool configured: the new rows are orphans to it, the old ones gone.
        #expect(b.leases(of: "alice").map(\.pool) == ["v4"])

        // The server restarts: the listener says it lost the connection, then asks for a resync.
        server.pause()
        try server.start()
        #expect(eventually(timeout: 20) { events.lock.withLock { events.list.contains(.resync) } }, "\(events.list)")
        #expect(events.lock.withLock { events.list.contains { if case .lost = $0 { true } else { false } } })
    }
}
