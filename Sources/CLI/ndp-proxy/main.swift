// ndp-proxy — answers Neighbor Solicitations for addresses behind this host (a drop-in for npd6:
// it reads npd6.conf, ndppd.conf or its own TOML). Thin executable: parses arguments and prints;
// the work lives in NDPProxy.
import ArgumentParser
import Foundation
import Logging
import NDPProxy
import SixgateConfig
#if canImport(Glibc)
import Glibc
#endif

@main
struct NDPProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ndp-proxy",
        abstract: "Answer IPv6 Neighbor Solicitations for addresses behind this host (reads npd6.conf, ndppd.conf or its own TOML).",
        discussion: """
            Runs in the foreground. SIGHUP re-reads the config file (an invalid one is logged and the running \
            rules stay), as SIGUSR1 does for an npd6.conf (npd6's init script); SIGUSR1 logs the counters; \
            SIGUSR2 dumps every rule and entry; SIGHUP also syncs kernel-mode entries at once \
            (they are also synced every --sync-interval seconds); SIGINT or SIGTERM stops, removes the \
            kernel-mode entries it keeps, and logs the counters. Needs CAP_NET_RAW (a packet socket per \
            interface) and, for kernel mode, CAP_NET_ADMIN.
            """)

    @Option(help: "The config file: npd6.conf, ndppd.conf or ndp-proxy TOML (docs/ndp-proxy.toml.example), told apart by its contents.")
    var config = "/etc/npd6.conf"

    @Flag(help: "Validate the config file and exit.")
    var checkConfig = false

    @Flag(help: "Keep every capability after setup (by default only CAP_NET_ADMIN and CAP_NET_RAW stay, for the daemon, its hooks and the tools it runs).")
    var keepCapabilities = false

    @Option(help: "The user to run as after setup, keeping CAP_NET_ADMIN and CAP_NET_RAW (default: sixgate when that account exists; root: stay uid 0).")
    var user: String?

    @Option(help: "Seconds between syncs of kernel-mode proxy entries with their list or lease store.")
    var syncInterval = 5

    @Option(help: "Answers per second allowed overall, per interface (default 200000).")
    var rateLimit: Int?

    @Option(help: "Answers per second allowed to one soliciting address (default 100000): a flood from one source cannot take all.")
    var rateLimitPerSource: Int?

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardOutput(label: $0) }
        var logger = Logger(label: "ndp-proxy")
        logger.logLevel = .info
        let account: Privileges.Account?
        do { account = try Privileges.account(user) } catch { throw ValidationError("ndp-proxy: \(error)") }
        let rules: [ProxyRule]
        do { rules = try NDPProxyConfig.load(config) } catch {
            throw ValidationError("ndp-proxy: \(error)")
        }
        let data = FileManager.default.contents(atPath: config) ?? Data()
        if checkConfig {
            for r in rules {
                print("\(r.interface): \(r.mode.rawValue) \(r.prefixes.map(\.description).joined(separator: " ")) auto \(r.autoPrefixes.map(\.description).joined(separator: " ")) "
                      + "list \(r.listType.rawValue) (\(r.addresses.count) addresses)" + (r.leaseStore.map { " lease store \($0)" } ?? ""))
            }
            print("ndp-proxy: \(config) is valid")
            return
        }
        for (name, v) in [("--rate-limit", rateLimit), ("--rate-limit-per-source", rateLimitPerSource)] {
            if let v, v <= 0 { throw ValidationError("ndp-proxy: \(name) must be a positive number of answers per second") }
        }
        // npd6's init script reloads with SIGUSR1 and its npd6.conf documents SIGUSR2 as "dump";
        // ndppd reloads on SIGHUP. None of them may end the process.
        let reloadOnUSR1 = NDPProxyConfig.isNPD6(String(decoding: data, as: UTF8.self), path: config)
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGHUP] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_SETMASK, &signals, nil)   // exactly these: an inherited mask (real-time signals blocked by a parent) would keep the privilege drop from reaching the threads made from here on
        var responders: [Responder] = []
        var kernel: [KernelProxy] = []
        var current = rules
        do {
            for r in rules {
                if r.mode == .kernel { kernel.append(try KernelProxy(rule: r)) } else { responders.append(try Responder(rule: r)) }
            }
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        func sync() {
            for k in kernel {
                do {
                    let (added, removed) = try k.sync()
                    if added + removed > 0 { logger.info("\(k.rule.interface): proxy entries +\(added) -\(removed), \(k.installed.count) kept") }
                } catch {
                    logger.error("\(error)")   // keeps serving what it has; tried again at the next sync
                }
            }
        }
        sync()
        func begin(_ r: Responder) {
            r.rateLimit = (rateLimit ?? r.rateLimit.overall, rateLimitPerSource ?? r.rateLimit.perSource)
            let eventLogger = logger
            r.log = { eventLogger.notice("\($0)") }
            r.start()
        }
        for r in responders { begin(r) }
        /// Re-reads the config file: a valid one replaces the rules (responders restarted, kernel
        /// entries re-synced), an invalid one is logged with file:line:key and the old rules stay.
        func reload(_ why: String) {
            let next: [ProxyRule]
            do { next = try NDPProxyConfig.load(config) } catch {
                logger.error("reload (\(why)): \(error); keeping the running rules")
                return
            }
            guard next != current else { logger.info("reload (\(why)): \(config) unchanged"); sync(); return }
            var newResponders: [Responder] = [], newKernel: [KernelProxy] = []
            do {
                for r in next {
                    if r.mode == .kernel { newKernel.append(try KernelProxy(rule: r)) } else { newResponders.append(try Responder(rule: r)) }
                }
            } catch {
                for r in newResponders { r.stop() }
                logger.error("reload (\(why)): \(error); keeping the running rules")
                return
            }
            // The old go, the new come: kernel entries are removed and put back within one sync.
            for r in responders { r.stop() }
            for k in kernel { k.removeAll() }
            responders = newResponders; kernel = newKernel; current = next
            sync()
            for r in responders { begin(r) }
            let summary = next.map { "\($0.interface) \($0.mode.rawValue) \($0.prefixes.map(\.description).joined(separator: " "))" }.joined(separator: "; ")
            logger.info("reload (\(why)): \(next.count) rule(s): \(summary)")
        }
        if !keepCapabilities {
            let log = logger
            Privileges.settle(account: account, keepCapabilities: false, handOver: [],
                              info: { log.info("\($0)") }, warning: { log.warning("\($0)") })
        }
        for r in responders { logger.info("answering on \(r.rule.interface) for \((r.rule.prefixes + r.rule.autoPrefixes).map(\.description).joined(separator: " "))") }
        for k in kernel { logger.info("kernel proxy entries on \(k.rule.interface): \(k.installed.count)") }
        var timeout = timespec(tv_sec: max(1, syncInterval), tv_nsec: 0)
        while true {
            let received = sigtimedwait(&signals, nil, &timeout)
            if received < 0 { sync(); continue }
            if received == SIGHUP { reload("SIGHUP"); continue }
            // npd6's reload signal; the counters are logged after it as they always were.
            if received == SIGUSR1 && reloadOnUSR1 { reload("SIGUSR1") }
            if received == SIGUSR2 {
                // Dump: every rule and what it holds (npd6.conf: "SIGUSR2 dumps the targets").
                for r in current { logger.info("rule: \(r.interface) \(r.mode.rawValue) prefixes \(r.prefixes.map(\.description).joined(separator: " ")) auto \(r.autoPrefixes.map(\.description).joined(separator: " ")) list \(r.listType.rawValue) \(r.addresses.sorted { $0.description < $1.description }.map(\.description).joined(separator: " "))") }
                for k in kernel { logger.info("\(k.rule.interface): kernel proxy entries \(k.installed.sorted { $0.description < $1.description }.map(\.description).joined(separator: " "))") }
            }
            for r in responders { logger.info("\(r.rule.interface): \(r.statistics)") }
            for k in kernel { logger.info("\(k.rule.interface): \(k.installed.count) kernel proxy entries") }
            if received == SIGUSR1 || received == SIGUSR2 { continue }
            break
        }
        for r in responders { r.stop() }
        for k in kernel { k.removeAll() }
        logger.info("stopped")
    }
}
