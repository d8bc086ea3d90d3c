// The lease store: where allocations become durable. A protocol, so that the SQLite store (one
// gateway) and a shared database (several gateways) are adapters behind the same allocator.
import PacketKit
import SixgateSystem

/// One row of the store: a slot of a pool and the client that holds it or last held it.
public struct LeaseRecord: Hashable, Sendable {
    public var pool: String
    /// The slot: a /128 or /32 for host pools, the delegated prefix for prefix pools.
    public var prefix: IPPrefix
    public var client: String
    /// Assigned by the operator rather than allocated.
    public var isStatic: Bool
    /// Seconds since 1970.
    public var allocatedAt: Double
    /// Set when the client released the slot; the row is kept so the client gets the slot back.
    public var releasedAt: Double?
    /// The slot's place in its pool: the host's offset from the pool's start (for a /64, its
    /// interface identifier) or the delegated prefix's index. What a client keeps when the pool's
    /// prefix changes (an ISP renumbering): the same place in the new prefix. nil in a record
    /// written before positions were kept; the allocator fills it in at load.
    public var position: UInt128?

    public init(pool: String, prefix: IPPrefix, client: String, isStatic: Bool, allocatedAt: Double, releasedAt: Double? = nil, position: UInt128? = nil) {
        self.pool = pool; self.prefix = prefix; self.client = client; self.isStatic = isStatic
        self.allocatedAt = allocatedAt; self.releasedAt = releasedAt; self.position = position
    }

    public var isActive: Bool { releasedAt == nil }
}

/// Durable storage for lease records. `commit` returns only once the records are durable: the
/// allocator reports an allocation after `commit` returns, never before.
///
/// A record is keyed by (pool, prefix): committing a record replaces the one with the same key.
public protocol LeaseStore: AnyObject, Sendable {
    /// Every record, active and released.
    func loadAll() throws(AddressPoolError) -> [LeaseRecord]
    /// Writes `records` and deletes the records keyed like `removing`, in one transaction (all or
    /// none), durably.
    func commit(_ records: [LeaseRecord], removing: [LeaseRecord]) throws(AddressPoolError)
    /// Where the store lives, for messages.
    var location: String { get }
    /// Opened for reading only (a reader beside the writer): commits fail.
    var isReadOnly: Bool { get }
    /// A value that differs after any commit that may have changed the records, from this process or
    /// another (a reader polls it cheaply and loads again only when it moved); nil when the store
    /// cannot tell, and a reader loads every time.
    var changeStamp: LeaseChangeStamp? { get }

    /// Writes as `commit(_:removing:)` does, each write only if its slot still holds what the
    /// writer read (`previous`; nil: no row). A store shared by several writers (several gateways
    /// on one database) checks it in the same transaction and, when another writer changed a slot
    /// meanwhile, writes nothing and throws `.conflict`; the allocator then reads the changes
    /// (`changes()`) and tries again. A store with one writer writes without checking.
    func commit(_ writes: [LeaseWrite], removing: [LeaseRecord]) throws(AddressPoolError)
    /// A shared store: what any writer (this one included) committed since the last call, or since
    /// `loadAll` for the first; a record changed twice comes once, as it is now. nil: the store has
    /// one writer, and the allocator's memory is the truth.
    func changes() throws(AddressPoolError) -> LeaseChanges?
    /// Tells the store the pools as this writer is configured (at open and after a renumbering), so
    /// a store that can check writes against them (a database shared by writers other than this
    /// allocator) does. Nothing for a store that cannot.
    func describe(pools: [PoolConfiguration]) throws(AddressPoolError)
}

extension LeaseStore {
    public var changeStamp: LeaseChangeStamp? { nil }
    public var isReadOnly: Bool { false }
    /// Writes `records` in one transaction (all or none), durably.
    public func commit(_ records: [LeaseRecord]) throws(AddressPoolError) { try commit(records, removing: []) }
    public func commit(_ writes: [LeaseWrite], removing: [LeaseRecord]) throws(AddressPoolError) {
        try commit(writes.map(\.record), removing: removing)
    }
    public func changes() throws(AddressPoolError) -> LeaseChanges? { nil }
    public func describe(pools: [PoolConfiguration]) throws(AddressPoolError) {}
}

/// A record to write and what its writer read in that slot before (nil: nothing, a new row).
public struct LeaseWrite: Sendable, Hashable {
    public var record: LeaseRecord
    public var previous: LeaseRecord?
    public init(_ record: LeaseRecord, previous: LeaseRecord?) { self.record = record; self.previous = previous }
}

/// A slot's key in a store: (pool, prefix).
public struct LeaseKey: Sendable, Hashable {
    public var pool: String
    public var prefix: IPPrefix
    public init(pool: String, prefix: IPPrefix) { self.pool = pool; self.prefix = prefix }
}

/// What a shared store's writers changed: rows as they are now, and rows deleted (a renumbering
/// moves rows: its old keys come as `removed`, its new rows as `records`).
public struct LeaseChanges: Sendable {
    public var records: [LeaseRecord]
    public var removed: [LeaseKey]
    public init(records: [LeaseRecord] = [], removed: [LeaseKey] = []) { self.records = records; self.removed = removed }
    public var isEmpty: Bool { records.isEmpty && removed.isEmpty }
}

/// What a store's `changeStamp` compares: for a file, its and its journal's modification times and
/// sizes; in memory, a commit counter.
public struct LeaseChangeStamp: Hashable, Sendable {
    public let parts: [Int64]
    public init(_ parts: [Int64]) { self.parts = parts }
}

/// A store in memory, for tests and for programs that need no persistence.
public final class MemoryLeaseStore: LeaseStore, @unchecked Sendable {
    private var rows: [String: LeaseRecord] = [:]
    private let lock = SystemLock()
    /// When set, `commit` throws this error instead of storing (fault injection for tests).
    public var failNextCommit: AddressPoolError?

    public init(_ records: [LeaseRecord] = []) { for r in records { rows[Self.key(r)] = r } }

    public var location: String { "memory" }

    public func loadAll() throws(AddressPoolError) -> [LeaseRecord] { lock.withLock { Array(rows.values) } }

    private var commits: Int64 = 0
    public var changeStamp: LeaseChangeStamp? { lock.withLock { LeaseChangeStamp([commits]) } }

    public func commit(_ records: [LeaseRecord], removing: [LeaseRecord]) throws(AddressPoolError) {
        let failure: AddressPoolError? = lock.withLock {
            if let f = failNextCommit { failNextCommit = nil; return f }
            for r in removing { rows[Self.key(r)] = nil }
            for r in records { rows[Self.key(r)] = r }
            commits += 1
            return nil
        }
        if let failure { throw failure }
    }

    static func key(_ r: LeaseRecord) -> String { "\(r.pool)|\(r.prefix)" }
}
