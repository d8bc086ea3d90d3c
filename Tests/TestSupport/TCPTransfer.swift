// A TCP transfer between two network namespaces, through sockets this process opens in each.
import Foundation
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

public struct TransferError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Sends `bytes` over TCP from namespace `from` to `address`:`port` in namespace `to`, through
/// sockets this process opens in each namespace, and returns what the receiver got. With
/// `listenAddress` the receiver listens there instead (the sender's `address` is translated to it
/// on the way, as through NAT64).
public func tcpTransfer(from: String, to: String, address: String, port: UInt16, bytes: [UInt8], listenAddress: String? = nil) throws -> [UInt8] {
    func sockaddrFor(_ a: String) -> (sockaddr_storage, socklen_t) { socketAddress(a, port) }
    let (addr, len) = sockaddrFor(address)
    let (listenAddr, listenLen) = sockaddrFor(listenAddress ?? address)
    let listenFamily = (listenAddress ?? address).contains(":") ? AF_INET6 : AF_INET, family = address.contains(":") ? AF_INET6 : AF_INET
    let listener = try NetworkNamespace.named(to).perform { () throws(RouteKitError) -> Int32 in socket(listenFamily, Int32(SOCK_STREAM.rawValue), 0) }
    defer { close(listener) }
    var one: Int32 = 1
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, 4)
    var a = listenAddr
    guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, listenLen) } }) == 0, listen(listener, 1) == 0 else {
        throw TransferError("bind/listen: errno \(errno)")
    }
    final class Sink: @unchecked Sendable { var data: [UInt8] = []; let done = DispatchSemaphore(value: 0) }
    let sink = Sink()
    let expected = bytes.count
    Thread {
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, 20_000) > 0 {
            let c = accept(listener, nil, nil)
            var tv = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var buf = [UInt8](repeating: 0, count: 65536)
            while sink.data.count < expected {
                let n = buf.withUnsafeMutableBytes { read(c, $0.baseAddress, 65536) }
                if n <= 0 { break }
                sink.data += buf[0..<n]
            }
            close(c)
        }
        sink.done.signal()
    }.start()
    let client = try NetworkNamespace.named(from).perform { () throws(RouteKitError) -> Int32 in socket(family, Int32(SOCK_STREAM.rawValue), 0) }
    defer { close(client) }
    var tv = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var b = addr
    guard withUnsafePointer(to: &b, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, len) } }) == 0 else {
        throw TransferError("connect to \(address): errno \(errno)")
    }
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { write(client, $0.baseAddress! + sent, bytes.count - sent) }
        if n <= 0 { throw TransferError("write: errno \(errno)") }
        sent += n
    }
    shutdown(client, Int32(SHUT_WR))
    _ = sink.done.wait(timeout: .now() + 30)
    return sink.data
}
