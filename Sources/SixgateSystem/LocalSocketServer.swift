// A unix-socket server for local control (issue 27: the UAPI socket and gatewayd's control socket
// each had one): the socket made with a mode no other user can pass, a stale socket of a crashed
// daemon reclaimed but a live one never stolen, one named thread that accepts and hands each
// connection (with send and receive timeouts) to a handler, and a stop that joins it and removes the
// file.
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which, on what, and errno.
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    public let call: String
    public let object: String
    public let errno: Int32
    /// A reason of ours when errno does not say it (a path too long, a socket in use).
    public let detail: String?
    public init(_ call: String, _ object: String, errno: Int32, detail: String? = nil) {
        self.call = call; self.object = object; self.errno = errno; self.detail = detail
    }
    public var description: String { "\(call) \(object): \(detail ?? String(cString: strerror(errno)))" }
}

/// Serves a unix stream socket: one connection at a time, on one thread.
///
/// ```swift
/// let server = try LocalSocketServer(path: "/run/example.sock", threadName: "sg-example") { fd in
///     _ = "hello\n".withCString { write(fd, $0, strlen($0)) }
/// }
/// server.start()
/// server.stop()
/// ```
public final class LocalSocketServer: @unchecked Sendable {
    public let path: String
    /// Seconds a client may take to send its request or to take the reply.
    public static let clientTimeout = 5
    let fd: Int32
    let threadName: String
    let handle: @Sendable (Int32) -> Void
    let lock = SystemLock()
    var thread: pthread_t?
    var stopping = false

    /// Makes the socket at `path` with `mode` (0600: only the owner and root). A socket nobody answers
    /// (a daemon that crashed) is replaced; one that answers is another process's, and refused.
    public init(path: String, mode: mode_t = 0o600, threadName: String, handle: @escaping @Sendable (Int32) -> Void) throws(SystemCallError) {
        self.path = path
        self.threadName = threadName
        self.handle = handle
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SystemCallError("bind", path, errno: ENAMETOOLONG, detail: "path too long for a unix socket (\(bytes.count) bytes)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { for (i, b) in bytes.enumerated() { $0[i] = b } }
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let live = probe >= 0 && withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, length) } } == 0
        if probe >= 0 { close(probe) }
        if live { throw SystemCallError("bind", path, errno: EADDRINUSE, detail: "another process serves this socket") }
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw SystemCallError("socket(AF_UNIX)", path, errno: errno) }
        unlink(path)
        let old = umask(~mode & 0o777)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, length) } }
        let bindErrno = errno
        umask(old)
        guard rc == 0 else { close(s); throw SystemCallError("bind", path, errno: bindErrno) }
        guard listen(s, 16) == 0 else { let e = errno; close(s); unlink(path); throw SystemCallError("listen", path, errno: e) }
        fd = s
    }

    deinit { stop() }

    public func start() {
        lock.withLock { thread = SystemThread.start(name: threadName) { [self] in self.serve() } }
    }

    /// Stops accepting (within 100 ms), waits for the thread, closes and removes the socket. Idempotent.
    public func stop() {
        let (already, t) = lock.withLock { () -> (Bool, pthread_t?) in
            let a = stopping
            stopping = true
            return (a, thread)
        }
        if already { return }
        if let t, !pthread_equal(t, pthread_self()).boolValue { pthread_join(t, nil) }
        close(fd)
        unlink(path)
    }

    func serve() {
        while !lock.withLock({ stopping }) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)   // the listening socket's flag is not inherited (accept4 is not in Swift's Glibc)
            var tv = timeval(tv_sec: Self.clientTimeout, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            handle(c)
            close(c)
        }
    }
}

extension Int32 {
    var boolValue: Bool { self != 0 }
}

/// Writing a reply on a local stream socket without letting the client hurt the daemon:
/// MSG_NOSIGNAL, so a client that hangs up early costs an EPIPE instead of a SIGPIPE that would end
/// the process; every byte, since a large reply (`get=1` with many peers) does not fit one write;
/// the send timeout `LocalSocketServer` sets keeps a client that never reads from holding the thread.
public enum LocalStream {
    /// Sends all of `bytes`; false if the client went away or stopped reading (the rest is dropped).
    @discardableResult
    public static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard var p = bytes.baseAddress else { return true }
        var left = bytes.count
        while left > 0 {
            let n = send(fd, p, left, Int32(MSG_NOSIGNAL))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            p += n
            left -= n
        }
        return true
    }
}
