// `metrics_listen`: Prometheus scrapes /metrics over HTTP from a daemon. The HTTP server is
// libmicrohttpd (Debian's libmicrohttpd12, opened when the first endpoint starts) on a thread of its
// own; the listening socket is made here so that a bad address or a port in use is reported with
// the address and the errno.
import CMetricsHTTP
#if canImport(Glibc)
import Glibc
#endif

/// Why the endpoint did not start.
public struct MetricsEndpointError: Error, CustomStringConvertible, Equatable {
    /// The `metrics_listen` value as given.
    public let address: String
    /// What failed: the address's syntax, or the system call and its errno text.
    public let reason: String
    public var description: String { "metrics_listen \(address): \(reason)" }
}

/// A `metrics_listen` value: `IPV4:PORT` or `[IPV6]:PORT` (port 0: the kernel picks one).
public struct MetricsListenAddress: Equatable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: UInt16
    public var isIPv6: Bool { host.contains(":") }
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `127.0.0.1:9469`, `[::1]:9469`, `[::]:9469`, `0.0.0.0:9469`.
    public init(parsing text: String) throws(MetricsEndpointError) {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw MetricsEndpointError(address: text, reason: "expected [IPV6]:PORT, e.g. [::1]:9469")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw MetricsEndpointError(address: text, reason: "expected IPV4:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9469")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else {
            throw MetricsEndpointError(address: text, reason: "the port \"\(portText)\" is not a number from 0 to 65535")
        }
        var probe = in6_addr()
        let family = host.contains(":") ? AF_INET6 : AF_INET
        guard String(host).withCString({ inet_pton(family, $0, &probe) }) == 1 else {
            throw MetricsEndpointError(address: text, reason: "\"\(host)\" is not an IPv\(family == AF_INET6 ? 6 : 4) address (a name is not looked up)")
        }
        self.host = String(host)
        self.port = port
    }
}

/// Serves `GET /metrics` (and `HEAD`) with what `render` returns at that moment (500 with the error's
/// text when it throws); `/` says where the metrics are, other paths get 404 and other methods 405. At most 16 connections at once, each
/// closed after 10 seconds of silence. `render` runs on the server's thread, one request at a time.
///
/// ```swift
/// let endpoint = try MetricsEndpoint(listen: "127.0.0.1:9469") { page() }
/// print("metrics on port", endpoint.port)
/// endpoint.stop()
/// ```
public final class MetricsEndpoint: @unchecked Sendable {
    public let address: MetricsListenAddress
    /// The port listened on (the kernel's choice when the address said 0).
    public let port: UInt16
    let render: @Sendable () throws -> [UInt8]
    /// Where a scraper finds the page: `http://127.0.0.1:9469/metrics`.
    public var url: String {
        "http://" + (address.isIPv6 ? "[\(address.host)]" : address.host) + ":\(port)/metrics"
    }
    var server: OpaquePointer?

    public convenience init(listen: String, render: @escaping @Sendable () throws -> [UInt8]) throws(MetricsEndpointError) {
        try self.init(address: MetricsListenAddress(parsing: listen), render: render)
    }

    public init(address: MetricsListenAddress, render: @escaping @Sendable () throws -> [UInt8]) throws(MetricsEndpointError) {
        self.address = address
        self.render = render
        if let why = sg_metrics_load() {
            throw MetricsEndpointError(address: address.description,
                                       reason: "libmicrohttpd cannot be loaded (\(String(cString: why))); on Debian: apt install libmicrohttpd12")
        }
        let (fd, port) = try Self.listen(on: address)
        self.port = port
        let limit: UInt32 = 16, timeout: UInt32 = 10
        guard let s = sg_metrics_start(fd, metricsHandler, Unmanaged.passUnretained(self).toOpaque(), limit, timeout) else {
            close(fd)
            throw MetricsEndpointError(address: address.description, reason: "libmicrohttpd did not start its server")
        }
        server = s
    }

    deinit { stop() }

    /// Stops serving and closes the socket. Idempotent.
    public func stop() {
        if let s = server { sg_metrics_stop(s) }
        server = nil
    }

    static func listen(on a: MetricsListenAddress) throws(MetricsEndpointError) -> (Int32, UInt16) {
        func failure(_ call: String) -> MetricsEndpointError {
            MetricsEndpointError(address: a.description, reason: "\(call): \(String(cString: strerror(errno)))")
        }
        let family = a.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if a.isIPv6 {
            // [::] means IPv6 only here; a scraper on IPv4 names 0.0.0.0 in a second daemon option.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var storage = sockaddr_storage()
        let length = Self.socketAddress(a, into: &storage)
        let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { let e = failure("bind"); close(fd); throw e }
        guard Glibc.listen(fd, 16) == 0 else { let e = failure("listen"); close(fd); throw e }
        var actual = sockaddr_storage()
        var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) } }
        let port: UInt16 = withUnsafeBytes(of: &actual) { raw in
            // sin_port and sin6_port sit at the same offset, in network order.
            UInt16(raw[2]) << 8 | UInt16(raw[3])
        }
        return (fd, port)
    }

    /// `a` as a sockaddr_in or sockaddr_in6 in `storage`; returns its length.
    static func socketAddress(_ a: MetricsListenAddress, into storage: inout sockaddr_storage) -> socklen_t {
        func put<T>(_ value: T) -> socklen_t {
            withUnsafeMutableBytes(of: &storage) { s in withUnsafeBytes(of: value) { s.copyMemory(from: $0) } }
            return socklen_t(MemoryLayout<T>.size)
        }
        if a.isIPv6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = a.port.bigEndian
            _ = a.host.withCString { inet_pton(AF_INET6, $0, &sa.sin6_addr) }
            return put(sa)
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = a.port.bigEndian
        _ = a.host.withCString { inet_pton(AF_INET, $0, &sa.sin_addr) }
        return put(sa)
    }

    func answer(method: String, path: String) -> (status: UInt32, body: [UInt8], type: StaticString) {
        guard method == "GET" || method == "HEAD" else {
            return (405, Array("only GET and HEAD\n".utf8), "text/plain; charset=utf-8")
        }
        switch path {
        case "/metrics":
            do { return (200, try render(), "text/plain; version=0.0.4; charset=utf-8") } catch {
                // A scrape that fails shows as such in Prometheus (up stays 1, the scrape errors).
                return (500, Array("metrics unavailable: \(error)\n".utf8), "text/plain; charset=utf-8")
            }
        case "/": return (200, Array("Prometheus metrics: /metrics\n".utf8), "text/plain; charset=utf-8")
        default: return (404, Array("not found; the metrics are at /metrics\n".utf8), "text/plain; charset=utf-8")
        }
    }
}

private func metricsHandler(
    _ context: UnsafeMutableRawPointer?, _ method: UnsafePointer<CChar>?, _ path: UnsafePointer<CChar>?,
    _ body: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ length: UnsafeMutablePointer<Int>?,
    _ contentType: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> UInt32 {
    guard let context, let body, let length, let contentType else { return 500 }
    let endpoint = Unmanaged<MetricsEndpoint>.fromOpaque(context).takeUnretainedValue()
    let answer = endpoint.answer(method: method.map { String(cString: $0) } ?? "", path: path.map { String(cString: $0) } ?? "")
    if !answer.body.isEmpty, let buffer = malloc(answer.body.count) {
        answer.body.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        body.pointee = buffer.assumingMemoryBound(to: CChar.self)
        length.pointee = answer.body.count
    }
    contentType.pointee = UnsafeRawPointer(answer.type.utf8Start).assumingMemoryBound(to: CChar.self)
    return answer.status
}
