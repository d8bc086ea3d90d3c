// libnl-3 access. Links, addresses, routes and neighbours arrive with issue 3; today this file
// proves the CNetlink shim links and can open a NETLINK_ROUTE socket.
import CNetlink

/// Facts about the netlink library RouteKit is built on.
public enum Netlink {
    /// The libnl version compiled against (for `gatewayctl doctor` and bug reports).
    public static var libraryVersion: String { String(cString: sixgate_nl_version()) }

    /// Opens and closes a NETLINK_ROUTE socket, throwing libnl's reason if the kernel refuses.
    /// The corresponding C functions are `nl_socket_alloc` and `nl_connect`.
    public static func probeRouteSocket() throws(NetlinkError) {
        guard let sock = nl_socket_alloc() else { throw NetlinkError(operation: "nl_socket_alloc", code: -NLE_NOMEM) }
        defer { nl_socket_free(sock) }
        let rc = nl_connect(sock, NETLINK_ROUTE)
        if rc < 0 { throw NetlinkError(operation: "nl_connect(NETLINK_ROUTE)", code: rc) }
    }
}

/// A libnl failure: which call, libnl's error code and its text.
public struct NetlinkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The libnl call that failed.
    public var operation: String
    /// libnl's negative error code (`NLE_*`).
    public var code: Int32
    public var description: String { "\(operation) failed: \(String(cString: nl_geterror(code)))" }
}
