// After setup a daemon needs the network and nothing else: CAP_NET_ADMIN (routes, addresses,
// proxy entries, TUN devices, net sysctls, nft) and CAP_NET_RAW (packet and raw sockets). Every
// other capability (reading other users' files, loading modules, ptrace, mount...) is dropped from
// the process and from the bounding set, so hooks and the tools it runs (nft, ip) cannot get it
// back either. The process stays uid 0, so the root-owned files in its state directory stay its
// own.
import CPrivileges
#if canImport(Glibc)
import Glibc
#endif

public enum Privileges {
    public static let netAdmin = 12, netRaw = 13

    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The capability sets of this process now.
    public static func current() -> (effective: UInt64, permitted: UInt64, bounding: UInt64)? {
        var e: UInt64 = 0, p: UInt64 = 0, b: UInt64 = 0
        guard sixgate_capabilities(&e, &p, &b) == 0 else { return nil }
        return (e, p, b)
    }

    /// Keeps only CAP_NET_ADMIN and CAP_NET_RAW (those of them the process has). A process that
    /// never had more (not root, or already bounded, as the systemd units do) is left as it is.
    public static func keepOnlyNetworkCapabilities() throws(Error) {
        let keep: UInt64 = 1 << UInt64(netAdmin) | 1 << UInt64(netRaw)
        guard let now = current(), now.permitted & ~keep != 0 || now.bounding & ~keep != 0 else { return }
        guard sixgate_keep_capabilities(keep) == 0 else {
            throw Error(description: "dropping capabilities: \(String(cString: strerror(errno)))")
        }
    }
}
