// One connection to PostgreSQL through libpq (Debian libpq-dev): blocking calls, parameters sent
// apart from the SQL text (never spliced into it), errors that name the database and the operation,
// and a connection that comes back by itself after the server went away.
//
// Why libpq and not postgres-nio: the lease store's contract is synchronous (the allocator returns a
// lease only after `commit` returned, under its lock, on gatewayd's own threads; there is no event
// loop to run a NIO client on), libpq is the server's own client (connection strings, service files,
// ~/.pgpass, SCRAM, TLS and libpq's environment variables all mean what an operator knows them to
// mean), and it adds neither build time nor megabytes to the binaries (docs/ARCHITECTURE.md).
import CLibPQ
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// What failed, on which database, and why: the server's message and SQLSTATE when it sent one.
public struct PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The database as `PostgresConnection.location` names it (no password).
    public var database: String
    /// What was being done ("connect", "migrate", "commit leases", ...).
    public var operation: String
    /// The server's five-character SQLSTATE ("23505": a unique constraint), nil for a client-side
    /// failure (connection refused, the server gone).
    public var sqlState: String?
    public var message: String
    /// The constraint a statement violated ("clients_pkey"), when the server names one.
    public var constraint: String?

    public init(database: String, operation: String, sqlState: String? = nil, message: String, constraint: String? = nil) {
        self.database = database; self.operation = operation; self.sqlState = sqlState; self.message = message; self.constraint = constraint
    }

    /// A unique constraint or a serialisation failure: another writer got there first.
    public var isConflict: Bool { ["23505", "40001", "40P01"].contains(sqlState ?? "") }
    /// The connection failed (not the statement): the next call reconnects.
    public var isConnectionFailure: Bool { sqlState == nil || sqlState!.hasPrefix("08") || sqlState == "57P01" || sqlState == "57P03" }

    public var description: String {
        "database \(database): \(operation) failed: \(message)\(sqlState.map { " (SQLSTATE \($0))" } ?? "")"
    }
}

/// A notification (`NOTIFY channel, 'payload'`) from another session.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// The sending backend's process id (a session can tell its own notifications).
    public var senderPID: Int32
}

/// One libpq connection. Thread-safe: calls are serialised by a lock (one statement at a time, as
/// libpq requires); a transaction holds the lock throughout.
///
/// ```swift
/// let db = try PostgresConnection("host=/run/postgresql dbname=sixgate")
/// let rows = try db.query("SELECT client FROM leases WHERE pool = $1", ["v6"])
/// ```
public final class PostgresConnection: @unchecked Sendable {
    /// The connection string as given (may hold a password: never printed).
    let conninfo: String
    /// The database for messages: `dbname on host:port` from libpq's view of the string.
    public let location: String
    private var conn: OpaquePointer?
    private let lock = SystemLock()
    private var inTransaction = false
    /// The server's process id for this session (0 when not connected).
    public private(set) var backendPID: Int32 = 0

    /// Connects with a libpq connection string (`host=/run/postgresql dbname=sixgate` or a
    /// `postgresql://` URI). The connection is opened now; a failure names the database.
    public init(_ conninfo: String, applicationName: String = "sixgate") throws(PostgresError) {
        self.conninfo = conninfo
        self.location = Self.describe(conninfo)
        self.applicationName = applicationName
        try lock.withLock { () throws(PostgresError) in try connectLocked() }
    }

    let applicationName: String

    deinit { if let conn { PQfinish(conn) } }

    /// `dbname on host:port`, parsed the way libpq parses the string (defaults filled in), without
    /// the password.
    static func describe(_ conninfo: String) -> String {
        var err: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &err) else {
            if let err { PQfreemem(err) }
            return "(unreadable connection string)"
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var p = options
        while let k = p.pointee.keyword {
            if let v = p.pointee.val { values[String(cString: k)] = String(cString: v) }
            p += 1
        }
        let env = { (name: String) -> String? in getenv(name).map { String(cString: $0) } }
        let db = values["dbname"] ?? env("PGDATABASE") ?? values["user"] ?? env("PGUSER") ?? "postgres"
        let host = values["host"] ?? values["hostaddr"] ?? env("PGHOST") ?? "/var/run/postgresql"
        let port = values["port"] ?? env("PGPORT") ?? "5432"
        return "\(db) on \(host):\(port)"
    }

    private func connectLocked() throws(PostgresError) {
        if let conn { PQfinish(conn); self.conn = nil }
        backendPID = 0
        let keys = ["dbname", "fallback_application_name", "connect_timeout"]
        let values = [conninfo, applicationName, "5"]
        // expand_dbname = 1: the first value is a whole connection string or URI.
        let c: OpaquePointer? = keys.withCStrings { k in values.withCStrings { v in PQconnectdbParams(k, v, 1) } }
        guard let c else { throw PostgresError(database: location, operation: "connect", message: "out of memory") }
        guard PQstatus(c) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(c))
            PQfinish(c)
            throw PostgresError(database: location, operation: "connect", message: message)
        }
        conn = c
        inTransaction = false
        backendPID = PQbackendPID(c)
    }

    static func trimmed(_ p: UnsafePointer<CChar>?) -> String {
        guard let p else { return "" }
        var s = String(cString: p)
        while s.last == "\n" || s.last == " " { s.removeLast() }
        // libpq prefixes server errors with "ERROR:  "; the SQLSTATE is given apart.
        for prefix in ["ERROR:  ", "FATAL:  "] where s.hasPrefix(prefix) { s.removeFirst(prefix.count) }
        return s.replacingNewlines()
    }

    /// Whether the connection is up now (no round trip).
    public var isConnected: Bool { lock.withLock { conn.map { PQstatus($0) == CONNECTION_OK } ?? false } }

    /// Connects again (after the server went away); a failure names the database and why.
    public func reconnect() throws(PostgresError) { try lock.withLock { () throws(PostgresError) in try connectLocked() } }

    // MARK: Statements

    /// Runs one statement with `$1`... parameters (text, nil for NULL) and returns its rows as text
    /// (nil for NULL). Outside a transaction, a connection found broken is opened again first.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = [], operation: String? = nil) throws(PostgresError) -> PostgresRows {
        try lock.withLock { () throws(PostgresError) -> PostgresRows in try queryLocked(sql, parameters, operation: operation ?? "query") }
    }

    @discardableResult
    private func queryLocked(_ sql: String, _ parameters: [String?], operation: String, script: Bool = false) throws(PostgresError) -> PostgresRows {
        if conn == nil || PQstatus(conn) != CONNECTION_OK {
            guard !inTransaction else { throw PostgresError(database: location, operation: operation, message: "the connection was lost during a transaction") }
            try connectLocked()
        }
        // A script (several statements, no parameters) goes by the simple protocol.
        let result = script ? PQexec(conn, sql) : parameters.withOptionalCStrings { values in
            PQexecParams(conn, sql, Int32(values.count), nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = result != nil ? Self.trimmed(PQresultErrorMessage(result)) : Self.trimmed(PQerrorMessage(conn))
            let constraint = PQresultErrorField(result, Int32(UInt8(ascii: "n"))).map { String(cString: $0) }
            throw PostgresError(database: location, operation: operation, sqlState: state, message: message.isEmpty ? "no answer from the server" : message, constraint: constraint)
        }
        var rows = PostgresRows()
        let n = PQntuples(result), columns = PQnfields(result)
        rows.affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        rows.rows.reserveCapacity(Int(n))
        for r in 0..<n {
            var row: [String?] = []
            row.reserveCapacity(Int(columns))
            for c in 0..<columns {
                row.append(PQgetisnull(result, r, c) != 0 ? nil : String(cString: PQgetvalue(result, r, c)))
            }
            rows.rows.append(row)
        }
        return rows
    }

    /// Runs `body` in one transaction (BEGIN ... COMMIT; ROLLBACK if it throws). The connection's
    /// lock is held throughout: statements from other threads wait.
    public func transaction<T>(_ isolation: String = "READ COMMITTED", operation: String = "transaction",
                               _ body: (Transaction) throws(PostgresError) -> T) throws(PostgresError) -> T {
        try lock.withLock { () throws(PostgresError) -> T in
            do throws(PostgresError) {
                try queryLocked("BEGIN ISOLATION LEVEL \(isolation)", [], operation: operation)
            } catch where error.isConnectionFailure {
                // The server closed the session since the last statement (a restart): nothing of
                // this transaction was sent yet, so connecting again and beginning is safe.
                try connectLocked()
                try queryLocked("BEGIN ISOLATION LEVEL \(isolation)", [], operation: operation)
            }
            inTransaction = true
            do throws(PostgresError) {
                let value = try body(Transaction(connection: self, operation: operation))
                try queryLocked("COMMIT", [], operation: operation)
                inTransaction = false
                return value
            } catch {
                inTransaction = false
                if conn != nil, PQstatus(conn) == CONNECTION_OK { _ = try? queryLocked("ROLLBACK", [], operation: operation) as PostgresRows }
                throw error
            }
        }
    }

    /// Statements inside `transaction` (the lock is held by it).
    public struct Transaction {
        let connection: PostgresConnection
        let operation: String
        @discardableResult
        public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
            try connection.queryLocked(sql, parameters, operation: operation)
        }
        /// Several statements without parameters (a migration).
        public func script(_ sql: String) throws(PostgresError) {
            try connection.queryLocked(sql, [], operation: operation, script: true)
        }
    }

    // MARK: Change feeds

    /// Runs `queries` in one REPEATABLE READ snapshot, each given `parameters`, and returns their
    /// rows and that snapshot's xmin (the oldest transaction still running): the cursor to read
    /// from next time (`xid >= cursor`), so that a transaction committing after this snapshot is
    /// read then, never skipped.
    public func snapshot(_ queries: [String], _ parameters: [String?] = [], operation: String) throws(PostgresError) -> (rows: [PostgresRows], xmin: String?) {
        try transaction("REPEATABLE READ READ ONLY", operation: operation) { (t) throws(PostgresError) -> (rows: [PostgresRows], xmin: String?) in
            let xmin = try t.query("SELECT pg_snapshot_xmin(pg_current_snapshot())")[0, 0]
            var out: [PostgresRows] = []
            for q in queries { out.append(try t.query(q, parameters)) }
            return (out, xmin)
        }
    }

    // MARK: Notifications

    /// `LISTEN channel` (a plain identifier).
    public func listen(_ channel: String) throws(PostgresError) {
        try query("LISTEN \(channel)", operation: "listen on \(channel)")
    }

    /// Waits up to `timeout` seconds for notifications on the channels this connection listens on
    /// and returns those that arrived (empty on timeout). A broken connection throws; the caller
    /// reconnects and listens again (notifications sent meanwhile are lost: read the state again).
    public func notifications(timeout: Double) throws(PostgresError) -> [PostgresNotification] {
        try lock.withLock { () throws(PostgresError) -> [PostgresNotification] in
            guard let conn, PQstatus(conn) == CONNECTION_OK else {
                throw PostgresError(database: location, operation: "wait for notifications", message: "not connected")
            }
            var out = drainLocked()
            if !out.isEmpty { return out }
            var pfd = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(0, timeout) * 1000))
            if ready > 0 {
                guard PQconsumeInput(conn) == 1 else {
                    throw PostgresError(database: location, operation: "wait for notifications", message: Self.trimmed(PQerrorMessage(conn)))
                }
                out = drainLocked()
            }
            return out
        }
    }

    private func drainLocked() -> [PostgresNotification] {
        var out: [PostgresNotification] = []
        while let n = PQnotifies(conn) {
            out.append(PostgresNotification(channel: String(cString: n.pointee.relname), payload: String(cString: n.pointee.extra), senderPID: n.pointee.be_pid))
            PQfreemem(n)
        }
        return out
    }
}

/// Rows as text, as the server sent them.
public struct PostgresRows: Sendable {
    public var rows: [[String?]] = []
    /// Rows inserted, updated or deleted by the statement.
    public var affected = 0
    public var count: Int { rows.count }
    public subscript(row: Int, column: Int) -> String? { rows[row][column] }
}

extension [String] {
    func withCStrings<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafePointer<CChar>?] = map { UnsafePointer(strdup($0)) }
        pointers.append(nil)
        defer { for p in pointers { free(UnsafeMutablePointer(mutating: p)) } }
        return body(pointers)
    }
}

extension [String?] {
    func withOptionalCStrings<R>(_ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        let pointers: [UnsafePointer<CChar>?] = map { $0.map { UnsafePointer(strdup($0)!) } }
        defer { for p in pointers { free(UnsafeMutablePointer(mutating: p)) } }
        return body(pointers)
    }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0 == "\n" ? " " : $0 }).split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }
}
