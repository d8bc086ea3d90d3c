// The life every Sixgate daemon shares (issue 27: gatewayd, tunnel-client and ndp-proxy each
// repeated it): the options (--check-config, --keep-capabilities, --user), the account resolved
// and the signals blocked before any thread starts, the privilege drop after setup, readiness and
// stopping told to systemd (`Type=notify`), and the loop that waits for signals between periodic
// work until SIGINT or SIGTERM.
import ArgumentParser
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

/// The command-line options every daemon has.
public struct DaemonOptions: ParsableArguments, Sendable {
    @Flag(help: "Check the config file (print what it found and its warnings) and exit.")
    public var checkConfig = false

    @Flag(help: "Keep every capability after setup (by default only CAP_NET_ADMIN and CAP_NET_RAW stay, for the daemon, its hooks and the tools it runs).")
    public var keepCapabilities = false

    @Option(help: "The user to run as after setup, keeping CAP_NET_ADMIN and CAP_NET_RAW (default: sixgate when that account exists; root: stay uid 0).")
    public var user: String?

    public init() {}
}

/// One daemon's life.
///
/// ```swift
/// let life = try DaemonLife(options: options, signals: [SIGINT, SIGTERM, SIGHUP])   // before any thread
/// try service.start()
/// life.ready(handOver: [stateDirectory], info: log, warning: log)
/// life.run(every: 10, tick: { service.writeMetrics() }, other: { _ in service.reload() })
/// service.stop()
/// ```
public final class DaemonLife: Sendable {
    public let options: DaemonOptions
    /// The account to drop to after setup (nil: stay who we are).
    public let account: Privileges.Account?
    public let signals: DaemonSignals

    /// Resolves `--user` and blocks `signals` (SIGINT and SIGTERM always among them). Must run
    /// before any thread starts: threads inherit the mask, so the signals reach only `run`.
    public init(options: DaemonOptions, signals: [Int32] = []) throws(Privileges.Error) {
        self.options = options
        account = try Privileges.account(options.user)
        var set = [SIGINT, SIGTERM]
        for s in signals where !set.contains(s) { set.append(s) }
        self.signals = DaemonSignals.block(set)
    }

    /// After setup: hands `paths` to the account and drops privileges (unless
    /// `--keep-capabilities`), then tells systemd the service is up.
    public func ready(handOver paths: [String], info: (String) -> Void, warning: (String) -> Void) {
        Privileges.settle(account: account, keepCapabilities: options.keepCapabilities, handOver: paths, info: info, warning: warning)
        Self.notify("READY=1")
    }

    /// Runs `tick` and waits up to `interval` seconds for a signal, over and over, until SIGINT
    /// or SIGTERM (returned, after telling systemd it is stopping); any other blocked signal goes
    /// to `other`.
    @discardableResult
    public func run(every interval: Double, tick: () -> Void, other: (Int32) -> Void = { _ in }) -> Int32 {
        while true {
            tick()
            guard let s = signals.wait(seconds: interval) else { continue }
            if s == SIGINT || s == SIGTERM {
                Self.notify("STOPPING=1")
                return s
            }
            other(s)
        }
    }

    /// Sends `state` ("READY=1", "STOPPING=1", "STATUS=...") to systemd's notification socket as
    /// sd_notify(3) does: one datagram to the AF_UNIX socket named in $NOTIFY_SOCKET ('@' first:
    /// the abstract namespace). False when there is none (not started by systemd with
    /// `Type=notify`) or the send failed; never blocks.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        guard let raw = getenv("NOTIFY_SOCKET") else { return false }
        var path = Array(String(cString: raw).utf8)
        guard !path.isEmpty, path[0] == UInt8(ascii: "/") || path[0] == UInt8(ascii: "@") else { return false }
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return false }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { b in for (i, c) in path.enumerated() { b[i] = c } }
        // An abstract name's length counts exactly its bytes; a path's its terminating zero too.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path[0] == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return sent == message.count
    }
}
