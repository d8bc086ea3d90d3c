// The allocator: pools in memory, every change committed to the lease store before it is reported.
import DequeModule
import HeapModule
import PacketKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// A lease as the allocator reports it (an active record).
public typealias Lease = LeaseRecord

/// Counts for one pool, for status output.
public struct PoolStatistics: Hashable, Sendable {
    public var name: String
    /// The number of slots, as text ("254", "2^64").
    public var size: String
    public var active: Int
    public var activeStatic: Int
    /// Released rows kept so their clients get the same slot back.
    public var released: Int
    /// Released slots still in their quiet period.
    public var inQuietPeriod: Int
}

/// Allocates IPv6 addresses, IPv6 prefixes and IPv4 addresses from configured pools to clients
/// (identified by a string, normally the client's WireGuard public key), and keeps every lease in a
/// `LeaseStore`.
///
/// Allocation order, per pool:
/// 1. A client that holds a slot gets it again (allocation is idempotent).
/// 2. A client whose released slot is still free gets that slot back, whatever its quiet period.
/// 3. Otherwise the lowest-numbered free slot: released slots whose quiet period has ended, and slots
///    never handed out, whichever is lower; reserved slots (the configuration's list and the RFC
///    reservations, see `PoolConfiguration`) and static assignments are skipped.
/// The same store contents and clock give the same answers.
///
/// Durability: a call returns a lease only after `LeaseStore.commit` returned. If the commit fails,
/// nothing changes in memory and the call throws the store's error.
///
/// Thread-safe; calls are serialised (a commit happens under the lock).
///
/// ```swift
/// let store = try SQLiteLeaseStore(path: "/var/lib/sixgate/leases.db")
/// let pools = [PoolConfiguration(name: "v6", prefix: try .parse("2001:db8:1::/64"), kind: .ipv6Hosts,
///                                reserved: [try .parse("2001:db8:1::1/128")])]
/// let allocator = try AddressAllocator(pools: pools, store: store)
/// let lease = try allocator.allocate(client: publicKeyBase64, in: "v6")   // 2001:db8:1::2/128
/// ```
public final class AddressAllocator: @unchecked Sendable {
    public private(set) var pools: [PoolConfiguration]
    public let store: any LeaseStore
    /// Records the store held that fit no configured pool (a pool renamed, narrowed or removed).
    /// They are kept in the store untouched, never silently dropped; `gatewayctl` shows them.
    public private(set) var orphaned: [LeaseRecord] = []
    /// Records whose pool's prefix changed since they were written (a renumbering): each moved to
    /// the same position in the new prefix (`new`), committed at load in place of `old`.
    public private(set) var renumbered: [(old: LeaseRecord, new: LeaseRecord)] = []
    /// Records written before positions were kept, given theirs at load (the store migrated).
    public private(set) var positionsFilled = 0

    private let now: @Sendable () -> Double
    private let lock = SystemLock()
    private var states: [String: PoolState] = [:]
    private var clientNames: [String] = []
    private var clientIndex: [String: Int32] = [:]

    /// Validates `pools` (unique names, kinds that fit their prefixes, reserved entries inside,
    /// no two pools overlapping), then loads every record of `store`.
    /// `now` gives seconds since 1970 (tests pass their own clock).
    public init(pools: [PoolConfiguration], store: any LeaseStore,
                now: @escaping @Sendable () -> Double = { wallClock() }) throws(AddressPoolError) {
        self.pools = pools; self.store = store; self.now = now
        for (i, p) in pools.enumerated() {
            guard !p.name.isEmpty, p.name.utf8.count <= 64, !p.name.contains(where: { $0.isWhitespace || $0 == "|" }) else {
                throw .invalidConfiguration(pool: p.name, reason: "a pool name is 1-64 characters without spaces or '|'")
            }
            guard p.quietPeriod >= 0, p.quietPeriod.isFinite else { throw .invalidConfiguration(pool: p.name, reason: "quiet period must be 0 or more seconds") }
            guard states[p.name] == nil else { throw .invalidConfiguration(pool: p.name, reason: "two pools have this name") }
            let g = try PoolGeometry(p)
            for other in pools[..<i] where Self.overlap(p.prefix, other.prefix) { throw .overlappingPools(other.name, p.name) }
            let state = PoolState(config: p, geometry: g)
            for r in p.reserved {
                // In an address list, a reserved prefix inside the pool's prefix may hold none of the addresses.
                if !g.list.isEmpty, p.prefix.contains(r.network), g.range(of: r) == nil { continue }
                guard let range = g.range(of: r) else { throw .invalidConfiguration(pool: p.name, reason: "reserved \(r) lies outside \(p.prefix)") }
                state.reserved.append(range)
            }
            state.reserved.sort { $0.lowerBound < $1.lowerBound }
            states[p.name] = state
        }
        if !store.isReadOnly { try store.describe(pools: pools) }
        try load()
    }

    static func overlap(_ a: IPPrefix, _ b: IPPrefix) -> Bool { a.overlaps(b) }

    // MARK: Allocation

    /// The client's slot in `pool`, allocated if it has none (see the type's allocation order).
    public func allocate(client: String, in pool: String) throws(AddressPoolError) -> Lease {
        try allocate(client: client, inPools: [pool])[0]
    }

    /// One slot in each of `pools` for `client`, all or none (one store transaction).
    public func allocate(client: String, inPools pools: [String]) throws(AddressPoolError) -> [Lease] {
        try Self.validate(client)
        return try transaction { (t: inout Transaction) throws(AddressPoolError) -> [Lease] in
            var out: [Lease] = []
            for name in pools { out.append(try allocateLocked(client, try state(name), &t)) }
            return out
        }
    }

    /// A slot in `pool` for each of `clients`, all or none, in one store transaction (bulk enrolment:
    /// one durable write for the lot). Leases come back in the order of `clients`.
    public func allocateMany(clients: [String], in pool: String) throws(AddressPoolError) -> [Lease] {
        for c in clients { try Self.validate(c) }
        return try transaction { (t: inout Transaction) throws(AddressPoolError) -> [Lease] in
            let s = try state(pool)
            var out: [Lease] = []
            out.reserveCapacity(clients.count)
            for c in clients { out.append(try allocateLocked(c, s, &t)) }
            return out
        }
    }

    /// Assigns `prefix` (a /128 or /32 in host pools, a delegated prefix in prefix pools) to
    /// `client` as a static lease; the client's other slot in the pool, if any, is released.
    public func assignStatic(client: String, prefix: IPPrefix, in pool: String) throws(AddressPoolError) -> Lease {
        try Self.validate(client)
        return try transaction { (t: inout Transaction) throws(AddressPoolError) -> Lease in
            let s = try state(pool)
            guard let offset = s.geometry.offset(ofSlot: prefix) else { throw .notInPool(pool: pool, address: prefix.description) }
            guard !s.isReserved(offset) else { throw .reserved(pool: pool, address: prefix.description) }
            let c = intern(client)
            let at = now()
            if let e = s.slots[offset], e.client != c {
                let releasedLongAgo = e.releasedAt.map { at - $0 >= s.config.quietPeriod && !e.isStatic } ?? false
                guard releasedLongAgo else { throw .alreadyLeased(pool: pool, address: prefix.description, client: clientNames[Int(e.client)]) }
            }
            if let current = s.byClient[c], current != offset, let e = s.slots[current], e.client == c, e.releasedAt == nil {
                releaseLocked(c, s, current, e, at: at, &t)
            }
            let entry = SlotEntry(client: c, isStatic: true, allocatedAt: at, releasedAt: nil)
            return set(s, offset, entry, &t)
        }
    }

    /// Turns the client's static lease in `pool` back into an ordinary one (it stays the client's
    /// while active; once released it returns to the pool after the quiet period).
    public func removeStatic(client: String, in pool: String) throws(AddressPoolError) -> Lease? {
        try transaction { (t: inout Transaction) throws(AddressPoolError) -> Lease? in
            let s = try state(pool)
            guard let c = clientIndex[client], let offset = s.byClient[c], var e = s.slots[offset], e.client == c, e.isStatic else { return nil }
            e.isStatic = false
            let r = set(s, offset, e, &t)
            if let at = e.releasedAt { s.quiet.append((offset, at)) }
            return r
        }
    }

    /// Moves pool `newConfig.name` to `newConfig.prefix` while running (the ISP renumbered): every
    /// record, active or released, keeps its position, in memory and in the store (new rows written,
    /// old ones deleted, one transaction). Refused, with nothing changed, when the new pool is of
    /// another kind or slot size, overlaps another pool, or has no free place for a record (its
    /// position beyond the new prefix, or reserved there). Returns what moved.
    @discardableResult
    public func renumber(to newConfig: PoolConfiguration) throws(AddressPoolError) -> [(old: LeaseRecord, new: LeaseRecord)] {
        try lock.withLock { () throws(AddressPoolError) -> [(old: LeaseRecord, new: LeaseRecord)] in
            guard let s = states[newConfig.name], let index = pools.firstIndex(where: { $0.name == newConfig.name }) else { throw .unknownPool(newConfig.name) }
            let g = try PoolGeometry(newConfig)
            guard newConfig.kind == s.config.kind, g.slotLength == s.geometry.slotLength else {
                throw .invalidConfiguration(pool: newConfig.name, reason: "a new prefix keeps the pool's kind (\(s.config.kind)); \(newConfig.prefix) would make it \(newConfig.kind)")
            }
            for other in pools where other.name != newConfig.name && Self.overlap(newConfig.prefix, other.prefix) { throw .overlappingPools(other.name, newConfig.name) }
            var reserved: [ClosedRange<UInt128>] = []
            for r in newConfig.reserved {
                if !g.list.isEmpty, newConfig.prefix.contains(r.network), g.range(of: r) == nil { continue }
                guard let range = g.range(of: r) else { throw .invalidConfiguration(pool: newConfig.name, reason: "reserved \(r) lies outside \(newConfig.prefix)") }
                reserved.append(range)
            }
            reserved.sort { $0.lowerBound < $1.lowerBound }
            let probe = PoolState(config: newConfig, geometry: g)
            probe.reserved = reserved
            var moved: [(old: LeaseRecord, new: LeaseRecord)] = []
            for (o, e) in s.slots.sorted(by: { $0.key < $1.key }) {
                guard o < g.count, !probe.isReserved(o) else {
                    throw .invalidConfiguration(pool: newConfig.name, reason: "the lease of \(clientNames[Int(e.client)]) at position \(o) (\(s.geometry.prefix(at: o))) has no place in \(newConfig.prefix) (\(o < g.count ? "reserved there" : "beyond its \(g.sizeDescription) places")); keeping \(s.config.prefix)")
                }
                let old = record(s, o, e)
                var new = old
                new.prefix = g.prefix(at: o)
                moved.append((old, new))
            }
            guard newConfig.prefix != s.config.prefix else { return [] }
            var described = pools
            described[index] = newConfig
            try store.describe(pools: described)
            try store.commit(moved.map(\.new), removing: moved.map(\.old))
            s.config = newConfig
            s.geometry = g
            s.reserved = reserved
            // Never-used places below the cursor that the new pool reserves are skipped when the
            // cursor passes them again; a larger pool simply has more room above it.
            pools[index] = newConfig
            return moved
        }
    }

    /// Releases the client's slot in `pool` (in every pool if nil); returns what was released.
    /// The rows stay (released), so the client gets the same slots back when they are still free.
    @discardableResult
    public func release(client: String, in pool: String? = nil) throws(AddressPoolError) -> [LeaseRecord] {
        try transaction { (t: inout Transaction) throws(AddressPoolError) -> [LeaseRecord] in
            guard let c = clientIndex[client] else { return [] }
            let targets = try pool.map { (name) throws(AddressPoolError) -> [PoolState] in [try state(name)] } ?? self.pools.map { states[$0.name]! }
            let at = now()
            var out: [LeaseRecord] = []
            for s in targets {
                guard let offset = s.byClient[c], let e = s.slots[offset], e.client == c, e.releasedAt == nil else { continue }
                out.append(releaseLocked(c, s, offset, e, at: at, &t))
            }
            return out
        }
    }

    // MARK: Lookups

    /// The client's active leases, in pool order.
    public func leases(of client: String) -> [Lease] {
        lock.withLock {
            guard let c = clientIndex[client] else { return [] }
            return pools.compactMap { p -> Lease? in
                let s = states[p.name]!
                guard let o = s.byClient[c], let e = s.slots[o], e.client == c, e.releasedAt == nil else { return nil }
                return record(s, o, e)
            }
        }
    }

    /// The active lease whose slot holds `address` (any address inside a delegated prefix).
    public func lease(containing address: IPAddress) -> Lease? {
        lock.withLock {
            for p in pools {
                let s = states[p.name]!
                guard let o = s.geometry.offset(of: address) else { continue }
                guard let e = s.slots[o], e.releasedAt == nil else { return nil }
                return record(s, o, e)
            }
            return nil
        }
    }

    /// Every record of `pool` (active and released), in slot order.
    public func records(in pool: String) throws(AddressPoolError) -> [LeaseRecord] {
        try lock.withLock { () throws(AddressPoolError) -> [LeaseRecord] in
            let s = try state(pool)
            return s.slots.keys.sorted().map { record(s, $0, s.slots[$0]!) }
        }
    }

    public func statistics(of pool: String) throws(AddressPoolError) -> PoolStatistics {
        try lock.withLock { () throws(AddressPoolError) -> PoolStatistics in
            let s = try state(pool)
            let at = now()
            var st = PoolStatistics(name: pool, size: s.geometry.sizeDescription, active: 0, activeStatic: 0, released: 0, inQuietPeriod: 0)
            for e in s.slots.values {
                if let r = e.releasedAt {
                    st.released += 1
                    if !e.isStatic, at - r < s.config.quietPeriod { st.inQuietPeriod += 1 }
                } else {
                    st.active += 1
                    if e.isStatic { st.activeStatic += 1 }
                }
            }
            return st
        }
    }

    /// The number of distinct clients the store knows.
    public var clientCount: Int { lock.withLock { clientNames.count } }

    // MARK: Internals (lock held)

    private func state(_ name: String) throws(AddressPoolError) -> PoolState {
        guard let s = states[name] else { throw .unknownPool(name) }
        return s
    }

    private func intern(_ client: String) -> Int32 {
        if let c = clientIndex[client] { return c }
        let c = Int32(clientNames.count)
        clientNames.append(client)
        clientIndex[client] = c
        return c
    }

    static func validate(_ client: String) throws(AddressPoolError) {
        guard !client.isEmpty, client.utf8.count <= 256 else { throw .invalidClient("must be 1-256 bytes") }
        guard !client.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw .invalidClient("control characters in \(client.debugDescription)")
        }
    }

    private func record(_ s: PoolState, _ o: UInt128, _ e: SlotEntry) -> LeaseRecord {
        LeaseRecord(pool: s.config.name, prefix: s.geometry.prefix(at: o), client: clientNames[Int(e.client)],
                    isStatic: e.isStatic, allocatedAt: e.allocatedAt, releasedAt: e.releasedAt, position: o)
    }

    private func allocateLocked(_ client: String, _ s: PoolState, _ t: inout Transaction) throws(AddressPoolError) -> Lease {
        let c = intern(client)
        let at = now()
        // 1 and 2: the client's own slot, held or released.
        if let o = s.byClient[c], let e = s.slots[o], e.client == c {
            if e.releasedAt == nil { return record(s, o, e) }
            return set(s, o, SlotEntry(client: c, isStatic: e.isStatic, allocatedAt: at, releasedAt: nil), &t)
        }
        // 3: the lowest free slot.
        s.expireQuiet(now: at)
        while let o = s.reusable.min {
            // A released slot whose quiet period is over, or (a shared store) a row another writer deleted.
            let free: Bool
            if let e = s.slots[o] { free = e.releasedAt.map { r in !e.isStatic && at - r >= s.config.quietPeriod } ?? false } else { free = !s.isReserved(o) }
            if free {
                _ = s.reusable.removeMin()
                t.undo.append(.reusable(s, o))
                return set(s, o, SlotEntry(client: c, isStatic: false, allocatedAt: at, releasedAt: nil), &t)
            }
            _ = s.reusable.removeMin()   // stale: taken back by its client, or made static
        }
        let start = s.cursor
        while s.cursor < s.geometry.count {
            if let r = s.reservedRange(containing: s.cursor) { s.cursor = r.upperBound &+ 1; if r.upperBound == s.geometry.count - 1 { break }; continue }
            if s.geometry.isRFCReserved(s.cursor) || s.slots[s.cursor] != nil { s.cursor += 1; continue }
            t.undo.append(.cursor(s, start))
            if skipFree > 0, let o = s.freeSlot(after: s.cursor, skipping: skipFree - 1) {
                // A retry after a conflict on a shared store: the lowest free slots are those the
                // other gateways are taking right now (their transactions not yet visible); one
                // further up, leaving the cursor where it is (the slots below stay free for later).
                return set(s, o, SlotEntry(client: c, isStatic: false, allocatedAt: at, releasedAt: nil), &t)
            }
            let o = s.cursor
            s.cursor += 1
            return set(s, o, SlotEntry(client: c, isStatic: false, allocatedAt: at, releasedAt: nil), &t)
        }
        if s.cursor > s.geometry.count { s.cursor = s.geometry.count }
        let quiet = s.slots.values.reduce(0) { $0 + (($1.releasedAt.map { at - $0 < s.config.quietPeriod } ?? false) && !$1.isStatic ? 1 : 0) }
        throw .exhausted(pool: s.config.name, size: s.geometry.sizeDescription, inQuietPeriod: quiet)
    }

    @discardableResult
    private func releaseLocked(_ c: Int32, _ s: PoolState, _ o: UInt128, _ e: SlotEntry, at: Double, _ t: inout Transaction) -> LeaseRecord {
        var released = e
        released.releasedAt = at
        let r = set(s, o, released, &t)
        if !e.isStatic { s.quiet.append((o, at)) }
        return r
    }

    /// Changes one slot in memory, remembering how to undo it and what to commit.
    private func set(_ s: PoolState, _ o: UInt128, _ e: SlotEntry, _ t: inout Transaction) -> LeaseRecord {
        let previous = s.slots.updateValue(e, forKey: o)
        t.undo.append(.slot(s, o, previous))
        if let previous, previous.client != e.client, s.byClient[previous.client] == o {
            t.undo.append(.byClient(s, previous.client, o))
            s.byClient[previous.client] = nil
        }
        t.undo.append(.byClient(s, e.client, s.byClient[e.client]))
        s.byClient[e.client] = o
        let r = record(s, o, e)
        // What the store holds in the slot now: the entry before this transaction touched it.
        let key = LeaseKey(pool: s.config.name, prefix: r.prefix)
        if let i = t.index[key] {
            t.writes[i].record = r
        } else {
            t.index[key] = t.writes.count
            t.writes.append(LeaseWrite(r, previous: previous.map { record(s, o, $0) }))
        }
        return r
    }

    /// How many times a transaction is tried when a shared store reports a conflict (another
    /// gateway took the same slot at the same moment) before the conflict is the caller's.
    public static let conflictAttempts = 16

    /// Runs `body` under the lock, commits what it changed, and undoes it all if either fails. On a
    /// shared store's conflict: undone, the other writers' changes read, and `body` run again.
    private func transaction<T>(_ body: (inout Transaction) throws(AddressPoolError) -> T) throws(AddressPoolError) -> T {
        try lock.withLock { () throws(AddressPoolError) -> T in
            var attempt = 0
            // Under contention (a conflict in the last second) the first try already takes one of
            // the lowest 32 free slots at random rather than the lowest, which the other gateways
            // are likely taking too.
            if MonotonicClock.seconds() - lastConflictAt < 1 { skipFree = Int.random(in: 0..<32) }
            while true {
                var t = Transaction()
                do throws(AddressPoolError) {
                    let result = try body(&t)
                    if !t.writes.isEmpty { try store.commit(t.writes, removing: []) }
                    skipFree = 0
                    return result
                } catch {
                    for u in t.undo.reversed() { u.apply() }
                    attempt += 1
                    guard case .conflict = error, attempt < Self.conflictAttempts else { skipFree = 0; throw error }
                    conflicts += 1
                    lastConflictAt = MonotonicClock.seconds()
                    // The next try passes over a random number of free slots, from a window that
                    // doubles with each failed try (the others retry too: the same choice would
                    // meet them again).
                    skipFree = Int.random(in: 1...(4 << min(attempt, 6)))
                    do throws(AddressPoolError) { unreported += try refreshLocked() } catch { skipFree = 0; throw error }
                }
            }
        }
    }

    /// Free slots a retry passes over (lock held; 0 outside a retry), and when the last conflict was.
    private var skipFree = 0
    private var lastConflictAt = -1e9

    /// Conflicts met and retried since start (a shared store: two gateways wanting one slot).
    public private(set) var conflicts = 0
    /// Changes read by a conflict's retry and not yet handed to the owner: the next `refresh()`
    /// returns them (else the owner would never hear of those clients: their change is read once).
    private var unreported: [LeaseRecord] = []

    // MARK: Several writers

    /// A shared store: applies what other writers committed since the last call (or since load) to
    /// the pools in memory and returns the records that changed (their clients' leases may be new,
    /// moved or released). Empty for a store with one writer. Called by the allocator itself after
    /// a conflict, and by its owner when the store says something changed (gatewayd: a
    /// notification from the database).
    @discardableResult
    public func refresh() throws(AddressPoolError) -> [LeaseRecord] {
        try lock.withLock { () throws(AddressPoolError) -> [LeaseRecord] in
            let fresh = try refreshLocked()
            defer { unreported.removeAll() }
            return unreported + fresh
        }
    }

    private func refreshLocked() throws(AddressPoolError) -> [LeaseRecord] {
        guard let changes = try store.changes(), !changes.isEmpty else { return [] }
        let at = now()
        var changed: [LeaseRecord] = []
        for k in changes.removed {
            guard let s = states[k.pool], let o = s.geometry.offset(ofSlot: k.prefix), let e = s.slots[o] else { continue }
            s.slots[o] = nil
            if s.byClient[e.client] == o { s.byClient[e.client] = nil }
            // A freed place below the cursor is found again by the cursor's next pass only through
            // `reusable`.
            if o < s.cursor { s.reusable.insert(o) }
            changed.append(record(s, o, e))
        }
        // Released rows first, active ones last: a client moved from one slot to another ends on
        // the active one.
        let ordered = changes.records.sorted { ($0.releasedAt ?? .infinity) < ($1.releasedAt ?? .infinity) }
        for r in ordered {
            guard let s = states[r.pool], let o = s.geometry.offset(ofSlot: r.prefix) else {
                if !orphaned.contains(r) { orphaned.append(r) }
                continue
            }
            let c = intern(r.client)
            let entry = SlotEntry(client: c, isStatic: r.isStatic, allocatedAt: r.allocatedAt, releasedAt: r.releasedAt)
            if let e = s.slots[o], e == entry { continue }   // this writer's own commit
            let previous = s.slots.updateValue(entry, forKey: o)
            if let previous, previous.client != c, s.byClient[previous.client] == o { s.byClient[previous.client] = nil }
            // The client's slot: the active one, else the latest released.
            if let current = s.byClient[c], current != o, let ce = s.slots[current], ce.client == c,
               ce.releasedAt == nil || (r.releasedAt != nil && ce.releasedAt! >= r.releasedAt!) {
                // keeps its active (or later released) slot
            } else {
                s.byClient[c] = o
            }
            if let rel = r.releasedAt, !r.isStatic {
                if at - rel >= s.config.quietPeriod { s.reusable.insert(o) } else { s.quiet.append((o, rel)) }
            }
            changed.append(record(s, o, entry))
        }
        return changed
    }

    private func load() throws(AddressPoolError) {
        let records = try store.loadAll()
        let at = now()
        var released: [(PoolState, UInt128, Double)] = []
        clientIndex.reserveCapacity(records.count)
        clientNames.reserveCapacity(records.count)
        for s in states.values { s.slots.reserveCapacity(records.count); s.byClient.reserveCapacity(records.count) }
        var lastName = "", last: PoolState?
        var filled: [LeaseRecord] = []
        var moving: [(PoolState, UInt128, LeaseRecord)] = []
        for r in records {
            if r.pool != lastName { lastName = r.pool; last = states[r.pool] }
            guard let s = last, let o = s.geometry.offset(ofSlot: r.prefix) else {
                // Outside its pool: the pool's prefix changed (same kind, same slot length) and the
                // record knows its place; or it is an orphan.
                if let s = last, let p = r.position, p < s.geometry.count, r.prefix.length == s.geometry.slotLength,
                   r.prefix.isIPv6Family == s.geometry.isIPv6 {
                    moving.append((s, p, r))
                } else {
                    orphaned.append(r)
                }
                continue
            }
            if r.position != o { var f = r; f.position = o; filled.append(f) }
            place(r, in: s, at: o, &released)
        }
        // A renumbered record takes its old place in the new prefix unless a record of the new
        // prefix holds it, or the new pool reserves it (the gateway's own address...): then it is
        // kept as an orphan, said by `gatewayctl`, never dropped.
        var moved: [(old: LeaseRecord, new: LeaseRecord)] = []
        for (s, p, r) in moving {
            guard s.slots[p] == nil, !s.isReserved(p) else { orphaned.append(r); continue }
            var n = r
            n.prefix = s.geometry.prefix(at: p)
            moved.append((r, n))
            place(n, in: s, at: p, &released)
        }
        if !filled.isEmpty || !moved.isEmpty {
            // One transaction: the store now says what the allocator holds. A store opened
            // read-only (a reader's) keeps its rows; the mapping is the same at every load.
            do { try store.commit(filled + moved.map(\.new), removing: moved.map(\.old)) } catch {
                if !store.isReadOnly { throw error }
            }
        }
        renumbered = moved
        positionsFilled = filled.count
        released.sort { $0.2 < $1.2 }
        for (s, o, rel) in released {
            if at - rel >= s.config.quietPeriod { s.reusable.insert(o) } else { s.quiet.append((o, rel)) }
        }
    }

    /// Puts one loaded record in its pool's slot `o`.
    private func place(_ r: LeaseRecord, in s: PoolState, at o: UInt128, _ released: inout [(PoolState, UInt128, Double)]) {
            let c = intern(r.client)
            s.slots[o] = SlotEntry(client: c, isStatic: r.isStatic, allocatedAt: r.allocatedAt, releasedAt: r.releasedAt)
            // The client's slot: the active one, else the latest released.
            if let current = s.byClient[c], let ce = s.slots[current], current != o {
                let keepCurrent = ce.releasedAt == nil || (r.releasedAt != nil && (ce.releasedAt ?? 0) >= r.releasedAt!)
                if !keepCurrent { s.byClient[c] = o }
            } else {
                s.byClient[c] = o
            }
            if let rel = r.releasedAt, !r.isStatic { released.append((s, o, rel)) }
    }
}

/// Seconds since 1970, from the system clock.
public func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

struct SlotEntry: Sendable, Equatable {
    var client: Int32
    var isStatic: Bool
    var allocatedAt: Double
    var releasedAt: Double?
}

final class PoolState: @unchecked Sendable {
    var config: PoolConfiguration
    var geometry: PoolGeometry
    var reserved: [ClosedRange<UInt128>] = []
    var slots: [UInt128: SlotEntry] = [:]
    var byClient: [Int32: UInt128] = [:]
    /// Every free slot below the cursor is in `quiet` or `reusable`.
    var cursor: UInt128 = 0
    /// Released slots whose quiet period is over (entries may be stale; checked when popped).
    var reusable = Heap<UInt128>()
    /// Released slots in their quiet period, oldest first (entries may be stale).
    var quiet = Deque<(UInt128, Double)>()

    init(config: PoolConfiguration, geometry: PoolGeometry) { self.config = config; self.geometry = geometry }

    func reservedRange(containing o: UInt128) -> ClosedRange<UInt128>? {
        for r in reserved { if r.lowerBound > o { return nil }; if r.contains(o) { return r } }
        return nil
    }

    /// The free slot after `o` with `skipping` free ones passed over before it (never-used slots
    /// above the cursor), or nil when the pool has no such slot.
    func freeSlot(after o: UInt128, skipping: Int) -> UInt128? {
        var i = o + 1, left = skipping
        while i < geometry.count {
            if let r = reservedRange(containing: i) { if r.upperBound >= geometry.count - 1 { return nil }; i = r.upperBound + 1; continue }
            if geometry.isRFCReserved(i) || slots[i] != nil { i += 1; continue }
            if left == 0 { return i }
            left -= 1; i += 1
        }
        return nil
    }

    func isReserved(_ o: UInt128) -> Bool { geometry.isRFCReserved(o) || reservedRange(containing: o) != nil }

    func expireQuiet(now: Double) {
        while let (o, at) = quiet.first, now - at >= config.quietPeriod {
            quiet.removeFirst()
            if let e = slots[o], e.releasedAt == at, !e.isStatic { reusable.insert(o) }
        }
    }
}

struct Transaction {
    enum Undo {
        case slot(PoolState, UInt128, SlotEntry?)
        case byClient(PoolState, Int32, UInt128?)
        case cursor(PoolState, UInt128)
        case reusable(PoolState, UInt128)

        func apply() {
            switch self {
            case .slot(let s, let o, let e): s.slots[o] = e
            case .byClient(let s, let c, let o): s.byClient[c] = o
            case .cursor(let s, let o): s.cursor = o
            case .reusable(let s, let o): s.reusable.insert(o)
            }
        }
    }
    var undo: [Undo] = []
    /// What to commit: one write per slot (the last state), with what the slot held before.
    var writes: [LeaseWrite] = []
    var index: [LeaseKey: Int] = [:]
}

extension IPPrefix {
    var isIPv6Family: Bool { if case .v6 = self { true } else { false } }
}
