import Foundation
import SixgateTestSupport
import Testing

struct BindError: Error { let name: String; let errno: Int32 }

/// systemd's `Type=notify`: the daemons say READY=1 once set up (after the privilege drop) and
/// STOPPING=1 on SIGTERM, as sd_notify(3) does, to the socket in $NOTIFY_SOCKET: a path, or a name
/// in the abstract namespace ('@'). The test plays systemd's part with a datagram socket of its own.
@Suite("systemd readiness", .enabled(if: isRoot, "needs root for network namespaces"))
struct ReadinessTests {
    /// A bound AF_UNIX datagram socket at `name` (a path, or '@' + an abstract name).
    final class NotifySocket {
        let fd: Int32
        let name: String
        init(_ name: String) throws {
            self.name = name
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var a = sockaddr_un()
            a.sun_family = sa_family_t(AF_UNIX)
            var bytes = Array(name.utf8)
            let abstract = bytes.first == UInt8(ascii: "@")
            if abstract { bytes[0] = 0 }
            withUnsafeMutableBytes(of: &a.sun_path) { b in for (i, c) in bytes.enumerated() { b[i] = c } }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
            let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard fd >= 0, rc == 0 else { throw BindError(name: name, errno: errno) }
        }
        /// The next datagram, or nil after `timeout` seconds.
        func receive(timeout: Double) -> String? {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 512)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
        }
        deinit {
            close(fd)
            if !name.hasPrefix("@") { unlink(name) }
        }
    }

    @Test(arguments: ["path", "abstract"])
    func ndpProxyTellsSystemdWhenItIsReadyAndWhenItStops(_ kind: String) throws {
        let pair = try NamespacePair(tag: "sdn")
        defer { pair.destroy() }
        let conf = NSTemporaryDirectory() + "sg-notify-\(uniqueSuffix()).conf"
        defer { unlink(conf) }
        // An abstract socket name belongs to a network namespace (as systemd's does to the
        // host's): that daemon runs in this one, on the loopback interface, where it answers nothing.
        let interface = kind == "path" ? pair.leftInterface : "lo"
        try "prefix=2001:db8:5::\ninterface=\(interface)\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let name = kind == "path" ? NSTemporaryDirectory() + "sg-notify-\(uniqueSuffix()).sock" : "@sg-notify-\(uniqueSuffix())"
        let notify = try NotifySocket(name)
        let argv = (kind == "path" ? ["ip", "netns", "exec", pair.left] : []) + ["\(builtProductsDirectory)/ndp-proxy", "--config", conf]
        let daemon = try BackgroundProcess(argv, environment: ["NOTIFY_SOCKET": name], captureOutput: true)
        defer { daemon.stop() }
        let ready = notify.receive(timeout: 20)
        #expect(ready == "READY=1", "\(daemon.output)")
        // Ready means set up: the packet socket is open and the privileges dropped already.
        #expect(daemon.output.contains("with CAP_NET_ADMIN and CAP_NET_RAW") || daemon.output.contains("running as"), "\(daemon.output)")
        kill(daemon.pid, SIGTERM)
        #expect(notify.receive(timeout: 10) == "STOPPING=1", "\(daemon.output)")
        daemon.process.waitUntilExit()
        #expect(daemon.process.terminationStatus == 0, "\(daemon.output)")
    }
}
