// gatewayctl — enrol clients, print their configs, show status and leases. Talks to a running
// gatewayd through its control socket, or works on the state directory when none runs.
// Thin executable: parses arguments and prints; the work lives in TunnelGateway.
import ArgumentParser
import Foundation
import TunnelCore
import TunnelGateway

struct Common: ParsableArguments {
    @Option(help: "gatewayd's config file.")
    var config = "/etc/sixgate/gatewayd.toml"

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func load() throws -> GatewayConfiguration {
        do { return try GatewayAdmin.loadConfiguration(config) } catch { throw ValidationError("gatewayctl: \(error)") }
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}

func fail(_ error: any Error) -> ExitCode {
    FileHandle.standardError.write(Data("gatewayctl: \(error)\n".utf8))
    return ExitCode(1)
}

@main
struct GatewayCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayctl",
        abstract: "Enrol Sixgate clients and look at the gateway.",
        subcommands: [Clients.self, Status.self, Leases.self])
}

struct Clients: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add, remove, list and show clients.",
                                                    subcommands: [Add.self, Remove.self, List.self, Show.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enrol a client and print its wg-quick config.")
        @OptionGroup var common: Common
        @Argument(help: "The client's name (letters, digits, '.', '_', '-').") var name: String
        @Option(help: "The client's public key (as `wg pubkey` prints). Without it a key pair is generated and the private key printed once.")
        var key: String?
        @Flag(help: "Print the config as a QR code (needs qrencode).") var qr = false
        @Option(help: "wg-quick (any WireGuard client) or tunnel-client (Sixgate's client: addresses from the lease).")
        var format = ConfigFormat.wgQuick

        func run() throws {
            let config = try common.load()
            var privateKey: String?
            var publicKey = key ?? ""
            if key == nil {
                let k = X25519.generatePrivateKey()
                privateKey = k.base64
                publicKey = X25519.publicKey(k).base64
            }
            do {
                let (client, live) = try GatewayAdmin.addClient(config, name: name, publicKey: publicKey)
                let gatewayKey = try GatewayAdmin.status(config).0.publicKey
                let text = format.render(config, client, gatewayKey, privateKey)
                if common.json {
                    struct Out: Encodable { var client: ClientStatus; var live: Bool; var config: String }
                    try printJSON(Out(client: client, live: live, config: text))
                } else {
                    try output(text, qr: qr)
                    if !live { FileHandle.standardError.write(Data("gatewayctl: gatewayd is not running; the client is enrolled and takes effect when it starts\n".utf8)) }
                }
            } catch let e as GatewayError { throw fail(e) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a client (its addresses are released, not forgotten).")
        @OptionGroup var common: Common
        @Argument var name: String
        func run() throws {
            let config = try common.load()
            do { _ = try GatewayAdmin.removeClient(config, name: name) } catch { throw fail(error) }
            if !common.json { print("removed \(name)") } else { print("{\"removed\": \"\(name)\"}") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients and their addresses.")
        @OptionGroup var common: Common
        func run() throws {
            let config = try common.load()
            let status: GatewayStatus
            do { status = try GatewayAdmin.status(config).0 } catch { throw fail(error) }
            if common.json { try printJSON(status.clients); return }
            for c in status.clients { print("\(c.name)\t\(c.publicKey)\t\(c.addresses.joined(separator: " "))") }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a client's wg-quick config (without its private key).")
        @OptionGroup var common: Common
        @Argument var name: String
        @Flag(help: "Print the config as a QR code (needs qrencode).") var qr = false
        @Option(help: "wg-quick or tunnel-client.") var format = ConfigFormat.wgQuick
        func run() throws {
            let config = try common.load()
            let status: GatewayStatus
            do { status = try GatewayAdmin.status(config).0 } catch { throw fail(error) }
            guard let c = status.clients.first(where: { $0.name == name }) else { throw fail(GatewayError.unknownClient(name)) }
            let text = format.render(config, c, status.publicKey, nil)
            if common.json { try printJSON(c) } else { try output(text, qr: qr) }
        }
    }
}

/// The client config formats gatewayctl prints.
enum ConfigFormat: String, ExpressibleByArgument {
    case wgQuick = "wg-quick", tunnelClient = "tunnel-client"
    func render(_ config: GatewayConfiguration, _ client: ClientStatus, _ gatewayKey: String, _ privateKey: String?) -> String {
        switch self {
        case .wgQuick: return GatewayAdmin.clientConfiguration(config, client: client, gatewayPublicKey: gatewayKey, privateKey: privateKey)
        case .tunnelClient: return GatewayAdmin.tunnelClientConfiguration(config, client: client, gatewayPublicKey: gatewayKey, privateKey: privateKey)
        }
    }
}

/// Prints `text`, or its QR code through qrencode (a Debian package) when asked.
func output(_ text: String, qr: Bool) throws {
    guard qr else { print(text, terminator: ""); return }
    guard let path = ["/usr/bin/qrencode", "/usr/local/bin/qrencode"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw fail("--qr needs qrencode (apt install qrencode)")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = ["-t", "ansiutf8"]
    let pipe = Pipe()
    p.standardInput = pipe
    try p.run()
    pipe.fileHandleForWriting.write(Data(text.utf8))
    try pipe.fileHandleForWriting.close()
    p.waitUntilExit()
}

extension String: @retroactive Error {}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Peers, handshakes, endpoints, bytes and drop counters.")
    @OptionGroup var common: Common
    func run() throws {
        let config = try common.load()
        let (status, live): (GatewayStatus, Bool)
        do { (status, live) = try GatewayAdmin.status(config) } catch { throw fail(error) }
        if common.json { try printJSON(status); return }
        print("interface \(status.interface)  port \(status.listenPort)  public key \(status.publicKey)\(live ? "" : "  (gatewayd not running)")")
        let now = Int64(Date().timeIntervalSince1970)
        for c in status.clients {
            let hs = c.lastHandshake == 0 ? "never" : "\(now - c.lastHandshake) s ago"
            print("  \(c.name)  \(c.addresses.joined(separator: " "))  endpoint \(c.endpoint ?? "-")  handshake \(hs)  rx \(c.receivedBytes) B  tx \(c.sentBytes) B")
        }
        let drops = status.counters.filter { $0.key.hasPrefix("dropped") && $0.value > 0 }.sorted { $0.key < $1.key }
        if !drops.isEmpty { print("  drops: " + drops.map { "\($0.key)=\($0.value)" }.joined(separator: " ")) }
    }
}

struct Leases: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every lease in the store, active and released.")
    @OptionGroup var common: Common
    func run() throws {
        let config = try common.load()
        let leases: [LeaseRow]
        do { leases = try GatewayAdmin.leases(config).map { LeaseRow(pool: $0.pool, prefix: $0.prefix.description, client: $0.client, isStatic: $0.isStatic, active: $0.isActive) } } catch { throw fail(error) }
        if common.json { try printJSON(leases); return }
        for l in leases { print("\(l.pool)\t\(l.prefix)\t\(l.client)\t\(l.active ? "active" : "released")\(l.isStatic ? " static" : "")") }
    }
    struct LeaseRow: Encodable { var pool: String; var prefix: String; var client: String; var isStatic: Bool; var active: Bool }
}
