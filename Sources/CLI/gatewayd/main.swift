// gatewayd — the gateway daemon: a WireGuard-compatible tunnel, client leases, routes, forwarding,
// NAT44 and NDP proxying, set up from one config file and removed again on SIGTERM.
// Thin executable: parses arguments and prints; the work lives in TunnelGateway.
import ArgumentParser
import Foundation
import Logging
import SixgateConfig
import SixgateDaemon
import SixgateMetrics
import SixgateSystem
import SixgateVersion
import TunnelGateway
#if canImport(Glibc)
import Glibc
#endif

@main
struct GatewayDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayd",
        abstract: "The Sixgate gateway: tunnel, leases, routes, NAT44 and NDP proxy from one config file.",
        discussion: """
            Runs in the foreground (systemd: dist/gatewayd.service). SIGTERM or SIGINT removes what it \
            added (routes, proxy entries, the NAT table, the interface) and keeps the lease store; \
            SIGHUP re-reads the clients folder without dropping sessions. Every 10 s it writes \
            metrics.prom (Prometheus text) in the state directory; with metrics_listen set, it also \
            serves the same page at http://ADDRESS/metrics.
            """,
        version: "gatewayd (Sixgate) \(SixgateVersion.description)")

    @Option(help: "The config file (TOML; see docs/gatewayd.toml.example).")
    var config = "/etc/sixgate/gatewayd.toml"

    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardOutput(label: $0) }
        var logger = Logger(label: "gatewayd")
        logger.logLevel = .info
        let configuration: GatewayConfiguration
        do { configuration = try GatewayAdmin.loadConfiguration(config) } catch {
            throw ValidationError("gatewayd: \(error)")
        }
        if daemon.checkConfig {
            // What can be checked against this host without touching it: the uplink's MTU.
            if let text = try? String(contentsOfFile: "/sys/class/net/\(configuration.uplink)/mtu", encoding: .utf8),
               let mtu = UInt32(text.trimmingCharacters(in: .whitespacesAndNewlines)), let w = configuration.mtuWarning(uplinkMTU: mtu) {
                FileHandle.standardError.write(Data("gatewayd: warning: \(config): \(w)\n".utf8))
            }
            print("gatewayd: \(config) is valid")
            return
        }

        let life: DaemonLife
        do { life = try DaemonLife(options: daemon, signals: [SIGHUP]) } catch { throw ValidationError("gatewayd: \(error)") }   // before any thread starts

        let gateway: Gateway
        do {
            gateway = try Gateway(config: configuration)
            let log = logger
            let limiter = LogLimiter { line in log.info("\(line)") }
            gateway.log = { limiter.log($0) }
            try gateway.start()
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        var endpoint: MetricsEndpoint?
        if let listen = configuration.metricsListen {
            do {
                let e = try MetricsEndpoint(address: listen) { try gateway.metricsPage().bytes }
                logger.info("metrics: \(e.url)")
                endpoint = e
            } catch {
                logger.error("\(config): \(error)")
                gateway.stop()
                throw ExitCode(1)
            }
        }
        let log = logger
        life.ready(handOver: Privileges.withEntries(configuration.stateDirectory) + Privileges.withEntries(configuration.clientsDirectory),
                   info: { log.info("\($0)") }, warning: { log.warning("\($0)") })
        let stopping = life.run(every: 10, tick: {
            gateway.writeMetrics()
            gateway.reportDrops()
            gateway.saveEndpoints()
            gateway.prefixTick()
        }, other: { _ in   // SIGHUP
            do { _ = try gateway.reloadClients() } catch { log.error("reload: \(error)") }
        })
        logger.info("signal \(stopping): stopping")
        endpoint?.stop()
        gateway.stop()
    }
}
