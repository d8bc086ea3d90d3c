// Writing a reply on a local stream socket (the UAPI, gatewayd's control socket) without letting
// the client hurt the daemon: MSG_NOSIGNAL, so a client that hangs up early costs an EPIPE instead
// of a SIGPIPE that would end the process; every byte, since a large reply (`get=1` with many
// peers) does not fit one write; and a send timeout, so a client that never reads cannot hold
// the serving thread.
#if canImport(Glibc)
import Glibc
#endif

public enum LocalStream {
    /// Seconds a client may take to send its request or to take the reply.
    public static let clientTimeout = 5

    /// Sets receive and send timeouts of `clientTimeout` on an accepted connection.
    public static func applyTimeouts(_ fd: Int32) {
        var tv = timeval(tv_sec: clientTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

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
