// What a classic Unix daemon does for its init script: detach (fork, setsid, fork), write a
// pid file, and send its log lines to syslog or a file instead of a terminal. The executables
// use it when started the way npd6 and ndppd are (systemd units run them in the foreground).
#if canImport(Glibc)
import Glibc
#endif

public enum Daemon {
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Detaches from the terminal: fork (the parent exits 0 once the child is ready to go on),
    /// setsid, fork again, chdir /, standard input, output and error to /dev/null. Call before
    /// any thread is started. The corresponding C calls are fork(2), setsid(2) and dup2(2).
    public static func detach() throws(Error) {
        func fail(_ what: String) -> Error { Error(description: "cannot detach: \(what): \(String(cString: strerror(errno)))") }
        let first = fork()
        guard first >= 0 else { throw fail("fork") }
        if first > 0 { _exit(0) }
        guard setsid() >= 0 else { throw fail("setsid") }
        let second = fork()
        guard second >= 0 else { throw fail("fork") }
        if second > 0 { _exit(0) }
        _ = chdir("/")
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for fd: Int32 in [0, 1, 2] { dup2(null, fd) }
            if null > 2 { close(null) }
        }
    }

    /// The file descriptors above standard error open now. Called first thing in `main`, these
    /// are the ones inherited from whoever started the process.
    public static func openDescriptors() -> [Int32] {
        guard let dir = opendir("/proc/self/fd") else { return [] }
        defer { closedir(dir) }
        let own = dirfd(dir)
        var out: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd > 2, fd != own { out.append(fd) }
        }
        return out
    }

    /// Closes descriptors the process inherited (`openDescriptors()` at start), as a daemon that
    /// detaches must: a parent waiting for a pipe or socket it handed down to close (init
    /// scripts' command substitution, a supervisor's status pipe) would otherwise wait forever.
    public static func closeInherited(_ descriptors: [Int32]) {
        for fd in descriptors { close(fd) }
    }

    /// Writes this process's id to `path` (replacing what is there), readable by all, as init
    /// scripts' start-stop-daemon --pidfile expects.
    public static func writePidFile(_ path: String) throws(Error) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Error(description: "pid file \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let text = Array("\(getpid())\n".utf8)
        guard write(fd, text, text.count) == text.count else { throw Error(description: "pid file \(path): \(String(cString: strerror(errno)))") }
    }

    /// Where log lines go.
    public enum LogDestination: Sendable, Equatable {
        case standardOutput, standardError
        /// Appended to this file (made 0640 if new).
        case file(String)
        /// syslog(3), facility daemon, with this identifier.
        case syslog(identifier: String)
    }

    /// A place log lines are written to, one write per line.
    public final class LogSink: @unchecked Sendable {
        public let destination: LogDestination
        let fd: Int32
        // openlog keeps the pointer it is given: it must live as long as the process.
        let ident: UnsafeMutablePointer<CChar>?

        public init(_ destination: LogDestination) throws(Error) {
            self.destination = destination
            switch destination {
            case .standardOutput: fd = 1; ident = nil
            case .standardError: fd = 2; ident = nil
            case .file(let path):
                fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
                guard fd >= 0 else { throw Error(description: "log file \(path): \(String(cString: strerror(errno)))") }
                ident = nil
            case .syslog(let identifier):
                fd = -1
                ident = strdup(identifier)
                openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON)
            }
        }

        /// Writes one line. `priority` is a syslog level (LOG_ERR, LOG_WARNING, LOG_INFO, ...);
        /// files and terminals get the line as given.
        public func write(_ line: String, priority: Int32) {
            if fd < 0 {
                line.withCString { text in withVaList([text]) { vsyslog(priority, "%s", $0) } }
                return
            }
            var bytes = Array(line.utf8)
            bytes.append(10)
            _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        }
    }
}
