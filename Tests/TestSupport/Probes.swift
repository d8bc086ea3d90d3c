// Short probes for firewall tests: does a new TCP connection or a UDP datagram get from one network
// namespace to a listener in another? Each waits a bounded time and never retries forever.
import Foundation
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

func socketAddress(_ a: String, _ port: UInt16) -> (sockaddr_storage, socklen_t) {
    var ss = sockaddr_storage()
    if a.contains(":") {
        withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s in
            s.pointee.sin6_family = sa_family_t(AF_INET6); s.pointee.sin6_port = port.bigEndian
            inet_pton(AF_INET6, a, &s.pointee.sin6_addr)
        } }
        return (ss, socklen_t(MemoryLayout<sockaddr_in6>.size))
    }
    withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { s in
        s.pointee.sin_family = sa_family_t(AF_INET); s.pointee.sin_port = port.bigEndian
        inet_pton(AF_INET, a, &s.pointee.sin_addr)
    } }
    return (ss, socklen_t(MemoryLayout<sockaddr_in>.size))
}

func openSocket(in ns: String, family: Int32, type: Int32) throws -> Int32 {
    let fd = try NetworkNamespace.named(ns).perform { () throws(RouteKitError) -> Int32 in socket(family, type | Int32(SOCK_CLOEXEC.rawValue), 0) }
    guard fd >= 0 else { throw TransferError("socket: errno \(errno)") }
    return fd
}

/// Whether a new TCP connection from namespace `from` to `address`:`port` is accepted by a
/// listener this function opens in namespace `to` (bound to `address`), within `timeout` seconds.
/// A dropped SYN and a refused connection both give false.
public func tcpConnects(from: String, to: String, address: String, port: UInt16, timeout: Double = 2) throws -> Bool {
    let family = address.contains(":") ? AF_INET6 : AF_INET
    let (addr, len) = socketAddress(address, port)
    let listener = try openSocket(in: to, family: family, type: Int32(SOCK_STREAM.rawValue))
    defer { close(listener) }
    var one: Int32 = 1
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, 4)
    if family == AF_INET6 { setsockopt(listener, Int32(IPPROTO_IPV6), IPV6_FREEBIND, &one, 4) } else { setsockopt(listener, Int32(IPPROTO_IP), IP_FREEBIND, &one, 4) }
    var a = addr
    guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }) == 0, listen(listener, 4) == 0 else {
        throw TransferError("bind/listen \(address) port \(port) in \(to): errno \(errno)")
    }
    let client = try openSocket(in: from, family: family, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
    defer { close(client) }
    var b = addr
    let rc = withUnsafePointer(to: &b) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, len) } }
    if rc != 0 && errno != EINPROGRESS { return false }
    var p = pollfd(fd: client, events: Int16(POLLOUT), revents: 0)
    guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { return false }
    var err: Int32 = 0
    var errLen = socklen_t(4)
    getsockopt(client, SOL_SOCKET, SO_ERROR, &err, &errLen)
    guard err == 0 else { return false }
    var q = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
    guard poll(&q, 1, 1000) > 0 else { return false }
    let c = accept(listener, nil, nil)
    if c >= 0 { close(c) }
    return c >= 0
}

/// How many of `count` UDP datagrams sent from namespace `from` to `address`:`port` reach a socket
/// this function binds there in namespace `to`, waiting at most `timeout` seconds after the last.
public func udpDelivered(from: String, to: String, address: String, port: UInt16, count: Int = 3, timeout: Double = 1.5) throws -> Int {
    let family = address.contains(":") ? AF_INET6 : AF_INET
    let (addr, len) = socketAddress(address, port)
    let receiver = try openSocket(in: to, family: family, type: Int32(SOCK_DGRAM.rawValue))
    defer { close(receiver) }
    var one: Int32 = 1
    if family == AF_INET6 { setsockopt(receiver, Int32(IPPROTO_IPV6), IPV6_FREEBIND, &one, 4) } else { setsockopt(receiver, Int32(IPPROTO_IP), IP_FREEBIND, &one, 4) }
    var a = addr
    guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(receiver, $0, len) } }) == 0 else {
        throw TransferError("bind \(address) port \(port) in \(to): errno \(errno)")
    }
    let sender = try openSocket(in: from, family: family, type: Int32(SOCK_DGRAM.rawValue))
    defer { close(sender) }
    var b = addr
    for i in 0..<count {
        var payload = [UInt8]("probe \(i)".utf8)
        _ = withUnsafePointer(to: &b) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(sender, &payload, payload.count, 0, $0, len) } }
        usleep(50_000)
    }
    var received = 0
    var buf = [UInt8](repeating: 0, count: 2048)
    while received < count {
        var p = pollfd(fd: receiver, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { break }
        if recv(receiver, &buf, buf.count, 0) > 0 { received += 1 }
    }
    return received
}

/// Whether a UDP request from namespace `from` to `address`:`port` gets its answer back from an
/// echo socket this function binds in namespace `to` (a DNS-like exchange: the reply is
/// unsolicited unless a stateful filter on the way remembers the request).
public func udpExchange(from: String, to: String, address: String, port: UInt16, timeout: Double = 2) throws -> Bool {
    let family = address.contains(":") ? AF_INET6 : AF_INET
    let (addr, len) = socketAddress(address, port)
    let server = try openSocket(in: to, family: family, type: Int32(SOCK_DGRAM.rawValue))
    defer { close(server) }
    var a = addr
    guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, len) } }) == 0 else {
        throw TransferError("bind \(address) port \(port) in \(to): errno \(errno)")
    }
    let echo = Thread {
        var p = pollfd(fd: server, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { return }
        var buf = [UInt8](repeating: 0, count: 2048)
        var peer = sockaddr_storage()
        var peerLen = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(server, &buf, buf.count, 0, $0, &peerLen) } }
        guard n > 0 else { return }
        _ = withUnsafePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(server, &buf, n, 0, $0, peerLen) } }
    }
    echo.start()
    let client = try openSocket(in: from, family: family, type: Int32(SOCK_DGRAM.rawValue))
    defer { close(client) }
    var b = addr
    var payload = [UInt8]("question".utf8)
    _ = withUnsafePointer(to: &b) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(client, &payload, payload.count, 0, $0, len) } }
    var p = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
    guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { return false }
    var buf = [UInt8](repeating: 0, count: 2048)
    let got = recv(client, &buf, buf.count, 0) == payload.count
    while !echo.isFinished { usleep(10_000) }
    return got
}

/// Sends one ICMPv6 Packet Too Big (MTU `mtu`) from namespace `from` to `destination`, about a
/// packet from `destination` to `about` (a raw socket: the kernel fills in the checksum).
public func sendPacketTooBig(from: String, to destination: String, about: String, mtu: UInt32 = 1280) throws {
    let raw = try NetworkNamespace.named(from).perform { () throws(RouteKitError) -> Int32 in socket(AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_ICMPV6)) }
    guard raw >= 0 else { throw TransferError("raw socket: errno \(errno)") }
    defer { close(raw) }
    var inner = [UInt8](repeating: 0, count: 48)
    inner[0] = 0x60; inner[4] = 0; inner[5] = 8; inner[6] = 17; inner[7] = 64   // IPv6, 8 bytes of UDP, hop limit 64
    var src = in6_addr(), dst = in6_addr()
    inet_pton(AF_INET6, destination, &src); inet_pton(AF_INET6, about, &dst)
    withUnsafeBytes(of: src) { for i in 0..<16 { inner[8 + i] = $0[i] } }
    withUnsafeBytes(of: dst) { for i in 0..<16 { inner[24 + i] = $0[i] } }
    var message: [UInt8] = [2, 0, 0, 0, UInt8(mtu >> 24), UInt8(mtu >> 16 & 0xff), UInt8(mtu >> 8 & 0xff), UInt8(mtu & 0xff)] + inner
    let (addr, len) = socketAddress(destination, 0)
    var a = addr
    let n = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(raw, &message, message.count, 0, $0, len) } }
    guard n == message.count else { throw TransferError("sendto \(destination): errno \(errno)") }
}

/// A counter of /proc/net/snmp6 in namespace `ns` ("Icmp6InPktTooBigs"), -1 if missing.
public func snmp6(_ ns: String, _ name: String) throws -> Int {
    let text = try run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp6"], check: true).stdout
    return text.split(separator: "\n").first { $0.hasPrefix(name) }.flatMap { Int($0.split(whereSeparator: \.isWhitespace).last ?? "") } ?? -1
}

/// The keys of `keys` ("table.key" or "key") that the example config `text` does not show: a key
/// counts as shown by a line `key =` (or `# key =`) inside its `[table]` (or `# [table]`), or
/// anywhere for a top-level key. For the tests that every accepted key is documented.
public func keysMissing(from text: String, _ keys: Set<String>) -> [String] {
    var shown: Set<String> = []
    var table = ""
    for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
        var line = raw.trimmingCharacters(in: .whitespaces)
        while line.hasPrefix("#") { line = String(line.dropFirst()).trimmingCharacters(in: .whitespaces) }
        if line.hasPrefix("["), let end = line.firstIndex(of: "]") {
            table = String(line[line.index(after: line.startIndex)..<end])
            continue
        }
        guard let eq = line.firstIndex(of: "=") else { continue }
        let key = line[..<eq].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, !key.contains(" ") else { continue }
        shown.insert(key)
        if !table.isEmpty { shown.insert(table + "." + key) }
    }
    return keys.filter { !shown.contains($0) }.sorted()
}

/// The repository's folder (for tests that read its docs).
public var repositoryDirectory: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}
