// The SQLite lease store, through GRDB: WAL (a reader such as gatewayctl reads while gatewayd
// writes), synchronous=FULL by default (a commit survives power loss, not only a crash), schema
// migrations from the first version, and one writer at a time enforced by a lock file.
import GRDB
import PacketKit
#if canImport(Glibc)
import Glibc
#endif

/// Leases in an SQLite database file.
///
/// Schema (migration "v1"): `leases(pool, prefix, client, static, allocated_at, released_at)`,
/// keyed by (pool, prefix), indexed by client; times are seconds since 1970; `prefix` is text as
/// PacketKit prints it ("2001:db8::4/128"), so `sqlite3 leases.db 'select * from leases'` reads well.
/// Migration "v2" adds `position` (decimal text, the slot's place in its pool; NULL in rows written
/// before it, which the allocator fills in when it next opens the store).
public final class SQLiteLeaseStore: LeaseStore, @unchecked Sendable {
    /// How hard a commit pushes to disk.
    public enum Durability: Sendable {
        /// fsync on every commit: survives power loss (the default).
        case full
        /// Survives a process crash (SIGKILL) but may lose the last commits on power loss.
        case normal
    }

    public let path: String
    public let isReadOnly: Bool
    public var location: String { path }
    private let database: DatabasePool
    private var lockDescriptor: Int32 = -1
    private var isUnmigratedEmpty = false
    private var hasPositions = true

    /// Opens (creating if needed, for a writer) the store at `path` and runs pending migrations.
    /// A writer takes `path + ".lock"`; a second writer gets an error naming the holder's PID.
    public init(path: String, readOnly: Bool = false, durability: Durability = .full) throws(AddressPoolError) {
        self.path = path
        self.isReadOnly = readOnly
        func fail(_ op: String, _ detail: String) -> AddressPoolError { .store(operation: op, path: path, detail: detail) }
        if !readOnly {
            let fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw fail("open lock file", String(cString: strerror(errno)) + " (does the directory exist and is it writable?)") }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                var buffer = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &buffer, 31, 0)
                let holder = n > 0 ? String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
                close(fd)
                throw fail("lock for writing", "another process (pid \(holder)) has it open for writing; stop it or open read-only")
            }
            let pid = "\(getpid())\n"
            _ = ftruncate(fd, 0)
            _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
            lockDescriptor = fd
        } else if access(path, R_OK) != 0 {
            throw fail("open", String(cString: strerror(errno)))
        }
        var config = Configuration()
        config.readonly = readOnly
        config.label = "sixgate-leases"
        let synchronous = durability == .full ? "FULL" : "NORMAL"
        config.prepareDatabase { db in
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        }
        do {
            database = try DatabasePool(path: path, configuration: config)
        } catch {
            if lockDescriptor >= 0 { close(lockDescriptor) }
            throw fail("open", "\(error)")
        }
        do {
            if readOnly {
                let (applied, hasTable) = try database.read { db in (try Self.migrator.appliedIdentifiers(db), try db.tableExists("leases")) }
                // A store the writer has not set up yet (created a moment ago, or a writer killed
                // before its first migration committed) holds no leases: read it as empty.
                if !applied.contains("v1") && !hasTable { isUnmigratedEmpty = true }
                guard applied.contains("v1") || isUnmigratedEmpty else { throw fail("open read-only", "the schema is older than this program; open it once for writing to migrate") }
                hasPositions = applied.contains("v2")
            } else {
                try Self.migrator.migrate(database)
            }
        } catch let e as AddressPoolError {
            throw e
        } catch {
            throw fail("migrate", "\(error)")
        }
    }

    deinit { if lockDescriptor >= 0 { close(lockDescriptor) } }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE leases (
                    pool TEXT NOT NULL,
                    prefix TEXT NOT NULL,
                    client TEXT NOT NULL,
                    static INTEGER NOT NULL DEFAULT 0,
                    allocated_at REAL NOT NULL,
                    released_at REAL,
                    PRIMARY KEY (pool, prefix)
                ) WITHOUT ROWID;
                CREATE INDEX leases_by_client ON leases(client);
                """)
        }
        m.registerMigration("v2") { db in
            try db.execute(sql: "ALTER TABLE leases ADD COLUMN position TEXT")
        }
        return m
    }

    public func loadAll() throws(AddressPoolError) -> [LeaseRecord] {
        if isUnmigratedEmpty {
            let ready = (try? database.read { db in try db.tableExists("leases") }) ?? false
            if !ready { return [] }
        }
        do {
            return try database.read { db in
                var out: [LeaseRecord] = []
                let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM leases") ?? 0
                out.reserveCapacity(count)
                // A reader beside a writer of the version before positions (v1) reads them as nil;
                // the writer may migrate while the reader runs.
                let positions = try hasPositions || db.columns(in: "leases").contains { $0.name == "position" }
                let rows = try Row.fetchCursor(db, sql: "SELECT pool, prefix, client, static, allocated_at, released_at, \(positions ? "position" : "NULL") FROM leases")
                while let row = try rows.next() {
                    let text: String = row[1]
                    guard let prefix = IPPrefix(text) else {
                        throw AddressPoolError.store(operation: "load", path: path, detail: "row with pool \(row[0] as String) has an unreadable prefix \(text.debugDescription)")
                    }
                    let position: String? = row[6]
                    out.append(LeaseRecord(pool: row[0], prefix: prefix, client: row[2], isStatic: row[3] as Int != 0,
                                           allocatedAt: row[4], releasedAt: row[5], position: position.flatMap { UInt128($0) }))
                }
                return out
            }
        } catch let e as AddressPoolError {
            throw e
        } catch {
            throw .store(operation: "load", path: path, detail: "\(error)")
        }
    }

    public func commit(_ records: [LeaseRecord], removing: [LeaseRecord]) throws(AddressPoolError) {
        guard !isReadOnly else { throw .store(operation: "commit", path: path, detail: "opened read-only") }
        do {
            try database.write { db in
                if !removing.isEmpty {
                    let delete = try db.cachedStatement(sql: "DELETE FROM leases WHERE pool = ? AND prefix = ?")
                    for r in removing { try delete.execute(arguments: [r.pool, r.prefix.description]) }
                }
                let statement = try db.cachedStatement(sql: """
                    INSERT OR REPLACE INTO leases (pool, prefix, client, static, allocated_at, released_at, position) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """)
                for r in records {
                    try statement.execute(arguments: [r.pool, r.prefix.description, r.client, r.isStatic ? 1 : 0, r.allocatedAt, r.releasedAt,
                                                      r.position.map { String($0) }])
                }
            }
        } catch {
            throw .store(operation: "commit", path: path, detail: "\(error)")
        }
    }

    /// The database file's and its write-ahead log's modification times and sizes: a commit by any
    /// process changes the log (and a checkpoint the file), so a reader that sees the same stamp
    /// has nothing new to load.
    public var changeStamp: LeaseChangeStamp? {
        var parts: [Int64] = []
        for p in [path, path + "-wal"] {
            var st = stat()
            if stat(p, &st) == 0 {
                parts += [Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec), Int64(st.st_size), Int64(bitPattern: UInt64(st.st_ino))]
            } else {
                parts += [-1, -1, -1, -1]
            }
        }
        return LeaseChangeStamp(parts)
    }

    /// SQLite's own consistency check (`PRAGMA integrity_check`); "ok" when sound.
    public func integrityCheck() throws(AddressPoolError) -> String {
        do {
            return try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
        } catch {
            throw .store(operation: "integrity check", path: path, detail: "\(error)")
        }
    }
}
