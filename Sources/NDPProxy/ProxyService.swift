// The running proxy: one responder or kernel-entry keeper per rule of a config file, reloaded
// in place (an invalid new file leaves the running rules as they are), dumped and counted on
// request. The ndp-proxy executable is this plus signals and a command line.
import SixgateSystem
import Foundation
import RouteKit
import SixgateMetrics

/// Every rule of one config file, running.
public final class ProxyService: @unchecked Sendable {
    /// How loud a line is (the executable maps these onto its logger).
    public enum Level: Sendable { case debug, info, notice, warning, error }

    public struct Options: Sendable, Equatable {
        /// Answers per second overall and per source (nil: the responder's defaults).
        public var rateLimit: Int?
        public var rateLimitPerSource: Int?
        /// 0: no per-solicitation lines; 1: one line per solicitation, at most `traceLimit` a
        /// second per interface; 2: the same with ten times the limit.
        public var debugLevel = 0
        public var traceLimit = 50
        public init() {}
    }

    public let path: String
    public let options: Options
    public let namespace: NetworkNamespace
    public private(set) var configuration: NDPProxyConfiguration
    public private(set) var responders: [Responder] {
        get { lock.withLock { running.responders } }
        set { lock.withLock { running.responders = newValue } }
    }
    public private(set) var kernel: [KernelProxy] {
        get { lock.withLock { running.kernel } }
        set { lock.withLock { running.kernel = newValue } }
    }
    // The running parts, read by the metrics thread while a reload may replace them; and the
    // counters of responders a reload retired, per interface, so totals never go back.
    let lock = SystemLock()
    var running: (responders: [Responder], kernel: [KernelProxy]) = ([], [])
    var retired: [String: ResponderStatistics] = [:]
    let log: @Sendable (Level, String) -> Void
    let openStore: KernelProxy.StoreOpener

    /// Reads `path` and opens what its rules need (sockets on the interfaces; it does not start
    /// answering yet: see `start`). Throws the config error or the first interface's.
    /// `openStore` opens a kernel-mode rule's `lease_store` (read-only SQLite unless given).
    public init(path: String, options: Options = Options(), namespace: NetworkNamespace = .current,
                openStore: @escaping KernelProxy.StoreOpener = KernelProxy.sqliteStore,
                log: @escaping @Sendable (Level, String) -> Void) throws {
        self.path = path
        self.options = options
        self.namespace = namespace
        self.openStore = openStore
        self.log = log
        configuration = try NDPProxyConfig.read(path)
        running = try Self.open(configuration.rules, namespace: namespace, openStore: openStore)
    }

    static func open(_ rules: [ProxyRule], namespace: NetworkNamespace, openStore: @escaping KernelProxy.StoreOpener) throws(NDPProxyError) -> ([Responder], [KernelProxy]) {
        var responders: [Responder] = [], kernel: [KernelProxy] = []
        do {
            for r in rules {
                if r.mode == .kernel { kernel.append(try KernelProxy(rule: r, namespace: namespace, openStore: openStore)) } else { responders.append(try Responder(rule: r, namespace: namespace)) }
            }
        } catch {
            for r in responders { r.stop() }
            throw error
        }
        return (responders, kernel)
    }

    /// Logs the warnings and the rules, syncs kernel entries and starts the responders.
    public func start() {
        for w in configuration.warnings { log(.warning, w.description) }
        sync()
        for r in responders { begin(r) }
        for line in configuration.summary { log(.info, "rule \(line)") }
        for r in responders { log(.info, "answering on \(r.rule.interface) for \((r.rule.prefixes + r.rule.autoPrefixes + r.rule.ifacePrefixes).map(\.description).joined(separator: " "))") }
        for k in kernel { log(.info, "kernel proxy entries on \(k.rule.interface): \(k.installed.count)") }
    }

    func begin(_ r: Responder) {
        r.rateLimit = (options.rateLimit ?? r.rateLimit.overall, options.rateLimitPerSource ?? r.rateLimit.perSource)
        let log = self.log
        r.log = { log(.notice, $0) }
        if options.debugLevel > 0 {
            r.traceLimit = options.traceLimit * (options.debugLevel >= 2 ? 10 : 1)
            r.trace = { log(.debug, $0) }
        }
        r.start()
    }

    /// Brings kernel-mode entries in line with their lists or lease stores.
    public func sync() {
        for k in kernel {
            do {
                let (added, removed) = try k.sync()
                if added + removed > 0 { log(.info, "\(k.rule.interface): proxy entries +\(added) -\(removed), \(k.installed.count) kept") }
            } catch {
                log(.error, "\(error)")   // keeps serving what it has; tried again at the next sync
            }
        }
    }

    /// Re-reads the config file. A valid, changed one replaces the rules (responders restarted,
    /// kernel entries re-synced); an invalid one, or one whose interfaces cannot be opened, is
    /// logged with file:line:key and the running rules stay. Returns whether the rules changed.
    @discardableResult
    public func reload(_ why: String) -> Bool {
        let next: NDPProxyConfiguration
        do { next = try NDPProxyConfig.read(path) } catch {
            log(.error, "reload (\(why)): \(error); keeping the running rules")
            return false
        }
        guard next.rules != configuration.rules else {
            log(.info, "reload (\(why)): \(path) unchanged")
            sync()
            return false
        }
        let opened: ([Responder], [KernelProxy])
        do { opened = try Self.open(next.rules, namespace: namespace, openStore: openStore) } catch {
            log(.error, "reload (\(why)): \(error); keeping the running rules")
            return false
        }
        // The old go, the new come: kernel entries are removed and put back within one sync.
        for r in responders { r.stop() }
        lock.withLock { for r in running.responders { retired[r.rule.interface, default: ResponderStatistics()].add(r.statistics) } }
        for k in kernel { k.removeAll() }
        lock.withLock { running = opened }
        configuration = next
        for w in next.warnings { log(.warning, w.description) }
        sync()
        for r in responders { begin(r) }
        log(.info, "reload (\(why)): \(next.rules.count) rule(s): \(next.summary.joined(separator: "; "))")
        return true
    }

    /// Every rule and what it holds (npd6.conf: "SIGUSR2 dumps the targets").
    public var dump: [String] {
        configuration.rules.map { r in
            "rule: \(r.interface) \(r.mode.rawValue) prefixes \(r.prefixes.map(\.description).joined(separator: " ")) auto \(r.autoPrefixes.map(\.description).joined(separator: " ")) "
                + (r.innerInterface.map { "iface \($0) \(r.ifacePrefixes.map(\.description).joined(separator: " ")) " } ?? "")
                + "list \(r.listType.rawValue) \(r.addresses.sorted { $0.description < $1.description }.map(\.description).joined(separator: " "))"
        } + kernel.map { k in "\(k.rule.interface): kernel proxy entries \(k.installed.sorted { $0.description < $1.description }.map(\.description).joined(separator: " "))" }
    }

    /// One line of counters per interface.
    public var counters: [String] {
        responders.map { "\($0.rule.interface): \($0.statistics)" } + kernel.map { "\($0.rule.interface): \($0.installed.count) kernel proxy entries" }
    }

    /// Every interface's counters since the daemon started (reloads included), as a Prometheus page.
    public func metricsPage() -> MetricsPage {
        var totals: [String: ResponderStatistics] = [:]
        var entries: [String: Int] = [:]
        lock.withLock {
            totals = retired
            for r in running.responders { totals[r.rule.interface, default: ResponderStatistics()].add(r.statistics) }
            for k in running.kernel { entries[k.rule.interface, default: 0] += k.installed.count }
        }
        var page = MetricsPage()
        for (interface, s) in totals.sorted(by: { $0.key < $1.key }) {
            page.counter("sixgate_ndp_solicitations_total", help: "Neighbour solicitations received on the interface.",
                         labels: [("interface", interface)], value: s.received)
            page.counter("sixgate_ndp_advertisements_total", help: "Neighbour advertisements sent in answer.",
                         labels: [("interface", interface)], value: s.answered)
            let reasons: [(String, UInt64)] = [
                ("invalid", s.invalid), ("malformed", s.malformed), ("outside_prefix", s.outsidePrefix), ("not_routed", s.notRouted),
                ("excluded", s.excludedByList), ("inner_silent", s.innerSilent), ("local", s.local), ("rate_limited", s.rateLimited),
                ("send_error", s.sendErrors),
            ]
            for (reason, n) in reasons {
                page.counter("sixgate_ndp_unanswered_total", help: "Solicitations not answered, by reason (ndp-proxy --debug logs each).",
                             labels: [("interface", interface), ("reason", reason)], value: n)
            }
            page.counter("sixgate_ndp_inner_solicitations_total", help: "Solicitations sent on an iface rule's inner interface.",
                         labels: [("interface", interface)], value: s.innerSolicitations)
            page.counter("sixgate_ndp_inner_advertisements_total", help: "Advertisements received back on an iface rule's inner interface.",
                         labels: [("interface", interface)], value: s.innerAnswers)
        }
        for (interface, n) in entries.sorted(by: { $0.key < $1.key }) {
            page.gauge("sixgate_ndp_kernel_proxy_entries", help: "Kernel proxy neighbour entries kept (mode = kernel).",
                       labels: [("interface", interface)], value: Double(n))
        }
        return page
    }

    /// Stops the responders and removes the kernel entries this service added.
    public func stop() {
        for r in responders { r.stop() }
        for k in kernel { k.removeAll() }
    }
}
