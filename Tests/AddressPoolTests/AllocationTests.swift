import AddressPool
import PacketKit
import Testing

/// A clock the test moves by hand.
final class TestClock: @unchecked Sendable {
    var t: Double = 1_800_000_000
    var now: @Sendable () -> Double { { [unowned self] in self.t } }
}

func p(_ s: String) -> IPPrefix { IPPrefix(s)! }

/// The howto layout: ::1 ISP router, ::2 uplink, ::3 gateway.
func howtoV6(quiet: Double = 3600) -> PoolConfiguration {
    PoolConfiguration(name: "v6", prefix: p("2001:db8:1::/64"), kind: .ipv6Hosts,
                      reserved: [p("2001:db8:1::1/128"), p("2001:db8:1::2/128"), p("2001:db8:1::3/128")], quietPeriod: quiet)
}

struct AllocationOrderTests {
    @Test func clientsGetTheLowestFreeAddressAfterTheReservedOnes() throws {
        let a = try AddressAllocator(pools: [howtoV6()], store: MemoryLeaseStore())
        #expect(try a.allocate(client: "laptop", in: "v6").prefix == p("2001:db8:1::4/128"))
        #expect(try a.allocate(client: "phone", in: "v6").prefix == p("2001:db8:1::5/128"))
        // Asking again is idempotent.
        #expect(try a.allocate(client: "laptop", in: "v6").prefix == p("2001:db8:1::4/128"))
        #expect(a.lease(containing: IPAddress("2001:db8:1::5")!)?.client == "phone")
        #expect(a.lease(containing: IPAddress("2001:db8:1::6")!) == nil)
        #expect(a.leases(of: "laptop").map(\.prefix) == [p("2001:db8:1::4/128")])
    }

    /// A provider that gives only a few single addresses (issue 24): they are the pool, in order,
    /// reserved ones skipped, and running out names the pool and its size.
    @Test func aListOfSingleAddressesIsAPool() throws {
        let list = ["2001:db8:1::a9", "2001:db8:1::17", "2001:db8:1:0:ffff::1", "2001:db8:1::20"].map { IPv6Address($0)! }
        let pool = PoolConfiguration(name: "v6", prefix: p("2001:db8:1::/64"), kind: .ipv6Addresses(list), reserved: [p("2001:db8:1::20/128")])
        let a = try AddressAllocator(pools: [pool], store: MemoryLeaseStore())
        #expect(try a.allocate(client: "a", in: "v6").prefix == p("2001:db8:1::17/128"))
        #expect(try a.allocate(client: "b", in: "v6").prefix == p("2001:db8:1::a9/128"), "::20 is reserved")
        #expect(try a.allocate(client: "c", in: "v6").prefix == p("2001:db8:1:0:ffff::1/128"))
        do {
            _ = try a.allocate(client: "d", in: "v6")
            Issue.record("a fourth client got an address")
        } catch {
            #expect("\(error)".contains("pool v6 is exhausted: all 4 slots are leased or reserved"), "\(error)")
        }
        // A static lease must be one of the listed addresses.
        #expect(throws: AddressPoolError.self) { try a.assignStatic(client: "e", prefix: p("2001:db8:1::18/128"), in: "v6") }
        // An address outside the prefix is a configuration error naming it.
        let bad = PoolConfiguration(name: "v6", prefix: p("2001:db8:1::/64"), kind: .ipv6Addresses([IPv6Address("2001:db8:2::1")!]))
        #expect(throws: AddressPoolError.self) { try AddressAllocator(pools: [bad], store: MemoryLeaseStore()) }
    }

    @Test func theSubnetRouterAnycastAddressIsNeverHandedOut() throws {
        // RFC 4291 §2.6.1: interface identifier 0 is the Subnet-Router anycast address.
        let pool = PoolConfiguration(name: "v6", prefix: p("2001:db8:2::/64"), kind: .ipv6Hosts)
        let a = try AddressAllocator(pools: [pool], store: MemoryLeaseStore())
        #expect(try a.allocate(client: "first", in: "v6").prefix == p("2001:db8:2::1/128"))
        #expect(throws: AddressPoolError.reserved(pool: "v6", address: "2001:db8:2::/128")) {
            try a.assignStatic(client: "x", prefix: p("2001:db8:2::/128"), in: "v6")
        }
        // RFC 5453: fdff:ffff:ffff:ff80-ffff are reserved subnet anycast identifiers.
        #expect(throws: AddressPoolError.reserved(pool: "v6", address: "2001:db8:2:0:fdff:ffff:ffff:ff81/128")) {
            try a.assignStatic(client: "x", prefix: p("2001:db8:2::fdff:ffff:ffff:ff81/128"), in: "v6")
        }
        #expect(try a.assignStatic(client: "x", prefix: p("2001:db8:2::fe00:0:0:1/128"), in: "v6").isStatic)
    }

    @Test func ipv4PoolsSkipNetworkAndBroadcastAndExhaustionNamesThePool() throws {
        let pool = PoolConfiguration(name: "nat44", prefix: p("192.0.2.0/29"), kind: .ipv4Hosts, reserved: [p("192.0.2.1/32")])
        let a = try AddressAllocator(pools: [pool], store: MemoryLeaseStore())
        let got = try (0..<5).map { try a.allocate(client: "c\($0)", in: "nat44").prefix.description }
        #expect(got == ["192.0.2.2/32", "192.0.2.3/32", "192.0.2.4/32", "192.0.2.5/32", "192.0.2.6/32"])
        do {
            _ = try a.allocate(client: "c5", in: "nat44")
            Issue.record("allocated past the end")
        } catch {
            #expect(error == .exhausted(pool: "nat44", size: "8", inQuietPeriod: 0))
            #expect(error.description.contains("pool nat44 is exhausted"))
        }
    }

    @Test func prefixPoolsDelegateSlashSixtyFoursAndFindTheirClientByAnyAddressInside() throws {
        let pool = PoolConfiguration(name: "routers", prefix: p("2001:db8:100::/48"), kind: .ipv6Prefixes(length: 64),
                                     reserved: [p("2001:db8:100::/64")])
        let a = try AddressAllocator(pools: [pool], store: MemoryLeaseStore())
        #expect(try a.allocate(client: "home", in: "routers").prefix == p("2001:db8:100:1::/64"))
        #expect(try a.allocate(client: "office", in: "routers").prefix == p("2001:db8:100:2::/64"))
        #expect(a.lease(containing: IPAddress("2001:db8:100:2:a:b:c:d")!)?.client == "office")
        #expect(a.lease(containing: IPAddress("2001:db8:100::1")!) == nil)
    }

    @Test func aReservedBlockIsSkippedWhole() throws {
        let pool = PoolConfiguration(name: "v6", prefix: p("2001:db8:3::/64"), kind: .ipv6Hosts, reserved: [p("2001:db8:3::/120")])
        let a = try AddressAllocator(pools: [pool], store: MemoryLeaseStore())
        #expect(try a.allocate(client: "c", in: "v6").prefix == p("2001:db8:3::100/128"))
    }

    @Test func oneClientGetsOneSlotInEachPoolAtomically() throws {
        let v4 = PoolConfiguration(name: "v4", prefix: p("192.0.2.0/30"), kind: .ipv4Hosts)
        let store = MemoryLeaseStore()
        let a = try AddressAllocator(pools: [howtoV6(), v4], store: store)
        let both = try a.allocate(client: "laptop", inPools: ["v6", "v4"])
        #expect(both.map(\.prefix) == [p("2001:db8:1::4/128"), p("192.0.2.1/32")])
        _ = try a.allocate(client: "phone", in: "v4")      // the /30's last usable address
        // A third client fits v6 but not v4: neither is allocated.
        #expect(throws: AddressPoolError.self) { try a.allocate(client: "tablet", inPools: ["v6", "v4"]) }
        #expect(a.leases(of: "tablet").isEmpty)
        #expect(try store.loadAll().filter { $0.client == "tablet" }.isEmpty)
        #expect(try a.allocate(client: "watch", in: "v6").prefix == p("2001:db8:1::5/128"))
    }
}

struct ReleaseAndReuseTests {
    @Test func aReleasedClientGetsItsAddressBackAndOthersWaitForTheQuietPeriod() throws {
        let clock = TestClock()
        let a = try AddressAllocator(pools: [howtoV6(quiet: 3600)], store: MemoryLeaseStore(), now: clock.now)
        _ = try a.allocate(client: "laptop", in: "v6")                                      // ::4
        _ = try a.allocate(client: "phone", in: "v6")                                       // ::5
        #expect(try a.release(client: "laptop").map(\.prefix) == [p("2001:db8:1::4/128")])
        #expect(a.lease(containing: IPAddress("2001:db8:1::4")!) == nil)
        clock.t += 60
        #expect(try a.allocate(client: "tablet", in: "v6").prefix == p("2001:db8:1::6/128"))  // ::4 is quiet
        #expect(try a.allocate(client: "laptop", in: "v6").prefix == p("2001:db8:1::4/128"))  // back to its owner
        _ = try a.release(client: "laptop")
        clock.t += 3600
        #expect(try a.allocate(client: "watch", in: "v6").prefix == p("2001:db8:1::4/128"))   // quiet over: lowest free
        #expect(try a.allocate(client: "laptop", in: "v6").prefix == p("2001:db8:1::7/128"))  // its old one is taken
    }

    /// Fault injection: the wall clock jumps back a day, then forward a year (an NTP correction, a
    /// dead RTC battery). No lease moves; a slot released "in the future" stays quiet rather than
    /// being handed out early; after the forward jump the quiet periods are simply over.
    @Test func clockJumpsNeitherMoveLeasesNorReleaseQuietSlotsEarly() throws {
        let clock = TestClock()
        let store = MemoryLeaseStore()
        let a = try AddressAllocator(pools: [howtoV6(quiet: 3600)], store: store, now: clock.now)
        _ = try a.allocate(client: "laptop", in: "v6")                                      // ::4
        _ = try a.allocate(client: "phone", in: "v6")                                       // ::5
        _ = try a.release(client: "phone")
        clock.t -= 86_400
        #expect(try a.allocate(client: "tablet", in: "v6").prefix == p("2001:db8:1::6/128"), "::5 was released after 'now': still quiet")
        #expect(a.leases(of: "laptop").map(\.prefix) == [p("2001:db8:1::4/128")])
        #expect(try AddressAllocator(pools: [howtoV6(quiet: 3600)], store: store, now: clock.now).leases(of: "tablet").map(\.prefix)
                == [p("2001:db8:1::6/128")], "a reload under the jumped clock reads the same")
        clock.t += 86_400 + 365 * 86_400
        #expect(try a.allocate(client: "watch", in: "v6").prefix == p("2001:db8:1::5/128"), "a year on, ::5's quiet period is over")
        #expect(try a.allocate(client: "phone", in: "v6").prefix == p("2001:db8:1::7/128"))
        #expect(a.leases(of: "laptop").map(\.prefix) == [p("2001:db8:1::4/128")] && a.leases(of: "tablet").map(\.prefix) == [p("2001:db8:1::6/128")])
    }

    @Test func exhaustionCountsTheSlotsInTheirQuietPeriod() throws {
        let clock = TestClock()
        let pool = PoolConfiguration(name: "tiny", prefix: p("192.0.2.0/30"), kind: .ipv4Hosts, quietPeriod: 100)
        let a = try AddressAllocator(pools: [pool], store: MemoryLeaseStore(), now: clock.now)
        _ = try a.allocate(client: "a", in: "tiny"); _ = try a.allocate(client: "b", in: "tiny")
        _ = try a.release(client: "a")
        #expect(throws: AddressPoolError.exhausted(pool: "tiny", size: "4", inQuietPeriod: 1)) { try a.allocate(client: "c", in: "tiny") }
        clock.t += 100
        #expect(try a.allocate(client: "c", in: "tiny").prefix == p("192.0.2.1/32"))
    }
}

struct StaticAssignmentTests {
    @Test func staticAddressesAreNeverAllocatedDynamically() throws {
        let clock = TestClock()
        let pool = PoolConfiguration(name: "v4", prefix: p("192.0.2.0/29"), kind: .ipv4Hosts, quietPeriod: 0)
        let a = try AddressAllocator(pools: [pool], store: MemoryLeaseStore(), now: clock.now)
        _ = try a.assignStatic(client: "printer", prefix: p("192.0.2.2/32"), in: "v4")
        #expect(try a.allocate(client: "x", in: "v4").prefix == p("192.0.2.1/32"))
        #expect(try a.allocate(client: "y", in: "v4").prefix == p("192.0.2.3/32"))
        // Released, a static address stays its client's: others never get it, even with no quiet period.
        _ = try a.release(client: "printer")
        clock.t += 10
        let rest = try (0..<3).map { try a.allocate(client: "z\($0)", in: "v4").prefix.description }
        #expect(!rest.contains("192.0.2.2/32"))
        #expect(throws: AddressPoolError.self) { try a.allocate(client: "overflow", in: "v4") }
        #expect(try a.allocate(client: "printer", in: "v4").prefix == p("192.0.2.2/32"))
    }

    @Test func staticAssignmentsAreChecked() throws {
        let a = try AddressAllocator(pools: [howtoV6()], store: MemoryLeaseStore())
        _ = try a.allocate(client: "laptop", in: "v6")
        #expect(throws: AddressPoolError.alreadyLeased(pool: "v6", address: "2001:db8:1::4/128", client: "laptop")) {
            try a.assignStatic(client: "nas", prefix: p("2001:db8:1::4/128"), in: "v6")
        }
        #expect(throws: AddressPoolError.reserved(pool: "v6", address: "2001:db8:1::1/128")) {
            try a.assignStatic(client: "nas", prefix: p("2001:db8:1::1/128"), in: "v6")
        }
        #expect(throws: AddressPoolError.notInPool(pool: "v6", address: "2001:db8:9::1/128")) {
            try a.assignStatic(client: "nas", prefix: p("2001:db8:9::1/128"), in: "v6")
        }
        // A client moved to a static address gives up its dynamic one.
        _ = try a.assignStatic(client: "laptop", prefix: p("2001:db8:1::99/128"), in: "v6")
        #expect(a.leases(of: "laptop").map(\.prefix) == [p("2001:db8:1::99/128")])
        #expect(a.lease(containing: IPAddress("2001:db8:1::4")!) == nil)
    }
}

struct ConfigurationTests {
    @Test func overlappingPoolsAreRejected() {
        let a = PoolConfiguration(name: "wide", prefix: p("2001:db8::/48"), kind: .ipv6Prefixes(length: 64))
        let b = PoolConfiguration(name: "hosts", prefix: p("2001:db8:0:5::/64"), kind: .ipv6Hosts)
        #expect(throws: AddressPoolError.overlappingPools("wide", "hosts")) { try AddressAllocator(pools: [a, b], store: MemoryLeaseStore()) }
        let c = PoolConfiguration(name: "v4a", prefix: p("192.0.2.0/24"), kind: .ipv4Hosts)
        let d = PoolConfiguration(name: "v4b", prefix: p("192.0.2.128/25"), kind: .ipv4Hosts)
        #expect(throws: AddressPoolError.overlappingPools("v4a", "v4b")) { try AddressAllocator(pools: [c, d], store: MemoryLeaseStore()) }
        // Disjoint pools of both families are fine.
        let e = PoolConfiguration(name: "v4", prefix: p("198.51.100.0/24"), kind: .ipv4Hosts)
        #expect(throws: Never.self) { try AddressAllocator(pools: [b, c, e], store: MemoryLeaseStore()) }
    }

    @Test func badPoolsAreNamed() {
        func reject(_ pool: PoolConfiguration, _ fragment: String) {
            do { _ = try AddressAllocator(pools: [pool], store: MemoryLeaseStore()); Issue.record("accepted \(pool)") } catch {
                #expect(error.description.contains("pool \(pool.name)") && error.description.contains(fragment), "\(error)")
            }
        }
        reject(PoolConfiguration(name: "k", prefix: p("192.0.2.0/24"), kind: .ipv6Hosts), "does not fit")
        reject(PoolConfiguration(name: "r", prefix: p("2001:db8::/64"), kind: .ipv6Hosts, reserved: [p("2001:db8:1::1/128")]), "outside")
        reject(PoolConfiguration(name: "d", prefix: p("2001:db8::/64"), kind: .ipv6Prefixes(length: 48)), "longer than")
        reject(PoolConfiguration(name: "q", prefix: p("2001:db8::/64"), kind: .ipv6Hosts, quietPeriod: -1), "quiet")
        reject(PoolConfiguration(name: "", prefix: p("2001:db8::/64"), kind: .ipv6Hosts), "name")
    }

    @Test func aFailedCommitChangesNothing() throws {
        let store = MemoryLeaseStore()
        let a = try AddressAllocator(pools: [howtoV6()], store: store)
        _ = try a.allocate(client: "one", in: "v6")
        store.failNextCommit = .store(operation: "commit", path: "memory", detail: "disk full")
        #expect(throws: AddressPoolError.store(operation: "commit", path: "memory", detail: "disk full")) { try a.allocate(client: "two", in: "v6") }
        #expect(a.leases(of: "two").isEmpty)
        #expect(try a.allocate(client: "three", in: "v6").prefix == p("2001:db8:1::5/128"))
        store.failNextCommit = .store(operation: "commit", path: "memory", detail: "disk full")
        #expect(throws: AddressPoolError.self) { try a.release(client: "one") }
        #expect(a.leases(of: "one").map(\.prefix) == [p("2001:db8:1::4/128")])
    }
}
