// gatewayctl — enrol clients, print their configs, show status and leases. Talks to a running
// gatewayd through its control socket, or works on the state directory when none runs.
// Thin executable: parses arguments and prints; the work lives in TunnelGateway.
import ArgumentParser
import Diagnostics
import Foundation
import PacketKit
import RouteKit
import SixgateVersion
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
        version: "gatewayctl (Sixgate) \(SixgateVersion.description)",
        subcommands: [Clients.self, Status.self, Leases.self, Prefix.self, Doctor.self, Capture.self, Pcap.self, Reload.self, BIRDConfig.self])
}

struct Prefix: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The client prefix when it comes from outside (prefix_source = \"external\").",
                                                    subcommands: [SetPrefix.self])

    struct SetPrefix: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Move gatewayd and its clients to a new prefix (the ISP renumbered).",
            discussion: """
                Every client keeps its position (interface identifier, delegated-prefix index) in the \
                new prefix; routes, proxy entries, peers, the firewall and the translator follow; \
                connected tunnel-clients are told to ask for their lease again; the prefix-change hook \
                runs. The prefix it replaces stays routed, deprecated, until its valid lifetime \
                ends (--old-valid, else the lifetime it was set with, else two hours), and \
                tunnel-clients keep their old address deprecated as long. The same prefix again \
                renews its lifetimes. For a DHCPv6-PD client's hook (dist/dhcpcd-hook-sixgate \
                passes dhcpcd's prefix and lifetimes). Without a running gatewayd, the prefix is \
                remembered for its next start.
                """)
        @OptionGroup var common: Common
        @Argument(help: "The new prefix, e.g. 2001:db8:2::/64.")
        var prefix: String
        @Option(help: ArgumentHelp("Its preferred lifetime in seconds (a DHCPv6-PD lease's pltime).", valueName: "seconds"))
        var preferred: UInt32?
        @Option(help: ArgumentHelp("Its valid lifetime in seconds (vltime); without it, no end. 0 is refused.", valueName: "seconds"))
        var valid: UInt32?
        @Option(name: .customLong("old-valid"), help: ArgumentHelp("How long the prefix it replaces stays valid (0: removed at once).", valueName: "seconds"))
        var oldValid: UInt32?
        func run() throws {
            let config = try common.load()
            guard let p = IPv6Prefix(prefix) else { throw fail("\(prefix.debugDescription) is not an IPv6 prefix such as 2001:db8:2::/64") }
            let result: RenumberResult?
            do { result = try GatewayAdmin.setPrefix(config, p, preferred: preferred, valid: valid, oldValid: oldValid) } catch { throw fail(error) }
            guard let r = result else {
                print("gatewayd is not running: \(p) written to \(config.prefixStatePath) for its next start")
                return
            }
            print(Self.describe(r))
        }

        static func describe(_ r: RenumberResult) -> String {
            if r.oldPrefix == r.newPrefix {
                return "prefix \(r.newPrefix): lifetimes renewed" + (r.validUntil.map { ", valid until \($0) (seconds since 1970)" } ?? ", without end")
            }
            return "prefix \(r.oldPrefix) -> \(r.newPrefix): \(r.moved) lease(s) moved, \(r.clientsTold) client(s) told"
                + r.retiring.map { "; \($0.prefix) deprecated until \($0.validUntil)" }.joined()
        }
    }
}

struct Clients: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add, remove, list and show clients.",
                                                    subcommands: [Add.self, Remove.self, List.self, Show.self, Open.self, Close.self, Isolate.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enrol a client and print its wg-quick config.")
        @OptionGroup var common: Common
        @Argument(help: "The client's name (letters, digits, '.', '_', '-').") var name: String
        @Option(help: "The client's public key (as `wg pubkey` prints). Without it a key pair is generated and the private key printed once.")
        var key: String?
        @Flag(help: "Print the config as a QR code (needs qrencode).") var qr = false
        @Option(help: "wg-quick (any WireGuard client) or tunnel-client (Sixgate's client: addresses from the lease).")
        var format = ConfigFormat.wgQuick
        @Option(help: ArgumentHelp("Let new inbound connections through the gateway's firewall to this client: tcp/22, udp/51413-51420, sctp/PORT, dccp/PORT or all (repeat for more).", valueName: "proto/port"))
        var open: [String] = []
        @Flag(help: "Exempt the client from isolate_clients: new connections with the other exempt clients pass.")
        var noIsolate = false

        func run() throws {
            let config = try common.load()
            let openings: [PortOpening]
            do { openings = try GatewayAdmin.parseOpenings(open) } catch { throw fail(error) }
            var privateKey: String?
            var publicKey = key ?? ""
            if key == nil {
                let k = X25519.generatePrivateKey()
                privateKey = k.base64
                publicKey = X25519.publicKey(k).base64
            }
            do {
                let (client, live) = try GatewayAdmin.addClient(config, name: name, publicKey: publicKey, open: openings, isolated: !noIsolate)
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

extension Clients {
    struct Open: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let new inbound connections through the gateway's firewall to a client.",
            discussion: "Live when gatewayd runs (tracked connections stay); otherwise written to the client's record. Values: tcp/22, udp/51413-51420, sctp/PORT, dccp/PORT, all.")
        @OptionGroup var common: Common
        @Argument var name: String
        @Argument(help: ArgumentHelp("What to open.", valueName: "proto/port")) var specs: [String]
        func run() throws { try change(common, name, open: specs, close: []) }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take openings away again (\"all\" closes every one); connections already open stay until they end.")
        @OptionGroup var common: Common
        @Argument var name: String
        @Argument(help: ArgumentHelp("What to close.", valueName: "proto/port")) var specs: [String]
        func run() throws { try change(common, name, open: [], close: specs) }
    }

    struct Isolate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Whether isolate_clients applies to a client (off: new connections with the other non-isolated clients pass).")
        @OptionGroup var common: Common
        @Argument var name: String
        @Argument(help: "on or off.") var setting: String
        func run() throws {
            guard setting == "on" || setting == "off" else { throw fail("isolate: \(setting.debugDescription) is not on or off") }
            try change(common, name, open: [], close: [], isolated: setting == "on")
        }
    }

    static func change(_ common: Common, _ name: String, open: [String], close: [String], isolated: Bool? = nil) throws {
        let config = try common.load()
        do {
            let (c, live) = try GatewayAdmin.setFirewall(config, name: name, open: try GatewayAdmin.parseOpenings(open),
                                                         close: try GatewayAdmin.parseOpenings(close), isolated: isolated)
            if common.json { try printJSON(c); return }
            print("\(c.name): open \((c.open ?? []).isEmpty ? "nothing" : (c.open ?? []).joined(separator: " ")), \(c.isolated == false ? "not isolated" : "isolated")")
            if !config.firewall { FileHandle.standardError.write(Data("gatewayctl: note: firewall = \"off\" in \(common.config): nothing is filtered\n".utf8)) }
            if !live { FileHandle.standardError.write(Data("gatewayctl: gatewayd is not running; the record is changed and takes effect when it starts\n".utf8)) }
        } catch { throw fail(error) }
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
        if let p = status.prefix {
            func left(_ t: Int64) -> String { t > now ? "\(t - now) s" : "ENDED \(now - t) s ago" }
            var line = "prefix \(p) (\(status.prefixSource ?? "static")"
            if let v = status.prefixValidUntil { line += ", valid \(left(v))" }
            if let pr = status.prefixPreferredUntil { line += ", preferred \(left(pr))" }
            print(line + ")" + (status.retiringPrefixes ?? []).map { "  deprecated \($0.prefix) for \(left($0.validUntil))" }.joined())
        }
        for c in status.clients {
            let hs = c.lastHandshake == 0 ? "never" : "\(now - c.lastHandshake) s ago"
            let fw = config.firewall ? "  open \((c.open ?? []).isEmpty ? "-" : (c.open ?? []).joined(separator: ","))\(c.inboundDropped.map { "  inbound dropped \($0)" } ?? "")" : ""
            print("  \(c.name)  \(c.addresses.joined(separator: " "))\(c.outsideAddresses.map { "  (NPTv6: " + $0.joined(separator: " ") + ")" } ?? "")\(c.nat64Address.map { "  nat64 " + $0 } ?? "")\(c.clatAddress.map { "  clat \($0) -> \(c.clatNAT64Address ?? "?")" } ?? "")  endpoint \(c.endpoint ?? "-")  handshake \(hs)  rx \(c.receivedBytes) B  tx \(c.sentBytes) B\(fw)\(c.gateway.map { "  on \($0) (\(now - (c.gatewayHandshake ?? now)) s ago)" } ?? "")")
        }
        if !config.firewall { print("  firewall OFF (firewall = \"off\"): nothing of Sixgate's filters inbound traffic to clients") }
        let drops = status.counters.filter { ($0.key.hasPrefix("dropped") || $0.key.hasPrefix("firewallDropped") || $0.key.hasPrefix("nat64Dropped")) && $0.value > 0 }.sorted { $0.key < $1.key }
        if !drops.isEmpty { print("  drops: " + drops.map { "\($0.key)=\($0.value)" }.joined(separator: " ")) }
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make gatewayd re-read the clients folder and put back its firewall table if it is gone (as SIGHUP does).")
    @OptionGroup var common: Common
    func run() throws {
        let config = try common.load()
        do {
            guard try GatewayAdmin.reload(config) else { throw fail("gatewayd is not running (no control socket at \(config.controlSocketPath))") }
        } catch let e as GatewayError { throw fail(e) }
        print("reloaded")
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

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the troubleshooting checklist: forwarding, routes, NAT, firewall, NDP, MTU, clients.",
        discussion: """
            Each check prints ok, PROBLEM or skipped; a problem comes with what was seen and the fix as
            commands. Exit status: 0 when no problem was found, 1 otherwise (for monitoring, with --json).
            Run it as root in gatewayd's network namespace; it changes nothing.
            """)
    @OptionGroup var common: Common
    @Option(help: "Seconds of capture on the tunnel and the uplink (0: skip the capture checks).")
    var captureSeconds: Double = 3
    @Option(help: "Only this client for the per-client checks.") var client: String?
    @Flag(name: .shortAndLong, help: "Print the evidence of every check, not only of problems.") var verbose = false

    func run() throws {
        let config = try common.load()
        guard captureSeconds >= 0, captureSeconds <= 600 else { throw ValidationError("--capture-seconds must be 0 to 600") }
        let report: DoctorReport
        do { report = try GatewayAdmin.doctor(config, configPath: common.config, options: DoctorOptions(captureSeconds: captureSeconds, client: client)) } catch { throw fail(error) }
        if common.json { try printJSON(report) } else { print(report.render(verbose: verbose), terminator: "") }
        if report.problems > 0 { throw ExitCode(1) }
    }
}

struct BIRDConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bird-config",
        abstract: "Print the BIRD 2 snippet that announces this gateway's routes by BGP ([group] announce_table).",
        discussion: """
            gatewayd keeps the group's anycast endpoint addresses (while it runs) and each client's addresses
            (while its session is on this gateway) in the kernel table [group] announce_table. The snippet makes
            BIRD learn that table, run BFD on the uplink, and gives templates for the BGP sessions toward the
            upstream routers. Include it from /etc/bird/bird.conf (docs/scale.md); `gatewayctl doctor` checks
            that the sessions are Established.
            """)
    @OptionGroup var common: Common
    func run() throws {
        let config = try common.load()
        do { print(try GatewayAdmin.birdConfiguration(config), terminator: "") } catch { throw fail(error) }
    }
}

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture what crosses the gateway: print one line per packet, or write a pcap file (-w).",
        discussion: "Without --interface or --client it captures on gatewayd's tunnel device. Stops after --count packets, --seconds, or Ctrl-C.")
    @OptionGroup var common: Common
    @Option(name: [.customShort("i"), .long], help: "Interface to capture on (default: the tunnel).") var interface: String?
    @Option(help: "Only this client's packets on the tunnel (its leased addresses).") var client: String?
    @Option(name: [.customShort("f"), .long], help: "BPF filter, as tcpdump takes it.") var filter: String?
    @Option(name: .customShort("w"), help: "Write packets to this pcap file instead of printing them.") var write: String?
    @Option(name: [.customShort("c"), .long], help: "Stop after this many packets.") var count: Int?
    @Option(help: "Stop after this many seconds.") var seconds: Double?
    @Option(help: "Bytes kept of each packet.") var snapLength = 262_144

    func run() throws {
        let config = try common.load()
        if let count, count <= 0 { throw ValidationError("--count must be positive") }
        var expression = filter
        if let client {
            let status: GatewayStatus
            do { status = try GatewayAdmin.status(config).0 } catch { throw fail(error) }
            guard let c = status.clients.first(where: { $0.name == client }) else { throw fail(GatewayError.unknownClient(client)) }
            guard !c.addresses.isEmpty else { throw fail("client \(client) has no addresses") }
            let hosts = c.addresses.map { "net \($0)" }.joined(separator: " or ")
            expression = filter.map { "(\(hosts)) and (\($0))" } ?? hosts
        }
        let device = interface ?? config.interface
        let capture: LiveCapture
        do { capture = try LiveCapture(interface: device, filter: expression, snapLength: snapLength) } catch { throw fail(error) }
        var file: PcapDumpFile?
        if let write { do { file = try PcapDumpFile(path: write, linkType: capture.linkType, snapLength: snapLength) } catch { throw fail(error) } }
        // Ctrl-C and SIGTERM end the capture cleanly (the file is flushed and closed).
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { sig -> any DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { capture.stop() }
            s.resume()
            return s
        }
        defer { sources.forEach { $0.cancel() } }
        let listening = "listening on \(device), link type \(capture.linkType.rawValue)\(expression.map { ", filter \($0.debugDescription)" } ?? "")"
        FileHandle.standardError.write(Data((listening + "\n").utf8))
        let n: Int
        do {
            n = try capture.run(count: count, duration: seconds) { packet in
                if let file { file.write(packet) } else { FileHandle.standardOutput.write(Data((PacketLine.format(packet, linkType: capture.linkType) + "\n").utf8)) }
                return true
            }
            try file?.close()
        } catch { throw fail(error) }
        var summary = "\(n) packet\(n == 1 ? "" : "s") captured"
        if let st = capture.statistics, st.droppedByKernel > 0 { summary += ", \(st.droppedByKernel) dropped by the kernel (capture too slow)" }
        if let write { summary += ", written to \(write)" }
        FileHandle.standardError.write(Data((summary + "\n").utf8))
    }
}

struct Pcap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read pcap files without a gateway.",
        subcommands: [Decode.self])

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every packet of a pcap file with its layers and fields, named as tshark names them.",
            discussion: """
                Fields are tshark's (ip.ttl, ipv6.hlim, udp.checksum.status...), with the values \
                `tshark -T fields -e FIELD` prints, so a capture can be held against tshark line by line; \
                packets inside ICMP errors are decoded too (marked "inner"). A record the file cannot \
                hold (a timestamp out of range) is reported and skipped; a file cut short ends the \
                listing with an error.
                """)
        @Argument(help: "The pcap file (Ethernet, Linux cooked, or raw IP).") var file: String
        @Flag(help: "One JSON array: each packet's number, time, lengths and layers.") var json = false

        struct Packet: Encodable {
            let number: Int
            let time: String
            let length: Int
            let captured: Int
            let layers: [DissectedLayer]
        }

        func run() throws {
            let reader: PcapReader
            do { reader = try PcapReader(path: file) } catch { throw fail(error) }
            var iterator = reader.makeIterator()
            var number = 0, skippedSeen = 0
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if json { print("[", terminator: "") }
            while let record = iterator.next() {
                number += 1
                while skippedSeen < iterator.skipped.count {
                    FileHandle.standardError.write(Data("gatewayctl: \(file): a record skipped: \(iterator.skipped[skippedSeen])\n".utf8))
                    skippedSeen += 1
                }
                let layers = record.data.withUnsafeBytes { PacketDissector.dissect($0, linkType: reader.linkType) }
                let time = "\(record.seconds).\(String(format: "%09u", record.nanoseconds))"
                if json {
                    let packet = Packet(number: number, time: time, length: record.originalLength, captured: record.data.count, layers: layers)
                    let text = (try? encoder.encode(packet)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                    print((number > 1 ? ",\n" : "\n") + text, terminator: "")
                } else {
                    print("\(number) \(time) \(record.originalLength) bytes (\(record.data.count) captured)")
                    for layer in layers {
                        let fields = layer.fields.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
                        print("  \(layer.inner ? "inner " : "")\(layer.name): \(fields)\(layer.error.map { " [malformed: \($0)]" } ?? "")")
                    }
                }
            }
            if json { print("\n]") }
            if let error = iterator.error { throw fail("\(file): stopped at a malformed record: \(error)") }
        }
    }
}
