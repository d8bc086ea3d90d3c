// ndp-proxy — answers Neighbor Solicitations for addresses behind this host (a drop-in for npd6
// and ndppd: it reads npd6.conf, ndppd.conf or its own TOML, and takes their command lines).
// Thin executable: parses arguments and prints; the work lives in NDPProxy (ProxyService,
// DaemonCommandLine) and SixgateConfig (Daemon, Privileges).
import ArgumentParser
import Foundation
import Logging
import NDPProxy
import SixgateConfig
import SixgateDaemon
import SixgateMetrics
import SixgateSystem
import SixgateVersion
#if canImport(Glibc)
import Glibc
#endif

/// Where log lines go: the terminal until the process detaches, then syslog or the --log-file.
final class LogRoute: @unchecked Sendable {
    static let shared = LogRoute()
    private let lock = SystemLock()
    private var sink = try! Daemon.LogSink(.standardOutput)
    var current: Daemon.LogSink { lock.withLock { sink } }
    func use(_ s: Daemon.LogSink) { lock.withLock { sink = s } }
}

struct SinkLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let sink = LogRoute.shared.current
        let priority: Int32 = switch level {
        case .trace, .debug: LOG_DEBUG
        case .info: LOG_INFO
        case .notice: LOG_NOTICE
        case .warning: LOG_WARNING
        case .error: LOG_ERR
        case .critical: LOG_CRIT
        }
        if case .syslog = sink.destination { sink.write("\(level): \(message)", priority: priority); return }
        sink.write("\(Date().formatted(.iso8601)) \(level) \(label): \(message)", priority: priority)
    }
}

@main
struct NDPProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ndp-proxy",
        abstract: "Answer IPv6 Neighbor Solicitations for addresses behind this host (reads npd6.conf, ndppd.conf or its own TOML).",
        discussion: """
            With these long options ndp-proxy runs in the foreground (--daemon detaches). It also takes npd6's \
            command line (-c FILE -l FILE|- -f -d -D -v: detaches unless -f) and ndppd's (-c FILE -d -p PIDFILE -v): \
            called as npd6 or ndppd, or given only short options, it reads them as the daemon whose config it \
            reads does (docs/ndp-proxy.md). SIGHUP re-reads the config file (an invalid one is logged with \
            file:line:key and the running rules stay), as SIGUSR1 does for an npd6.conf (npd6's init script); \
            SIGUSR1 logs the counters; SIGUSR2 dumps every rule and entry; SIGINT or SIGTERM stops, removes the \
            kernel-mode entries it keeps, and logs the counters. Needs CAP_NET_RAW (a packet socket per \
            interface) and, for kernel mode, CAP_NET_ADMIN.
            """)

    static let defaultConfig = "/etc/npd6.conf"

    @Option(name: [.customShort("c"), .long], help: "The config file: npd6.conf, ndppd.conf or ndp-proxy TOML (docs/ndp-proxy.toml.example), told apart by its contents.")
    var config = NDPProxyCommand.defaultConfig

    @OptionGroup var common: DaemonOptions

    @Option(help: "Seconds between syncs of kernel-mode proxy entries with their list or lease store.")
    var syncInterval = 5

    @Option(help: "Answers per second allowed overall, per interface (default 200000).")
    var rateLimit: Int?

    @Option(help: "Answers per second allowed to one soliciting address (default 100000): a flood from one source cannot take all.")
    var rateLimitPerSource: Int?

    @Flag(help: "One log line per solicitation with its verdict and reason (at most --trace-limit a second per interface); twice: ten times as many (npd6 -d/-D, ndppd -v/-vv).")
    var debug: Int

    @Flag(help: .hidden)
    var debug2 = false

    @Option(help: "Solicitation lines per second per interface at --debug.")
    var traceLimit = 50

    @Option(help: "Log lines at or above this level: debug, info, notice, warning, error.")
    var logLevel: String?

    @Option(help: "Write the log to this file (appended), or '-' for standard error; a daemon logs to syslog otherwise.")
    var logFile: String?

    @Flag(help: "Detach from the terminal (npd6 does this unless -f; ndppd with -d).")
    var daemon = false

    @Flag(help: "Stay in the foreground (npd6's -f; the default with these long options).")
    var foreground = false

    @Option(help: "Write the process id to this file once running (ndppd's -p).")
    var pidfile: String?

    @Option(help: "Serve Prometheus metrics at http://ADDRESS/metrics: IPV4:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9470.")
    var metricsListen: String?

    @Flag(help: "Print the version and exit.")
    var version = false

    /// Set by `main()` from the command line's dialect: npd6's detaches unless -f.
    nonisolated(unsafe) static var detachByDefault = false
    nonisolated(unsafe) static var personality = DaemonPersonality.ndpProxy

    /// Descriptors open when the process started: inherited, closed when it detaches.
    nonisolated(unsafe) static var inherited: [Int32] = []

    static func main() {
        inherited = Daemon.openDescriptors()
        let argv = CommandLine.arguments
        do {
            let line = try DaemonCommandLine.interpret(Array(argv.dropFirst()), programName: argv.first ?? "ndp-proxy",
                                                       fileExists: { FileManager.default.fileExists(atPath: $0) },
                                                       formatOf: { (try? NDPProxyConfig.read($0))?.format })
            detachByDefault = line.daemonize
            personality = line.personality
            main(line.arguments)
        } catch {
            FileHandle.standardError.write(Data("ndp-proxy: \(error)\n".utf8))
            Glibc.exit(64)
        }
    }

    func run() throws {
        if version {
            print(Self.personality == .ndpProxy ? "ndp-proxy (Sixgate) \(SixgateVersion.description)"
                  : "ndp-proxy (Sixgate) \(SixgateVersion.description), running as \(Self.personality.rawValue)")
            return
        }
        LoggingSystem.bootstrap { SinkLogHandler(label: $0) }
        var logger = Logger(label: "ndp-proxy")
        let level = max(debug, debug2 ? 2 : 0)
        if let logLevel {
            guard let l = Logger.Level(rawValue: logLevel) else { throw ValidationError("ndp-proxy: --log-level \(logLevel) is not debug, info, notice, warning or error") }
            logger.logLevel = l
        } else {
            logger.logLevel = level > 0 ? .debug : .info
        }
        if let logFile { LogRoute.shared.use(try sink(logFile == "-" ? .standardError : .file(logFile))) }
        if common.checkConfig {
            let c: NDPProxyConfiguration
            do { c = try NDPProxyConfig.read(config) } catch { throw ValidationError("ndp-proxy: \(error)") }
            for line in c.summary { print(line) }
            for w in c.warnings + c.missingInterfaceWarnings() { print(w) }
            print("ndp-proxy: \(config) is valid (\(c.format.rawValue) format, \(c.rules.count) rule(s))")
            return
        }
        for (name, v) in [("--rate-limit", rateLimit), ("--rate-limit-per-source", rateLimitPerSource), ("--trace-limit", traceLimit)] {
            if let v, v <= 0 { throw ValidationError("ndp-proxy: \(name) must be a positive number per second") }
        }
        // npd6's init script reloads with SIGUSR1 and its npd6.conf documents SIGUSR2 as "dump";
        // ndppd reloads on SIGHUP. None of them may end the process.
        let life: DaemonLife
        do { life = try DaemonLife(options: common, signals: [SIGUSR1, SIGUSR2, SIGHUP]) } catch { throw ValidationError("ndp-proxy: \(error)") }   // before any thread starts
        var options = ProxyService.Options()
        options.rateLimit = rateLimit
        options.rateLimitPerSource = rateLimitPerSource
        options.debugLevel = level
        options.traceLimit = traceLimit
        let log = logger
        let service: ProxyService
        do {
            // Config and interfaces are checked before detaching, so a mistake reaches the
            // terminal and the exit status (as with npd6 and ndppd).
            service = try ProxyService(path: config, options: options) { level, line in
                switch level {
                case .debug: log.debug("\(line)")
                case .info: log.info("\(line)")
                case .notice: log.notice("\(line)")
                case .warning: log.warning("\(line)")
                case .error: log.error("\(line)")
                }
            }
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        if daemon || (Self.detachByDefault && !foreground) {
            do {
                Daemon.closeInherited(Self.inherited)
                try Daemon.detach()
                if logFile == nil { LogRoute.shared.use(try sink(.syslog(identifier: Self.personality.rawValue))) }
            } catch {
                logger.error("\(error)")
                throw ExitCode(1)
            }
        }
        if let pidfile {
            do { try Daemon.writePidFile(pidfile) } catch { logger.error("\(error)"); throw ExitCode(1) }
        }
        defer { if let pidfile { unlink(pidfile) } }
        logger.info("ndp-proxy \(SixgateVersion.current): \(config) (\(service.configuration.format.rawValue) format)")
        // After detaching: the server's thread would not survive the fork.
        var endpoint: MetricsEndpoint?
        if let metricsListen {
            do {
                let e = try MetricsEndpoint(listen: metricsListen) { service.metricsPage().bytes }
                logger.info("metrics: \(e.url)")
                endpoint = e
            } catch {
                logger.error("\(error)")
                service.stop()
                throw ExitCode(1)
            }
        }
        service.start()
        life.ready(handOver: [], info: { log.info("\($0)") }, warning: { log.warning("\($0)") })
        let reloadOnUSR1 = service.configuration.format == .npd6
        life.run(every: Double(max(1, syncInterval)), tick: { service.sync() }, other: { received in
            if received == SIGHUP { service.reload("SIGHUP"); return }
            // npd6's reload signal; the counters are logged after it as they always were.
            if received == SIGUSR1 && reloadOnUSR1 { service.reload("SIGUSR1") }
            if received == SIGUSR2 { for line in service.dump { log.info("\(line)") } }
            for line in service.counters { log.info("\(line)") }
        })
        for line in service.counters { logger.info("\(line)") }
        endpoint?.stop()
        service.stop()
        logger.info("stopped")
    }

    func sink(_ d: Daemon.LogDestination) throws -> Daemon.LogSink {
        do { return try Daemon.LogSink(d) } catch { throw ValidationError("ndp-proxy: \(error)") }
    }
}
