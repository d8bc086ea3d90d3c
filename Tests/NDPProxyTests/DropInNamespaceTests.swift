import Foundation
@testable import NDPProxy
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 29, points 2, 3, 4 and 5 in namespaces: the daemons' init scripts with the binary swapped,
/// an `iface` rule's inner interface re-created, and the line that says why a solicitation was
/// (not) answered.
@Suite(.enabled(if: isRoot && which("start-stop-daemon") != nil && which("ndisc6") != nil && which("tcpdump") != nil,
                "needs root, start-stop-daemon, ndisc6 and tcpdump"))
struct DropInNamespaceTests {
    /// Whether the ISP's solicitation for `target` gets an answer (ndisc6 sends, tcpdump sees).
    func answered(_ bed: ProxyTestbed, _ target: String) throws -> Bool {
        try bed.exec(bed.isp, ["ip", "-6", "neigh", "flush", "dev", bed.ispLink])
        let lines = try bed.capture { _ = try bed.exec(bed.isp, ["ndisc6", "-1", "-r", "1", "-w", "400", target, bed.ispLink], check: false) }
        return lines.contains { $0.contains("neighbor advertisement") && $0.contains("tgt is \(target),") }
    }

    func pid(named name: String) -> Int32? {
        let r = try? run(["pgrep", "-x", name])
        return r.flatMap { Int32($0.stdout.split(separator: "\n").first ?? "") }
    }

    /// npd6's Debian init script (`start-stop-daemon --start --exec $DAEMON -- $DAEMON_ARGS`, reload
    /// by USR1, stop by TERM) with ndp-proxy in npd6's place: it detaches, logs where -l says, takes
    /// a changed config on USR1, keeps the running rules when the new file is wrong, and stops.
    @Test func npd6sInitScriptWithTheBinarySwapped() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        // A name of its own (init scripts match by name; tests run in parallel), npd6's options.
        let name = "npd6-\(bed.id)".prefix(15)
        let daemon = bed.directory + "/" + name
        // A copy, not a link: start-stop-daemon --exec matches by the executable's inode, and other
        // tests run ndp-proxy at the same time.
        try FileManager.default.copyItem(atPath: "\(builtProductsDirectory)/ndp-proxy", toPath: daemon)
        let config = bed.directory + "/npd6.conf", log = bed.directory + "/npd6.log"
        try "prefix=2001:0db8:0005:0000:\ninterface = \(bed.uplink)\n".write(toFile: config, atomically: true, encoding: .utf8)
        func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let start = try bed.exec(bed.proxy, ["start-stop-daemon", "--start", "--exec", daemon, "--", "-c", config, "-l", log], timeout: 20, check: false)
        #expect(start.succeeded, "start-stop-daemon returns once it has detached: \(start)")
        defer { if let p = pid(named: String(name)) { kill(p, SIGKILL) } }
        #expect(eventually(timeout: 10) { logText().contains("answering on \(bed.uplink)") }, "\(logText())")
        #expect(pid(named: String(name)) != nil, "running detached")
        #expect(try answered(bed, "2001:db8:5::200"))

        // The init script's reload: USR1 by name. The new prefix is answered, the old one not.
        try "prefix=2001:db8:9::/64\ninterface = \(bed.uplink)\n".write(toFile: config, atomically: true, encoding: .utf8)
        try run(["start-stop-daemon", "--stop", "--signal", "USR1", "--quiet", "--name", String(name)], check: true)
        #expect(eventually(timeout: 10) { logText().contains("reload (SIGUSR1): 1 rule(s)") }, "\(logText())")
        #expect(try answered(bed, "2001:db8:9::7"))
        #expect(try !answered(bed, "2001:db8:5::200"))

        // A broken file: said with file:line:key, the running rules stay.
        try "prefix=2001:db8:9::/64\ninterface = \(bed.uplink)\nlisttype = grey\n".write(toFile: config, atomically: true, encoding: .utf8)
        try run(["start-stop-daemon", "--stop", "--signal", "USR1", "--quiet", "--name", String(name)], check: true)
        #expect(eventually(timeout: 10) { logText().contains("\(config):3: listtype: \"grey\" is not none, black or white; keeping the running rules") }, "\(logText())")
        #expect(try answered(bed, "2001:db8:9::7"))
        // USR2 (npd6.conf: dump targets) dumps and does not end it.
        try run(["start-stop-daemon", "--stop", "--signal", "USR2", "--quiet", "--name", String(name)], check: true)
        #expect(eventually(timeout: 10) { logText().contains("rule: \(bed.uplink) answer prefixes 2001:db8:9::/64") }, "\(logText())")
        #expect(pid(named: String(name)) != nil)

        // The init script's stop.
        let stop = try run(["start-stop-daemon", "--stop", "--retry=TERM/30/KILL/5", "--name", String(name)], timeout: 40)
        #expect(stop.succeeded)
        #expect(pid(named: String(name)) == nil)
        #expect(logText().contains("stopped"))
    }

    /// ndppd's Debian init script (`--start --pidfile $PIDFILE --exec $DAEMON -- -d -p $PIDFILE`,
    /// reload by HUP, stop by TERM through the pid file) with ndp-proxy in ndppd's place.
    @Test func ndppdsInitScriptWithTheBinarySwapped() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let name = "ndppd-\(bed.id)".prefix(15)
        let daemon = bed.directory + "/" + name
        try FileManager.default.createSymbolicLink(atPath: daemon, withDestinationPath: "\(builtProductsDirectory)/ndp-proxy")
        let config = bed.directory + "/ndppd.conf", pidfile = bed.directory + "/ndppd.pid"
        try "proxy \(bed.uplink) {\n    rule 2001:db8:5::/64 {\n        static\n    }\n}\n".write(toFile: config, atomically: true, encoding: .utf8)
        let start = try bed.exec(bed.proxy, ["start-stop-daemon", "--start", "--quiet", "--pidfile", pidfile, "--exec", daemon, "--", "-c", config, "-d", "-p", pidfile],
                                 timeout: 20, check: false)
        #expect(start.succeeded, "\(start)")
        #expect(eventually(timeout: 10) { FileManager.default.fileExists(atPath: pidfile) })
        let pid = Int32(((try? String(contentsOfFile: pidfile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
        defer { if let pid { kill(pid, SIGKILL) } }
        #expect(pid != nil && pid.map { kill($0, 0) == 0 } == true, "the pid file names the running daemon")
        #expect(eventually(timeout: 10) { (try? answered(bed, "2001:db8:5::200")) == true })

        try "proxy \(bed.uplink) {\n    rule 2001:db8:9::/64 {\n        static\n    }\n}\n".write(toFile: config, atomically: true, encoding: .utf8)
        try run(["start-stop-daemon", "--stop", "--signal", "HUP", "--quiet", "--pidfile", pidfile], check: true)
        #expect(eventually(timeout: 10) { (try? answered(bed, "2001:db8:9::7")) == true })
        #expect(try !answered(bed, "2001:db8:5::200"))

        let stop = try run(["start-stop-daemon", "--stop", "--quiet", "--retry=TERM/30/KILL/5", "--pidfile", pidfile, "--name", String(name)], timeout: 40)
        #expect(stop.succeeded)
        #expect(pid.map { kill($0, 0) != 0 } == true, "stopped")
        #expect(!FileManager.default.fileExists(atPath: pidfile), "the pid file is removed on the way out")
    }

    /// Detached without -l, it logs to syslog as the daemon it replaces (here ndppd: `-d -p`): the
    /// lines reach /dev/log, which the test owns in a mount namespace of its own.
    @Test func detachedWithoutALogFileItLogsToSyslog() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let socketPath = bed.directory + "/log.sock", pidfile = bed.directory + "/ndppd.pid", config = bed.directory + "/ndppd.conf"
        try "proxy \(bed.uplink) {\n    rule 2001:db8:5::/64 {\n        static\n    }\n}\n".write(toFile: config, atomically: true, encoding: .utf8)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in _ = socketPath.utf8CString.withUnsafeBytes { raw.copyMemory(from: $0) } }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // A /dev of its own (tmpfs) with /dev/null and /dev/log bound in; the host's /dev is untouched.
        let script = """
            set -e
            mkdir -p \(bed.directory)/dev
            mount --bind /dev \(bed.directory)/dev
            mount -t tmpfs tmpfs /dev
            touch /dev/null /dev/log
            mount --bind \(bed.directory)/dev/null /dev/null
            mount --bind \(socketPath) /dev/log
            exec ip netns exec \(bed.proxy) \(builtProductsDirectory)/ndp-proxy -c \(config) -d -p \(pidfile)
            """
        let start = try run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], timeout: 20)
        #expect(start.succeeded, "\(start)")
        #expect(eventually(timeout: 10) { FileManager.default.fileExists(atPath: pidfile) })
        let pid = Int32(((try? String(contentsOfFile: pidfile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
        defer { if let pid { kill(pid, SIGTERM) } }
        var received = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = eventually(timeout: 10) {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { received += String(decoding: buffer[0..<n], as: UTF8.self) + "\n" }
            return received.contains("answering on \(bed.uplink)")
        }
        #expect(received.contains("ndppd[\(pid ?? 0)]: info: answering on \(bed.uplink)"), "syslog lines, with ndppd's name and the pid: \(received)")
    }

    /// An `iface` rule follows its inner interface when it is deleted and made again, and says so.
    @Test func anIfaceRulesInnerInterfaceMadeAgainIsAskedAgain() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let inner = "snc\(bed.id)", hostSide = "snd\(bed.id)"
        let path = bed.directory + "/ndppd.conf"
        try "proxy \(bed.uplink) {\n  ttl 1000\n  rule 2001:db8:5::/64 {\n    iface \(inner)\n  }\n}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let p = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", path], captureOutput: true)
        defer { p.stop() }
        #expect(eventually(timeout: 10) { p.output.contains("answering on \(bed.uplink)") }, "\(p.output)")
        #expect(eventually(timeout: 10) { (try? bed.exec(bed.isp, ["ping", "-c", "1", "-W", "2", "2001:db8:5::100"], check: false).succeeded) == true })

        try bed.exec(bed.proxy, ["ip", "link", "del", inner])
        #expect(eventually(timeout: 10) { p.output.contains("inner interface \(inner) is gone") }, "\(p.output)")
        try run(["ip", "link", "add", inner, "netns", bed.proxy, "type", "veth", "peer", "name", hostSide, "netns", bed.host], check: true)
        for (ns, dev) in [(bed.proxy, inner), (bed.host, hostSide)] { try bed.exec(ns, ["ip", "link", "set", dev, "up"]) }
        try bed.exec(bed.proxy, ["ip", "-6", "addr", "add", "2001:db8:6::1/64", "dev", inner, "nodad"])
        try bed.exec(bed.proxy, ["ip", "-6", "route", "replace", "2001:db8:5::100/128", "via", "2001:db8:6::2"])
        try bed.exec(bed.host, ["ip", "-6", "addr", "add", "2001:db8:6::2/64", "dev", hostSide, "nodad"])
        try bed.exec(bed.host, ["ip", "-6", "addr", "add", "2001:db8:5::100/128", "dev", hostSide, "nodad"])
        try bed.exec(bed.host, ["ip", "-6", "route", "replace", "default", "via", "2001:db8:6::1"])
        #expect(eventually(timeout: 10) { p.output.contains("inner interface \(inner) is back") }, "\(p.output)")
        try bed.exec(bed.isp, ["ip", "-6", "neigh", "flush", "dev", bed.ispLink])
        #expect(eventually(timeout: 15) { (try? bed.exec(bed.isp, ["ping", "-c", "1", "-W", "1", "2001:db8:5::100"], check: false).succeeded) == true },
                "answered again through the new inner interface: \(p.output)")
    }

    /// `--debug`: one line per solicitation with the verdict and why, and no more than the limit
    /// a second however many come.
    @Test func theDebugLineSaysWhyAndAFloodIsCappedInLines() throws {
        let bed = try ProxyTestbed()
        defer { bed.destroy() }
        let path = bed.directory + "/npd6.conf"
        try "prefix=2001:db8:5:0:\ninterface=\(bed.uplink)\n".write(toFile: path, atomically: true, encoding: .utf8)
        let p = try BackgroundProcess(["ip", "netns", "exec", bed.proxy, "\(builtProductsDirectory)/ndp-proxy", "--config", path, "--debug", "--trace-limit", "20"],
                                      captureOutput: true)
        defer { p.stop() }
        #expect(eventually(timeout: 10) { p.output.contains("answering on \(bed.uplink)") }, "\(p.output)")
        let ispIndex = try RouteSocket(namespace: .named(bed.isp)).interfaceIndex(bed.ispLink)
        let mac: UInt64 = 0x0200_0000_0a01
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:5::200", source: "2001:db8:5::1", sourceMAC: mac))
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:9::5", source: "2001:db8:5::1", sourceMAC: mac))
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:5::201", source: "2001:db8:5::1", sourceMAC: mac, hopLimit: 254))
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:5::2", source: "2001:db8:5::1", sourceMAC: mac))
        let want = [
            "solicitation for 2001:db8:5::200 from 2001:db8:5::1: answered",
            "solicitation for 2001:db8:9::5 from 2001:db8:5::1: not answered: outside the rule's prefixes",
            "invalid solicitation from 2001:db8:5::1: RFC 4861 §7.1.1: the IP Hop Limit field is not 255",
            "solicitation for 2001:db8:5::2 from 2001:db8:5::1: not answered: an address of \(bed.uplink) itself",
        ]
        #expect(eventually(timeout: 10) { want.allSatisfy { p.output.contains($0) } }, "\(p.output)")
        // A flood of 300 in well under a second: at most 20 lines, then one line with the rest.
        sleep(1)
        let before = p.output.components(separatedBy: "solicitation for").count
        let flood = try (0..<300).map { try solicitation(target: "2001:db8:9::\(String($0, radix: 16))", source: "2001:db8:5::1", sourceMAC: mac) }
        try inject(ns: bed.isp, ifindex: ispIndex, frames: flood)
        sleep(1)
        try inject(ns: bed.isp, ifindex: ispIndex, frame: try solicitation(target: "2001:db8:9::ffff", source: "2001:db8:5::1", sourceMAC: mac))
        #expect(eventually(timeout: 10) { p.output.contains("more solicitation lines in the last second not logged (limit 20/s)") }, "\(p.output.suffix(2000))")
        let lines = p.output.components(separatedBy: "solicitation for").count - before
        #expect(lines <= 21 + 20, "at most the limit a second: \(lines) lines")
        #expect(lines >= 20)
    }
}
