// Changes made elsewhere, pushed: a thread with a connection of its own LISTENs on the channels the
// stores NOTIFY on when they commit, and calls back. When the server goes away it says so once,
// connects again with a growing pause (0.5 s to 10 s) and then calls back with `resync`, since
// notifications sent meanwhile are lost: the owner reads the state again.
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

public final class PostgresListener: @unchecked Sendable {
    /// What the callback receives.
    public enum Event: Sendable, Equatable {
        /// Another session committed on `channel` (its payload: a client's name, a gateway's).
        case changed(channel: String, payload: String)
        /// Connected again after the server went away: anything may have changed.
        case resync
        /// The connection failed (said once per outage, with the error naming the database).
        case lost(PostgresError)
    }

    public let channels: [String]
    private let conninfo: String
    private let ignorePIDs: @Sendable () -> Set<Int32>
    private let callback: @Sendable (Event) -> Void
    private let lock = SystemLock()
    private var running = true
    private var thread: pthread_t?
    /// Notifications received (a cheap change stamp for readers).
    public var generation: Int64 { lock.withLock { count } }
    private var count: Int64 = 0

    /// Starts listening. `ignoring` gives the backend PIDs whose notifications are this process's
    /// own (its stores' sessions), which are not called back.
    public init(_ conninfo: String, channels: [String], ignoring: @escaping @Sendable () -> Set<Int32> = { [] },
                callback: @escaping @Sendable (Event) -> Void) throws(PostgresError) {
        self.conninfo = conninfo; self.channels = channels; self.ignorePIDs = ignoring; self.callback = callback
        let first = try PostgresConnection(conninfo, applicationName: "sixgate listener")
        for c in channels { try first.listen(c) }
        thread = SystemThread.start(name: "sg-pg-listen") { [self] in self.run(first) }
    }

    /// Stops the thread (within about a second).
    public func stop() {
        lock.withLock { running = false }
        if let thread { pthread_join(thread, nil); self.thread = nil }
    }

    deinit { stop() }

    private var isRunning: Bool { lock.withLock { running } }

    private func run(_ first: PostgresConnection) {
        var connection: PostgresConnection? = first
        var pause = 0.5
        var lostSaid = false
        while isRunning {
            guard let db = connection else {
                do {
                    let db = try PostgresConnection(conninfo, applicationName: "sixgate listener")
                    for c in channels { try db.listen(c) }
                    connection = db
                    pause = 0.5
                    lostSaid = false
                    lock.withLock { count += 1 }
                    callback(.resync)
                } catch {
                    if !lostSaid { callback(.lost(error)); lostSaid = true }
                    sleepWhileRunning(pause)
                    pause = min(pause * 2, 10)
                }
                continue
            }
            do {
                let notes = try db.notifications(timeout: 0.5)
                let own = notes.isEmpty ? [] : ignorePIDs()
                for n in notes where !own.contains(n.senderPID) {
                    lock.withLock { count += 1 }
                    callback(.changed(channel: n.channel, payload: n.payload))
                }
            } catch {
                connection = nil
                if !lostSaid { callback(.lost(error)); lostSaid = true }
            }
        }
    }

    private func sleepWhileRunning(_ seconds: Double) {
        var left = seconds
        while left > 0, isRunning { usleep(UInt32(min(left, 0.25) * 1_000_000)); left -= 0.25 }
    }
}
