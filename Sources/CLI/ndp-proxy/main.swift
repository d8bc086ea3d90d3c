// ndp-proxy — answers Neighbor Solicitations for addresses behind this host (a drop-in for npd6:
// it reads npd6.conf). Thin executable: parses arguments and prints; the work lives in NDPProxy.
import ArgumentParser
import Foundation
import NDPProxy
#if canImport(Glibc)
import Glibc
#endif

@main
struct NDPProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ndp-proxy",
        abstract: "Answer IPv6 Neighbor Solicitations for addresses behind this host (reads npd6.conf or ndppd.conf).",
        discussion: """
            Runs in the foreground. SIGUSR1 prints the counters; SIGINT or SIGTERM stops and prints them. \
            Needs CAP_NET_RAW (a packet socket per interface).
            """)

    @Option(help: "The config file (npd6.conf or ndppd.conf format, told apart by its contents).")
    var config = "/etc/npd6.conf"

    @Flag(help: "Validate the config file and exit.")
    var checkConfig = false

    func run() throws {
        guard let data = FileManager.default.contents(atPath: config) else {
            throw ValidationError("ndp-proxy: \(config): \(FileManager.default.fileExists(atPath: config) ? "unreadable" : "no such file")")
        }
        let rules: [ProxyRule]
        do { rules = try NDPProxyConfig.parse(String(decoding: data, as: UTF8.self), path: config) } catch {
            throw ValidationError("ndp-proxy: \(error)")
        }
        if checkConfig {
            for r in rules { print("\(r.interface): \(r.prefixes.map(\.description).joined(separator: " ")) auto \(r.autoPrefixes.map(\.description).joined(separator: " ")) list \(r.listType.rawValue) (\(r.addresses.count) addresses)") }
            print("ndp-proxy: \(config) is valid")
            return
        }
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGINT, SIGTERM, SIGUSR1] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        var responders: [Responder] = []
        do {
            for r in rules { responders.append(try Responder(rule: r)) }
        } catch {
            throw ValidationError("ndp-proxy: \(error)")
        }
        for r in responders { r.start() }
        print("ndp-proxy: answering on \(rules.map { "\($0.interface) (\($0.prefixes.map(\.description).joined(separator: " ")))" }.joined(separator: ", "))")
        fflush(nil)
        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            for r in responders { print("\(r.rule.interface): \(r.statistics)") }
            fflush(nil)
            if received != SIGUSR1 { break }
        }
        for r in responders { r.stop() }
    }
}
