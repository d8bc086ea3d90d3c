// Several gateways as one (issue 25): with `[group] database`, the leases and the clients live in
// PostgreSQL (SixgatePostgres), and each gateway follows what the others change: a listener hears
// their commits (NOTIFY), a worker reads the changes (the stores' change feeds, by transaction id)
// and applies them like a local change, one client's part at a time. The database going away does
// not stop the gateway: it keeps every client it holds, enrolment fails naming the database, and
// the listener connects again by itself (then everything missed is read from the feeds).
import AddressPool
import Foundation
import RouteKit
import SixgatePostgres
import SixgateSystem
import TunnelCore

/// The clients of a group, in the database's `clients` table.
public final class PostgresClientStore: ClientStore, @unchecked Sendable {
    public let db: PostgresConnection
    private let lock = SystemLock()
    /// The change feed's cursor (the xmin of the snapshot `all()` or `changes()` last read).
    private var cursor: String?

    /// On an open connection whose schema is migrated (`PostgresSchema.migrate`).
    public init(connection: PostgresConnection) { db = connection }

    func fail(_ e: PostgresError) -> GatewayError {
        .io(path: "database \(e.database)", detail: "\(e.operation) failed: \(e.message)")
    }

    static let columns = "name, public_key, array_to_string(open, ' '), isolated"

    func record(_ row: [String?]) throws(GatewayError) -> ClientRecord {
        let name = row[0] ?? ""
        let what = "database \(db.location): client \(name.debugDescription)"
        try ClientRegistry.validate(name: name)
        guard let key = row[1], Bytes32(base64: key) != nil else { throw .io(path: what, detail: "public_key \((row[1] ?? "NULL").debugDescription) is not a WireGuard public key") }
        var open: [PortOpening] = []
        for s in (row[2] ?? "").split(separator: " ") {
            do { open.append(try PortOpening(parsing: String(s))) } catch { throw .io(path: what, detail: "open: \(error)") }
        }
        return ClientRecord(name: name, publicKey: key, open: open, isolated: row[3] != "f")
    }

    public func all() throws(GatewayError) -> [ClientRecord] {
        try lock.withLock { () throws(GatewayError) -> [ClientRecord] in
            let (rows, xmin): (PostgresRows, String?)
            do throws(PostgresError) {
                let r = try db.snapshot(["SELECT \(Self.columns) FROM clients ORDER BY name"], operation: "read the clients")
                (rows, xmin) = (r.rows[0], r.xmin)
            } catch {
                throw fail(error)
            }
            var out: [ClientRecord] = []
            for row in rows.rows { out.append(try record(row)) }
            cursor = xmin
            return out
        }
    }

    public func read(_ name: String) throws(GatewayError) -> ClientRecord {
        try ClientRegistry.validate(name: name)
        let rows: PostgresRows
        do { rows = try db.query("SELECT \(Self.columns) FROM clients WHERE name = $1", [name], operation: "read client \(name)") } catch { throw fail(error) }
        guard rows.count == 1 else { throw .unknownClient(name) }
        return try record(rows.rows[0])
    }

    static func parameters(_ c: ClientRecord) -> [String?] {
        [c.name, c.publicKey, "{" + c.open.map(\.description).joined(separator: ",") + "}", c.isolated ? "t" : "f"]
    }

    /// Which client holds `key` (for the message when a write meets the unique constraint).
    func holder(of key: String) -> String {
        ((try? db.query("SELECT name FROM clients WHERE public_key = $1", [key]))?.rows.first?[0] ?? nil) ?? "?"
    }

    public func write(_ c: ClientRecord) throws(GatewayError) {
        try ClientRegistry.validate(name: c.name)
        guard Bytes32(base64: c.publicKey) != nil else { throw .invalidKey(c.publicKey) }
        do {
            try db.query("""
                INSERT INTO clients (name, public_key, open, isolated) VALUES ($1, $2, $3::text[], $4::boolean)
                ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key, open = excluded.open, isolated = excluded.isolated
                """, Self.parameters(c), operation: "write client \(c.name)")
        } catch {
            if error.sqlState == "23505" { throw .keyInUse(key: c.publicKey, client: holder(of: c.publicKey)) }
            throw fail(error)
        }
    }

    public func create(_ c: ClientRecord) throws(GatewayError) {
        try ClientRegistry.validate(name: c.name)
        guard Bytes32(base64: c.publicKey) != nil else { throw .invalidKey(c.publicKey) }
        do {
            try db.query("INSERT INTO clients (name, public_key, open, isolated) VALUES ($1, $2, $3::text[], $4::boolean)",
                         Self.parameters(c), operation: "enrol client \(c.name)")
        } catch {
            if error.sqlState == "23505" {
                if error.constraint == "clients_pkey" { throw .clientExists(c.name) }
                throw .keyInUse(key: c.publicKey, client: holder(of: c.publicKey))
            }
            throw fail(error)
        }
    }

    public func checkNew(_ c: ClientRecord) throws(GatewayError) {
        let rows: PostgresRows
        do {
            rows = try db.query("SELECT name, public_key FROM clients WHERE name = $1 OR public_key = $2", [c.name, c.publicKey], operation: "enrol client \(c.name)")
        } catch {
            throw fail(error)
        }
        if rows.rows.contains(where: { $0[0] == c.name }) { throw .clientExists(c.name) }
        if let other = rows.rows.first { throw .keyInUse(key: c.publicKey, client: other[0] ?? "?") }
    }

    public func remove(_ name: String) throws(GatewayError) {
        try ClientRegistry.validate(name: name)
        let done: Int
        do { done = try db.query("DELETE FROM clients WHERE name = $1", [name], operation: "remove client \(name)").affected } catch { throw fail(error) }
        guard done == 1 else { throw .unknownClient(name) }
    }

    public func changes() throws(GatewayError) -> (written: [ClientRecord], removed: [String])? {
        try lock.withLock { () throws(GatewayError) -> (written: [ClientRecord], removed: [String])? in
            guard let since = cursor else { return ([], []) }
            let (rows, removed, xmin): (PostgresRows, PostgresRows, String?)
            do throws(PostgresError) {
                let r = try db.snapshot(["SELECT \(Self.columns) FROM clients WHERE xid >= $1::xid8",
                                         "SELECT DISTINCT name FROM client_removals WHERE xid >= $1::xid8 AND name NOT IN (SELECT name FROM clients)"],
                                        [since], operation: "read client changes")
                (rows, removed, xmin) = (r.rows[0], r.rows[1], r.xmin)
            } catch {
                throw fail(error)
            }
            var written: [ClientRecord] = []
            for row in rows.rows { written.append(try record(row)) }
            cursor = xmin
            return (written, removed.rows.compactMap { $0[0] })
        }
    }

    /// The channel a handshake is announced on (payload: client TAB gateway).
    public static let sessionsChannel = "sixgate_sessions"

    /// Notes a handshake of `client` with gateway `gateway` from `endpoint` (status: which gateway
    /// holds which client; the others stop announcing the client, and know where it was when it
    /// comes to them by anycast).
    public func noteHandshake(client: String, gateway: String, endpoint: String?) throws(GatewayError) {
        do {
            try db.transaction(operation: "note a handshake of \(client)") { (t) throws(PostgresError) in
                try t.query("""
                    INSERT INTO gateway_sessions (client, gateway, last_handshake, endpoint) VALUES ($1, $2, now(), $3)
                    ON CONFLICT (client, gateway) DO UPDATE SET last_handshake = now(), endpoint = excluded.endpoint
                    """, [client, gateway, endpoint])
                try t.query("SELECT pg_notify($1, $2 || chr(9) || $3)", [Self.sessionsChannel, client, gateway])
            }
        } catch {
            throw fail(error)
        }
    }

    /// The client whose latest handshake with any gateway of the group came from `endpoint`.
    public func client(at endpoint: String) throws(GatewayError) -> String? {
        do {
            return try db.query("SELECT client FROM gateway_sessions WHERE endpoint = $1 ORDER BY last_handshake DESC LIMIT 1",
                                [endpoint], operation: "look up the client at \(endpoint)").rows.first?[0] ?? nil
        } catch {
            throw fail(error)
        }
    }

    /// For each client, the gateway that had its latest handshake, and when (seconds since 1970).
    public func sessions() throws(GatewayError) -> [String: (gateway: String, at: Int64)] {
        let rows: PostgresRows
        do {
            rows = try db.query("""
                SELECT DISTINCT ON (client) client, gateway, extract(epoch FROM last_handshake)::bigint FROM gateway_sessions ORDER BY client, last_handshake DESC
                """, operation: "read the sessions")
        } catch {
            throw fail(error)
        }
        var out: [String: (gateway: String, at: Int64)] = [:]
        for r in rows.rows { if let c = r[0], let g = r[1] { out[c] = (g, r[2].flatMap { Int64($0) } ?? 0) } }
        return out
    }
}

/// The stores a configuration names: the state directory's files, or the group's database.
public struct GatewayStores: Sendable {
    public let leases: any LeaseStore
    public let clients: any ClientStore
    /// The group's connection (nil for one gateway on its files).
    public let database: PostgresConnection?

    /// Opens (creating, for a writer) the lease store and the client registry. With `[group]
    /// database`: connects, brings the schema up to date (refusing a newer one) and shares one
    /// connection between both; an error names the database and why.
    public static func open(_ config: GatewayConfiguration, readOnly: Bool = false) throws(GatewayError) -> GatewayStores {
        guard let conninfo = config.groupDatabase else {
            do {
                let store = try SQLiteLeaseStore(path: config.leaseStorePath, readOnly: readOnly)
                return GatewayStores(leases: store, clients: ClientRegistry(directory: config.clientsDirectory), database: nil)
            } catch {
                throw .setup("lease store", error)
            }
        }
        do {
            let db = try PostgresConnection(conninfo, applicationName: "sixgate \(config.groupName)")
            if readOnly {
                let v = try PostgresSchema.version(db)
                guard v > 0 else { throw PostgresError(database: db.location, operation: "open", message: "no Sixgate schema yet: start gatewayd on it once") }
                guard v <= PostgresSchema.current else {
                    throw PostgresError(database: db.location, operation: "open", message: "the schema is at version \(v), newer than this program knows (\(PostgresSchema.current)): upgrade Sixgate")
                }
            } else {
                try PostgresSchema.migrate(db, program: "gatewayd \(config.groupName)")
            }
            return GatewayStores(leases: PostgresLeaseStore(connection: db, readOnly: readOnly), clients: PostgresClientStore(connection: db), database: db)
        } catch {
            throw .setup(SetupFailure("group database", "\(error)", underlying: error))
        }
    }
}

/// The group's runtime state inside a gateway.
final class GroupState: @unchecked Sendable {
    var listener: PostgresListener?
    /// Clients whose routes this gateway announces (their session is here; the gateway's lock).
    var announced: Set<String> = []
    /// When, and from which endpoint, each client's handshake was last written to the sessions
    /// table (the worker's): a rekey every two minutes per client is not written again unless its
    /// endpoint moved or ten minutes passed, so 100,000 clients do not make 800 writes a second.
    var noted: [String: (at: Double, endpoint: String?)] = [:]
    let worker = SerialWorker(name: "sg-group")
    let lock = SystemLock()
    var pending = false
    var lost = false
}

extension Gateway {
    /// Starts following the group (end of `start`): the listener, and one sync for what changed
    /// between opening the stores and now.
    func startGroup() {
        guard let conninfo = config.groupDatabase, let db = stores.database else { return }
        let state = GroupState()
        group = state
        do {
            let channels = [PostgresLeaseStore.channel, "sixgate_clients", PostgresClientStore.sessionsChannel]
            state.listener = try PostgresListener(conninfo, channels: channels, ignoring: { [db] in [db.backendPID] }) { [weak self] event in
                self?.groupEvent(event)
            }
        } catch {
            log("group: cannot listen for the other gateways' changes on \(db.location): \(error); retried by the watcher")
        }
        // A client sent here by the anycast route without a session: answered with a handshake.
        device?.reportsUnknownSessions = true
        scheduleGroupSync()
    }

    func stopGroup() {
        group?.listener?.stop()
        group?.worker.drain()
        group = nil
    }

    func groupEvent(_ event: PostgresListener.Event) {
        guard let state = group else { return }
        switch event {
        case .changed(let channel, let payload) where channel == PostgresClientStore.sessionsChannel:
            // Another gateway has this client's session now: this one stops drawing its traffic.
            let parts = payload.split(separator: "\t", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[1] != config.groupName else { return }
            state.worker.submit { [weak self] in
                state.noted[parts[0]] = nil   // its next handshake here is written again
                self?.setAnnounced(parts[0], false, "its session moved to \(parts[1])")
            }
        case .changed: scheduleGroupSync()
        case .resync:
            state.lock.withLock { state.lost = false }
            log("group: database \(stores.database?.location ?? "") is back; reading what changed meanwhile")
            scheduleGroupSync()
        case .lost(let e):
            state.lock.withLock { state.lost = true }
            log("group: lost the database (\(e)); every client this gateway holds keeps working, enrolment fails until it is back; reconnecting")
        }
    }

    /// Coalesces: while a sync is queued, more notifications add nothing (it reads all of them).
    func scheduleGroupSync() {
        guard let state = group else { return }
        let queue = state.lock.withLock { () -> Bool in
            if state.pending { return false }
            state.pending = true
            return true
        }
        guard queue else { return }
        state.worker.submit { [weak self] in
            state.lock.withLock { state.pending = false }
            self?.syncGroup()
        }
    }

    /// Reads the others' changes and applies them (lease moves, new, changed and removed clients).
    func syncGroup() {
        lock.lock(); defer { lock.unlock() }
        var touched = Set<String>()
        do {
            for r in try allocator.refresh() {
                let clat = GatewayPlanner.clatKey("")
                touched.insert(r.client.hasSuffix(clat) ? String(r.client.dropLast(clat.count)) : r.client)
            }
        } catch {
            log("group: reading lease changes: \(error)")
        }
        var added = 0, removed = 0
        do {
            if let (written, gone) = try registry.changes() {
                for c in written where peersByName[c.name] != c {
                    if let old = peersByName[c.name], old.publicKey != c.publicKey, let k = Bytes32(base64: old.publicKey) { device?.removePeer(k) }
                    if peersByName[c.name] == nil { added += 1 }
                    peersByName[c.name] = c
                    touched.insert(c.name)
                }
                for name in gone {
                    guard let c = peersByName.removeValue(forKey: name) else { continue }
                    if let k = Bytes32(base64: c.publicKey) { device?.removePeer(k) }
                    touched.insert(name); removed += 1
                }
            }
        } catch {
            log("group: reading client changes: \(error)")
        }
        var firewall = FirewallBatch()
        for name in touched.sorted() {
            if let c = peersByName[name] {
                do { try setPeer(c) } catch { log("group: \(error)") }
            }
            applyClient(name, "group: client \(name)", firewall: &firewall)
        }
        updateFirewall(firewall)
        if added + removed > 0 { log("group: \(added) client(s) enrolled and \(removed) removed on other gateways") }
    }

    /// After a handshake with `client` (group worker; never on a packet thread): its routes are
    /// announced from here, and the group's sessions table says so (the other gateways withdraw).
    func groupHandshake(_ client: String, endpoint: Endpoint?) {
        guard let state = group else { return }
        state.worker.submit { [weak self] in
            guard let self else { return }
            self.setAnnounced(client, true, "handshake")
            guard let store = self.registry as? PostgresClientStore else { return }
            let now = MonotonicClock.seconds(), text = endpoint?.description
            if let last = state.noted[client], last.endpoint == text, now - last.at < 600 { return }
            do {
                try store.noteHandshake(client: client, gateway: self.config.groupName, endpoint: text)
                state.noted[client] = (now, text)
            } catch {
                self.log("group: \(error)")
            }
        }
    }

    /// Announces (or withdraws) a client's routes through `announce_table` (group worker).
    func setAnnounced(_ client: String, _ on: Bool, _ why: String) {
        guard config.announceTable != nil, let state = group else { return }
        lock.lock(); defer { lock.unlock() }
        guard state.announced.contains(client) != on, peersByName[client] != nil || !on else { return }
        if on { state.announced.insert(client) } else { state.announced.remove(client) }
        applyClient(client, "announce \(client)")
        if !on { log("group: no longer announcing \(client): \(why)") }
    }

    /// A transport message from `endpoint` for a session this gateway does not have (group worker):
    /// when the group's sessions table says which client was there, the gateway starts a
    /// handshake toward it at once, instead of waiting for the client's own retry (15 s or more).
    func groupUnknownSession(_ endpoint: Endpoint) {
        guard let state = group, let store = registry as? PostgresClientStore else { return }
        state.worker.submit { [weak self] in
            guard let self else { return }
            let name: String?
            do { name = try store.client(at: endpoint.description) } catch { self.log("group: \(error)"); return }
            guard let name else { return }
            self.lock.lock()
            let record = self.peersByName[name]
            if let record { try? self.setPeer(record, endpoint: endpoint) }
            let started = record.flatMap { Bytes32(base64: $0.publicKey) }.map { self.device?.initiateHandshake(with: $0) ?? false } ?? false
            self.lock.unlock()
            if started { self.log("group: \(name) came here from \(endpoint) without a session (its gateway went away?): handshake started") }
        }
    }
}
