// The few process-level primitives every module shares (issue 27: one lock type, one clock, one
// thread helper that names its threads): a pthread mutex, the monotonic and wall clocks, and OS
// threads that show up by name in `top -H`, `ps -L` and /proc/PID/task/*/comm. Imports only Glibc,
// so the lowest modules can use it; the I/O layer (issue 21) builds on it.
#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex, allocated once. For state touched briefly on any path, hot ones included
/// (`withLock` inlines into the caller).
///
/// ```swift
/// let lock = SystemLock()
/// var count = 0
/// lock.withLock { count += 1 }
/// ```
public final class SystemLock: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    @inlinable @inline(__always) public func lock() { pthread_mutex_lock(mutex) }
    @inlinable @inline(__always) public func unlock() { pthread_mutex_unlock(mutex) }
    @inlinable @inline(__always) public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A mutex with a condition variable whose timed waits run on CLOCK_MONOTONIC (a wall-clock jump
/// neither wakes nor stalls them): for worker threads that sleep until work or a deadline.
///
/// ```swift
/// let c = SystemCondition()
/// c.lock(); while queue.isEmpty { c.wait() }; c.unlock()     // consumer
/// c.lock(); queue.append(x); c.signal(); c.unlock()          // producer
/// ```
public final class SystemCondition: @unchecked Sendable {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let cond: UnsafeMutablePointer<pthread_cond_t>
    public init() {
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }
    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }
    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
    /// Waits (lock held) until signalled.
    public func wait() { pthread_cond_wait(cond, mutex) }
    /// Waits (lock held) until signalled or `seconds` have passed; false on timeout.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        let deadline = MonotonicClock.nanoseconds() &+ UInt64(max(0, seconds) * 1e9)
        var t = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(cond, mutex, &t) == 0
    }
    public func signal() { pthread_cond_signal(cond) }
    public func broadcast() { pthread_cond_broadcast(cond) }
}

/// CLOCK_MONOTONIC: for timers, rate limits and ages (never goes back, stops in suspend).
public enum MonotonicClock {
    /// Seconds since an arbitrary start.
    @inlinable @inline(__always) public static func seconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
    /// Nanoseconds since an arbitrary start.
    @inlinable @inline(__always) public static func nanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }
}

/// CLOCK_REALTIME: for times people and other programs read (`wg show`'s last handshake, logs).
public enum WallClock {
    public static func now() -> (seconds: Int64, nanoseconds: Int64) {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return (Int64(t.tv_sec), Int64(t.tv_nsec))
    }
}

/// OS threads for blocking loops (sockets, TUN devices, timers).
public enum SystemThread {
    /// Starts a thread running `body`, named `name` (cut to the 15 bytes Linux keeps) so that it
    /// shows up in `top -H` and /proc/PID/task/*/comm. Returns the handle to join.
    @discardableResult
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
        final class Start { let name: String; let body: @Sendable () -> Void; init(_ n: String, _ b: @escaping @Sendable () -> Void) { name = n; body = b } }
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { arg in
            let start = Unmanaged<Start>.fromOpaque(arg!).takeRetainedValue()
            SystemThread.setName(start.name)
            start.body()
            return nil
        }, Unmanaged.passRetained(Start(name, body)).toOpaque())
        precondition(rc == 0, "pthread_create (\(name)): \(String(cString: strerror(rc)))")
        return t
    }

    /// Names the calling thread (at most 15 bytes are kept; a longer name is cut on a UTF-8
    /// boundary). Through /proc/thread-self/comm, what pthread_setname_np does on Linux (the C
    /// function is not in Swift's Glibc module, prctl is variadic).
    public static func setName(_ name: String) {
        var bytes = Array(name.utf8.prefix(15))
        while !bytes.isEmpty, String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// The calling thread's name, as the kernel has it.
    public static var currentName: String {
        let fd = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return "" }
        return String(decoding: buffer[..<n], as: UTF8.self).trimmingSuffix("\n")
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}

/// The signals a daemon handles, taken synchronously (issue 27: the one sequence every daemon main
/// repeated). `block` must run before any thread starts: threads inherit the mask, so the
/// signals reach only the waiting thread, and setting the mask to exactly these also clears one
/// inherited from a parent (real-time signals blocked there would keep glibc's setuid broadcast,
/// the privilege drop, from reaching the threads made afterwards).
///
/// ```swift
/// let signals = DaemonSignals.block([SIGINT, SIGTERM, SIGHUP])
/// while true {
///     switch signals.wait(seconds: 10) {
///     case SIGHUP?: reload()
///     case nil: periodicWork()
///     default: return   // SIGINT, SIGTERM
///     }
/// }
/// ```
public struct DaemonSignals: Sendable {
    public let signals: [Int32]

    /// Blocks exactly `signals` in the calling thread (and so in every thread it starts later).
    public static func block(_ signals: [Int32]) -> DaemonSignals {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_SETMASK, &set, nil)
        return DaemonSignals(signals: signals)
    }

    /// Waits for one of the signals, at most `seconds` (nil: as long as it takes); nil when the
    /// time ran out first. An interruption by anything else is waited through.
    public func wait(seconds: Double? = nil) -> Int32? {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        let deadline = seconds.map { MonotonicClock.seconds() + $0 }
        while true {
            let received: Int32
            if let deadline {
                let left = max(0, deadline - MonotonicClock.seconds())
                var timeout = timespec(tv_sec: Int(left), tv_nsec: Int((left - left.rounded(.down)) * 1e9))
                received = sigtimedwait(&set, nil, &timeout)
            } else {
                received = sigwaitinfo(&set, nil)
            }
            if received > 0 { return received }
            if errno == EAGAIN { return nil }
            if errno != EINTR { return nil }
        }
    }
}
