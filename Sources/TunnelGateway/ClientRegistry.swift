// Enrolled clients: one small file per client in the state directory's clients/ folder, as tinc
// keeps hosts/NAME, so an operator can read, back up or remove them with ordinary tools.
import Foundation
import RouteKit
import SixgateConfig
import TunnelCore

/// A client the gateway accepts.
public struct ClientRecord: Sendable, Equatable, Codable {
    public var name: String
    public var publicKey: String
    /// Inbound connections the gateway's firewall lets through to the client's addresses
    /// (`open = ["tcp/22", "udp/51413-51420"]`); everything else unsolicited is dropped.
    public var open: [PortOpening]
    /// false: exempt from `isolate_clients` (new connections to and from the other exempt clients pass).
    public var isolated: Bool
    public init(name: String, publicKey: String, open: [PortOpening] = [], isolated: Bool = true) {
        self.name = name; self.publicKey = publicKey; self.open = PortOpening.normalized(open); self.isolated = isolated
    }
}

public enum GatewayError: Error, Sendable, CustomStringConvertible, Equatable {
    case invalidClientName(String)
    case invalidKey(String)
    case clientExists(String)
    case keyInUse(key: String, client: String)
    case unknownClient(String)
    case config(ConfigError)
    case io(path: String, detail: String)
    /// Setting up or changing the gateway failed: on what, why, and the error underneath.
    case setup(SetupFailure)
    case control(String)
    /// A firewall setting that cannot be used (a bad `--open` value): nothing was changed.
    case firewall(FilterSpecError)

    public var description: String {
        switch self {
        case .invalidClientName(let n): return "client name \(n.debugDescription) is not valid: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
        case .invalidKey(let k): return "\(k.debugDescription) is not a WireGuard public key (44 characters of base64, as `wg pubkey` prints)"
        case .clientExists(let n): return "a client named \(n) exists already (remove it first, or choose another name)"
        case .keyInUse(let key, let client): return "public key \(key) belongs to client \(client) already"
        case .unknownClient(let n): return "no client named \(n)"
        case .config(let e): return e.description
        case .io(let path, let detail): return "\(path): \(detail)"
        case .setup(let f): return f.description
        case .control(let s): return s
        case .firewall(let e): return "firewall: \(e)"
        }
    }
}

/// What a setup step failed on (issue 27: RouteKit's, TunnelCore's and the Translator's typed errors
/// are kept, not folded into text): the object ("netlink", "proxy NDP on eth0", "client alice",
/// "NAT64 sixgate0-nat64", "firewall"), the reason as the operator reads it, and the error itself.
public struct SetupFailure: Sendable, Equatable, CustomStringConvertible {
    public let object: String
    public let reason: String
    public let underlying: (any Error & Sendable)?
    public init(_ object: String, _ reason: String, underlying: (any Error & Sendable)? = nil) {
        self.object = object; self.reason = reason; self.underlying = underlying
    }
    public var description: String { object.isEmpty ? reason : "\(object): \(reason)" }
    public static func == (a: SetupFailure, b: SetupFailure) -> Bool { a.object == b.object && a.reason == b.reason }
}

extension GatewayError {
    /// `object` failed with `error`, kept.
    static func setup(_ object: String, _ error: any Error & Sendable) -> GatewayError { .setup(SetupFailure(object, "\(error)", underlying: error)) }
}

/// Where enrolled clients are kept (issue 25's seam): every reader and writer of client records
/// goes through it. `ClientRegistry` (a folder of files, one per client) is the embedded default;
/// a database behind the same four calls lets several gateways share their clients.
public protocol ClientStore: Sendable {
    /// Every client, sorted by name; a record that does not parse is an error naming it.
    func all() throws(GatewayError) -> [ClientRecord]
    func read(_ name: String) throws(GatewayError) -> ClientRecord
    /// Creates or replaces the record atomically (a reader sees the old one or the new one).
    func write(_ c: ClientRecord) throws(GatewayError)
    /// No error if it is already gone.
    func remove(_ name: String) throws(GatewayError)
    /// Refuses a new client whose name or public key is taken (`clientExists`, `keyInUse`), before
    /// anything is allocated for it.
    func checkNew(_ c: ClientRecord) throws(GatewayError)
    /// Writes a new client; a store shared by several gateways refuses it there and then when
    /// another gateway took the name or the key meanwhile (the same errors as `checkNew`).
    func create(_ c: ClientRecord) throws(GatewayError)
    /// A store shared by several gateways: the clients written or removed (by any gateway) since
    /// the last call, or since `all()` for the first. nil: one gateway, its memory is the truth.
    func changes() throws(GatewayError) -> (written: [ClientRecord], removed: [String])?
}

extension ClientStore {
    public func checkNew(_ c: ClientRecord) throws(GatewayError) {
        let existing = try all()
        if existing.contains(where: { $0.name == c.name }) { throw .clientExists(c.name) }
        if let other = existing.first(where: { $0.publicKey == c.publicKey }) { throw .keyInUse(key: c.publicKey, client: other.name) }
    }
    public func create(_ c: ClientRecord) throws(GatewayError) { try write(c) }
    public func changes() throws(GatewayError) -> (written: [ClientRecord], removed: [String])? { nil }
}

/// The clients/ folder.
public struct ClientRegistry: ClientStore {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public static func validate(name: String) throws(GatewayError) {
        guard (1...64).contains(name.utf8.count), !name.hasPrefix("."),
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }) else {
            throw .invalidClientName(name)
        }
    }

    /// Every client, sorted by name. A file that does not parse is an error naming it.
    public func all() throws(GatewayError) -> [ClientRecord] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            if !FileManager.default.fileExists(atPath: directory) { return [] }
            throw .io(path: directory, detail: "cannot list: \(error.localizedDescription)")
        }
        var out: [ClientRecord] = []
        for name in names.sorted() where !name.hasPrefix(".") && !name.hasSuffix(".tmp") {
            out.append(try read(name))
        }
        return out
    }

    public func read(_ name: String) throws(GatewayError) -> ClientRecord {
        try Self.validate(name: name)
        let path = directory + "/" + name
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw FileManager.default.fileExists(atPath: path) ? .io(path: path, detail: "unreadable") : .unknownClient(name)
        }
        do throws(ConfigError) {
            let f = try ConfigFile(text: text, path: path)
            try f.rejectUnknownKeys(["public_key", "open", "isolate"])
            guard let key = try f.string("public_key") else { throw ConfigError(file: path, line: 1, key: "public_key", message: "missing") }
            guard Bytes32(base64: key) != nil else { throw f.error("public_key", "\(key.debugDescription) is not a WireGuard public key") }
            var open: [PortOpening] = []
            for s in try f.strings("open") ?? [] {
                do { open.append(try PortOpening(parsing: s)) } catch { throw f.error("open", error.description) }
            }
            return ClientRecord(name: name, publicKey: key, open: open, isolated: try f.boolean("isolate") ?? true)
        } catch {
            throw .config(error)
        }
    }

    /// Writes the client's file atomically (a temporary file renamed into place).
    public func write(_ c: ClientRecord) throws(GatewayError) {
        try Self.validate(name: c.name)
        guard Bytes32(base64: c.publicKey) != nil else { throw .invalidKey(c.publicKey) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .io(path: directory, detail: "cannot create: \(error.localizedDescription)")
        }
        let path = directory + "/" + c.name
        var text = "# Sixgate client \(c.name), written by gatewayctl\npublic_key = \"\(c.publicKey)\"\n"
        if !c.open.isEmpty {
            text += "# Inbound connections gatewayd's firewall lets through to this client (everything else unsolicited is dropped)\n"
            text += "open = [\(c.open.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
        }
        if !c.isolated { text += "# Exempt from isolate_clients: new connections with the other exempt clients pass\nisolate = false\n" }
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw .io(path: path, detail: "cannot write: \(String(cString: strerror(errno)))")
        }
        // Written by root (gatewayctl without a running gatewayd) into a folder that belongs to the
        // daemon's user: the file is that user's too, or gatewayd could not read it (docs/security.md).
        var dir = stat()
        if geteuid() == 0, stat(directory, &dir) == 0, dir.st_uid != 0 { chown(tmp, dir.st_uid, dir.st_gid) }
        guard rename(tmp, path) == 0 else {
            throw .io(path: path, detail: "cannot write: \(String(cString: strerror(errno)))")
        }
    }

    public func remove(_ name: String) throws(GatewayError) {
        try Self.validate(name: name)
        let path = directory + "/" + name
        guard unlink(path) == 0 else { throw errno == ENOENT ? .unknownClient(name) : .io(path: path, detail: String(cString: strerror(errno))) }
    }
}
