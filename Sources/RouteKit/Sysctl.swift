// Typed access to the network sysctls a gateway needs (/proc/sys/net/...).
// The rest of RouteKit (links, addresses, routes, neighbours over libnl-3) arrives with issue 3.
#if canImport(Glibc)
import Glibc
#endif

/// A network sysctl key such as `net.ipv6.conf.eth0.forwarding`.
///
/// Keys are built from typed parts so that a caller cannot write to an arbitrary path; interface
/// names are checked against the kernel's rules (1–15 bytes, no `/`, not `.` or `..`).
public struct SysctlKey: Hashable, Sendable, CustomStringConvertible {
    /// The dotted name, e.g. `net.ipv6.conf.all.forwarding`.
    public let name: String

    /// Where the interface-scoped keys apply.
    public enum Scope: Hashable, Sendable {
        /// Every interface (`all`): for `forwarding`, the switch that matters.
        case all
        /// The template for interfaces created later (`default`).
        case `default`
        /// One interface by name.
        case interface(String)
    }

    private init(unchecked name: String) { self.name = name }

    /// `net.ipv4.ip_forward`: IPv4 forwarding for the whole namespace.
    public static let ipv4Forwarding = SysctlKey(unchecked: "net.ipv4.ip_forward")

    /// `net.ipv6.conf.SCOPE.forwarding` (RFC 4861 router behaviour when 1).
    public static func ipv6Forwarding(_ scope: Scope) throws(SysctlError) -> SysctlKey {
        try conf("ipv6", scope, "forwarding")
    }
    /// `net.ipv6.conf.SCOPE.proxy_ndp`: kernel answers NS for `ip -6 neigh add proxy` entries.
    public static func proxyNDP(_ scope: Scope) throws(SysctlError) -> SysctlKey {
        try conf("ipv6", scope, "proxy_ndp")
    }
    /// `net.ipv6.conf.SCOPE.accept_ra`: 2 keeps accepting RAs while forwarding.
    public static func acceptRA(_ scope: Scope) throws(SysctlError) -> SysctlKey {
        try conf("ipv6", scope, "accept_ra")
    }
    /// `net.ipv6.conf.SCOPE.disable_ipv6`.
    public static func disableIPv6(_ scope: Scope) throws(SysctlError) -> SysctlKey {
        try conf("ipv6", scope, "disable_ipv6")
    }
    /// `net.ipv6.conf.SCOPE.accept_redirects` (`ipv6: true`) or `net.ipv4.conf.SCOPE.accept_redirects`.
    public static func acceptRedirects(ipv6: Bool, _ scope: Scope) throws(SysctlError) -> SysctlKey {
        try conf(ipv6 ? "ipv6" : "ipv4", scope, "accept_redirects")
    }
    /// `net.ipv4.conf.SCOPE.forwarding`.
    public static func ipv4InterfaceForwarding(_ scope: Scope) throws(SysctlError) -> SysctlKey {
        try conf("ipv4", scope, "forwarding")
    }

    private static func conf(_ family: String, _ scope: Scope, _ leaf: String) throws(SysctlError) -> SysctlKey {
        let part: String
        switch scope {
        case .all: part = "all"
        case .default: part = "default"
        case .interface(let name):
            guard Self.isValidInterfaceName(name) else { throw .invalidInterfaceName(name) }
            part = name
        }
        return SysctlKey(unchecked: "net.\(family).conf.\(part).\(leaf)")
    }

    /// Linux's rule for interface names (`dev_valid_name`): 1...15 bytes, no '/', ':' or white space, not "." or "..".
    public static func isValidInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), name != ".", name != ".." else { return false }
        return !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7f })
    }

    /// The file under /proc/sys. Interface names keep their dots (Linux swaps '.' and '/' in sysctl names;
    /// a name with a dot such as `eth0.100` is the directory `eth0.100`).
    public var path: String {
        // The first three components are fixed words; only the interface part may hold dots.
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 4, parts[1] == "ipv6" || parts[1] == "ipv4", parts[2] == "conf" {
            let iface = parts[3..<(parts.count - 1)].joined(separator: ".")
            return "/proc/sys/net/\(parts[1])/conf/\(iface)/\(parts[parts.count - 1])"
        }
        return "/proc/sys/" + parts.joined(separator: "/")
    }

    public var description: String { name }
}

/// Why a sysctl read or write failed, naming the key and what to do.
public enum SysctlError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidInterfaceName(String)
    /// The key does not exist: usually the interface is missing or IPv6 is disabled.
    case noSuchKey(SysctlKey)
    case permissionDenied(SysctlKey)
    case notAnInteger(SysctlKey, String)
    case io(SysctlKey, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidInterfaceName(let n):
            return "invalid interface name \"\(n)\": Linux names are 1-15 bytes without '/', ':' or spaces"
        case .noSuchKey(let k):
            return "sysctl \(k) does not exist (\(k.path)): is the interface present and IPv6 enabled in this namespace?"
        case .permissionDenied(let k):
            return "sysctl \(k): permission denied: writing needs root or CAP_NET_ADMIN in this network namespace"
        case .notAnInteger(let k, let text):
            return "sysctl \(k) holds \"\(text)\", not an integer"
        case .io(let k, let op, let e):
            return "sysctl \(k): \(op) failed: \(String(cString: strerror(e)))"
        }
    }
}

/// Reads and writes network sysctls through /proc/sys of the caller's network namespace.
public enum Sysctl {
    /// Opens the key's /proc/sys file from inside `namespace` (the file then stays bound to it).
    static func openKey(_ key: SysctlKey, _ flags: Int32, _ namespace: NetworkNamespace) throws(SysctlError) -> Int32 {
        var e: Int32 = 0
        let fd: Int32
        do {
            fd = try namespace.perform { () throws(RouteKitError) -> Int32 in
                let fd = open(key.path, flags | O_CLOEXEC)
                if fd < 0 { e = errno }
                return fd
            }
        } catch {
            throw .io(key, operation: "enter \(namespace)", errno: ENOENT)
        }
        if fd < 0 { throw mapErrno(e, key, "open") }
        return fd
    }

    /// Reads an integer sysctl. The corresponding command is `sysctl -n KEY`.
    public static func read(_ key: SysctlKey, in namespace: NetworkNamespace = .current) throws(SysctlError) -> Int {
        let fd = try openKey(key, O_RDONLY, namespace)
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw mapErrno(errno, key, "read") }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingWhitespace()
        guard let value = Int(text) else { throw .notAnInteger(key, text) }
        return value
    }

    /// Writes an integer sysctl. The corresponding command is `sysctl -w KEY=VALUE`.
    public static func write(_ key: SysctlKey, _ value: Int, in namespace: NetworkNamespace = .current) throws(SysctlError) {
        let fd = try openKey(key, O_WRONLY, namespace)
        defer { close(fd) }
        let text = Array("\(value)\n".utf8)
        let n = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw mapErrno(errno, key, "write") }
    }

    private static func mapErrno(_ e: Int32, _ key: SysctlKey, _ op: String) -> SysctlError {
        switch e {
        case ENOENT: return .noSuchKey(key)
        case EACCES, EPERM: return .permissionDenied(key)
        default: return .io(key, operation: op, errno: e)
        }
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
