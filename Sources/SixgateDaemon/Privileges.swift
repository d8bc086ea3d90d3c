// After setup a daemon needs the network and nothing else: CAP_NET_ADMIN (routes, addresses,
// proxy entries, TUN devices, net sysctls, nft) and CAP_NET_RAW (packet and raw sockets). Every
// other capability (reading other users' files, loading modules, ptrace, mount...) is dropped from
// the process and from the bounding set, so hooks and the tools it runs (nft, ip) cannot get it
// back either. With a user (`--user`, default "sixgate" when that account exists) the process then
// stops being uid 0: the state it writes is handed to that user first, the two capabilities stay
// (ambient too, so nft and hooks get them), and NO_NEW_PRIVS is set either way (docs/security.md).
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

    /// The account daemons switch to after setup when it exists and no --user says otherwise.
    public static let defaultUser = "sixgate"

    /// A user to become: its name, uid and gid.
    public struct Account: Sendable, Equatable {
        public var name: String
        public var uid: uid_t
        public var gid: gid_t
    }

    /// The account `name` ("root" or "" means none: stay uid 0). nil with no error when `name` is
    /// the default and the account does not exist; an error naming it otherwise.
    public static func account(_ name: String?) throws(Error) -> Account? {
        let wanted = name ?? defaultUser
        if wanted == "root" || wanted.isEmpty { return nil }
        guard let pw = getpwnam(wanted) else {
            if name == nil { return nil }
            throw Error(description: "no user \(wanted.debugDescription) (create it: useradd --system --no-create-home --shell /usr/sbin/nologin \(wanted))")
        }
        return Account(name: wanted, uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid)
    }

    /// Hands `paths` to `account` (each path itself, never what a directory holds: callers name the
    /// files), so it can go on writing them after the switch. Needs root; a path that is gone is skipped.
    public static func handOver(_ paths: [String], to account: Account) throws(Error) {
        for path in paths {
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            guard lchown(path, account.uid, account.gid) == 0 else { throw Error(description: "chown \(path) to \(account.name): \(String(cString: strerror(errno)))") }
        }
    }

    /// `directory` and the entries directly in it (for `handOver`).
    public static func withEntries(_ directory: String) -> [String] {
        guard let d = opendir(directory) else { return [directory] }
        var out = [directory]
        while let e = readdir(d) {
            let n = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if n != "." && n != ".." { out.append(directory + "/" + n) }
        }
        closedir(d)
        return out
    }

    /// After setup: becomes `account` (if any) keeping only CAP_NET_ADMIN and CAP_NET_RAW, or
    /// stays uid 0 with only those; and sets NO_NEW_PRIVS. Every thread of the process at once
    /// (credentials are per thread; the daemons' threads already run). Returns what it did, for the log.
    public static func dropAfterSetup(to account: Account?) throws(Error) -> String {
        let keep: UInt64 = 1 << UInt64(netAdmin) | 1 << UInt64(netRaw)
        let becoming = account != nil && geteuid() == 0
        guard sixgate_drop_all_threads(account?.uid ?? 0, account?.gid ?? 0, keep, becoming ? 1 : 0) == 0 else {
            throw Error(description: "dropping privileges\(becoming ? " to user \(account!.name)" : ""): \(String(cString: strerror(errno)))")
        }
        if becoming { return "running as \(account!.name) (uid \(account!.uid)) with CAP_NET_ADMIN and CAP_NET_RAW, no new privileges" }
        return (geteuid() == 0 ? "running as root with only CAP_NET_ADMIN and CAP_NET_RAW (no user \(defaultUser); see --user)" : "running as uid \(geteuid())") + ", no new privileges"
    }

    /// The daemons' common step after setup: unless `keepCapabilities`, hands `paths` to the
    /// account and drops to it (or to root with two capabilities); says what it did through `info`,
    /// and what failed through `warning` (the daemon then goes on as it was started).
    public static func settle(account: Account?, keepCapabilities: Bool, handOver paths: [String],
                              info: (String) -> Void, warning: (String) -> Void) {
        guard !keepCapabilities else { info("keeping every capability it was started with (--keep-capabilities)"); return }
        do {
            if let account, geteuid() == 0 { try handOver(paths, to: account) }
            info(try dropAfterSetup(to: account))
        } catch {
            warning("\(error); running with the privileges it was started with")
        }
    }
}
