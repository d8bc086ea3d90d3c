// A PostgreSQL server of the test's own: Debian's postgresql, `initdb` in a temporary folder, the
// server started on a Unix socket in that folder (no TCP port: tests run in parallel, and gateways
// in different namespaces reach a socket by its path), stopped by PID and removed after.
import Foundation

public final class PostgresServer: @unchecked Sendable {
    /// The folder holding the data directory, the socket and the log.
    public let directory: String
    public private(set) var process: BackgroundProcess!
    private let bin: String
    private let settings: [String: String]
    /// A libpq connection string for database `sixgate` (created at start).
    public var conninfo: String { "host=\(directory) dbname=sixgate user=postgres" }
    public var logPath: String { directory + "/server.log" }
    private var stopped = false

    /// The folder of Debian's PostgreSQL server programs (the newest installed).
    public static var binDirectory: String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        for v in versions.reversed() where FileManager.default.isExecutableFile(atPath: "\(root)/\(v)/bin/postgres") { return "\(root)/\(v)/bin" }
        return nil
    }

    /// initdb, start, wait until it accepts connections, create database `sixgate`. `settings` are
    /// extra `-c name=value` server settings.
    public init(settings: [String: String] = [:]) throws {
        guard let bin = Self.binDirectory else { throw TestSupportError.missingProgram("postgresql (initdb, postgres)") }
        guard isRoot else { throw TransferError("a test PostgreSQL server is started as root (it runs as the postgres account)") }
        directory = "/tmp/sg-pg-\(uniqueSuffix())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        var pw = passwd(), result: UnsafeMutablePointer<passwd>?, buffer = [CChar](repeating: 0, count: 1024)
        guard getpwnam_r("postgres", &pw, &buffer, buffer.count, &result) == 0, result != nil else {
            try? FileManager.default.removeItem(atPath: directory)
            throw TestSupportError.missingProgram("the postgres account (Debian's postgresql package)")
        }
        chown(directory, pw.pw_uid, pw.pw_gid)
        self.bin = bin
        self.settings = settings
        do {
            try run(Self.asPostgres + ["\(bin)/initdb", "-D", directory + "/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"], timeout: 120, check: true)
            try start()
        } catch {
            stop()
            throw error
        }
        try psql("CREATE DATABASE sixgate", database: "postgres")
    }

    static let asPostgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]

    /// Starts the server on the existing data (at init, and again after `pause`) and waits until it
    /// accepts connections.
    public func start() throws {
        var argv = Self.asPostgres + ["\(bin)/postgres", "-D", directory + "/data", "-k", directory, "-c", "listen_addresses=", "-c", "logging_collector=off"]
        for (k, v) in settings.sorted(by: { $0.key < $1.key }) { argv += ["-c", "\(k)=\(v)"] }
        process = try BackgroundProcess(["sh", "-c", "exec \"$@\" >>\(directory)/server.log 2>&1", "sh"] + argv)
        let ready = eventually(timeout: 30) { (try? run(["\(bin)/pg_isready", "-q", "-h", directory, "-U", "postgres"], timeout: 5))?.succeeded ?? false }
        guard ready else {
            let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
            throw TransferError("the test PostgreSQL server did not start within 30 s: \(log.suffix(800))")
        }
    }

    /// Runs SQL through psql (Debian's client) as the superuser; returns its unaligned output.
    @discardableResult
    public func psql(_ sql: String, database: String = "sixgate") throws -> String {
        let r = try run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory, "-U", "postgres", "-d", database, "-c", sql], timeout: 60)
        guard r.succeeded else { throw TransferError("psql \(sql.debugDescription): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server (SIGINT: fast shutdown; SIGKILL after 10 s) and removes its folder.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        pause()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops the server without removing its data (the database "going away"); `start` again.
    public func pause() {
        guard let process, process.process.isRunning else { return }
        kill(process.pid, SIGINT)
        _ = eventually(timeout: 10) { !process.process.isRunning }
        if process.process.isRunning { kill(process.pid, SIGKILL) }
        process.process.waitUntilExit()
    }

    deinit { stop() }
}
