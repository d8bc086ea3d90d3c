// The control socket: gatewayctl asks a running gatewayd to add or remove clients, reload, or
// report status. One JSON request line, one JSON reply line, per connection; a unix socket in the
// state directory with mode 0600, so only root (the owner) can use it.
import Foundation
import PacketKit
import RouteKit
import SixgateSystem
import TunnelCore

/// What gatewayctl asks.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Command: String, Codable, Sendable { case add, remove, status, reload, firewall, prefix }
    public var command: Command
    public var name: String?
    public var publicKey: String?
    /// add, firewall: openings to add ("tcp/22"); firewall: `close`, openings to remove.
    public var open: [PortOpening]?
    public var close: [PortOpening]?
    /// add, firewall: the client's exception to isolate_clients (false: not isolated).
    public var isolated: Bool?
    /// prefix: the new client prefix (renumbering), its preferred and valid lifetimes in seconds
    /// (none: without end), and how long the prefix it replaces stays valid (none: its own lifetime).
    public var prefix: String?
    public var preferred: UInt32?
    public var valid: UInt32?
    public var oldValid: UInt32?
    public init(command: Command, name: String? = nil, publicKey: String? = nil, open: [PortOpening]? = nil, close: [PortOpening]? = nil, isolated: Bool? = nil,
                prefix: String? = nil, preferred: UInt32? = nil, valid: UInt32? = nil, oldValid: UInt32? = nil) {
        self.command = command; self.name = name; self.publicKey = publicKey
        self.open = open; self.close = close; self.isolated = isolated; self.prefix = prefix
        self.preferred = preferred; self.valid = valid; self.oldValid = oldValid
    }
}

/// What gatewayd answers.
public struct ControlReply: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var client: ClientStatus?
    public var status: GatewayStatus?
    public var renumber: RenumberResult?
}

final class ControlServer: @unchecked Sendable {
    let path: String
    weak var gateway: Gateway?
    private var server: LocalSocketServer?

    /// The socket, mode 0600. A second gatewayd on the same state directory is refused rather than
    /// taking the socket over; a stale one (after kill -9) is replaced.
    init(path: String, gateway: Gateway) throws(GatewayError) {
        self.path = path
        self.gateway = gateway
        do {
            server = try LocalSocketServer(path: path, mode: 0o600, threadName: "sg-control") { [weak self] c in self?.handle(c) }
        } catch {
            throw .io(path: path, detail: error.errno == EADDRINUSE ? "another gatewayd serves this control socket" : "\(error.call): \(error.detail ?? String(cString: strerror(error.errno)))")
        }
    }

    func start() { server?.start() }

    func stop() { server?.stop() }

    private func handle(_ c: Int32) {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while data.count < 65536, !data.contains(10) {
            let n = read(c, &buffer, buffer.count)
            if n <= 0 { break }
            data.append(contentsOf: buffer[..<n])
        }
        let reply: ControlReply
        if let request = try? JSONDecoder().decode(ControlRequest.self, from: data.prefix { $0 != 10 }) {
            reply = respond(request)
        } else {
            reply = ControlReply(ok: false, error: "not a control request (one JSON line)")
        }
        var out = (try? JSONEncoder().encode(reply)) ?? Data("{\"ok\":false}".utf8)
        out.append(10)
        out.withUnsafeBytes { _ = LocalStream.sendAll(c, $0) }
    }

    private func respond(_ r: ControlRequest) -> ControlReply {
        guard let gateway else { return ControlReply(ok: false, error: "gateway stopping") }
        do {
            switch r.command {
            case .add:
                let client = try gateway.addClient(name: r.name ?? "", publicKey: r.publicKey ?? "", open: r.open ?? [], isolated: r.isolated ?? true)
                return ControlReply(ok: true, client: client)
            case .firewall:
                let client = try gateway.setFirewall(client: r.name ?? "", open: r.open ?? [], close: r.close ?? [], isolated: r.isolated)
                return ControlReply(ok: true, client: client)
            case .remove:
                try gateway.removeClient(name: r.name ?? "")
                return ControlReply(ok: true)
            case .status:
                return ControlReply(ok: true, status: try gateway.status())
            case .reload:
                _ = try gateway.reloadClients()
                return ControlReply(ok: true)
            case .prefix:
                guard let text = r.prefix, let p = IPv6Prefix(text) else { return ControlReply(ok: false, error: "prefix: \((r.prefix ?? "").debugDescription) is not an IPv6 prefix such as 2001:db8:2::/64") }
                return ControlReply(ok: true, renumber: try gateway.renumber(to: p, preferred: r.preferred, valid: r.valid, oldValid: r.oldValid))
            }
        } catch {
            return ControlReply(ok: false, error: error.description)
        }
    }
}

/// gatewayctl's side: sends one request to a running gatewayd. Returns nil when no gatewayd
/// listens (no socket, or nobody behind it), so the caller can work on the files instead.
public func sendControlRequest(_ request: ControlRequest, socketPath: String) throws(GatewayError) -> ControlReply? {
    let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard s >= 0 else { throw .control("socket: \(String(cString: strerror(errno)))") }
    defer { close(s) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { b in socketPath.utf8CString.withUnsafeBytes { b.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(b.count - 1))) } }
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    if rc != 0 {
        if errno == ENOENT || errno == ECONNREFUSED { return nil }
        throw .control("\(socketPath): \(String(cString: strerror(errno)))")
    }
    var tv = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    guard var out = try? JSONEncoder().encode(request) else { throw .control("cannot encode the request") }
    out.append(10)
    out.withUnsafeBytes { _ = write(s, $0.baseAddress, $0.count) }
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(s, &buffer, buffer.count)
        if n <= 0 { break }
        data.append(contentsOf: buffer[..<n])
    }
    guard let reply = try? JSONDecoder().decode(ControlReply.self, from: data) else {
        throw .control("\(socketPath): no usable reply from gatewayd")
    }
    return reply
}
