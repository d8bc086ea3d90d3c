import SixgateSystem
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SystemThreadTests {
    /// Threads are named as the kernel shows them (top -H, /proc/PID/task/TID/comm).
    @Test func threadsCarryTheirNameIntoTheKernel() throws {
        let seen = Mutex<(String, String)>(("", ""))
        let t = SystemThread.start(name: "sg-test-named") {
            let comm = (try? String(contentsOfProcFile: "/proc/thread-self/comm")) ?? ""
            seen.withLock { $0 = (SystemThread.currentName, comm) }
        }
        pthread_join(t, nil)
        #expect(seen.withLock { $0 } == ("sg-test-named", "sg-test-named\n"))
        // Linux keeps 15 bytes: a longer name is cut, not refused.
        let long = Mutex("")
        pthread_join(SystemThread.start(name: "sg-a-very-long-thread-name") { long.withLock { $0 = SystemThread.currentName } }, nil)
        #expect(long.withLock { $0 } == "sg-a-very-long-")
    }

    @Test func theLockSerialisesAndTheClockGoesForward() {
        let lock = SystemLock()
        nonisolated(unsafe) var count = 0
        let threads = (0..<4).map { i in SystemThread.start(name: "sg-lock-\(i)") { for _ in 0..<10_000 { lock.withLock { count += 1 } } } }
        for t in threads { pthread_join(t, nil) }
        #expect(lock.withLock { count } == 40_000)
        let a = MonotonicClock.nanoseconds(), s = MonotonicClock.seconds()
        usleep(2_000)
        #expect(MonotonicClock.nanoseconds() >= a + 2_000_000 && MonotonicClock.seconds() > s)
        #expect(WallClock.now().seconds > 1_700_000_000)
    }

    @Test func theConditionWakesAWaiterAndATimedWaitTimesOut() {
        let c = SystemCondition()
        nonisolated(unsafe) var queue: [Int] = []
        nonisolated(unsafe) var got: [Int] = []
        let consumer = SystemThread.start(name: "sg-cond") {
            c.lock()
            while got.count < 3 {
                while queue.isEmpty { c.wait() }
                got.append(queue.removeFirst())
            }
            c.unlock()
        }
        for i in 1...3 { c.withLock { queue.append(i); c.signal() } }
        pthread_join(consumer, nil)
        #expect(got == [1, 2, 3])
        // Nobody signals: the wait ends by its deadline, on the monotonic clock, and says so.
        let start = MonotonicClock.seconds()
        let signalled = c.withLock { c.wait(seconds: 0.05) }
        #expect(!signalled)
        #expect(MonotonicClock.seconds() - start >= 0.04)
    }
}

extension String {
    /// A /proc file's text (they report size 0, so read until end).
    init(contentsOfProcFile path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SystemTestError() }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buffer, buffer.count)
        guard n >= 0 else { throw SystemTestError() }
        self = String(decoding: buffer[..<n], as: UTF8.self)
    }
}
struct SystemTestError: Error {}

@Suite(.serialized) struct DaemonSignalsTests {
    @Test func aBlockedSignalIsTakenByWaitAndATimeoutIsNil() {
        // In a thread of its own: the mask is per thread, and the test runner's threads keep theirs.
        let result = Mutex<(Int32?, Int32?, Double)>((0, 0, 0))
        let t = SystemThread.start(name: "sg-sigtest") {
            let signals = DaemonSignals.block([SIGUSR2])
            let start = MonotonicClock.seconds()
            let none = signals.wait(seconds: 0.05)
            let waited = MonotonicClock.seconds() - start
            pthread_kill(pthread_self(), SIGUSR2)
            let got = signals.wait(seconds: 5)
            result.withLock { $0 = (none, got, waited) }
        }
        pthread_join(t, nil)
        let (none, got, waited) = result.withLock { $0 }
        #expect(none == nil && waited >= 0.045)
        #expect(got == SIGUSR2)
    }
}

@Suite struct LocalSocketServerTests {
    func connect(_ path: String) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { b in for (i, c) in path.utf8.enumerated() { b[i] = c } }
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if rc != 0 { close(s); return -1 }
        return s
    }

    /// Issue 27: the one local-socket server. It answers on its named thread, refuses to take over a
    /// live socket, replaces a stale one, makes the file 0600, and removes it on stop.
    @Test func servesRefusesALiveSocketReplacesAStaleOneAndCleansUp() throws {
        let path = "/tmp/sg-lss-\(getpid())-\(MonotonicClock.nanoseconds() % 1_000_000).sock"
        defer { unlink(path) }
        let server = try LocalSocketServer(path: path, threadName: "sg-lss-test") { c in
            let name = SystemThread.currentName
            _ = Array("hello from \(name)\n".utf8).withUnsafeBytes { LocalStream.sendAll(c, $0) }
        }
        server.start()
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let c = connect(path)
        #expect(c >= 0)
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(c, &buffer, buffer.count)
        close(c)
        #expect(String(decoding: buffer[..<max(0, n)], as: UTF8.self) == "hello from sg-lss-test\n")
        // A second server on the live socket is refused, naming why.
        do {
            _ = try LocalSocketServer(path: path, threadName: "sg-lss-2") { _ in }
            Issue.record("a live socket was taken over")
        } catch {
            #expect(error.errno == EADDRINUSE && error.description.contains("another process serves this socket"))
        }
        server.stop()
        server.stop()
        #expect(access(path, F_OK) != 0, "the socket file is removed")
        // A stale socket file (a daemon killed with -9 leaves one) is replaced.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { b in for (i, ch) in path.utf8.enumerated() { b[i] = ch } }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        #expect(access(path, F_OK) == 0)
        let again = try LocalSocketServer(path: path, threadName: "sg-lss-3") { _ in }
        again.stop()
    }
}
