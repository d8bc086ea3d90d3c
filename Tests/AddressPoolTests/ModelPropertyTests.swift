import AddressPool
import Foundation
import PacketKit
import Testing

/// SplitMix64: a seeded generator so a failing sequence can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The documented rules, by brute force over a small IPv4 pool: a row per slot, and the client's
/// own slot the last one written for it.
struct PoolModel {
    struct Row: Equatable { var client: String; var isStatic: Bool; var releasedAt: Double? }
    let slots: [UInt32]            // allocatable slot addresses, ascending
    let quiet: Double
    var rows: [UInt32: Row] = [:]
    var own: [String: UInt32] = [:]

    mutating func write(_ slot: UInt32, _ row: Row) {
        if let old = rows[slot], old.client != row.client, own[old.client] == slot { own[old.client] = nil }
        rows[slot] = row
        own[row.client] = slot
    }

    /// nil: exhausted.
    mutating func allocate(_ c: String, now: Double) -> UInt32? {
        if let o = own[c], let r = rows[o], r.client == c {
            if r.releasedAt != nil { write(o, Row(client: c, isStatic: r.isStatic, releasedAt: nil)) }
            return o
        }
        let free = slots.first { s in
            guard let r = rows[s] else { return true }
            guard let at = r.releasedAt, !r.isStatic else { return false }
            return now - at >= quiet
        }
        if let free { write(free, Row(client: c, isStatic: false, releasedAt: nil)) }
        return free
    }

    mutating func release(_ c: String, now: Double) -> UInt32? {
        guard let o = own[c], var r = rows[o], r.client == c, r.releasedAt == nil else { return nil }
        r.releasedAt = now
        write(o, r)
        return o
    }

    /// true when the assignment is allowed (the slot is allocatable, and free or the client's, or
    /// released by another non-static client longer ago than the quiet period).
    mutating func assignStatic(_ c: String, _ slot: UInt32, now: Double) -> Bool {
        guard slots.contains(slot) else { return false }
        if let r = rows[slot], r.client != c {
            guard let at = r.releasedAt, !r.isStatic, now - at >= quiet else { return false }
        }
        if let o = own[c], o != slot, var r = rows[o], r.client == c, r.releasedAt == nil { r.releasedAt = now; write(o, r) }
        write(slot, Row(client: c, isStatic: true, releasedAt: nil))
        return true
    }
}

struct ModelPropertyTests {
    /// Random allocate/release/static/reopen sequences against the model: every answer and, after
    /// every step, every row must match; no slot is ever active for two clients; nothing reserved is
    /// ever handed out.
    @Test(arguments: [UInt64(1), 2, 3, 0xC0FFEE])
    func randomSequencesAgreeWithTheModel(seed: UInt64) throws {
        var rng = SeededGenerator(state: seed)
        let clock = TestClock()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sg-pool-\(seed)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/leases.db"
        // 192.0.2.0/27: .0 and .31 are network and broadcast, .1 and .9 reserved: 28 slots.
        let config = PoolConfiguration(name: "v4", prefix: p("192.0.2.0/27"), kind: .ipv4Hosts,
                                       reserved: [p("192.0.2.1/32"), p("192.0.2.9/32")], quietPeriod: 50)
        let base: UInt32 = 0xC000_0200
        var model = PoolModel(slots: (2...30).filter { $0 != 9 }.map { base + UInt32($0) }, quiet: 50)
        let clients = (0..<40).map { "client-\($0)" }
        var store: SQLiteLeaseStore? = try SQLiteLeaseStore(path: path, durability: .normal)
        var allocator = try AddressAllocator(pools: [config], store: store!, now: clock.now)
        func slot(_ l: Lease) -> UInt32 { if case .v4(let p) = l.prefix { return p.network.rawValue }; return 0 }

        for step in 0..<1500 {
            clock.t += Double(rng.next() % 8)
            let c = clients[Int(rng.next() % UInt64(clients.count))]
            let roll = rng.next() % 100
            let context = "seed \(seed) step \(step) \(c)"
            if roll < 50 {
                let expected = model.allocate(c, now: clock.t)
                do {
                    let got = try allocator.allocate(client: c, in: "v4")
                    #expect(slot(got) == expected, "\(context): allocate")
                } catch {
                    #expect(expected == nil, "\(context): \(error)")
                    if case .exhausted(let pool, _, _) = error { #expect(pool == "v4") } else { Issue.record("\(context): \(error)") }
                }
            } else if roll < 80 {
                let expected = model.release(c, now: clock.t)
                #expect(try allocator.release(client: c).map(slot) == (expected.map { [$0] } ?? []), "\(context): release")
            } else if roll < 92 {
                let target = base + UInt32(rng.next() % 32)
                let allowed = model.assignStatic(c, target, now: clock.t)
                let prefix = IPPrefix.v4(try IPv4Prefix(IPv4Address(rawValue: target), length: 32))
                let accepted = (try? allocator.assignStatic(client: c, prefix: prefix, in: "v4")) != nil
                #expect(accepted == allowed, "\(context): static \(prefix)")
            } else {
                // Restart: drop the allocator and the store, open both again from disk.
                allocator = try AddressAllocator(pools: [config], store: MemoryLeaseStore())
                store = nil
                store = try SQLiteLeaseStore(path: path, durability: .normal)
                allocator = try AddressAllocator(pools: [config], store: store!, now: clock.now)
            }
            // Every row agrees, and no slot is active twice (one row per slot by construction; one
            // active slot per client).
            let rows = try allocator.records(in: "v4")
            let mine = Dictionary(uniqueKeysWithValues: rows.map { (slot($0), PoolModel.Row(client: $0.client, isStatic: $0.isStatic, releasedAt: $0.releasedAt)) })
            #expect(mine == model.rows, "\(context): rows differ")
            let active = rows.filter(\.isActive).map(\.client)
            #expect(Set(active).count == active.count, "\(context): a client holds two active slots")
            #expect(!rows.contains { [base, base + 1, base + 9, base + 31].contains(slot($0)) }, "\(context): reserved slot leased")
            if mine != model.rows { break }
        }
    }
}
