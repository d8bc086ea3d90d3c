// tunnel-client — the Sixgate client: connects to a gateway, learns its addresses in the tunnel,
// installs addresses and routes (and router advertisements on a LAN), and restores it all on exit.
// Thin executable: parses arguments and prints; the work lives in TunnelClient.
import ArgumentParser
import Foundation
import Logging
import SixgateConfig
import SixgateDaemon
import SixgateSystem
import SixgateVersion
import TunnelClient
#if canImport(Glibc)
import Glibc
#endif

@main
struct TunnelClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel-client",
        abstract: "The Sixgate client: tunnel to a gateway, addresses and routes from the gateway's lease, router mode.",
        version: "tunnel-client (Sixgate) \(SixgateVersion.description)",
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self)
}

struct Options: ParsableArguments {
    @Option(help: "The config file: TOML (docs/tunnel-client.toml.example) or a wg-quick file.")
    var config = "/etc/sixgate/tunnel-client.toml"

    @Option(help: "Where the running client writes its state (JSON), read by `tunnel-client status`. Default: /run/sixgate/INTERFACE.json")
    var stateFile: String?

    func load() throws -> ClientConfiguration {
        do { return try ClientConfiguration.load(config) } catch { throw ValidationError("tunnel-client: \(error)") }
    }

    func statePath(_ c: ClientConfiguration) -> String { stateFile ?? "/run/sixgate/\(c.interface).json" }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect and stay connected (the default).",
        discussion: """
            Runs in the foreground (systemd: dist/tunnel-client.service). SIGTERM or SIGINT sends final \
            router advertisements (router mode), removes the routes, addresses and interface it added, \
            and leaves the original default route in force. Reconnects by itself: the tunnel retries \
            handshakes, the lease is asked for again after each new session, the endpoint's name is \
            resolved again when handshakes stop succeeding, and the endpoint's host route follows a \
            changed default gateway.
            """)

    @OptionGroup var options: Options

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardOutput(label: $0) }
        var logger = Logger(label: "tunnel-client")
        logger.logLevel = .info
        let configuration = try options.load()
        for w in configuration.warnings { FileHandle.standardError.write(Data("tunnel-client: warning: \(w)\n".utf8)) }
        if daemon.checkConfig { print("tunnel-client: \(options.config) is valid"); return }

        let life: DaemonLife
        do { life = try DaemonLife(options: daemon) } catch { throw ValidationError("tunnel-client: \(error)") }   // before any thread starts

        let client: SixgateClient
        do {
            client = try SixgateClient(config: configuration)
            let log = logger
            let limiter = LogLimiter { line in log.info("\(line)") }
            client.log = { limiter.log($0) }
            client.onFatal = { error in
                log.error("\(error)")
                fatalStop.store(true)
                kill(getpid(), SIGTERM)
            }
            try client.start()
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        // The state file exists before the switch of user and is handed over (with its folder when
        // that is Sixgate's own /run/sixgate); it is then rewritten in place.
        let path = options.statePath(configuration)
        let folder = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644])
        let log = logger
        life.ready(handOver: (folder == "/run/sixgate" ? [folder] : []) + [path], info: { log.info("\($0)") }, warning: { log.warning("\($0)") })
        var written: ClientState?
        let stopping = life.run(every: 1, tick: {
            let state = client.currentState
            guard state != written, let data = try? JSONEncoder.sorted.encode(state) else { return }
            // Atomically where the folder is writable; in place where it is not (another user's
            // folder, after the switch of user).
            let fd = FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o644]) ? -1
                : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd >= 0 {
                _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
            written = state
        })
        logger.info("signal \(stopping): stopping")
        client.stop()
        unlink(path)
        if fatalStop.load() { throw ExitCode(1) }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print what the running client has installed.")

    @OptionGroup var options: Options

    @Flag(help: "JSON output.")
    var json = false

    func run() throws {
        let c = try options.load()
        let path = options.statePath(c)
        guard let data = FileManager.default.contents(atPath: path), let state = try? JSONDecoder().decode(ClientState.self, from: data) else {
            throw ValidationError("tunnel-client: no state at \(path): is tunnel-client running for \(c.interface)?")
        }
        if json { print(String(decoding: try JSONEncoder.sorted.encode(state), as: UTF8.self)); return }
        print("interface: \(state.interface)")
        print("endpoint: \(state.endpoint ?? "-")")
        let age = state.lastHandshake == 0 ? "never" : "\(Int64(Date().timeIntervalSince1970) - state.lastHandshake) s ago"
        print("last handshake: \(age)")
        print("addresses: \(state.addresses.joined(separator: " "))")
        print("routes: \(state.routes.joined(separator: " "))")
        if !state.bypassRoutes.isEmpty { print("endpoint routes: \(state.bypassRoutes.joined(separator: "; "))") }
        if !state.dnsServers.isEmpty { print("dns: \(state.dnsServers.joined(separator: " "))") }
        if let p = state.nat64Prefix { print("nat64 prefix: \(p)") }
        if let c = state.clat { print("clat: \(c)") }
        if let p = state.advertisedPrefix { print("advertising: \(p)") }
        if let f = state.lanFirewall { print("lan firewall: \(f)\(state.lanInboundDropped.map { ", \($0) inbound dropped" } ?? "")") }
        print("lease: \(state.leaseRequests) request(s), \(state.leaseReplies) reply(ies)")
        if let u = state.unreachableReceived, u > 0 {
            print("unreachable: \(u) ICMPv6 Destination Unreachable received on the tunnel (the gateway could not deliver or translate; on the gateway: gatewayctl doctor)")
        }
    }
}

/// Set when the client gave up (see SixgateClient.onFatal): exit 1 after cleaning up.
final class StopFlag: @unchecked Sendable {
    private let lock = SystemLock()
    private var value = false
    func store(_ v: Bool) { lock.withLock { value = v } }
    func load() -> Bool { lock.withLock { value } }
}
let fatalStop = StopFlag()

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
