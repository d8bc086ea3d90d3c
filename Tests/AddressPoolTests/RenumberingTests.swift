import AddressPool
import Foundation
import PacketKit
import SixgateTestSupport
import Testing

/// Issue 24's seam: a lease keeps its position (the host's offset, for a /64 its interface
/// identifier; a delegated prefix's index) when the pool's prefix changes, stores written before
/// positions existed are migrated without losing a row, and what cannot move is kept, not dropped.
struct RenumberingTests {
    func pool(_ prefix: String, name: String = "v6", kind: PoolKind = .ipv6Hosts, reservedHosts: [UInt128] = [1, 2, 3]) -> PoolConfiguration {
        let net = IPPrefix(prefix)!
        let reserved: [IPPrefix] = kind == .ipv6Hosts ? reservedHosts.map { h in
            guard case .v6(let n) = net else { fatalError() }
            return .v6(IPv6Prefix(containing: IPv6Address(rawValue: n.network.rawValue | h), length: 128))
        } : []
        return PoolConfiguration(name: name, prefix: net, kind: kind, reserved: reserved)
    }

    /// Rows as sqlite3 shows them: "pool|prefix|client|released?|position".
    func rows(_ db: String) throws -> [String] {
        try run(["sqlite3", db, "SELECT pool, prefix, client, released_at IS NOT NULL, position FROM leases ORDER BY pool, prefix"], check: true)
            .stdout.split(separator: "\n").map(String.init)
    }

    @Test func hostsKeepTheirInterfaceIdentifierAndAReleasedSlotStaysItsOwners() throws {
        let dir = try StoreDirectory()
        let clock = TestClock()
        do {
            let a = try AddressAllocator(pools: [pool("2001:db8:1::/64")], store: try SQLiteLeaseStore(path: dir.database), now: clock.now)
            _ = try a.allocate(client: "laptop", in: "v6")   // ::4
            _ = try a.allocate(client: "phone", in: "v6")    // ::5
            _ = try a.allocate(client: "tablet", in: "v6")   // ::6
            _ = try a.release(client: "tablet")
            #expect(a.renumbered.isEmpty && a.positionsFilled == 0)
        }
        #expect(try rows(dir.database) == ["v6|2001:db8:1::4/128|laptop|0|4", "v6|2001:db8:1::5/128|phone|0|5", "v6|2001:db8:1::6/128|tablet|1|6"])
        // The ISP hands out a new prefix.
        do {
        let b = try AddressAllocator(pools: [pool("2001:db8:2::/64")], store: try SQLiteLeaseStore(path: dir.database), now: clock.now)
        #expect(b.renumbered.count == 3 && b.orphaned.isEmpty)
        #expect(b.renumbered.map { "\($0.old.prefix) -> \($0.new.prefix)" }.sorted() ==
                ["2001:db8:1::4/128 -> 2001:db8:2::4/128", "2001:db8:1::5/128 -> 2001:db8:2::5/128", "2001:db8:1::6/128 -> 2001:db8:2::6/128"])
        #expect(b.leases(of: "laptop").map(\.prefix) == [p("2001:db8:2::4/128")])
        #expect(b.leases(of: "phone").map(\.prefix) == [p("2001:db8:2::5/128")])
        // The released slot is still in its quiet period for its owner: a newcomer gets ::7.
        #expect(try b.allocate(client: "newcomer", in: "v6").prefix == p("2001:db8:2::7/128"))
        #expect(try b.allocate(client: "tablet", in: "v6").prefix == p("2001:db8:2::6/128"))
        // The store says the same, with no row of the old prefix left.
        #expect(try rows(dir.database) == ["v6|2001:db8:2::4/128|laptop|0|4", "v6|2001:db8:2::5/128|phone|0|5",
                                           "v6|2001:db8:2::6/128|tablet|0|6", "v6|2001:db8:2::7/128|newcomer|0|7"])
        }
        // Opening again moves nothing.
        let c = try AddressAllocator(pools: [pool("2001:db8:2::/64")], store: try SQLiteLeaseStore(path: dir.database), now: clock.now)
        #expect(c.renumbered.isEmpty && c.orphaned.isEmpty && c.leases(of: "laptop").map(\.prefix) == [p("2001:db8:2::4/128")])
    }

    @Test func delegatedPrefixesAndIPv4KeepTheirIndex() throws {
        let store = MemoryLeaseStore()
        let v6 = PoolConfiguration(name: "pd", prefix: p("2001:db8:100::/48"), kind: .ipv6Prefixes(length: 64))
        let v4 = PoolConfiguration(name: "v4", prefix: p("100.64.0.0/24"), kind: .ipv4Hosts)
        let a = try AddressAllocator(pools: [v6, v4], store: store)
        for c in ["r1", "r2", "r3"] { _ = try a.allocate(client: c, inPools: ["pd", "v4"]) }
        let r3 = a.leases(of: "r3")
        let moved6 = PoolConfiguration(name: "pd", prefix: p("2001:db8:200::/48"), kind: .ipv6Prefixes(length: 64))
        let moved4 = PoolConfiguration(name: "v4", prefix: p("100.64.7.0/24"), kind: .ipv4Hosts)
        let b = try AddressAllocator(pools: [moved6, moved4], store: store)
        #expect(b.renumbered.count == 6)
        let after = b.leases(of: "r3")
        #expect(after.map(\.position) == r3.map(\.position))
        #expect(after.map(\.prefix.description) == ["2001:db8:200:2::/64", "100.64.7.3/32"], "\(r3) -> \(after)")
    }

    @Test func whatCannotMoveIsKeptAsAnOrphanNotDropped() throws {
        let dir = try StoreDirectory()
        do {
            let a = try AddressAllocator(pools: [pool("2001:db8:1::/64")], store: try SQLiteLeaseStore(path: dir.database))
            for c in ["a", "b"] { _ = try a.allocate(client: c, in: "v6") }   // ::4, ::5
            _ = try a.assignStatic(client: "big", prefix: p("2001:db8:1::99/128"), in: "v6")   // position 0x99
        }
        // The new pool is a /124 (16 places) that reserves ::4 (say, the gateway's new address):
        // a cannot keep its place, big's place does not exist; b moves.
        let small = pool("2001:db8:2::/124", reservedHosts: [1, 2, 3, 4])
        do {
        let b = try AddressAllocator(pools: [small], store: try SQLiteLeaseStore(path: dir.database))
        #expect(b.renumbered.map(\.new.prefix) == [p("2001:db8:2::5/128")])
        #expect(Set(b.orphaned.map(\.client)) == ["a", "big"])
        #expect(b.leases(of: "a").isEmpty)
        let kept = try rows(dir.database)
        #expect(kept.contains("v6|2001:db8:1::4/128|a|0|4") && kept.contains("v6|2001:db8:1::99/128|big|0|153"), "orphans stay in the store: \(kept)")
        }
        // Back to the old prefix: everyone is home again, b included.
        let c = try AddressAllocator(pools: [pool("2001:db8:1::/64")], store: try SQLiteLeaseStore(path: dir.database))
        #expect(c.orphaned.isEmpty)
        #expect(["a", "b", "big"].map { c.leases(of: $0).first?.prefix.description ?? "-" } == ["2001:db8:1::4/128", "2001:db8:1::5/128", "2001:db8:1::99/128"])
    }

    @Test func aStoreWrittenBeforePositionsIsMigratedWithNothingLost() throws {
        let dir = try StoreDirectory()
        // A store as the previous release left it: schema v1, no position column.
        let v1 = """
            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO grdb_migrations VALUES ('v1');
            CREATE TABLE leases (pool TEXT NOT NULL, prefix TEXT NOT NULL, client TEXT NOT NULL, static INTEGER NOT NULL DEFAULT 0,
                                 allocated_at REAL NOT NULL, released_at REAL, PRIMARY KEY (pool, prefix)) WITHOUT ROWID;
            CREATE INDEX leases_by_client ON leases(client);
            INSERT INTO leases VALUES ('v6', '2001:db8:1::4/128', 'laptop', 0, 1700000000, NULL);
            INSERT INTO leases VALUES ('v6', '2001:db8:1::5/128', 'phone', 0, 1700000001, 1700000100);
            INSERT INTO leases VALUES ('v6', '2001:db8:1::40/128', 'nas', 1, 1700000002, NULL);
            INSERT INTO leases VALUES ('old', '198.51.100.9/32', 'gone', 0, 1700000003, NULL);
            """
        try run(["sqlite3", dir.database, v1], check: true)
        // A reader beside the old writer reads it as it is (positions unknown).
        #expect(try SQLiteLeaseStore(path: dir.database, readOnly: true).loadAll().allSatisfy { $0.position == nil })
        do {
        let a = try AddressAllocator(pools: [pool("2001:db8:1::/64")], store: try SQLiteLeaseStore(path: dir.database))
        #expect(a.positionsFilled == 3 && a.renumbered.isEmpty)
        #expect(a.orphaned.map(\.client) == ["gone"], "a row of a pool no longer configured stays")
        #expect(try rows(dir.database) == ["old|198.51.100.9/32|gone|0|", "v6|2001:db8:1::4/128|laptop|0|4",
                                           "v6|2001:db8:1::40/128|nas|0|64", "v6|2001:db8:1::5/128|phone|1|5"])
        #expect(try run(["sqlite3", dir.database, "SELECT identifier FROM grdb_migrations ORDER BY identifier"], check: true).stdout == "v1\nv2\n")
        }
        // And then a renumbering works for the migrated rows too.
        let b = try AddressAllocator(pools: [pool("2001:db8:9::/64")], store: try SQLiteLeaseStore(path: dir.database))
        #expect(b.leases(of: "nas").first?.prefix == p("2001:db8:9::40/128") && b.leases(of: "nas").first?.isStatic == true)
    }

    @Test func aRunningAllocatorMovesToANewPrefixOrRefusesWithNothingChanged() throws {
        let dir = try StoreDirectory()
        let clock = TestClock()
        let a = try AddressAllocator(pools: [pool("2001:db8:1::/64"), PoolConfiguration(name: "v4", prefix: p("192.0.2.0/24"), kind: .ipv4Hosts)],
                                     store: try SQLiteLeaseStore(path: dir.database), now: clock.now)
        for c in ["a", "b", "c"] { _ = try a.allocate(client: c, in: "v6") }   // ::4 ::5 ::6
        _ = try a.release(client: "c")
        // Refused: leases beyond a /126's four places; a pool of another kind.
        #expect(throws: AddressPoolError.self) { try a.renumber(to: pool("2001:db8:2::/126", reservedHosts: [])) }
        #expect(throws: AddressPoolError.self) { try a.renumber(to: pool("2001:db8:2::/48", kind: .ipv6Prefixes(length: 64))) }
        #expect(a.leases(of: "a").map(\.prefix) == [p("2001:db8:1::4/128")], "nothing changed")
        #expect(try rows(dir.database).allSatisfy { $0.contains("2001:db8:1::") })
        do {
            try a.renumber(to: pool("2001:db8:2::/126", reservedHosts: []))
        } catch {
            #expect("\(error)".contains("has no place in 2001:db8:2::/126") && "\(error)".contains("keeping 2001:db8:1::/64"), "\(error)")
        }
        let moved = try a.renumber(to: pool("2001:db8:2::/64"))
        #expect(moved.count == 3)
        #expect(a.leases(of: "a").map(\.prefix) == [p("2001:db8:2::4/128")] && a.leases(of: "b").map(\.prefix) == [p("2001:db8:2::5/128")])
        #expect(a.pools[0].prefix == p("2001:db8:2::/64"))
        // Allocation goes on in the new prefix; the released slot still waits for its owner.
        #expect(try a.allocate(client: "d", in: "v6").prefix == p("2001:db8:2::7/128"))
        #expect(try a.allocate(client: "c", in: "v6").prefix == p("2001:db8:2::6/128"))
        #expect(try rows(dir.database).allSatisfy { $0.contains("2001:db8:2::") }, "the store moved in the same transaction")
        #expect(try a.renumber(to: pool("2001:db8:2::/64")).isEmpty, "the same prefix again moves nothing")
    }
}

