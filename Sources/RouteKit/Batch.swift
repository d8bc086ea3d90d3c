// The batch path: tens of thousands of routes or proxy entries without one round trip each.
// Each request is built by libnl's builders, then many are packed into one netlink datagram
// (one sendto; the kernel processes them in order inside that call). Only the last message of a
// chunk asks for an ACK; failures come back as NLMSG_ERROR and are matched to their item by
// sequence number.
import CNetlink
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// The outcome of a batch: how many items the kernel accepted, and each failure with its index.
public struct BatchResult: Sendable {
    public var succeeded: Int
    public var failures: [(index: Int, error: RouteKitError)]
}

/// What a batch does with each item.
public enum BatchOperation: Sendable {
    /// Add; an existing equal object is a failure (EEXIST) for that item.
    case add
    /// Add or replace (routes); add or keep (proxy entries).
    case replace
    /// Remove; an object already gone is not a failure.
    case remove
}

extension RouteSocket {
    /// Bytes per datagram: well under the default socket send buffer (net.core.wmem_default).
    static let batchChunkBytes = 128 * 1024

    /// Applies `operation` to every route in one pass. The corresponding command is `ip -batch`.
    public func applyRoutes(_ routes: [Route], _ operation: BatchOperation) throws(RouteKitError) -> BatchResult {
        try batch(count: routes.count, operation: "\(operation) routes", describe: { routes[$0].description }) { i, out throws(RouteKitError) in
            let r = try routeObject(routes[i], operation: "batch")
            defer { rtnl_route_put(r) }
            switch operation {
            case .add: return rtnl_route_build_add_request(r, NLM_F_EXCL, out)
            case .replace: return rtnl_route_build_add_request(r, NLM_F_REPLACE, out)
            case .remove: return rtnl_route_build_del_request(r, 0, out)
            }
        } ignoring: { operation == .remove && $0 == .notFound }
    }

    /// Applies `operation` to proxy entries (address, interface index) in one pass.
    /// `.add` and `.replace` both accept an existing entry: the kernel does not report duplicates.
    public func applyProxyNeighbours(_ entries: [(address: IPv6Address, interfaceIndex: Int32)], _ operation: BatchOperation) throws(RouteKitError) -> BatchResult {
        try batch(count: entries.count, operation: "\(operation) proxy entries", describe: { "proxy \(entries[$0].address) dev #\(entries[$0].interfaceIndex)" }) { i, out throws(RouteKitError) in
            let n = try proxyObject(entries[i].address, interfaceIndex: entries[i].interfaceIndex, operation: "batch")
            defer { rtnl_neigh_put(n) }
            return operation == .remove ? rtnl_neigh_build_delete_request(n, 0, out) : rtnl_neigh_build_add_request(n, 0, out)
        } ignoring: { operation == .remove && $0 == .notFound }
    }

    private func batch(count: Int, operation: String, describe: (Int) -> String,
                       build: (Int, UnsafeMutablePointer<OpaquePointer?>) throws(RouteKitError) -> Int32,
                       ignoring: (RouteKitError.Code) -> Bool) throws(RouteKitError) -> BatchResult {
        var result = BatchResult(succeeded: 0, failures: [])
        guard count > 0 else { return result }
        let port = nl_socket_get_local_port(sock)
        var buffer = [UInt8]()
        buffer.reserveCapacity(Self.batchChunkBytes + 4096)
        var chunkStart = 0
        var i = 0
        while i < count {
            // Build one chunk.
            buffer.removeAll(keepingCapacity: true)
            var seqs = [UInt32]()
            chunkStart = i
            while i < count && buffer.count < Self.batchChunkBytes {
                var msg: OpaquePointer? = nil
                let rc = try build(i, &msg)
                guard rc >= 0, let msg else { throw RouteKitError(libnl: rc, operation: operation, object: describe(i)) }
                defer { nlmsg_free(msg) }
                let h = nlmsg_hdr(msg)!
                // A private sequence range: libnl's own counters stay in step for its requests.
                batchSequence = batchSequence &+ 1
                let seq = batchSequence | 0x8000_0000
                h.pointee.nlmsg_seq = seq
                h.pointee.nlmsg_pid = port
                h.pointee.nlmsg_flags |= UInt16(NLM_F_REQUEST)
                seqs.append(seq)
                let len = Int(h.pointee.nlmsg_len)
                let aligned = (len + 3) & ~3
                buffer.append(contentsOf: UnsafeRawBufferPointer(start: UnsafeRawPointer(h), count: len))
                buffer.append(contentsOf: repeatElement(0, count: aligned - len))
                i += 1
            }
            // The chunk's last message asks for the ACK that ends reading its replies.
            let lastOffset = try lastMessageOffset(buffer)
            buffer.withUnsafeMutableBytes { b in
                var flags = b.load(fromByteOffset: lastOffset + 6, as: UInt16.self)
                flags |= UInt16(NLM_F_ACK)
                b.storeBytes(of: flags, toByteOffset: lastOffset + 6, as: UInt16.self)
            }
            let sent = buffer.withUnsafeMutableBytes { nl_sendto(sock, $0.baseAddress, $0.count) }
            if sent < 0 { throw RouteKitError(libnl: sent, operation: operation, object: "\(seqs.count) requests") }
            // Read replies until the ACK (or error) for the last sequence number.
            let first = seqs[0], last = seqs[seqs.count - 1]
            var failed = 0
            var done = false
            while !done {
                var from = sockaddr_nl()
                var raw: UnsafeMutablePointer<UInt8>? = nil
                let n = nl_recv(sock, &from, &raw, nil)
                if n <= 0 { throw RouteKitError(libnl: n == 0 ? -NLE_FAILURE : n, operation: operation, object: "replies") }
                defer { free(raw) }
                var rem = n
                var h = UnsafeMutableRawPointer(raw!).assumingMemoryBound(to: nlmsghdr.self)
                while nlmsg_ok(h, rem) != 0 {
                    let seq = h.pointee.nlmsg_seq
                    if h.pointee.nlmsg_type == UInt16(NLMSG_ERROR), seq &- first <= last &- first {  // wrap-safe range check
                        let e = nlmsg_data(h).assumingMemoryBound(to: nlmsgerr.self).pointee.error
                        if e != 0 {
                            let index = chunkStart + Int(seq - first)
                            let error = RouteKitError(errno: -e, operation: operation, object: describe(index))
                            if !ignoring(error.code) {
                                result.failures.append((index, error))
                                failed += 1
                            }
                        }
                        if seq == last { done = true }
                    }
                    h = nlmsg_next(h, &rem)
                }
            }
            result.succeeded += seqs.count - failed
        }
        return result
    }

    private func lastMessageOffset(_ buffer: [UInt8]) throws(RouteKitError) -> Int {
        var o = 0, last = 0
        while o + 16 <= buffer.count {
            last = o
            let len = Int(buffer.withUnsafeBytes { $0.load(fromByteOffset: o, as: UInt32.self) })
            guard len >= 16 else { throw RouteKitError(.invalidArgument, operation: "batch", object: "message", detail: "bad length") }
            o += (len + 3) & ~3
        }
        return last
    }
}
