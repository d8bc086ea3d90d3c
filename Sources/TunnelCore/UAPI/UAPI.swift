// The cross-platform userspace API (wireguard.com/xplatform): text `get=1` / `set=1` requests on a
// unix socket /var/run/wireguard/NAME.sock, so the stock `wg` tool shows and sets the device.
import CTunnel
import PacketKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

extension TunnelDevice {
    /// The `get=1` answer: device then peers, keys in hex, ending with errno=0.
    public func uapiGet() -> String {
        var out = ""
        lock.lock()
        if let identity = engine.identity { out += "private_key=\(identity.privateKey.hex)\n" }
        out += "listen_port=\(socket.port)\n"
        if socket.mark != 0 { out += "fwmark=\(socket.mark)\n" }
        let list = engine.peers.values.sorted { $0.config.publicKey.hex < $1.config.publicKey.hex }
        for p in list {
            out += "public_key=\(p.config.publicKey.hex)\n"
            if !p.config.presharedKey.isZero { out += "preshared_key=\(p.config.presharedKey.hex)\n" }
            out += "protocol_version=1\n"
            if let e = p.config.endpoint { out += "endpoint=\(e)\n" }
            out += "last_handshake_time_sec=\(p.lastHandshakeWall.seconds)\nlast_handshake_time_nsec=\(p.lastHandshakeWall.nanoseconds)\n"
            out += "tx_bytes=\(p.txBytes)\nrx_bytes=\(p.rxBytes)\n"
            out += "persistent_keepalive_interval=\(p.config.persistentKeepalive)\n"
            for a in p.config.allowedIPs { out += "allowed_ip=\(a)\n" }
        }
        lock.unlock()
        return out + "errno=0\n\n"
    }

    /// Applies a `set=1` body (the lines after `set=1`, up to the blank line). Returns errno (0 on success)
    /// and a message naming the line and key for anything refused; nothing is applied past an error.
    public func uapiSet(_ body: String) -> (errno: Int32, message: String?) {
        let existing: [Bytes32: PeerConfiguration] = lock.withLock { engine.peerConfigurations() }
        let request: UAPISetRequest
        do { request = try UAPISetRequest(parsing: body, existing: existing) } catch { return (EINVAL, error.description) }
        do {
            if request.privateKey != nil || request.listenPort != nil {
                try configure(privateKey: request.privateKey ?? self.privateKey, listenPort: request.listenPort)
            }
            if let mark = request.firewallMark, mark != socket.mark { try setMark(mark) }
            if request.replacePeers {
                let kept = Set(request.peers.map(\.config.publicKey))
                for k in existing.keys where !kept.contains(k) { removePeer(k) }
            }
            for c in request.peers {
                if c.remove { removePeer(c.config.publicKey); continue }
                if c.updateOnly && !c.exists { continue }
                try setPeer(c.config)
            }
        } catch {
            return (error.errno != 0 ? error.errno : EINVAL, error.description)
        }
        return (0, nil)
    }
}

/// A UAPI `set=1` body, parsed and checked before anything is applied (wireguard.com/xplatform):
/// device keys first, then per peer a `public_key` line followed by that peer's keys.
public struct UAPISetRequest: Sendable {
    /// `private_key`: nil when absent, .some(nil) to remove the key (all zeros).
    public var privateKey: Bytes32?? = nil
    public var listenPort: UInt16?
    /// `fwmark`: the mark for the device's datagrams (0: none).
    public var firewallMark: UInt32?
    public var replacePeers = false
    public struct PeerChange: Sendable {
        /// The peer's configuration after the change (starting from `existing`'s when it is there).
        public var config: PeerConfiguration
        public var remove = false
        public var updateOnly = false
        public var replaceAllowedIPs = false
        /// Whether the peer was in `existing`.
        public var exists: Bool
        /// `config.allowedIPs` as a set, so a body of many `allowed_ip` lines stays linear.
        var allowedSet: Set<IPPrefix>? = nil
        init(config: PeerConfiguration, exists: Bool) { self.config = config; self.exists = exists }
    }
    public var peers: [PeerChange] = []

    /// Why a body was refused: the line number and key.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Parses `body` (lines up to the first empty one). `existing` are the device's peers, which
    /// a change starts from. Never traps; anything malformed is a `ParseError` naming the line.
    public init(parsing body: String, existing: [Bytes32: PeerConfiguration] = [:]) throws(ParseError) {
        var lineNumber = 0
        for raw in body.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = String(raw)
            if line.isEmpty { break }
            guard let eq = line.firstIndex(of: "=") else { throw ParseError(description: "line \(lineNumber): expected key=value, got \"\(line.prefix(80))\"") }
            let key = String(line[..<eq]), value = String(line[line.index(after: eq)...])
            func bad(_ why: String) -> ParseError { ParseError(description: "line \(lineNumber): \(key.prefix(40)): \(why)") }
            if peers.isEmpty || key == "public_key" {
                switch key {
                case "private_key":
                    guard let k = Bytes32(hex: value) else { throw bad("expected 64 hex digits") }
                    privateKey = .some(k.isZero ? nil : k); continue
                case "listen_port":
                    guard let p = UInt16(value) else { throw bad("expected a port 0-65535") }
                    listenPort = p; continue
                case "fwmark":
                    guard let m = UInt32(value) else { throw bad("expected a number 0-4294967295") }
                    firewallMark = m; continue
                case "replace_peers":
                    guard value == "true" else { throw bad("only \"true\" is allowed") }
                    replacePeers = true; continue
                case "public_key":
                    guard let k = Bytes32(hex: value) else { throw bad("expected 64 hex digits") }
                    let old = existing[k]
                    peers.append(PeerChange(config: old ?? PeerConfiguration(publicKey: k), exists: old != nil)); continue
                default:
                    if peers.isEmpty { throw bad("unknown device key") }
                }
            }
            var c = peers.removeLast()
            switch key {
            case "remove": guard value == "true" else { throw bad("only \"true\" is allowed") }; c.remove = true
            case "update_only": guard value == "true" else { throw bad("only \"true\" is allowed") }; c.updateOnly = true
            case "preshared_key":
                guard let k = Bytes32(hex: value) else { throw bad("expected 64 hex digits") }
                c.config.presharedKey = k
            case "endpoint":
                guard let e = Endpoint(value) else { throw bad("expected IPv4:port or [IPv6]:port") }
                c.config.endpoint = e
            case "persistent_keepalive_interval":
                guard let v = UInt16(value) else { throw bad("expected seconds 0-65535") }
                c.config.persistentKeepalive = v
            case "replace_allowed_ips":
                guard value == "true" else { throw bad("only \"true\" is allowed") }
                c.replaceAllowedIPs = true; c.config.allowedIPs = []; c.allowedSet = []
            case "allowed_ip":
                guard let p = try? IPPrefix.parse(value) else { throw bad("expected an address/prefix-length") }
                if c.allowedSet == nil { c.allowedSet = Set(c.config.allowedIPs) }
                if c.allowedSet!.insert(p).inserted { c.config.allowedIPs.append(p) }
            case "protocol_version":
                guard value == "1" else { throw bad("only protocol version 1 exists") }
            default:
                throw bad("unknown peer key")
            }
            peers.append(c)
        }
    }
}

/// Serves the UAPI on /var/run/wireguard/NAME.sock for a device (one thread, one client at a time).
public final class UAPIServer: @unchecked Sendable {
    public let path: String
    weak var device: TunnelDevice?
    var server: LocalSocketServer?

    /// Creates the socket (mode 0600 in a 0755 directory) for `device`. The directory is shared by
    /// every network namespace, so interface names must differ between namespaces: a live socket of
    /// another device is refused, a stale one (a crashed daemon's) replaced.
    public init(device: TunnelDevice, directory: String = "/var/run/wireguard") throws(TunnelError) {
        self.device = device
        path = "\(directory)/\(device.name).sock"
        mkdir(directory, 0o755)
        do {
            server = try LocalSocketServer(path: path, mode: 0o600, threadName: "sg-uapi") { [weak self] c in self?.handle(c) }
        } catch {
            throw TunnelError(operation: error.call, object: path,
                              detail: error.errno == EADDRINUSE ? "another device already serves this name" : error.description, errno: error.errno)
        }
    }

    deinit { stop() }

    public func start() { server?.start() }

    /// Stops serving and removes the socket file.
    public func stop() { server?.stop() }

    /// Reads requests until the client closes; each ends with a blank line.
    func handle(_ c: Int32) {
        var pending = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(c, $0.baseAddress, 4096) }
            if n <= 0 { return }
            pending += chunk[0..<n]
            if pending.count > 1 << 20 { return }
            while let end = Self.requestEnd(pending) {
                let request = String(decoding: pending[0..<end], as: UTF8.self)
                pending.removeFirst(end + 2)
                let reply = respond(request)
                guard Array(reply.utf8).withUnsafeBytes({ LocalStream.sendAll(c, $0) }) else { return }
            }
        }
    }

    static func requestEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 2 else { return nil }
        for i in 0..<(b.count - 1) where b[i] == 10 && b[i + 1] == 10 { return i }
        return nil
    }

    func respond(_ request: String) -> String {
        guard let device else { return "errno=\(ENODEV)\n\n" }
        if request == "get=1" { return device.uapiGet() }
        if request.hasPrefix("set=1\n") || request == "set=1" {
            let body = request == "set=1" ? "" : String(request.dropFirst(6))
            let (e, message) = device.uapiSet(body + "\n")
            if let message { device.lastUAPIError = message }
            return "errno=\(e)\n\n"
        }
        return "errno=\(EINVAL)\n\n"
    }
}
