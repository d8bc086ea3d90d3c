// Leases in PostgreSQL, shared by the gateways of a group. Correct when several allocate at the
// same moment by constraints and transactions, not by luck:
// - the primary key (pool, prefix): one row per slot;
// - a unique index on (pool, client) over active rows: one active slot per client and pool;
// - every write is conditional on what its writer read (`commit(_: [LeaseWrite], ...)`): a new row
//   is inserted only if none exists, a row is updated only if it still holds what was read; when
//   either finds another gateway got there first, the transaction is rolled back and the allocator
//   reads the changes and tries again.
// The change feed: every row carries the id of the transaction that wrote it (`xid`); a reader
// asks for rows with xid >= its cursor and moves its cursor to its snapshot's xmin, the oldest
// transaction still running, so a transaction that commits late is read the next time, never
// skipped. Commits NOTIFY `sixgate_leases` (PostgresListener) so readers know when to ask.
import AddressPool
import PacketKit
import SixgateSystem

public final class PostgresLeaseStore: LeaseStore, @unchecked Sendable {
    /// The channel commits notify on.
    public static let channel = "sixgate_leases"

    public let db: PostgresConnection
    public let isReadOnly: Bool
    public var location: String { db.location }
    private let lock = SystemLock()
    /// The change feed's cursor: the xmin of the snapshot last read (nil before `loadAll`).
    private var cursor: String?
    private var listener: PostgresListener?

    /// Connects, and (for a writer) brings the schema up to date; a schema newer than the program
    /// is refused. `watch`: a listener counts commits by others, so `changeStamp` moves when they
    /// commit (for readers such as ndp-proxy's kernel mode).
    public init(_ conninfo: String, readOnly: Bool = false, watch: Bool = false) throws(AddressPoolError) {
        do throws(PostgresError) {
            db = try PostgresConnection(conninfo, applicationName: readOnly ? "sixgate reader" : "sixgate")
            isReadOnly = readOnly
            if readOnly {
                let v = try PostgresSchema.version(db)
                guard v <= PostgresSchema.current else {
                    throw PostgresError(database: db.location, operation: "open", message: "the schema is at version \(v), newer than this program knows (\(PostgresSchema.current)): upgrade Sixgate")
                }
                guard v > 0 else { throw PostgresError(database: db.location, operation: "open", message: "no Sixgate schema yet: start gatewayd on it once, or run `gatewayctl database migrate`") }
            } else {
                try PostgresSchema.migrate(db)
            }
            if watch {
                let pid = db.backendPID
                listener = try PostgresListener(conninfo, channels: [Self.channel], ignoring: { [pid] }, callback: { _ in })
            }
        } catch {
            throw Self.fail(error)
        }
    }

    /// An opened connection (the schema migrated by its owner).
    public init(connection: PostgresConnection, readOnly: Bool = false) {
        db = connection; isReadOnly = readOnly
    }

    deinit { listener?.stop() }

    static func fail(_ e: PostgresError) -> AddressPoolError {
        .store(operation: e.operation, path: e.database, detail: e.message + (e.sqlState.map { " (SQLSTATE \($0))" } ?? ""))
    }

    public var changeStamp: LeaseChangeStamp? { listener.map { LeaseChangeStamp([$0.generation]) } }

    static let columns = "pool, prefix::text, client, static, allocated_at, released_at, position::text"

    static func record(_ row: [String?], location: String) throws(AddressPoolError) -> LeaseRecord {
        guard let pool = row[0], let text = row[1], let prefix = IPPrefix(text), let client = row[2],
              let allocated = row[4].flatMap(Double.init) else {
            throw .store(operation: "load", path: location, detail: "a row of table leases is unreadable: \(row.map { $0 ?? "NULL" })")
        }
        return LeaseRecord(pool: pool, prefix: prefix, client: client, isStatic: row[3] == "t", allocatedAt: allocated,
                           releasedAt: row[5].flatMap(Double.init), position: row[6].flatMap { UInt128($0) })
    }

    public func loadAll() throws(AddressPoolError) -> [LeaseRecord] {
        try lock.withLock { () throws(AddressPoolError) -> [LeaseRecord] in
            let (rows, xmin): (PostgresRows, String?)
            do throws(PostgresError) {
                let r = try db.snapshot(["SELECT \(Self.columns) FROM leases"], operation: "load leases")
                (rows, xmin) = (r.rows[0], r.xmin)
            } catch {
                throw Self.fail(error)
            }
            var out: [LeaseRecord] = []
            out.reserveCapacity(rows.count)
            for row in rows.rows { out.append(try Self.record(row, location: location)) }
            cursor = xmin
            return out
        }
    }

    public func changes() throws(AddressPoolError) -> LeaseChanges? {
        try lock.withLock { () throws(AddressPoolError) -> LeaseChanges? in
            guard let since = cursor else { return LeaseChanges() }
            let (rows, removed, xmin): (PostgresRows, PostgresRows, String?)
            do throws(PostgresError) {
                let r = try db.snapshot(["SELECT \(Self.columns) FROM leases WHERE xid >= $1::xid8",
                                         "SELECT pool, prefix::text FROM lease_removals WHERE xid >= $1::xid8"], [since], operation: "read lease changes")
                (rows, removed, xmin) = (r.rows[0], r.rows[1], r.xmin)
            } catch {
                throw Self.fail(error)
            }
            var out = LeaseChanges()
            for row in rows.rows { out.records.append(try Self.record(row, location: location)) }
            for row in removed.rows {
                guard let pool = row[0], let p = row[1].flatMap(IPPrefix.init) else { continue }
                out.removed.append(LeaseKey(pool: pool, prefix: p))
            }
            cursor = xmin
            return out
        }
    }

    static func parameters(_ r: LeaseRecord) -> [String?] {
        [r.pool, r.prefix.description, r.client, r.isStatic ? "t" : "f", String(r.allocatedAt), r.releasedAt.map { String($0) }, r.position.map { String($0) }]
    }

    /// Writes without conditions (a renumbering's moves, positions filled in at load): an upsert.
    public func commit(_ records: [LeaseRecord], removing: [LeaseRecord]) throws(AddressPoolError) {
        try commit(records.map { LeaseWrite($0, previous: nil) }, removing: removing, conditional: false)
    }

    public func commit(_ writes: [LeaseWrite], removing: [LeaseRecord]) throws(AddressPoolError) {
        try commit(writes, removing: removing, conditional: true)
    }

    private func commit(_ writes: [LeaseWrite], removing: [LeaseRecord], conditional: Bool) throws(AddressPoolError) {
        guard !isReadOnly else { throw .store(operation: "commit", path: location, detail: "opened read-only") }
        var conflict: LeaseRecord?
        do throws(PostgresError) {
            try db.transaction(operation: "commit leases") { (t) throws(PostgresError) in
                for r in removing {
                    try t.query("DELETE FROM leases WHERE pool = $1 AND prefix = $2::cidr", [r.pool, r.prefix.description])
                }
                for w in writes {
                    let p = Self.parameters(w.record)
                    let done: Int
                    if !conditional {
                        done = try t.query("""
                            INSERT INTO leases (pool, prefix, client, static, allocated_at, released_at, position) VALUES ($1, $2::cidr, $3, $4::boolean, $5::float8, $6::float8, $7::numeric)
                            ON CONFLICT (pool, prefix) DO UPDATE SET client = excluded.client, static = excluded.static, allocated_at = excluded.allocated_at,
                                released_at = excluded.released_at, position = excluded.position
                            """, p).affected
                    } else if let was = w.previous {
                        done = try t.query("""
                            UPDATE leases SET client = $3, static = $4::boolean, allocated_at = $5::float8, released_at = $6::float8, position = $7::numeric
                            WHERE pool = $1 AND prefix = $2::cidr AND client = $8 AND static = $9::boolean AND allocated_at = $10::float8 AND released_at IS NOT DISTINCT FROM $11::float8
                            """, p + [was.client, was.isStatic ? "t" : "f", String(was.allocatedAt), was.releasedAt.map { String($0) }]).affected
                    } else {
                        done = try t.query("""
                            INSERT INTO leases (pool, prefix, client, static, allocated_at, released_at, position) VALUES ($1, $2::cidr, $3, $4::boolean, $5::float8, $6::float8, $7::numeric)
                            ON CONFLICT (pool, prefix) DO NOTHING
                            """, p).affected
                    }
                    if done == 0 {
                        conflict = w.record
                        throw PostgresError(database: location, operation: "commit leases", sqlState: "40001", message: "changed by another writer")
                    }
                }
            }
        } catch {
            if error.isConflict, !isReadOnly {
                let r = conflict ?? writes.first?.record
                throw .conflict(pool: r?.pool ?? "?", address: r?.prefix.description ?? "?", store: location)
            }
            throw Self.fail(error)
        }
    }

    /// Writes the pools as this gateway is configured (`pools`: name, prefix, slot length, kind);
    /// the database refuses a lease outside its pool from then on, whoever writes it.
    public func describe(pools: [PoolConfiguration]) throws(AddressPoolError) {
        guard !isReadOnly else { return }
        do throws(PostgresError) {
            try db.transaction(operation: "write the pools") { (t) throws(PostgresError) in
                for p in pools {
                    let slot: Int
                    switch p.kind {
                    case .ipv6Hosts, .ipv6Addresses: slot = 128
                    case .ipv4Hosts: slot = 32
                    case .ipv6Prefixes(let l): slot = Int(l)
                    }
                    try t.query("""
                        INSERT INTO pools (name, prefix, slot_length, kind) VALUES ($1, $2::cidr, $3::integer, $4)
                        ON CONFLICT (name) DO UPDATE SET prefix = excluded.prefix, slot_length = excluded.slot_length, kind = excluded.kind, updated_at = now()
                        WHERE (pools.prefix, pools.slot_length, pools.kind) IS DISTINCT FROM (excluded.prefix, excluded.slot_length, excluded.kind)
                        """, [p.name, p.prefix.description, String(slot), p.kind.description])
                }
            }
        } catch {
            throw Self.fail(error)
        }
    }

    /// The store's own backend PID (a listener ignores this process's notifications).
    public var backendPID: Int32 { db.backendPID }
}
